package gateway

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is an appender that keeps what it is given, failing on demand.
type recorder struct {
	mu      sync.Mutex
	calls   [][]*outpost.Batch
	failing bool
}

func (r *recorder) Append(bs []*outpost.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing {
		return errors.New("disk full")
	}
	r.calls = append(r.calls, append([]*outpost.Batch(nil), bs...))
	return nil
}

func (r *recorder) batches() (tele, alerts []*outpost.Batch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.calls {
		for _, b := range c {
			if b.Kind == outpost.KindAlert {
				alerts = append(alerts, b)
			} else {
				tele = append(tele, b)
			}
		}
	}
	return tele, alerts
}

func readings(sensor string, n int, t0 int64) []outpost.Reading {
	rs := make([]outpost.Reading, n)
	for i := range rs {
		rs[i] = outpost.Reading{Sensor: sensor, Metric: "m", TS: t0 + int64(i), Value: float64(i)}
	}
	return rs
}

func runBatcher(t *testing.T, out appender, maxReadings int, feed func(in chan<- []outpost.Reading, alerts chan<- []outpost.Alert)) *batcher {
	t.Helper()
	in := make(chan []outpost.Reading, 64)
	alerts := make(chan []outpost.Alert, 4)
	b := &batcher{gateway: "gw", in: in, alerts: alerts, out: out, maxReadings: maxReadings,
		interval: time.Hour, maxPending: 8, now: time.Now}
	done := make(chan struct{})
	go func() { defer close(done); b.run(context.Background()) }()
	feed(in, alerts)
	close(in)
	close(alerts)
	<-done
	return b
}

func TestBatcherSplitsAtMaxReadingsAndFlushesOnClose(t *testing.T) {
	rec := &recorder{}
	b := runBatcher(t, rec, 100, func(in chan<- []outpost.Reading, _ chan<- []outpost.Alert) {
		in <- readings("a", 250, 0)
		in <- readings("b", 30, 1000)
	})
	tele, _ := rec.batches()
	var sizes []int
	total := 0
	for _, bt := range tele {
		sizes = append(sizes, bt.Len())
		total += bt.Len()
		if bt.Gateway != "gw" || bt.Kind != outpost.KindTelemetry {
			t.Fatalf("batch header %+v", bt)
		}
	}
	if total != 280 || b.stored.Load() != 280 {
		t.Fatalf("stored %d (counter %d) readings in batches %v, want 280", total, b.stored.Load(), sizes)
	}
	for _, s := range sizes[:len(sizes)-1] {
		if s != 100 {
			t.Fatalf("batch sizes %v: all but the last must be full", sizes)
		}
	}
}

func TestBatcherStoresAlertsInTheirOwnBatch(t *testing.T) {
	rec := &recorder{}
	runBatcher(t, rec, 1000, func(in chan<- []outpost.Reading, alerts chan<- []outpost.Alert) {
		in <- readings("a", 10, 0)
		alerts <- []outpost.Alert{{Rule: "hot", State: outpost.StateFiring}}
	})
	tele, al := rec.batches()
	if len(al) != 1 || len(al[0].Alerts) != 1 || len(al[0].Series) != 0 {
		t.Fatalf("alert batches %+v", al)
	}
	if len(tele) != 1 || tele[0].Len() != 10 {
		t.Fatalf("telemetry batches %+v", tele)
	}
}

func TestBatcherKeepsBatchesWhileOutboxFails(t *testing.T) {
	rec := &recorder{failing: true}
	b := runBatcher(t, rec, 10, func(in chan<- []outpost.Reading, alerts chan<- []outpost.Alert) {
		in <- readings("a", 50, 0) // 5 batches, all held in memory
		alerts <- []outpost.Alert{{Rule: "hot", State: outpost.StateFiring}}
	})
	if len(b.alertsHeld) != 1 {
		t.Fatalf("alert batches held %d, want 1: alerts are kept, not dropped", len(b.alertsHeld))
	}
	// maxPending 8 was never exceeded, so nothing is lost; nothing stored.
	if b.lost.Load() != 0 || b.stored.Load() != 0 || len(b.pending) != 5 {
		t.Fatalf("lost %d stored %d pending %d", b.lost.Load(), b.stored.Load(), len(b.pending))
	}
	rec.failing = false
	b.commit()
	if b.stored.Load() != 50 || len(b.pending) != 0 || len(b.alertsHeld) != 0 {
		t.Fatalf("after recovery stored %d pending %d alerts held %d", b.stored.Load(), len(b.pending), len(b.alertsHeld))
	}
	if _, al := rec.batches(); len(al) != 1 || rec.calls[0][0].Kind != outpost.KindAlert {
		t.Fatalf("alerts must be stored first after recovery: %d alert batches, first call %+v", len(al), rec.calls[0][0])
	}
}

func TestBusDropPolicyCounts(t *testing.T) {
	var bus Bus
	slow := bus.Subscribe("slow", 1, Drop)
	fast := bus.Subscribe("fast", 10, Block)
	for i := 0; i < 3; i++ {
		bus.Publish(context.Background(), readings("a", 2, int64(i)))
	}
	if got := bus.Dropped(); got["slow"] != 4 || got["fast"] != 0 {
		t.Fatalf("dropped %v, want slow 4, fast 0", got)
	}
	bus.Close()
	n := 0
	for range fast {
		n++
	}
	if n != 3 || len(slow) != 1 {
		t.Fatalf("fast got %d slices, slow holds %d", n, len(slow))
	}
}

// A gateway with no reachable broker keeps everything in the outbox, and a
// restart finds it there with the seq continuing.
func TestGatewayStoresWhileOffline(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: "gw-off"},
		DataDir: dir,
		Sensors: []config.Sensor{{ID: "dev1", Driver: SimDriver, Interval: 5 * time.Millisecond, Samples: 10,
			Metrics: []config.Metric{{Name: "temperature", Unit: "Cel", Signal: config.Signal{Kind: "constant", Value: 20}}}}},
		Batch:  config.BatchConfig{MaxReadings: 100, Interval: 50 * time.Millisecond},
		Uplink: config.UplinkConfig{Broker: "tcp://127.0.0.1:1"}, // nothing listens there
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var emitted int64
	var epoch uint64
	for run := 0; run < 2; run++ {
		g, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if run == 1 && g.Epoch() != epoch {
			t.Fatalf("epoch changed across restart: %d then %d", epoch, g.Epoch())
		}
		epoch = g.Epoch()
		if err := g.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		for g.Stats().ReadingsEmitted < 500 {
			time.Sleep(5 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := g.Close(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		st := g.Stats()
		if st.ReadingsStored != st.ReadingsEmitted || st.ReadingsLost != 0 {
			t.Fatalf("run %d: emitted %d, stored %d, lost %d", run, st.ReadingsEmitted, st.ReadingsStored, st.ReadingsLost)
		}
		emitted += st.ReadingsEmitted
	}
	ob, err := buffer.Open(filepath.Join(dir, OutboxFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	es, err := ob.Read(buffer.LaneTelemetry, 0, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stored int64
	for i, e := range es {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d: seqs must run 1, 2, 3… across the restart", i, e.Seq)
		}
		b, err := outpost.DecodeBatch(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		if b.Epoch != epoch || b.Seq != e.Seq {
			t.Fatalf("batch %d: epoch %d seq %d", i, b.Epoch, b.Seq)
		}
		stored += int64(b.Len())
	}
	if stored != emitted {
		t.Fatalf("outbox holds %d readings, sensors emitted %d", stored, emitted)
	}
	fmt.Fprintf(testWriter{t}, "outbox holds %d readings in %d batches", stored, len(es))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
