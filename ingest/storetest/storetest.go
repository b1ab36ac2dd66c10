// Package storetest is the contract test suite that every ingest.Store
// passes, and helpers that build batches for tests and benchmarks.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// Querier reads the contract's tables (package ingest) back with SQL, for
// what no Store method returns. The stores that Run's open returns must
// implement it too: each store's test wraps its store with a connection
// of its own to the same database.
type Querier interface {
	// QueryStrings runs query, which selects one text column, and returns
	// its values in row order.
	QueryStrings(ctx context.Context, query string) ([]string, error)
}

// Run runs the contract suite. open must return a new, empty store for
// each call, which also implements Querier; Run closes it when the
// subtest ends.
func Run(t *testing.T, open func(t *testing.T) ingest.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s ingest.Store)
	}{
		{"CommitCounts", testCommitCounts},
		{"Duplicate", testDuplicate},
		{"DedupKey", testDedupKey},
		{"Alerts", testAlerts},
		{"AlertsQuery", testAlertsQuery},
		{"ActiveAlerts", testActiveAlerts},
		{"DeadLetter", testDeadLetter},
		{"GatewayStatus", testGatewayStatus},
		{"StatusRecorder", testStatusRecorder},
		{"SensorLabels", testSensorLabels},
		{"SensorLabelsConcurrent", testSensorLabelsConcurrent},
		{"Series", testSeries},
		{"Latest", testLatest},
		{"LatestOrder", testLatestOrder},
		{"Range", testRange},
		{"Units", testUnits},
		{"RangeLayouts", testRangeLayouts},
		{"Compact", testCompact},
		{"Buckets", testBuckets},
		{"Retention", testRetention},
		{"NaN", testNaN},
		{"ConcurrentCommits", testConcurrentCommits},
		{"CommitGroup", testCommitGroup},
		{"CanceledCommit", testCanceledCommit},
		{"Losses", testLosses},
		{"LossDuplicate", testLossDuplicate},
		{"LossRejected", testLossRejected},
		{"GapsQuery", testGapsQuery},
		{"LatestPages", testLatestPages},
		{"QueryStop", testQueryStop},
		{"QueryRefused", testQueryRefused},
		{"Commands", testCommands},
		{"CommandsReplies", testCommandsReplies},
		{"CommandsPending", testCommandsPending},
		{"CommandsLapse", testCommandsLapse},
		{"CommandsQuery", testCommandsQuery},
		{"CommandsRetention", testCommandsRetention},
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

// Telemetry returns a valid telemetry batch holding rs, sealed at its
// latest reading (T0 when it has none), as a gateway seals a batch just
// after its readings.
func Telemetry(gateway string, epoch, seq uint64, rs ...outpost.Reading) *outpost.Batch {
	bb := outpost.NewBatchBuilder()
	bb.Add(rs)
	created := T0
	for i, r := range rs {
		if i == 0 || r.TS > created {
			created = r.TS
		}
	}
	b := bb.Take(gateway, created)
	b.Epoch, b.Seq = epoch, seq
	return b
}

// AlertBatch returns a valid alert batch holding as.
func AlertBatch(gateway string, epoch, seq uint64, as ...outpost.Alert) *outpost.Batch {
	return &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindAlert, Gateway: gateway,
		Epoch: epoch, Seq: seq, Created: T0, Alerts: as}
}

// LossBatch returns a valid loss batch holding ls.
func LossBatch(gateway string, epoch, seq uint64, ls ...outpost.Loss) *outpost.Batch {
	return &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindLoss, Gateway: gateway,
		Epoch: epoch, Seq: seq, Created: T0, Losses: ls}
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
	// A batch with the same key and creation time but other content is a
	// duplicate too: those are the identity, and nothing of it is
	// written.
	other := Telemetry("gw", 7, 1, Series("s2", "t", T0, time.Second, 9, 0)...)
	other.Created = b.Created
	commit(t, s, other, true)
	counts(t, s, ingest.Counts{Readings: 4, DistinctReadings: 4, Batches: 1})
	if pts := latest(t, s); len(pts) != 1 || pts[0].Sensor != "s1" {
		t.Fatalf("latest after duplicates = %+v, want only s1", pts)
	}
	// The same key made at another time is another batch (a gateway
	// restored from an old image counts its seqs again): stored.
	again := Telemetry("gw", 7, 1, Series("s3", "t", T0, time.Second, 2, 0)...)
	again.Created = b.Created + 1
	commit(t, s, again, false)
	commit(t, s, again, true)
	counts(t, s, ingest.Counts{Readings: 6, DistinctReadings: 6, Batches: 2})
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
			Labels: map[string]string{"room": "a", "quote": `"x"`}, Message: "room a is hot", StartedAt: T0, ChangedAt: T0 + 1, Seq: 1,
			Annotations: map[string]string{"summary": `room a at 41.5 °C, "hot"`, "runbook": "https://example.com/hot?a=1&b=<2>", "empty": ""}},
		{Rule: "hot", Fingerprint: "hot{room=a}", State: outpost.StateResolved, Value: math.NaN(), StartedAt: T0, ChangedAt: T0 + 2, Seq: math.MaxUint64},
	}
	b := AlertBatch("gw", 3, 1, as...)
	commit(t, s, b, false)
	commit(t, s, b, true)
	counts(t, s, ingest.Counts{Alerts: 2, Batches: 1})

	// The annotations round trip as JSON objects; none is {}.
	q, ok := s.(Querier)
	if !ok {
		t.Fatalf("%T does not implement storetest.Querier", s)
	}
	got, err := q.QueryStrings(ctx(t), `SELECT CAST(annotations AS TEXT) FROM alerts ORDER BY ts`)
	if err != nil {
		t.Fatalf("read annotations: %v", err)
	}
	if len(got) != len(as) {
		t.Fatalf("%d rows of annotations, want %d", len(got), len(as))
	}
	for i, text := range got {
		var m map[string]string
		if err := json.Unmarshal([]byte(text), &m); err != nil || m == nil {
			t.Fatalf("alert %d: annotations %q are not a JSON object: %v", i, text, err)
		}
		if want := as[i].Annotations; !maps.Equal(m, want) {
			t.Errorf("alert %d: annotations %v, want %v", i, m, want)
		}
	}
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
		if err := s.SetGatewayStatus(ctx(t), gw, state, at, []byte(p), nil); err != nil {
			t.Fatalf("set status: %v", err)
		}
	}
	set("gw-b", "online", at)
	set("gw-a", "online", at)
	set("gw-a", "offline", at.Add(time.Second))
	set("gw-a", "online", at.Add(-time.Second)) // older: ignored
	gws, err := Collect(s.Gateways(ctx(t)))
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
	// An undated status (the broker's last will, made when the gateway
	// connected) replaces the one stored, whatever its time, and is dated
	// 1 ns after it; the gateway's next status replaces it.
	undated := func(gw string) {
		t.Helper()
		if err := s.SetGatewayStatus(ctx(t), gw, "offline", time.Time{}, []byte(`{"state":"offline","gateway":"`+gw+`"}`), nil); err != nil {
			t.Fatalf("set status: %v", err)
		}
	}
	undated("gw-b")
	set("gw-b", "online", at) // not newer than the will
	before := time.Now()
	undated("gw-c") // none stored: now
	gws, err = Collect(s.Gateways(ctx(t)))
	if err != nil || len(gws) != 3 {
		t.Fatalf("gateways = %+v, %v; want 3", gws, err)
	}
	if b, c := gws[1], gws[2]; b.State != "offline" || !b.UpdatedAt.Equal(at.Add(1)) || c.State != "offline" || c.UpdatedAt.Before(before.Add(-time.Minute)) {
		t.Errorf("after the wills: gw-b %+v (want offline at %v), gw-c %+v (want offline now)", b, at.Add(1), c)
	}
	set("gw-b", "online", at.Add(time.Millisecond))
	if gws, err := Collect(s.Gateways(ctx(t))); err != nil || gws[1].State != "online" {
		t.Errorf("gw-b after it came back: %+v, %v", gws, err)
	}
}

func testLatest(t *testing.T, s ingest.Store) {
	if pts := latest(t, s); len(pts) != 0 {
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
	pts := latest(t, s)
	want := []ingest.Point{
		{Gateway: "gw0", Sensor: "s9", Metric: "t", TS: T0, Value: 5, Unit: "Cel"},
		{Gateway: "gw1", Sensor: "s1", Metric: "t", TS: T0 + 10*int64(time.Second), Value: 99, Unit: "Cel", Quality: outpost.QualityBad},
		{Gateway: "gw1", Sensor: "s2", Metric: "t", TS: T0 + int64(time.Second), Value: 11, Unit: "Cel"},
	}
	equalPoints(t, "latest", pts, want)
}

// testLatestOrder: a series' newest reading and first time. A later
// batch with older readings moves the first time back and not the
// newest; of equal timestamps the later wins: committed later, later in
// a group, later in a batch that holds the series twice (whose unit is
// then the later one's, and whose readings are all kept), and later in
// a series sent out of order.
func testLatestOrder(t *testing.T, s ingest.Store) {
	q, ok := s.(Querier)
	if !ok {
		t.Fatal("the store is not a Querier")
	}
	sec := int64(time.Second)
	r := func(ts int64, v float64) outpost.Reading {
		return outpost.Reading{Sensor: "s", Metric: "m", Unit: "Cel", TS: T0 + ts*sec, Value: v}
	}
	check := func(what string, ts int64, v float64, first int64, unit string) {
		t.Helper()
		pts := latest(t, s)
		if len(pts) != 1 || pts[0].TS != T0+ts*sec || pts[0].Value != v {
			t.Fatalf("%s: latest %+v, want %d s: %v", what, pts, ts, v)
		}
		got, err := q.QueryStrings(ctx(t), "SELECT CAST(first_ts AS TEXT) || ' ' || unit FROM series")
		if want := fmt.Sprint(T0+first*sec, " ", unit); err != nil || len(got) != 1 || got[0] != want {
			t.Fatalf("%s: first_ts and unit %q, %v; want %q", what, got, err, want)
		}
	}
	seq := uint64(0)
	add := func(rs ...outpost.Reading) *outpost.Batch {
		seq++
		return Telemetry("gw", 1, seq, rs...)
	}
	commit(t, s, add(r(10, 1)), false)
	commit(t, s, add(r(5, 2)), false)
	check("after an older batch", 10, 1, 5, "Cel")
	commit(t, s, add(r(10, 3)), false)
	check("after an equal timestamp", 10, 3, 5, "Cel")
	if g, ok := s.(ingest.GroupStore); ok {
		dup, err := g.CommitGroup(ctx(t), []*outpost.Batch{add(r(20, 4)), add(r(20, 5), r(-3, 0))}, []int{1, 1})
		if err != nil || dup[0] || dup[1] {
			t.Fatalf("group: %v, %v", dup, err)
		}
		check("after a group", 20, 5, -3, "Cel")
	} else {
		commit(t, s, add(r(20, 5), r(-3, 0)), false)
	}
	// Twice in one batch, as rows and as chunks, the newest of each at
	// one time.
	for _, n := range []int{1, 20} {
		b := add(Series("s", "m", T0+100*sec*int64(n), time.Second, n, 100)...)
		again := Series("s", "m", T0+100*sec*int64(n), time.Second, n, 200)
		for i := range again {
			again[i].Unit = fmt.Sprint("K", n)
		}
		b.Series = append(b.Series, Telemetry("gw", 0, 0, again...).Series...)
		commit(t, s, b, false)
		check(fmt.Sprint("after a series twice in a batch, ", n, " readings each"), 100*int64(n)+int64(n)-1, float64(200+n-1), -3, fmt.Sprint("K", n))
	}
	// Out of order, the newest sent first, another at its time last.
	commit(t, s, add(r(3000, 8), r(2990, 9), r(3000, 10), r(2995, 11)), false)
	check("after a series out of order", 3000, 10, -3, "Cel")
	pts, err := Collect(s.Range(ctx(t), ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "m", From: T0 - 10*sec, To: T0 + 4000*sec, Limit: 1000}))
	if err != nil || len(pts) != 6+2*(1+20)+4 {
		t.Fatalf("range: %d readings, %v; want %d", len(pts), err, 6+2*(1+20)+4)
	}
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
			pts, err := Collect(s.Range(ctx(t), tc.q))
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

// testUnits: every point that Latest and Range answer carries its
// series' unit, "" for a series without one; a batch in another unit (a
// changed config) changes it for the whole series, the readings before
// it included.
func testUnits(t *testing.T, s ingest.Store) {
	sec := int64(time.Second)
	rs := append(Series("s", "t", T0, time.Second, 20, 0), outpost.Reading{Sensor: "s", Metric: "n", TS: T0, Value: 1})
	commit(t, s, Telemetry("gw", 1, 1, rs...), false)
	check := func(what string, unit string, n int) {
		t.Helper()
		pts := latest(t, s)
		if len(pts) != 2 || pts[0].Metric != "n" || pts[0].Unit != "" || pts[1].Metric != "t" || pts[1].Unit != unit {
			t.Fatalf("%s: latest = %+v, want n without a unit and t in %q", what, pts, unit)
		}
		for _, m := range []struct{ metric, unit string }{{"t", unit}, {"n", ""}} {
			got, err := Collect(s.Range(ctx(t), ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: m.metric, From: T0, To: T0 + 3600*sec, Limit: 100}))
			if err != nil {
				t.Fatal(err)
			}
			if want := map[string]int{"t": n, "n": 1}[m.metric]; len(got) != want {
				t.Fatalf("%s: range of %s: %d points, want %d", what, m.metric, len(got), want)
			}
			for _, p := range got {
				if p.Unit != m.unit {
					t.Fatalf("%s: range of %s: %+v, want unit %q", what, m.metric, p, m.unit)
				}
			}
		}
	}
	check("one batch", "Cel", 20)
	k := Series("s", "t", T0+100*sec, time.Second, 2, 50)
	for i := range k {
		k[i].Unit = "K"
	}
	commit(t, s, Telemetry("gw", 1, 2, k...), false)
	check("after a batch in K", "K", 22)
}

func testNaN(t *testing.T, s ingest.Store) {
	rs := Series("s", "t", T0, time.Second, 3, 0)
	rs[0].Value, rs[1].Value, rs[2].Value = math.NaN(), math.Inf(1), math.Inf(-1)
	rs[2].Quality = outpost.QualityUncertain
	commit(t, s, Telemetry("gw", 1, 1, rs...), false)
	pts, err := Collect(s.Range(ctx(t), ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", From: T0, To: T0 + time.Hour.Nanoseconds(), Limit: 10}))
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 3 || !math.IsNaN(pts[0].Value) || !math.IsInf(pts[1].Value, 1) || !math.IsInf(pts[2].Value, -1) || pts[2].Quality != outpost.QualityUncertain {
		t.Fatalf("range = %+v, want NaN, +Inf, -Inf(uncertain)", pts)
	}
	if l := latest(t, s); len(l) != 1 || !math.IsInf(l[0].Value, -1) {
		t.Fatalf("latest = %+v, want -Inf", l)
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
	if pts := latest(t, s); len(pts) != 3 {
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

// allGaps is a gaps query that every gap overlaps, even one of unknown
// time (from_ts = to_ts = 0).
func allGaps(gateway string) ingest.GapQuery {
	return ingest.GapQuery{Gateway: gateway, From: math.MinInt64, To: math.MaxInt64, Limit: 1000}
}

func gaps(t *testing.T, s ingest.Store, q ingest.GapQuery) []ingest.Gap {
	t.Helper()
	gs, err := Collect(s.Gaps(ctx(t), q))
	if err != nil {
		t.Fatalf("gaps %+v: %v", q, err)
	}
	return gs
}

func testLosses(t *testing.T, s ingest.Store) {
	sec := int64(time.Second)
	if gs := gaps(t, s, allGaps("gw")); len(gs) != 0 {
		t.Fatalf("gaps of an empty store = %+v", gs)
	}
	ls := []outpost.Loss{
		{Reason: outpost.LossMaxBytes, Kind: outpost.KindTelemetry, Sensor: "s1", Metric: "temperature",
			From: T0, To: T0 + 10*sec, Count: 11, Epoch: math.MaxUint64, FirstSeq: 1, LastSeq: 1 << 63, At: T0 + 3600*sec},
		{Reason: outpost.LossMaxAge, Kind: outpost.KindAlert, Rule: "hot",
			From: T0 + 5*sec, To: T0 + 5*sec, Count: 2, Epoch: 5, FirstSeq: 3, LastSeq: 3, At: T0 + 3601*sec},
		// A corrupt batch: what and when unknown.
		{Reason: outpost.LossCorrupt, Kind: outpost.KindTelemetry, Sensor: "s2 ☃", Metric: "humidity",
			Epoch: 1 << 63, FirstSeq: math.MaxUint64, LastSeq: math.MaxUint64, At: T0 - 1},
	}
	epoch, seq := uint64(math.MaxUint64-1), uint64(1<<63+5) // stored as negative int64s
	before := time.Now().UnixNano()
	commit(t, s, LossBatch("gw", epoch, seq, ls...), false)
	after := time.Now().UnixNano()
	counts(t, s, ingest.Counts{Batches: 1, Gaps: 3, LostReadings: 11, LostAlerts: 2})

	gs := gaps(t, s, allGaps("gw"))
	if len(gs) != 3 {
		t.Fatalf("gaps = %+v, want 3", gs)
	}
	// Ordered by from_ts: the unknown (0) first.
	for i, idx := range []int{2, 0, 1} {
		g, l := gs[i], ls[idx]
		if g.ReceivedAt < before || g.ReceivedAt > after {
			t.Errorf("gap %d received at %d, not within the commit (%d..%d)", idx, g.ReceivedAt, before, after)
		}
		want := ingest.Gap{Gateway: "gw", Epoch: epoch, Seq: seq, Index: idx, Reason: l.Reason, Kind: l.Kind,
			Sensor: l.Sensor, Metric: l.Metric, Rule: l.Rule, From: l.From, To: l.To, Count: l.Count,
			LostEpoch: l.Epoch, FirstSeq: l.FirstSeq, LastSeq: l.LastSeq, DroppedAt: l.At, ReceivedAt: g.ReceivedAt}
		if g != want {
			t.Errorf("gaps[%d] = %+v\nwant      %+v", i, g, want)
		}
	}
	if gs[0].ReceivedAt != gs[1].ReceivedAt || gs[1].ReceivedAt != gs[2].ReceivedAt {
		t.Errorf("one batch's gaps received at different times: %+v", gs)
	}
	// A loss batch writes neither readings nor latest.
	if pts := latest(t, s); len(pts) != 0 {
		t.Fatalf("latest after a loss batch = %+v", pts)
	}
	// A second loss batch adds to the sums.
	commit(t, s, LossBatch("gw2", 1, 1, outpost.Loss{Reason: outpost.LossMaxBatches, Kind: outpost.KindTelemetry,
		Sensor: "s1", Metric: "temperature", From: T0, To: T0, Count: 1 << 40, Epoch: 1, FirstSeq: 1, LastSeq: 1, At: T0}), false)
	counts(t, s, ingest.Counts{Batches: 2, Gaps: 4, LostReadings: 11 + 1<<40, LostAlerts: 2})
	if gs := gaps(t, s, allGaps("gw")); len(gs) != 3 {
		t.Fatalf("gw's gaps after gw2's = %d, want 3", len(gs))
	}
}

func testLossDuplicate(t *testing.T, s ingest.Store) {
	l := outpost.Loss{Reason: outpost.LossMaxBytes, Kind: outpost.KindTelemetry, Sensor: "s", Metric: "t",
		From: T0, To: T0 + 1, Count: 7, Epoch: 1, FirstSeq: 1, LastSeq: 2, At: T0 + 2}
	b := LossBatch("gw", 9, 1, l, l)
	commit(t, s, b, false)
	commit(t, s, b, true)
	// Other content under the same key and time: a duplicate, nothing
	// written.
	other := LossBatch("gw", 9, 1, outpost.Loss{Reason: outpost.LossMaxAge, Kind: outpost.KindAlert, Rule: "r", Count: 100})
	commit(t, s, other, true)
	// The key is the batch's, whatever its kind.
	tb := Telemetry("gw", 9, 1, Series("s", "t", T0, time.Second, 3, 0)...)
	tb.Created = b.Created
	commit(t, s, tb, true)
	tb = Telemetry("gw", 9, 2, Series("s", "t", T0, time.Second, 3, 0)...)
	tb.Created = b.Created
	commit(t, s, tb, false)
	commit(t, s, LossBatch("gw", 9, 2, l), true)
	counts(t, s, ingest.Counts{Readings: 3, DistinctReadings: 3, Batches: 2, Gaps: 2, LostReadings: 14})
	gs := gaps(t, s, allGaps("gw"))
	if len(gs) != 2 || gs[0].Seq != 1 || gs[0].Index != 0 || gs[1].Index != 1 || gs[1].Reason != outpost.LossMaxBytes {
		t.Fatalf("gaps after duplicates = %+v", gs)
	}
}

// testLossRejected: a count the gaps table cannot hold is invalid data,
// and nothing of its batch is kept.
func testLossRejected(t *testing.T, s ingest.Store) {
	b := LossBatch("gw", 1, 1,
		outpost.Loss{Reason: outpost.LossMaxBytes, Kind: outpost.KindTelemetry, Sensor: "s", Metric: "t", Count: 1},
		outpost.Loss{Reason: outpost.LossMaxBytes, Kind: outpost.KindTelemetry, Sensor: "s", Metric: "t", Count: math.MaxInt64 + 1})
	if _, err := s.Commit(ctx(t), b, 1); !errors.Is(err, ingest.ErrInvalidData) {
		t.Fatalf("commit of a count beyond int64: %v, want ErrInvalidData", err)
	}
	counts(t, s, ingest.Counts{})
	b.Losses[1].Count = math.MaxInt64 // the largest that fits
	commit(t, s, b, false)
	if gs := gaps(t, s, allGaps("gw")); len(gs) != 2 || gs[0].Count+gs[1].Count != 1<<63 {
		t.Fatalf("gaps = %+v", gs)
	}
	for _, q := range []ingest.GapQuery{{Gateway: "gw", To: 1}, {To: 1, Limit: 1}} {
		if _, err := Collect(s.Gaps(ctx(t), q)); err == nil {
			t.Errorf("gaps %+v: no error", q)
		}
	}
}

func testGapsQuery(t *testing.T, s ingest.Store) {
	sec := int64(time.Second)
	tel := func(sensor, metric string, from, to int64) outpost.Loss {
		return outpost.Loss{Reason: outpost.LossMaxAge, Kind: outpost.KindTelemetry, Sensor: sensor, Metric: metric,
			From: T0 + from*sec, To: T0 + to*sec, Count: 1, Epoch: 1, FirstSeq: 1, LastSeq: 1, At: T0}
	}
	commit(t, s, LossBatch("gw", 2, 1,
		tel("s1", "t", 10, 20), // 0
		tel("s1", "u", 30, 30), // 1: one instant
		tel("s2", "t", 0, 100), // 2
		outpost.Loss{Reason: outpost.LossMaxBatches, Kind: outpost.KindAlert, Rule: "hot", // 3
			From: T0 + 15*sec, To: T0 + 15*sec, Count: 1, Epoch: 1, FirstSeq: 1, LastSeq: 1, At: T0},
	), false)
	commit(t, s, LossBatch("gw2", 2, 1, tel("s1", "t", 10, 20)), false)
	commit(t, s, LossBatch("gw", 2, 2, tel("s1", "t", 10, 20)), false) // 4: same span, later batch
	// q is the window [T0+from s, T0+to s).
	q := func(sensor, metric string, from, to int64, limit int) ingest.GapQuery {
		return ingest.GapQuery{Gateway: "gw", Sensor: sensor, Metric: metric, From: T0 + from*sec, To: T0 + to*sec, Limit: limit}
	}
	plusNS := func(q ingest.GapQuery) ingest.GapQuery { q.To++; return q }
	tests := []struct {
		name string
		q    ingest.GapQuery
		want []int // record indexes, 4 for seq 2's
	}{
		{"all", q("", "", -1000, 1000, 100), []int{2, 0, 4, 3, 1}},
		{"sensor", q("s1", "", -1000, 1000, 100), []int{0, 4, 1}},
		{"metric", q("", "t", -1000, 1000, 100), []int{2, 0, 4}},
		{"series", q("s1", "t", -1000, 1000, 100), []int{0, 4}},
		{"unknown series", q("s9", "t", -1000, 1000, 100), nil},
		{"limit", q("", "", -1000, 1000, 2), []int{2, 0}},
		{"to_ts is inside", q("", "", 20, 25, 100), []int{2, 0, 4}},
		{"after to_ts", q("", "", 21, 30, 100), []int{2}},
		{"from_ts is inside", q("", "", 30, 31, 100), []int{2, 1}},
		{"instant", q("", "", 15, 16, 100), []int{2, 0, 4, 3}},
		{"window end is outside", q("", "", -10, 10, 100), []int{2}},
		{"window end just past from_ts", plusNS(q("", "", -10, 10, 100)), []int{2, 0, 4}},
		{"inside a gap", q("s2", "", 50, 60, 100), []int{2}},
		{"after every gap", q("", "", 101, 200, 100), nil},
		{"before every gap", q("", "", -100, 0, 100), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gs := gaps(t, s, tc.q)
			var got []int
			for _, g := range gs {
				if g.Gateway != "gw" || g.Epoch != 2 {
					t.Fatalf("gap of another gateway or batch: %+v", g)
				}
				if g.Seq == 2 {
					got = append(got, 4)
				} else {
					got = append(got, g.Index)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("gaps = %v, want %v", got, tc.want)
			}
		})
	}
	if gs := gaps(t, s, ingest.GapQuery{Gateway: "gw2", From: T0 + 20*sec, To: T0 + 21*sec, Limit: 10}); len(gs) != 1 || gs[0].Gateway != "gw2" {
		t.Fatalf("gw2's gaps = %+v", gs)
	}
	if gs := gaps(t, s, allGaps("nobody")); len(gs) != 0 {
		t.Fatalf("an unknown gateway's gaps = %+v", gs)
	}
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

// BenchCommitGroup measures CommitGroup of groups of n telemetry batches
// of 1000 readings (10 series of 100) into s, and reports readings/s.
func BenchCommitGroup(b *testing.B, s ingest.GroupStore, n int) {
	const series, perSeries = 10, 100
	var rs []outpost.Reading
	for i := range series {
		rs = append(rs, Series(fmt.Sprint("sensor-", i), "temperature", T0, time.Second, perSeries, 20)...)
	}
	bs, sizes := make([]*outpost.Batch, n), make([]int, n)
	for i := range bs {
		bs[i] = Telemetry("bench-gw", 1, 1, rs...)
	}
	size := len(Encode(b, bs[0]))
	for i := range sizes {
		sizes[i] = size
	}
	b.ReportAllocs()
	b.ResetTimer()
	seq := uint64(0)
	for b.Loop() {
		for _, batch := range bs {
			seq++
			batch.Seq = seq
		}
		dup, err := s.CommitGroup(context.Background(), bs, sizes)
		if err != nil || slices.Contains(dup, true) {
			b.Fatalf("commit group: dup %v, err %v", dup, err)
		}
	}
	b.ReportMetric(float64(seq*series*perSeries)/b.Elapsed().Seconds(), "readings/s")
}

// testCommitGroup commits telemetry in groups, if the store can: a group
// of new batches, batches already stored and a batch twice in one group;
// each is reported new exactly once and stored once, and a group stores
// everything of its new batches (readings, latest) as single commits do.
// Groups from several goroutines at once, overlapping, store each batch
// once.
func testCommitGroup(t *testing.T, s ingest.Store) {
	gs, ok := s.(ingest.GroupStore)
	if !ok {
		t.Skip("the store has no CommitGroup")
	}
	mk := func(seq uint64) *outpost.Batch {
		return Telemetry("gw", 1, seq, Series("s", fmt.Sprint("m", seq%3), T0+int64(seq)*int64(time.Minute), time.Second, 20, float64(seq))...)
	}
	group := func(seqs ...uint64) []bool {
		t.Helper()
		bs := make([]*outpost.Batch, len(seqs))
		sizes := make([]int, len(seqs))
		for i, q := range seqs {
			bs[i], sizes[i] = mk(q), 100
		}
		dup, err := gs.CommitGroup(ctx(t), bs, sizes)
		if err != nil {
			t.Fatal(err)
		}
		if len(dup) != len(bs) {
			t.Fatalf("%d dup flags for %d batches", len(dup), len(bs))
		}
		return dup
	}
	commit(t, s, mk(2), false)
	if got := group(1, 2, 3, 3, 4); !slices.Equal(got, []bool{false, true, false, true, false}) {
		t.Fatalf("dup flags %v", got)
	}
	if got := group(4, 5); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("dup flags %v", got)
	}
	counts(t, s, ingest.Counts{Readings: 5 * 20, DistinctReadings: 5 * 20, Batches: 5})
	pts := latest(t, s)
	if len(pts) != 3 || pts[2].Metric != "m2" || pts[2].TS != T0+5*int64(time.Minute)+19*int64(time.Second) || pts[2].Value != 24 {
		t.Fatalf("latest after groups: %+v", pts)
	}

	const batches, copies = 40, 4
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fresh = map[uint64]int{}
		errs  []error
	)
	for c := range copies {
		wg.Go(func() {
			for i := 0; i < batches; i += 5 {
				var bs []*outpost.Batch
				for j := range 5 {
					seq := uint64(100 + (i+j+c*7)%batches)
					bs = append(bs, mk(seq))
				}
				dup, err := gs.CommitGroup(context.Background(), bs, []int{1, 1, 1, 1, 1})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				for k, d := range dup {
					if !d {
						fresh[bs[k].Seq]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(100); seq < 100+batches; seq++ {
		if fresh[seq] != 1 {
			t.Errorf("seq %d committed as new %d times, want 1", seq, fresh[seq])
		}
	}
	counts(t, s, ingest.Counts{Readings: (5 + batches) * 20, DistinctReadings: (5 + batches) * 20, Batches: 5 + batches})
}
