package storetest

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// aggregate is the buckets of q computed the plain way from readings in
// time order: what Buckets must answer.
func aggregate(readings []ingest.Point, q ingest.BucketQuery) []ingest.Bucket {
	var out []ingest.Bucket
	floor := func(ts int64) int64 {
		r := ts % q.Step
		if r < 0 {
			r += q.Step
		}
		return ts - r
	}
	for _, p := range readings {
		if p.TS < floor(q.From) || p.TS >= q.To {
			continue
		}
		b := floor(p.TS)
		if len(out) == 0 || out[len(out)-1].TS != b {
			if len(out) == q.Limit {
				break
			}
			out = append(out, ingest.Bucket{Gateway: p.Gateway, Sensor: p.Sensor, Metric: p.Metric, Unit: "Cel", TS: b,
				Min: math.NaN(), Max: math.NaN(), Avg: 0, Last: math.NaN()})
		}
		k := &out[len(out)-1]
		k.N++
		if p.Quality == outpost.QualityBad || math.IsNaN(p.Value) {
			continue
		}
		if k.Count == 0 {
			k.Min, k.Max = p.Value, p.Value
		}
		k.Count++
		k.Min, k.Max, k.Avg = min(k.Min, p.Value), max(k.Max, p.Value), k.Avg+p.Value
		if p.TS >= k.LastTS {
			k.LastTS, k.Last = p.TS, p.Value
		}
	}
	for i := range out {
		if out[i].Count == 0 {
			out[i].Avg = math.NaN()
		} else {
			out[i].Avg /= float64(out[i].Count)
		}
	}
	return out
}

func sameBuckets(t *testing.T, what string, got, want []ingest.Bucket) {
	t.Helper()
	eq := func(x, y float64) bool {
		return x == y || math.IsNaN(x) && math.IsNaN(y) || math.Abs(x-y) <= 1e-9*math.Max(math.Abs(x), math.Abs(y))
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d buckets, want %d", what, len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.Gateway != w.Gateway || g.Sensor != w.Sensor || g.Metric != w.Metric || g.Unit != w.Unit || g.TS != w.TS ||
			g.N != w.N || g.Count != w.Count || g.LastTS != w.LastTS ||
			!eq(g.Min, w.Min) || !eq(g.Max, w.Max) || !eq(g.Avg, w.Avg) || !eq(g.Last, w.Last) {
			t.Fatalf("%s: bucket %d:\n got %+v\nwant %+v", what, i, g, w)
		}
	}
}

// testBuckets: a dense series (10 Hz), a medium one (1 Hz), both
// committed as chunks, and a sparse one (rows) over five hours, with bad readings, a NaN and a
// late batch. Buckets of steps served from the hour rollups, the minute
// rollups and the readings, over ranges cut anywhere, equal the readings
// aggregated the plain way: before compaction (all from readings), after
// it (rollups where current), and after a late batch (its hour stale
// until compacted again). The compactor writes the rollups of the hours
// dense enough for them.
func testBuckets(t *testing.T, s ingest.Store) {
	hour, sec := int64(time.Hour), int64(time.Second)
	base := T0 - T0%hour
	seq := uint64(0)
	// dense: 10 Hz, hour and minute rollups; medium: 1 Hz, hour rollups
	// only; sparse: three readings a minute, none.
	for i := range 5 * 36000 / 1000 {
		rs := Series("dense", "t", base+int64(i)*100*sec, 100*time.Millisecond, 1000, float64(i%7))
		rs[3].Quality, rs[5].Value, rs[8].Quality = outpost.QualityBad, math.NaN(), outpost.QualityUncertain
		seq++
		commit(t, s, Telemetry("gw", 1, seq, rs...), false)
	}
	for i := range 5 * 3600 / 1000 {
		seq++
		commit(t, s, Telemetry("gw", 1, seq, Series("medium", "t", base+int64(i)*1000*sec+sec/2, time.Second, 1000, float64(i))...), false)
	}
	for i := range 5 * 60 {
		seq++
		commit(t, s, Telemetry("gw", 1, seq, Series("sparse", "t", base+int64(i)*60*sec+7*sec, 20*time.Second, 3, float64(i))...), false)
	}
	readings := func(sensor string) []ingest.Point {
		t.Helper()
		got, err := Collect(s.Range(ctx(t), ingest.RangeQuery{Gateway: "gw", Sensor: sensor, Metric: "t", From: base - hour, To: base + 6*hour, Limit: 1 << 20}))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	check := func(what string) {
		t.Helper()
		for _, sensor := range []string{"dense", "medium", "sparse"} {
			all := readings(sensor)
			for _, step := range []time.Duration{7 * time.Second, time.Minute, 5 * time.Minute, 90 * time.Minute, time.Hour, 24 * time.Hour} {
				for _, r := range [][2]int64{{base - hour, base + 6*hour}, {base + 1234*sec, base + 3*hour + 17*sec}, {base + hour, base + 2*hour}} {
					q := ingest.BucketQuery{Gateway: "gw", Sensor: sensor, Metric: "t", From: r[0], To: r[1], Step: int64(step), Limit: 100000}
					got, err := Collect(s.Buckets(ctx(t), q))
					if err != nil {
						t.Fatal(err)
					}
					sameBuckets(t, fmt.Sprintf("%s: %s step %s [%d, %d)", what, sensor, step, r[0]-base, r[1]-base), got, aggregate(all, q))
				}
			}
			q := ingest.BucketQuery{Gateway: "gw", Sensor: sensor, Metric: "t", From: base, To: base + 5*hour, Step: int64(time.Minute), Limit: 7}
			got, err := Collect(s.Buckets(ctx(t), q))
			if err != nil {
				t.Fatal(err)
			}
			sameBuckets(t, what+": "+sensor+" limit 7", got, aggregate(all, q))
		}
	}
	check("before compacting")
	c, ok := s.(ingest.Compactor)
	if !ok {
		return
	}
	st, err := c.Compact(ctx(t), base+4*hour)
	if err != nil || st.Windows != 12 {
		t.Fatalf("compact: %+v, %v; want 12 windows (three series, four hours)", st, err)
	}
	check("after compacting")
	if q, ok := s.(Querier); ok {
		got, err := q.QueryStrings(ctx(t), `SELECT CAST(count(*) AS TEXT) FROM rollup_1h`)
		if err != nil || len(got) != 1 || got[0] != "8" {
			t.Fatalf("hour rollups: %v, %v; want 8", got, err)
		}
		// Hour rows of the dense and medium series (the sparse one has 180
		// readings an hour), minute rows of the dense one.
		got, err = q.QueryStrings(ctx(t), `SELECT CAST(count(*) AS TEXT) FROM rollup_1m`)
		if err != nil || len(got) != 1 || got[0] != "240" {
			t.Fatalf("minute rollups: %v, %v; want 240", got, err)
		}
	}
	seq++
	late := Series("dense", "t", base+hour+30*60*sec+sec/20, time.Second, 100, 1e6)
	commit(t, s, Telemetry("gw", 1, seq, late...), false)
	seq++
	commit(t, s, Telemetry("gw", 1, seq, Series("sparse", "t", base+2*hour+sec/3, time.Second, 2, -1e6)...), false)
	check("after a late batch")
	if st, err := c.Compact(ctx(t), base+4*hour); err != nil || st.Windows != 2 {
		t.Fatalf("compact the late batches: %+v, %v; want 2 windows", st, err)
	}
	check("after compacting the late batch")
}
