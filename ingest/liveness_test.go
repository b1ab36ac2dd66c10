package ingest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/storetest"
)

// worker1 is the first worker's report.
func worker1(t *testing.T, s *ingest.Service) ingestReport {
	t.Helper()
	rs := s.Liveness()
	if len(rs) != 2 || rs[0].Part != "worker 1" || rs[1].Part != ingest.LoopAckTracker {
		t.Fatalf("reports %+v, want one worker and the ack tracker", rs)
	}
	return ingestReport{rs[0].Busy, rs[0].Wedged(time.Millisecond), rs[0].Steps}
}

type ingestReport struct {
	busy, wedged bool
	steps        uint64
}

// A store call that hangs (it ignores its context) wedges the worker; it
// is no longer wedged once the call returns.
func TestLivenessHungStore(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, func(s *spyStore) {
		s.before = func(_ context.Context, b *outpost.Batch) error {
			if b.Seq == 1 {
				<-release
			}
			return nil
		}
	}, func(o *ingest.Options) { o.Workers = 1 })
	ingest.SetWorkAllowance(e.svc, time.Millisecond)
	if r := worker1(t, e.svc); r.busy || r.wedged {
		t.Fatalf("idle service: %+v", r)
	}
	e.publishBatch(storetest.Telemetry(e.gw, 5, 1, readings(2, storetest.T0)...))
	eventually(t, "the worker wedged", func() bool { return worker1(t, e.svc).wedged })
	close(release)
	e.waitAcks(5, 1, 1)
	eventually(t, "the worker idle again", func() bool {
		r := worker1(t, e.svc)
		return !r.busy && r.steps == 1
	})
}

// A database that is down keeps the worker retrying: busy, never wedged.
func TestLivenessStoreDownIsNotWedged(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, func(s *spyStore) {
		s.before = func(context.Context, *outpost.Batch) error {
			select {
			case <-release:
				return nil
			default:
				return errors.New("connection refused (injected)")
			}
		}
	}, func(o *ingest.Options) { o.Workers = 1 })
	ingest.SetWorkAllowance(e.svc, time.Millisecond)
	e.publishBatch(storetest.Telemetry(e.gw, 5, 1, readings(2, storetest.T0)...))
	eventually(t, "retries", func() bool { return e.svc.Stats().Errors >= 3 })
	if r := worker1(t, e.svc); !r.busy || r.wedged {
		t.Fatalf("retrying against a database that is down: %+v, want busy and not wedged", r)
	}
	close(release)
	e.waitAcks(5, 1, 1)
}
