package ingest_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/storetest"
)

// These tests run the service's rules (docs/wire-format.md, "Ingest
// validation") end to end: a real broker, a real store, a gateway's
// client. The store's query methods stand for the HTTP API.

var y2261 = time.Date(2261, 1, 1, 0, 0, 0, 0, time.UTC)

// latestOf returns the gateway's newest reading of each series, by key.
func (e *env) latestOf(gw string) map[string]ingest.Point {
	e.t.Helper()
	pts, err := storetest.Collect(e.store.Latest(context.Background(), ingest.LatestQuery{Gateway: gw, Limit: 100}))
	if err != nil {
		e.t.Fatalf("latest: %v", err)
	}
	out := map[string]ingest.Point{}
	for _, p := range pts {
		out[p.Sensor+"/"+p.Metric] = p
	}
	return out
}

// waitDeadLetter waits for a dead letter on topic whose reason contains
// want, and returns its reason.
func (e *env) waitDeadLetter(topic, want string) string {
	e.t.Helper()
	var reason string
	eventually(e.t, "dead letter: "+want, func() bool {
		for _, d := range e.store.deadLetters() {
			if d.topic == topic && strings.Contains(d.reason, want) {
				reason = d.reason
				return true
			}
		}
		return false
	})
	return reason
}

// TestFutureReadingsRefused: a batch holding one reading dated 2261 used
// to make it the series' latest for good. It is dead-lettered whole,
// with the reason, and acked so that the gateway deletes it; the series'
// latest moves on with the next true reading. An alert from the future
// goes the same way.
func TestFutureReadingsRefused(t *testing.T) {
	e := newEnv(t, nil, nil)
	now := time.Now()
	hourAgo := now.Add(-time.Hour).UnixNano()
	e.publishBatch(storetest.Telemetry(e.gw, 21, 1, storetest.Series("env", "temperature", hourAgo, time.Second, 3, 20)...))
	e.waitAcks(21, 1, 1)

	pin := append(storetest.Series("env", "temperature", now.Add(-time.Minute).UnixNano(), time.Second, 2, 30),
		outpost.Reading{Sensor: "env", Metric: "temperature", Unit: "Cel", TS: y2261.UnixNano(), Value: 99})
	pin = append(pin, storetest.Series("env", "humidity", now.Add(-time.Minute).UnixNano(), time.Second, 2, 40)...)
	e.publishBatch(storetest.Telemetry(e.gw, 21, 2, pin...))
	ahead := storetest.Telemetry(e.gw, 21, 3, storetest.Series("env", "humidity", now.Add(20*time.Minute).UnixNano(), time.Second, 1, 40)...)
	e.publishBatch(ahead)
	e.publishBatch(storetest.AlertBatch(e.gw, 21, 4, outpost.Alert{Rule: "hot", Fingerprint: "hot/env", State: outpost.StateFiring,
		Severity: "warning", Value: 99, Message: "hot", StartedAt: hourAgo, ChangedAt: y2261.UnixNano(), Seq: 1}))
	topic := e.batchTopic(e.gw)
	for _, want := range []string{
		"from the future: series 0 (env/temperature): reading 2 at 2261-01-01T00:00:00Z",
		"from the future: series 0 (env/humidity): reading 0 at " + now.Add(20*time.Minute).UTC().Format("2006-01-02T15:04"),
		"from the future: alert 0 (hot): changed at 2261-01-01T00:00:00Z",
	} {
		reason := e.waitDeadLetter(topic, want)
		if !strings.Contains(reason, "max skew 10m0s") {
			t.Errorf("reason %q does not name the skew", reason)
		}
	}
	for seq := uint64(2); seq <= 4; seq++ {
		e.waitAcks(21, seq, 1) // the gateway deletes them
	}
	if c := e.counts(); c.Readings != 3 || c.Alerts != 0 || c.Batches != 1 || c.DeadLetters != 3 {
		t.Fatalf("counts = %+v, want only the first batch stored and 3 dead letters", c)
	}
	if got := e.latestOf(e.gw); len(got) != 1 || got["env/temperature"].TS != hourAgo+2*int64(time.Second) {
		t.Fatalf("latest = %+v, want the first batch's last reading", got)
	}
	// Within the skew is accepted, and the latest moves on.
	soon := now.Add(5 * time.Minute).UnixNano()
	e.publishBatch(storetest.Telemetry(e.gw, 21, 5, storetest.Series("env", "temperature", soon, time.Second, 1, 21)...))
	e.waitAcks(21, 5, 1)
	if got := e.latestOf(e.gw)["env/temperature"]; got.TS != soon || got.Value != 21 {
		t.Fatalf("latest = %+v, want the reading at %d", got, soon)
	}
}

// TestBadNamesRefused: gateway ids, sensor ids, metric and rule names
// outside the gateway config's rule are dead-lettered with the reason and
// not stored. A batch of a valid gateway is acked; one whose gateway id
// no gateway can have is not (there is no such gateway to tell).
func TestBadNamesRefused(t *testing.T) {
	e := newEnv(t, nil, func(o *ingest.Options) { o.Workers = 1 }) // in order: the last ack follows the others
	ts := time.Now().Add(-time.Minute).UnixNano()
	badGW := "gw:" + e.gw
	cases := []struct {
		b      *outpost.Batch
		reason string
		acked  bool
	}{
		{storetest.Telemetry(e.gw, 22, 1, storetest.Series("dev 1", "temperature", ts, time.Second, 2, 20)...), `series 0: sensor id "dev 1" is not 1 to 64 of A-Z a-z 0-9 _ . -`, true},
		{storetest.Telemetry(e.gw, 22, 2, storetest.Series("env", "temp/erature", ts, time.Second, 2, 20)...), `series 0: metric name "temp/erature"`, true},
		{storetest.Telemetry(e.gw, 22, 3, storetest.Series("env", strings.Repeat("m", 65), ts, time.Second, 2, 20)...), "series 0: metric name", true},
		{storetest.AlertBatch(e.gw, 22, 4, outpost.Alert{Rule: "too hot", StartedAt: ts, ChangedAt: ts}), `alert 0: rule name "too hot"`, true},
		{storetest.Telemetry(badGW, 22, 5, storetest.Series("env", "temperature", ts, time.Second, 2, 20)...), `invalid name: gateway id "` + badGW + `"`, false},
	}
	for _, c := range cases {
		e.publishBatch(c.b)
	}
	e.publishBatch(storetest.Telemetry(e.gw, 22, 6, storetest.Series("env", "temperature", ts, time.Second, 2, 20)...))
	e.waitAcks(22, 6, 1)
	for _, c := range cases {
		e.waitDeadLetter(e.batchTopic(c.b.Gateway), c.reason)
		if n := e.ackCount(22, c.b.Seq); (n > 0) != c.acked {
			t.Errorf("%s: acked %d times, want acked: %v", c.reason, n, c.acked)
		}
	}
	if c := e.counts(); c.Batches != 1 || c.Readings != 2 || c.Alerts != 0 || c.DeadLetters != int64(len(cases)) {
		t.Fatalf("counts = %+v, want the one good batch and %d dead letters", c, len(cases))
	}
	if got := e.latestOf(badGW); len(got) != 0 {
		t.Fatalf("stored under %q: %+v", badGW, got)
	}
}

// TestReadingsCap: a 300-byte compressed batch of 1 048 576 valid
// readings used to be stored whole. Over MaxReadings it is dead-lettered
// with the reason, not stored, and not acked: the gateway keeps it until
// the limit is raised.
func TestReadingsCap(t *testing.T) {
	e := newEnv(t, nil, func(o *ingest.Options) { o.Workers = 1 })
	start := time.Now().Add(-24*365*time.Hour).UnixNano() / 1e9 * 1e9
	b := &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindTelemetry, Gateway: e.gw, Epoch: 23, Seq: 1, Created: start,
		Series: []outpost.Series{{Sensor: "env", Metric: "temperature", TS: make([]int64, outpost.MaxBatchReadings),
			Values: make([]float64, outpost.MaxBatchReadings)}}}
	b.Series[0].TS[0] = start
	for i := 1; i < len(b.Series[0].TS); i++ {
		b.Series[0].TS[i] = 1e9
	}
	enc, err := outpost.NewEncoder(&outpost.EncoderOptions{Compression: outpost.CompressZstd})
	if err != nil {
		t.Fatal(err)
	}
	p, err := enc.Encode(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d readings in %d bytes", outpost.MaxBatchReadings, len(p))
	e.publish(e.batchTopic(e.gw), p, false)
	e.publishBatch(storetest.Telemetry(e.gw, 23, 2, storetest.Series("env", "temperature", start, time.Second, 2, 20)...))
	e.waitAcks(23, 2, 1)
	e.waitDeadLetter(e.batchTopic(e.gw), "outpost: invalid batch: decode: series 0: outpost: over a limit: 1048576 readings or more, limit 100000")
	if n := e.ackCount(23, 1); n != 0 {
		t.Fatalf("the batch over the limit was acked %d times", n)
	}
	if c := e.counts(); c.Readings != 2 || c.Batches != 1 {
		t.Fatalf("counts = %+v, want only the small batch", c)
	}
}

// TestFutureStatusRefused: one retained status dated 2261 used to keep a
// stopped gateway online, every later status being older. It is
// dead-lettered, and the gateway's true status is recorded.
func TestFutureStatusRefused(t *testing.T) {
	e := newEnv(t, nil, nil)
	topic := e.prefix + "/" + e.gw + "/status"
	t.Cleanup(func() { e.publish(topic, nil, true) }) // clear the retained message
	e.publish(topic, []byte(`{"state":"online","gateway":"`+e.gw+`","ts":"2261-01-01T00:00:00Z"}`), true)
	e.waitDeadLetter(topic, "from the future: status ts 2261-01-01T00:00:00Z")
	now := time.Now().UTC()
	e.publish(topic, []byte(`{"state":"offline","gateway":"`+e.gw+`","ts":"`+now.Format(time.RFC3339Nano)+`"}`), true)
	var gws []ingest.GatewayStatus
	eventually(t, "offline recorded", func() bool {
		var err error
		gws, err = storetest.Collect(e.store.Gateways(context.Background()))
		i := slices.IndexFunc(gws, func(g ingest.GatewayStatus) bool { return g.Gateway == e.gw })
		return err == nil && i >= 0 && gws[i].State == "offline"
	})
	i := slices.IndexFunc(gws, func(g ingest.GatewayStatus) bool { return g.Gateway == e.gw })
	if !gws[i].UpdatedAt.Equal(now) {
		t.Fatalf("status %+v, want offline at %v", gws[i], now)
	}
	// The service counts a status once the store has it: the count may
	// come a moment after the row. Retained: each may come twice.
	eventually(t, "the status and the dead letter counted", func() bool {
		st := e.svc.Stats()
		return st.Statuses >= 1 && st.DeadLetters >= 1
	})
}

// TestLongSpanRefused: a batch whose dates span more than MaxBatchSpan
// (it would make a partition for every day it names) is dead-lettered
// whole and acked; one within the span is stored.
func TestLongSpanRefused(t *testing.T) {
	e := newEnv(t, nil, nil)
	now := time.Now()
	far := now.Add(-ingest.MaxBatchSpan - time.Hour).UnixNano()
	rs := append(storetest.Series("env", "temperature", now.Add(-time.Minute).UnixNano(), time.Second, 2, 20),
		outpost.Reading{Sensor: "env", Metric: "humidity", Unit: "%", TS: far, Value: 40})
	e.publishBatch(storetest.Telemetry(e.gw, 22, 1, rs...))
	ok := storetest.Telemetry(e.gw, 22, 2, storetest.Series("env", "temperature", now.Add(-ingest.MaxBatchSpan+time.Hour).UnixNano(), 24*time.Hour, 30, 20)...)
	e.publishBatch(ok)
	e.waitDeadLetter(e.batchTopic(e.gw), "too long a span: readings dated from "+time.Unix(0, far).UTC().Format("2006-01-02T15:04"))
	e.waitAcks(22, 1, 1)
	e.waitAcks(22, 2, 1)
	if c := e.counts(); c.Readings != 30 || c.Batches != 1 || c.DeadLetters != 1 {
		t.Fatalf("counts = %+v, want the second batch stored and the first dead-lettered", c)
	}
}
