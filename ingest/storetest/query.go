package storetest

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
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
	if err := s.SetGatewayStatus(ctx(t), "gw", "online", time.Unix(0, T0), []byte(`{"state":"online"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGatewayStatus(ctx(t), "gw2", "online", time.Unix(0, T0), []byte(`{"state":"online"}`)); err != nil {
		t.Fatal(err)
	}
	commit(t, s, Telemetry("gw", 1, 3, Series("s", "u", T0, time.Millisecond, 1, 0)...), false)
	rq := ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", From: math.MinInt64, To: math.MaxInt64, Limit: 5000}
	for i := range 40 {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n := 0
		switch i % 4 {
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
	c, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Collect(s.Range(c, ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", To: math.MaxInt64, Limit: 10}))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("range with a cancelled context: %v, want context.Canceled", err)
	}
}
