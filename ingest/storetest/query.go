package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// Collect gathers what a Store's query yields, for tests and other small
// answers: the first failure ends it.
func Collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

// latest is every series' newest reading.
func latest(t *testing.T, s ingest.Store) []ingest.Point {
	t.Helper()
	pts, err := Collect(s.Latest(ctx(t), ingest.LatestQuery{Limit: math.MaxInt32}))
	if err != nil {
		t.Fatalf("latest: %v", err)
	}
	return pts
}

func keyOf(p ingest.Point) ingest.SeriesKey {
	return ingest.SeriesKey{Gateway: p.Gateway, Sensor: p.Sensor, Metric: p.Metric}
}

// testLatestPages walks latest a page at a time, each page after the last
// key of the one before: every series comes exactly once, in the order of
// the whole answer, whatever the page size, also with names that share
// prefixes, differ in case or hold '/' and non-ASCII letters.
func testLatestPages(t *testing.T, s ingest.Store) {
	names := []string{"a", "A", "a.b", "a-b", "a_b", "ab", "a/b", "b", "s2 ☃", "zz"}
	seq := uint64(0)
	for _, gw := range []string{"gw", "gw-1", "gw.1", "gw1", "Gw"} {
		var rs []outpost.Reading
		for i, sensor := range names {
			for _, metric := range names[:3] {
				rs = append(rs, Series(sensor, metric, T0+int64(i), time.Second, 1, float64(i))...)
			}
		}
		seq++
		commit(t, s, Telemetry(gw, 1, seq, rs...), false)
	}
	all := latest(t, s)
	if want := 5 * len(names) * 3; len(all) != want {
		t.Fatalf("latest has %d series, want %d", len(all), want)
	}
	for _, page := range []int{1, 2, 7, len(all) - 1, len(all), len(all) + 1} {
		t.Run(fmt.Sprint("page ", page), func(t *testing.T) {
			var got []ingest.Point
			q := ingest.LatestQuery{Limit: page}
			for range len(all) + 2 {
				pts, err := Collect(s.Latest(ctx(t), q))
				if err != nil {
					t.Fatal(err)
				}
				if len(pts) > page {
					t.Fatalf("%d points in a page of %d", len(pts), page)
				}
				got = append(got, pts...)
				if len(pts) < page {
					break
				}
				q.After = keyOf(pts[len(pts)-1])
			}
			equalPoints(t, "walked latest", got, all)
		})
	}
	// One gateway's series, also from a cursor of another gateway.
	var gw1 []ingest.Point
	for _, p := range all {
		if p.Gateway == "gw1" {
			gw1 = append(gw1, p)
		}
	}
	pts, err := Collect(s.Latest(ctx(t), ingest.LatestQuery{Gateway: "gw1", Limit: 1000}))
	if err != nil {
		t.Fatal(err)
	}
	equalPoints(t, "latest of gw1", pts, gw1)
	pts, err = Collect(s.Latest(ctx(t), ingest.LatestQuery{Gateway: "gw1", After: keyOf(gw1[4]), Limit: 3}))
	if err != nil {
		t.Fatal(err)
	}
	equalPoints(t, "gw1 after its fifth", pts, gw1[5:8])
	pts, err = Collect(s.Latest(ctx(t), ingest.LatestQuery{Gateway: "gw1", After: ingest.SeriesKey{Gateway: "zzz"}, Limit: 3}))
	if err != nil || len(pts) != 0 {
		t.Fatalf("gw1 after a later gateway = %+v, %v", pts, err)
	}
	pts, err = Collect(s.Latest(ctx(t), ingest.LatestQuery{Gateway: "nobody", Limit: 3}))
	if err != nil || len(pts) != 0 {
		t.Fatalf("latest of an unknown gateway = %+v, %v", pts, err)
	}
}

// testQueryStop: a loop that breaks early, or whose context ends, gives
// its connection back: many more such loops than any pool holds
// connections, then every query still answers.
func testQueryStop(t *testing.T, s ingest.Store) {
	commit(t, s, Telemetry("gw", 1, 1, Series("s", "t", T0, time.Millisecond, 5000, 0)...), false)
	l := outpost.Loss{Reason: outpost.LossMaxAge, Kind: outpost.KindTelemetry, Sensor: "s", Metric: "t", Count: 1, At: T0}
	commit(t, s, LossBatch("gw", 1, 2, l, l), false)
	if err := s.SetGatewayStatus(ctx(t), "gw", "online", time.Unix(0, T0), []byte(`{"state":"online"}`), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGatewayStatus(ctx(t), "gw2", "online", time.Unix(0, T0), []byte(`{"state":"online"}`), nil); err != nil {
		t.Fatal(err)
	}
	commit(t, s, Telemetry("gw", 1, 3, Series("s", "u", T0, time.Millisecond, 1, 0)...), false)
	rq := ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", From: math.MinInt64, To: math.MaxInt64, Limit: 5000}
	for i := range 50 {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n := 0
		switch i % 5 {
		case 0:
			for range s.Range(c, rq) {
				if n++; n == 2 {
					break
				}
			}
		case 1:
			for range s.Latest(c, ingest.LatestQuery{Limit: 10}) {
				break
			}
		case 2:
			for range s.Gaps(c, allGaps("gw")) {
				break
			}
		case 3:
			for range s.Gateways(c) {
				break
			}
		case 4:
			for range s.Series(c, ingest.SeriesQuery{Limit: 10}) {
				break
			}
		}
		// Cancelled in the middle of the rows.
		n = 0
		for _, err := range s.Range(c, rq) {
			if n++; n == 100 {
				cancel()
			}
			if err != nil {
				break
			}
		}
		cancel()
	}
	pts, err := Collect(s.Range(ctx(t), rq))
	if err != nil || len(pts) != 5000 {
		t.Fatalf("range after stopped loops: %d points, %v", len(pts), err)
	}
	if pts := latest(t, s); len(pts) != 2 {
		t.Fatalf("latest after stopped loops: %+v", pts)
	}
}

// testQueryRefused: a query the store cannot answer yields one error and
// nothing else; a cancelled context fails the query, not silently.
func testQueryRefused(t *testing.T, s ingest.Store) {
	commit(t, s, Telemetry("gw", 1, 1, Series("s", "t", T0, time.Second, 3, 0)...), false)
	check := func(name string, seq iter.Seq2[ingest.Point, error]) {
		t.Helper()
		n, errs := 0, 0
		for _, err := range seq {
			n++
			if err != nil {
				errs++
			}
		}
		if n != 1 || errs != 1 {
			t.Errorf("%s: %d pairs, %d errors; want one error alone", name, n, errs)
		}
	}
	check("range, limit 0", s.Range(ctx(t), ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", To: math.MaxInt64}))
	check("latest, limit 0", s.Latest(ctx(t), ingest.LatestQuery{}))
	n, errs := 0, 0
	for _, err := range s.Series(ctx(t), ingest.SeriesQuery{}) {
		n++
		if err != nil {
			errs++
		}
	}
	if n != 1 || errs != 1 {
		t.Errorf("series, limit 0: %d pairs, %d errors; want one error alone", n, errs)
	}
	c, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Collect(s.Range(c, ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", To: math.MaxInt64, Limit: 10}))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("range with a cancelled context: %v, want context.Canceled", err)
	}
}

// testRangeLayouts stores one series in every shape a store may keep it
// in (runs long enough for a chunk and runs of a few readings, a run
// across an hour boundary, batches out of order that overlap in time, a
// series twice in one batch, readings out of order within a series,
// mixed quality, equal timestamps) and reads it back whole, in windows
// and in pages: Range returns exactly the readings stored, in time order.
func testRangeLayouts(t *testing.T, s ingest.Store) {
	sec := int64(time.Second)
	hour := int64(time.Hour)
	base := T0 - T0%hour + hour - 100*sec // 100 s before an hour boundary
	var want []ingest.Point
	seq := uint64(0)
	add := func(rs ...outpost.Reading) {
		seq++
		commit(t, s, Telemetry("gw", 1, seq, rs...), false)
		for _, r := range rs {
			if r.Sensor == "s" && r.Metric == "t" {
				want = append(want, ingest.Point{Gateway: "gw", Sensor: "s", Metric: "t", TS: r.TS, Value: r.Value, Quality: r.Quality})
			}
		}
		want = withUnit(want, rs)
	}
	long := Series("s", "t", base, time.Second, 300, 0) // 100 s in one hour, 200 s in the next
	for i := range long {
		if i%7 == 0 {
			long[i].Quality = outpost.Quality(1 + i%2)
		}
	}
	add(long...)
	add(Series("s", "t", base+1500*sec, time.Second, 3, 1000)...) // a few: rows
	// Overlapping the first batch, in half-second steps, arriving later.
	add(Series("s", "t", base+50*sec+sec/2, time.Second, 40, 2000)...)
	// The series twice in one batch, out of order, with another series.
	twice := append(Series("s", "t", base+400*sec, time.Second, 20, 3000), Series("s", "u", base, time.Second, 50, 9)...)
	twice = append(twice, Series("s", "t", base+390*sec, time.Second, 5, 4000)...)
	twice[3], twice[10] = twice[10], twice[3]
	add(twice...)
	// An equal timestamp in a later batch: both are kept.
	add(outpost.Reading{Sensor: "s", Metric: "t", TS: base + 10*sec, Value: 5000})

	slices.SortStableFunc(want, func(a, b ingest.Point) int { return cmp.Compare(a.TS, b.TS) })
	q := ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", From: base - hour, To: base + 2*hour, Limit: 10000}
	got, err := Collect(s.Range(ctx(t), q))
	if err != nil {
		t.Fatal(err)
	}
	sameReadings(t, "whole", got, want)

	// Windows that cut runs and chunks anywhere.
	for _, w := range [][2]int64{{base + 99*sec, base + 101*sec}, {base + 50*sec, base + 60*sec + 1}, {base + 395*sec, base + 1501*sec}} {
		q.From, q.To = w[0], w[1]
		got, err := Collect(s.Range(ctx(t), q))
		if err != nil {
			t.Fatal(err)
		}
		var in []ingest.Point
		for _, p := range want {
			if p.TS >= w[0] && p.TS < w[1] {
				in = append(in, p)
			}
		}
		sameReadings(t, fmt.Sprintf("[%d s, %d s)", (w[0]-base)/sec, (w[1]-base)/sec), got, in)
	}

	// Pages: Limit cuts in time order.
	q.From, q.To, q.Limit = base-hour, base+2*hour, 37
	got, err = Collect(s.Range(ctx(t), q))
	if err != nil {
		t.Fatal(err)
	}
	sameReadings(t, "first page", got, want[:37])

	c, err := s.Counts(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if total := int64(len(want) + 50); c.Readings != total || c.DistinctReadings != total-1 {
		t.Fatalf("counts: %d readings, %d distinct; want %d and %d", c.Readings, c.DistinctReadings, total, total-1)
	}
}

// withUnit gives every point of want the unit of the series gw/s/t in
// rs, the readings of the batch just committed, if rs holds it: a store
// answers each reading with the unit its series' last batch carried.
func withUnit(want []ingest.Point, rs []outpost.Reading) []ingest.Point {
	i := slices.IndexFunc(rs, func(r outpost.Reading) bool { return r.Sensor == "s" && r.Metric == "t" })
	if i < 0 {
		return want
	}
	for j := range want {
		want[j].Unit = rs[i].Unit
	}
	return want
}

// sameReadings compares readings in time order; among equal times the
// order is free.
func sameReadings(t *testing.T, what string, got, want []ingest.Point) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		if got[i].TS < got[i-1].TS {
			t.Fatalf("%s: reading %d at %d before the one before it", what, i, got[i].TS)
		}
	}
	key := func(a, b ingest.Point) int {
		return cmp.Or(cmp.Compare(a.TS, b.TS), cmp.Compare(a.Value, b.Value))
	}
	g, w := slices.Clone(got), slices.Clone(want)
	slices.SortFunc(g, key)
	slices.SortFunc(w, key)
	if len(g) != len(w) {
		t.Fatalf("%s: %d readings, want %d", what, len(g), len(w))
	}
	for i := range g {
		if g[i] != w[i] {
			t.Fatalf("%s: reading %d = %+v, want %+v", what, i, g[i], w[i])
		}
	}
}

// testCompact, for a store that compacts: a low-rate series (a few
// readings per batch, stored as rows) across three hours, with a chunk of
// a high-rate batch in the first, qualities, a NaN and equal timestamps.
// Compacting up to the third hour folds the first two, leaves the third
// as it was, and every reading reads back the same; compacting again
// finds nothing.
func testCompact(t *testing.T, s ingest.Store) {
	c, ok := s.(ingest.Compactor)
	if !ok {
		t.Skip("the store does not compact")
	}
	q, ok := s.(Querier)
	if !ok {
		t.Fatal("the store is not a Querier")
	}
	sec, hour := int64(time.Second), int64(time.Hour)
	base := T0 - T0%hour
	var want []ingest.Point
	seq := uint64(0)
	add := func(rs []outpost.Reading) {
		seq++
		commit(t, s, Telemetry("gw", 1, seq, rs...), false)
		for _, r := range rs {
			if r.Sensor == "s" && r.Metric == "t" {
				want = append(want, ingest.Point{Gateway: "gw", Sensor: "s", Metric: "t", TS: r.TS, Value: r.Value, Quality: r.Quality})
			}
		}
		want = withUnit(want, rs)
	}
	for i := range 3 * 60 { // three readings a minute for three hours
		rs := Series("s", "t", base+int64(i)*60*sec, 20*time.Second, 3, float64(i))
		if i%11 == 0 {
			rs[1].Quality = outpost.QualityBad
		}
		add(rs)
	}
	add(Series("s", "t", base+30*60*sec, time.Second, 100, 1000)) // a chunk in the first hour
	add([]outpost.Reading{{Sensor: "s", Metric: "t", TS: base + 61*60*sec, Value: math.NaN()},
		{Sensor: "s", Metric: "t", TS: base + 61*60*sec, Value: 7}})
	sortWant := func() {
		slices.SortStableFunc(want, func(a, b ingest.Point) int { return cmp.Compare(a.TS, b.TS) })
	}
	sortWant()
	rq := ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", From: base - hour, To: base + 4*hour, Limit: 100000}
	read := func(what string) {
		t.Helper()
		got, err := Collect(s.Range(ctx(t), rq))
		if err != nil {
			t.Fatal(err)
		}
		sameReadingsNaN(t, what, got, want)
	}
	read("before compacting")
	before, err := s.Counts(ctx(t))
	if err != nil {
		t.Fatal(err)
	}

	st, err := c.Compact(ctx(t), base+2*hour+30*60*sec) // inside the third hour: it is open
	if err != nil {
		t.Fatal(err)
	}
	// The hours are sparse (fewer than layout.SparseChunk readings):
	// one chunk holds both.
	if !st.Leader || st.Windows != 2 || st.Rows != 2*60*3+2 || st.ChunksWritten != 1 {
		t.Fatalf("compact: %+v, want 2 windows of %d rows into one chunk", st, 2*60*3+2)
	}
	chunks := func(want string) {
		t.Helper()
		n, err := q.QueryStrings(ctx(t), fmt.Sprintf("SELECT CAST(count(*) AS TEXT) FROM chunks WHERE t_min >= %d AND t_min < %d", base, base+24*hour))
		if err != nil || len(n) != 1 || n[0] != want {
			t.Fatalf("chunks of the day: %v, %v; want %s", n, err, want)
		}
	}
	chunks("1")
	read("after compacting")
	// A range from within the chunk's second hour finds it.
	mid := rq
	mid.From = base + hour + 10*60*sec
	got, err := Collect(s.Range(ctx(t), mid))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := slices.BinarySearchFunc(want, mid.From, func(p ingest.Point, ts int64) int { return cmp.Compare(p.TS, ts) })
	sameReadingsNaN(t, "from within the day's chunk", got, want[k:])
	after, err := s.Counts(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("counts changed: %+v, then %+v", before, after)
	}
	left, err := q.QueryStrings(ctx(t), fmt.Sprintf("SELECT CAST(count(*) AS TEXT) FROM recent WHERE ts < %d", base+2*hour))
	if err != nil || len(left) != 1 || left[0] != "0" {
		t.Fatalf("rows left in the compacted hours: %v, %v", left, err)
	}
	open, err := q.QueryStrings(ctx(t), fmt.Sprintf("SELECT CAST(count(*) AS TEXT) FROM recent WHERE ts >= %d", base+2*hour))
	if err != nil || len(open) != 1 || open[0] != "180" {
		t.Fatalf("rows of the open hour: %v, %v; want 180", open, err)
	}
	if st, err := c.Compact(ctx(t), base+2*hour+30*60*sec); err != nil || st.Windows != 0 {
		t.Fatalf("compacting again: %+v, %v", st, err)
	}
	// A late batch into a compacted hour is folded in by the next run.
	add(Series("s", "t", base+10*60*sec+sec/2, time.Second, 2, 5000))
	sortWant()
	if st, err := c.Compact(ctx(t), base+2*hour); err != nil || st.Windows != 1 || st.ChunksMerged < 1 {
		t.Fatalf("compacting a late batch: %+v, %v", st, err)
	}
	chunks("1")
	read("after a late batch")
	// A dense hour (layout.SparseChunk readings or more) keeps a chunk
	// of its own; the sparse third hour joins the day's chunk.
	add(Series("s", "t", base+3*hour, time.Second, 2000, 0))
	sortWant()
	if st, err := c.Compact(ctx(t), base+4*hour); err != nil || st.Windows != 2 {
		t.Fatalf("compacting a dense hour: %+v, %v", st, err)
	}
	chunks("2")
	read("after a dense hour")
}

// sameReadingsNaN is sameReadings where NaN equals NaN.
func sameReadingsNaN(t *testing.T, what string, got, want []ingest.Point) {
	t.Helper()
	norm := func(ps []ingest.Point) []ingest.Point {
		out := slices.Clone(ps)
		for i := range out {
			if math.IsNaN(out[i].Value) {
				out[i].Value = -1e300 // a stand-in that compares equal
			}
		}
		return out
	}
	sameReadings(t, what, norm(got), norm(want))
}

// testAlertsQuery: Alerts reads back every field of what was committed,
// NaN values and empty maps included, in time order, filtered by
// gateway, rule, state and window, and cut at the limit.
func testAlertsQuery(t *testing.T, s ingest.Store) {
	mk := func(gw, rule string, st outpost.AlertState, at int64, seq uint64) outpost.Alert {
		return outpost.Alert{Rule: rule, Fingerprint: rule + "{room=a}", State: st, Severity: "warning", Value: float64(at - T0),
			Labels: map[string]string{"room": "a"}, Message: rule + " " + gw, StartedAt: T0, ChangedAt: at, Seq: seq,
			Annotations: map[string]string{"summary": "s"}}
	}
	var all []ingest.AlertRow
	seq := uint64(0)
	for i := range 6 {
		for _, gw := range []string{"gw-a", "gw-b"} {
			rule := []string{"hot", "cold"}[i%2]
			st := []outpost.AlertState{outpost.StateFiring, outpost.StateResolved, outpost.StatePending}[i%3]
			a := mk(gw, rule, st, T0+int64(i)*int64(time.Minute), uint64(i+1))
			if i == 5 {
				a.Value, a.Labels, a.Annotations = math.NaN(), nil, nil
			}
			seq++
			commit(t, s, AlertBatch(gw, 1, seq, a), false)
			all = append(all, ingest.AlertRow{Gateway: gw, Rule: a.Rule, Fingerprint: a.Fingerprint, State: a.State,
				Severity: a.Severity, Value: a.Value, Labels: a.Labels, Annotations: a.Annotations, Message: a.Message,
				StartedAt: a.StartedAt, TS: a.ChangedAt, Seq: a.Seq})
		}
	}
	q := ingest.AlertQuery{From: T0, To: T0 + int64(time.Hour), Limit: 100}
	check := func(what string, q ingest.AlertQuery, want []ingest.AlertRow) {
		t.Helper()
		got, err := Collect(s.Alerts(ctx(t), q))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d alerts, want %d", what, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			sameValue := g.Value == w.Value || math.IsNaN(g.Value) && math.IsNaN(w.Value)
			if g.Gateway != w.Gateway || g.Rule != w.Rule || g.Fingerprint != w.Fingerprint || g.State != w.State ||
				g.Severity != w.Severity || !sameValue || g.Message != w.Message || g.StartedAt != w.StartedAt ||
				g.TS != w.TS || g.Seq != w.Seq || !maps.Equal(g.Labels, w.Labels) || !maps.Equal(g.Annotations, w.Annotations) {
				t.Fatalf("%s: alert %d = %+v, want %+v", what, i, g, w)
			}
		}
	}
	filter := func(keep func(a ingest.AlertRow) bool) []ingest.AlertRow {
		var out []ingest.AlertRow
		for _, a := range all {
			if keep(a) {
				out = append(out, a)
			}
		}
		return out
	}
	check("all", q, all)
	qg := q
	qg.Gateway = "gw-b"
	check("one gateway", qg, filter(func(a ingest.AlertRow) bool { return a.Gateway == "gw-b" }))
	qr := q
	qr.Rule, qr.State = "hot", "firing"
	check("rule and state", qr, filter(func(a ingest.AlertRow) bool { return a.Rule == "hot" && a.State == outpost.StateFiring }))
	qw := q
	qw.From, qw.To = T0+2*int64(time.Minute), T0+4*int64(time.Minute)
	check("window", qw, filter(func(a ingest.AlertRow) bool { return a.TS >= qw.From && a.TS < qw.To }))
	ql := q
	ql.Limit = 3
	check("limit", ql, all[:3])
	if _, err := Collect(s.Alerts(ctx(t), ingest.AlertQuery{State: "melting", To: 1, Limit: 1})); err == nil {
		t.Fatal("an unknown state was taken")
	}
}
