// Package storetest is the contract test suite that every ingest.Store
// passes, and helpers that build batches for tests and benchmarks.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// Run runs the contract suite. open must return a new, empty store for
// each call; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) ingest.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s ingest.Store)
	}{
		{"CommitCounts", testCommitCounts},
		{"Duplicate", testDuplicate},
		{"DedupKey", testDedupKey},
		{"Alerts", testAlerts},
		{"DeadLetter", testDeadLetter},
		{"GatewayStatus", testGatewayStatus},
		{"Latest", testLatest},
		{"Range", testRange},
		{"NaN", testNaN},
		{"ConcurrentCommits", testConcurrentCommits},
		{"CanceledCommit", testCanceledCommit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.f(t, s)
		})
	}
}

// T0 is the base timestamp of the suite's readings (unix ns).
var T0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano()

// Telemetry returns a valid telemetry batch holding rs.
func Telemetry(gateway string, epoch, seq uint64, rs ...outpost.Reading) *outpost.Batch {
	bb := outpost.NewBatchBuilder()
	bb.Add(rs)
	b := bb.Take(gateway, T0)
	b.Epoch, b.Seq = epoch, seq
	return b
}

// AlertBatch returns a valid alert batch holding as.
func AlertBatch(gateway string, epoch, seq uint64, as ...outpost.Alert) *outpost.Batch {
	return &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindAlert, Gateway: gateway,
		Epoch: epoch, Seq: seq, Created: T0, Alerts: as}
}

// Series returns n good readings of one series from start, step apart,
// with values v0, v0+1, …
func Series(sensor, metric string, start int64, step time.Duration, n int, v0 float64) []outpost.Reading {
	rs := make([]outpost.Reading, n)
	for i := range rs {
		rs[i] = outpost.Reading{Sensor: sensor, Metric: metric, Unit: "Cel", TS: start + int64(i)*int64(step), Value: v0 + float64(i)}
	}
	return rs
}

// Encode returns the wire bytes of b.
func Encode(t testing.TB, b *outpost.Batch) []byte {
	t.Helper()
	p, err := b.MarshalMsg(nil)
	if err != nil {
		t.Fatalf("encode batch: %v", err)
	}
	return p
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func commit(t *testing.T, s ingest.Store, b *outpost.Batch, wantDup bool) {
	t.Helper()
	dup, err := s.Commit(ctx(t), b, 100)
	if err != nil {
		t.Fatalf("commit %s/%d/%d: %v", b.Gateway, b.Epoch, b.Seq, err)
	}
	if dup != wantDup {
		t.Fatalf("commit %s/%d/%d: dup = %v, want %v", b.Gateway, b.Epoch, b.Seq, dup, wantDup)
	}
}

func counts(t *testing.T, s ingest.Store, want ingest.Counts) {
	t.Helper()
	got, err := s.Counts(ctx(t))
	if err != nil {
		t.Fatalf("counts: %v", err)
	}
	if got != want {
		t.Fatalf("counts = %+v, want %+v", got, want)
	}
}

func testCommitCounts(t *testing.T, s ingest.Store) {
	counts(t, s, ingest.Counts{})
	rs := append(Series("s1", "temperature", T0, time.Second, 3, 20), Series("s1", "humidity", T0, time.Second, 2, 50)...)
	commit(t, s, Telemetry("gw", 7, 1, rs...), false)
	counts(t, s, ingest.Counts{Readings: 5, DistinctReadings: 5, Batches: 1})
	// The same readings in another batch are stored again (readings are
	// not unique; only batches are).
	commit(t, s, Telemetry("gw", 7, 2, rs...), false)
	counts(t, s, ingest.Counts{Readings: 10, DistinctReadings: 5, Batches: 2})
}

func testDuplicate(t *testing.T, s ingest.Store) {
	b := Telemetry("gw", 7, 1, Series("s1", "t", T0, time.Second, 4, 0)...)
	commit(t, s, b, false)
	commit(t, s, b, true)
	// A batch with the same key but other content is a duplicate too: the
	// key is the identity, and nothing of it is written.
	other := Telemetry("gw", 7, 1, Series("s2", "t", T0, time.Second, 9, 0)...)
	commit(t, s, other, true)
	counts(t, s, ingest.Counts{Readings: 4, DistinctReadings: 4, Batches: 1})
	pts, err := s.Latest(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 1 || pts[0].Sensor != "s1" {
		t.Fatalf("latest after duplicates = %+v, want only s1", pts)
	}
}

func testDedupKey(t *testing.T, s ingest.Store) {
	r := Series("s", "t", T0, time.Second, 1, 0)
	high := uint64(math.MaxUint64) // stored as int64 -1: must still be its own key
	for _, k := range []struct {
		gw         string
		epoch, seq uint64
	}{
		{"gw", 1, 1}, {"gw", 1, 2}, {"gw", 2, 1}, {"gw2", 1, 1},
		{"gw", high, 1}, {"gw", high, high}, {"gw", 1 << 63, 1},
	} {
		commit(t, s, Telemetry(k.gw, k.epoch, k.seq, r...), false)
		commit(t, s, Telemetry(k.gw, k.epoch, k.seq, r...), true)
	}
	counts(t, s, ingest.Counts{Readings: 7, DistinctReadings: 2, Batches: 7})
}

func testAlerts(t *testing.T, s ingest.Store) {
	as := []outpost.Alert{
		{Rule: "hot", Fingerprint: "hot{room=a}", State: outpost.StateFiring, Severity: "critical", Value: 41.5,
			Labels: map[string]string{"room": "a", "quote": `"x"`}, Message: "room a is hot", StartedAt: T0, ChangedAt: T0 + 1, Seq: 1},
		{Rule: "hot", Fingerprint: "hot{room=a}", State: outpost.StateResolved, Value: math.NaN(), StartedAt: T0, ChangedAt: T0 + 2, Seq: math.MaxUint64},
	}
	b := AlertBatch("gw", 3, 1, as...)
	commit(t, s, b, false)
	commit(t, s, b, true)
	counts(t, s, ingest.Counts{Alerts: 2, Batches: 1})
}

func testDeadLetter(t *testing.T, s ingest.Store) {
	for i, p := range [][]byte{[]byte("garbage \x00\xff"), nil, {}} {
		if err := s.DeadLetter(ctx(t), "outpost/v1/gw/batch", fmt.Sprintf("reason %d", i), p); err != nil {
			t.Fatalf("dead letter %d: %v", i, err)
		}
	}
	counts(t, s, ingest.Counts{DeadLetters: 3})
}

func testGatewayStatus(t *testing.T, s ingest.Store) {
	at := time.Unix(0, T0).UTC()
	set := func(gw, state string, at time.Time) {
		t.Helper()
		p := fmt.Sprintf(`{"state":%q,"ts":%q}`, state, at.Format(time.RFC3339Nano))
		if err := s.SetGatewayStatus(ctx(t), gw, state, at, []byte(p)); err != nil {
			t.Fatalf("set status: %v", err)
		}
	}
	set("gw-b", "online", at)
	set("gw-a", "online", at)
	set("gw-a", "offline", at.Add(time.Second))
	set("gw-a", "online", at.Add(-time.Second)) // older: ignored
	gws, err := s.Gateways(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(gws) != 2 {
		t.Fatalf("gateways = %+v, want 2", gws)
	}
	a, b := gws[0], gws[1]
	if a.Gateway != "gw-a" || a.State != "offline" || !a.UpdatedAt.Equal(at.Add(time.Second)) {
		t.Errorf("gw-a = %+v, want offline at %v", a, at.Add(time.Second))
	}
	if b.Gateway != "gw-b" || b.State != "online" || !b.UpdatedAt.Equal(at) {
		t.Errorf("gw-b = %+v, want online at %v", b, at)
	}
	var st struct{ State string }
	if err := json.Unmarshal(a.Payload, &st); err != nil || st.State != "offline" {
		t.Errorf("gw-a payload %s: state %q, err %v", a.Payload, st.State, err)
	}
}

func testLatest(t *testing.T, s ingest.Store) {
	pts, err := s.Latest(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 0 {
		t.Fatalf("latest of an empty store = %+v", pts)
	}
	// A series of mixed quality: its newest reading is bad.
	bad := Series("s1", "t", T0+9*int64(time.Second), time.Second, 2, 98)
	bad[1].Quality = outpost.QualityBad
	commit(t, s, Telemetry("gw1", 1, 1, append(Series("s1", "t", T0, time.Second, 3, 0), Series("s2", "t", T0, time.Second, 2, 10)...)...), false)
	commit(t, s, Telemetry("gw1", 1, 2, bad...), false)
	// An older batch that arrives late does not move latest back.
	commit(t, s, Telemetry("gw1", 1, 3, Series("s1", "t", T0-int64(time.Hour), time.Second, 2, -1)...), false)
	commit(t, s, Telemetry("gw0", 1, 1, Series("s9", "t", T0, time.Second, 1, 5)...), false)
	pts, err = s.Latest(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []ingest.Point{
		{Gateway: "gw0", Sensor: "s9", Metric: "t", TS: T0, Value: 5},
		{Gateway: "gw1", Sensor: "s1", Metric: "t", TS: T0 + 10*int64(time.Second), Value: 99, Quality: outpost.QualityBad},
		{Gateway: "gw1", Sensor: "s2", Metric: "t", TS: T0 + int64(time.Second), Value: 11},
	}
	equalPoints(t, "latest", pts, want)
}

func testRange(t *testing.T, s ingest.Store) {
	sec := int64(time.Second)
	commit(t, s, Telemetry("gw", 1, 1, Series("s", "t", T0, time.Second, 10, 0)...), false)
	// Out of order across batches: Range sorts.
	commit(t, s, Telemetry("gw", 1, 2, Series("s", "t", T0-5*sec, time.Second, 5, -5)...), false)
	commit(t, s, Telemetry("gw", 1, 3, Series("s", "u", T0, time.Second, 10, 100)...), false)
	tests := []struct {
		name     string
		q        ingest.RangeQuery
		from, to float64 // expected first and last value; to < from means none
		n        int
	}{
		{"all", ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", From: T0 - time.Hour.Nanoseconds(), To: T0 + time.Hour.Nanoseconds(), Limit: 100}, -5, 9, 15},
		{"half-open", ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", From: T0, To: T0 + 3*sec, Limit: 100}, 0, 2, 3},
		{"limit", ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", From: T0 - time.Hour.Nanoseconds(), To: T0 + time.Hour.Nanoseconds(), Limit: 4}, -5, -2, 4},
		{"other metric", ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "u", From: T0 + 8*sec, To: T0 + time.Hour.Nanoseconds(), Limit: 100}, 108, 109, 2},
		{"unknown series", ingest.RangeQuery{Gateway: "gw", Sensor: "x", Metric: "t", From: 0, To: math.MaxInt64, Limit: 100}, 0, -1, 0},
		{"empty window", ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", From: T0 + 100*sec, To: T0 + 200*sec, Limit: 100}, 0, -1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pts, err := s.Range(ctx(t), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if len(pts) != tc.n {
				t.Fatalf("%d points, want %d: %+v", len(pts), tc.n, pts)
			}
			for i, p := range pts {
				if p.Gateway != tc.q.Gateway || p.Sensor != tc.q.Sensor || p.Metric != tc.q.Metric {
					t.Fatalf("point %d is of another series: %+v", i, p)
				}
				if p.TS < tc.q.From || p.TS >= tc.q.To || (i > 0 && p.TS <= pts[i-1].TS) {
					t.Fatalf("point %d at %d out of range or order", i, p.TS)
				}
			}
			if tc.n > 0 && (pts[0].Value != tc.from || pts[len(pts)-1].Value != tc.to) {
				t.Fatalf("values %v..%v, want %v..%v", pts[0].Value, pts[len(pts)-1].Value, tc.from, tc.to)
			}
		})
	}
}

func testNaN(t *testing.T, s ingest.Store) {
	rs := Series("s", "t", T0, time.Second, 3, 0)
	rs[0].Value, rs[1].Value, rs[2].Value = math.NaN(), math.Inf(1), math.Inf(-1)
	rs[2].Quality = outpost.QualityUncertain
	commit(t, s, Telemetry("gw", 1, 1, rs...), false)
	pts, err := s.Range(ctx(t), ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", From: T0, To: T0 + time.Hour.Nanoseconds(), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 3 || !math.IsNaN(pts[0].Value) || !math.IsInf(pts[1].Value, 1) || !math.IsInf(pts[2].Value, -1) || pts[2].Quality != outpost.QualityUncertain {
		t.Fatalf("range = %+v, want NaN, +Inf, -Inf(uncertain)", pts)
	}
	latest, err := s.Latest(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 1 || !math.IsInf(latest[0].Value, -1) {
		t.Fatalf("latest = %+v, want -Inf", latest)
	}
}

// testConcurrentCommits commits every batch from several goroutines at
// once: each key must be stored exactly once and reported new exactly once.
func testConcurrentCommits(t *testing.T, s ingest.Store) {
	const batches, copies, perBatch = 20, 4, 50
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fresh = map[uint64]int{}
		errs  []error
	)
	for c := range copies {
		wg.Go(func() {
			for i := range batches {
				seq := uint64((i+c*7)%batches) + 1 // each copy in another order
				b := Telemetry("gw", 1, seq, Series("s", fmt.Sprint("m", seq%3), T0+int64(seq)*int64(time.Minute), time.Millisecond, perBatch, 0)...)
				dup, err := s.Commit(context.Background(), b, 1)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else if !dup {
					fresh[seq]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= batches; seq++ {
		if fresh[seq] != 1 {
			t.Errorf("seq %d committed as new %d times, want 1", seq, fresh[seq])
		}
	}
	counts(t, s, ingest.Counts{Readings: batches * perBatch, DistinctReadings: batches * perBatch, Batches: batches})
	pts, err := s.Latest(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 3 {
		t.Fatalf("latest has %d series, want 3", len(pts))
	}
}

func testCanceledCommit(t *testing.T, s ingest.Store) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Commit(c, Telemetry("gw", 1, 1, Series("s", "t", T0, time.Second, 3, 0)...), 1); err == nil {
		t.Fatal("commit with a canceled context succeeded")
	} else if errors.Is(err, ingest.ErrInvalidData) {
		t.Fatalf("a canceled commit is not invalid data: %v", err)
	}
	counts(t, s, ingest.Counts{})
	commit(t, s, Telemetry("gw", 1, 1, Series("s", "t", T0, time.Second, 3, 0)...), false)
}

func equalPoints(t *testing.T, what string, got, want []ingest.Point) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s = %+v, want %+v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s[%d] = %+v, want %+v", what, i, got[i], want[i])
		}
	}
}

// BenchCommit measures Commit of telemetry batches of 1000 readings (10
// series of 100) into s, and reports readings/s.
func BenchCommit(b *testing.B, s ingest.Store) {
	const series, perSeries = 10, 100
	var rs []outpost.Reading
	for i := range series {
		rs = append(rs, Series(fmt.Sprint("sensor-", i), "temperature", T0, time.Second, perSeries, 20)...)
	}
	batch := Telemetry("bench-gw", 1, 1, rs...)
	size := len(Encode(b, batch))
	b.ReportAllocs()
	b.ResetTimer()
	seq := uint64(0)
	for b.Loop() {
		seq++
		batch.Seq = seq
		if dup, err := s.Commit(context.Background(), batch, size); err != nil || dup {
			b.Fatalf("commit: dup %v, err %v", dup, err)
		}
	}
	b.ReportMetric(float64(seq*series*perSeries)/b.Elapsed().Seconds(), "readings/s")
}

// BenchCommitParallel is BenchCommit from 4 goroutines at once (the
// service's default workers), each committing its own batches.
func BenchCommitParallel(b *testing.B, s ingest.Store) {
	const series, perSeries = 10, 100
	var rs []outpost.Reading
	for i := range series {
		rs = append(rs, Series(fmt.Sprint("sensor-", i), "temperature", T0, time.Second, perSeries, 20)...)
	}
	size := len(Encode(b, Telemetry("bench-gw", 1, 1, rs...)))
	var seq atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(2) // × GOMAXPROCS goroutines; 4 on a 2-core machine
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		batch := Telemetry("bench-gw", 1, 1, rs...)
		for pb.Next() {
			batch.Seq = seq.Add(1)
			if dup, err := s.Commit(context.Background(), batch, size); err != nil || dup {
				b.Errorf("commit: dup %v, err %v", dup, err)
				return
			}
		}
	})
	b.ReportMetric(float64(seq.Load()*series*perSeries)/b.Elapsed().Seconds(), "readings/s")
}
