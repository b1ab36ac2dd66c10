package sqlite_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/sqlite"
	"github.com/outposthq/outpost/ingest/storetest"
)

// Two stores compacting one file at once (two ingest processes) while a
// third commits rows into the hours they compact: every reading is kept,
// once, and in order, each store says it compacted, and a last run
// leaves no row in recent.
func TestCompactConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	a, b, w := open(t, path), open(t, path), open(t, path)
	defer a.Close()
	defer b.Close()
	defer w.Close()
	ctx := context.Background()
	hour := int64(time.Hour)
	base := storetest.T0 - storetest.T0%hour
	const series, batches = 10, 400
	seq := uint64(0)
	commitN := func(s *sqlite.Store, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			seq++
			rs := storetest.Series(fmt.Sprint("s", i%series), "t", base+int64(i)*int64(time.Minute)/2, time.Second, 3, float64(i))
			if _, err := s.Commit(ctx, storetest.Telemetry("gw", 1, seq, rs...), 1); err != nil {
				t.Error(err)
				return
			}
		}
	}
	commitN(w, 0, batches/2)
	var wg sync.WaitGroup
	wg.Go(func() { commitN(w, batches/2, batches) }) // 200 minutes: hours 0 to 3
	var windows [2]int64
	for i, s := range []*sqlite.Store{a, b} {
		wg.Go(func() {
			for range 20 {
				st, err := s.Compact(ctx, base+10*hour)
				if err != nil {
					t.Error(err)
					return
				}
				if !st.Leader {
					t.Error("a SQLite store did not compact")
				}
				windows[i] += st.Windows
			}
		})
	}
	wg.Wait()
	st, err := a.Compact(ctx, base+10*hour)
	if err != nil {
		t.Fatal(err)
	}
	if windows[0]+windows[1]+st.Windows < series*4 {
		t.Fatalf("%d windows compacted, want at least %d", windows[0]+windows[1]+st.Windows, series*4)
	}
	c, err := a.Counts(ctx)
	if err != nil || c.Readings != batches*3 || c.DistinctReadings != batches*3 {
		t.Fatalf("counts after compacting: %+v, %v", c, err)
	}
	db := readDB(t, path)
	defer db.Close()
	var rows int
	if err := db.QueryRow(`SELECT count(*) FROM recent`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d rows left in recent, %v", rows, err)
	}
	for i := range series {
		pts, err := rangeAll(a, fmt.Sprint("s", i), "t")
		if err != nil || len(pts) != batches/series*3 {
			t.Fatalf("series s%d: %d readings, %v", i, len(pts), err)
		}
		for j := 1; j < len(pts); j++ {
			if pts[j].TS < pts[j-1].TS {
				t.Fatalf("series s%d: reading %d out of order", i, j)
			}
		}
	}
}

// Rows in the first window of int64, whose start does not fit one, stay
// rows; NaN and qualities survive the fold; equal timestamps keep the
// order they were committed in; a window's large chunk is left as it is.
func TestCompactEdges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	s := open(t, path)
	defer s.Close()
	ctx := context.Background()
	hour := int64(time.Hour)
	base := storetest.T0 - storetest.T0%hour
	r := func(ts int64, v float64, q outpost.Quality) outpost.Reading {
		return outpost.Reading{Sensor: "s", Metric: "t", TS: ts, Value: v, Quality: q}
	}
	commit(t, s, storetest.Telemetry("gw", 1, 1, r(math.MinInt64, 1, 0), r(math.MinInt64+5, 2, 0)))
	commit(t, s, storetest.Telemetry("gw", 1, 2, r(base+10, math.NaN(), outpost.QualityBad), r(base+20, 3, 0)))
	commit(t, s, storetest.Telemetry("gw", 1, 3, r(base+20, 4, outpost.QualityUncertain)))
	commit(t, s, storetest.Telemetry("gw", 1, 4, storetest.Series("s", "t", base+hour/2, time.Millisecond, 5000, 0)...))
	st, err := s.Compact(ctx, base+hour)
	if err != nil || st.Windows != 1 || st.Rows != 3 || st.ChunksMerged != 0 || st.ChunksWritten != 1 {
		t.Fatalf("compact: %+v, %v; want one window of 3 rows, the large chunk left", st, err)
	}
	pts, err := rangeAll(s, "s", "t")
	if err != nil || len(pts) != 5005 {
		t.Fatalf("range: %d readings, %v", len(pts), err)
	}
	want := []ingest.Point{{TS: math.MinInt64, Value: 1}, {TS: math.MinInt64 + 5, Value: 2},
		{TS: base + 10, Value: math.NaN(), Quality: outpost.QualityBad}, {TS: base + 20, Value: 3}, {TS: base + 20, Value: 4, Quality: outpost.QualityUncertain}}
	for i, w := range want {
		p := pts[i]
		if p.TS != w.TS || !sameBits(p.Value, w.Value) || p.Quality != w.Quality {
			t.Fatalf("reading %d = %+v, want %+v", i, p, w)
		}
	}
	db := readDB(t, path)
	defer db.Close()
	var rows, chunks int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM recent), (SELECT count(*) FROM chunks)`).Scan(&rows, &chunks); err != nil || rows != 2 || chunks != 2 {
		t.Fatalf("%d rows and %d chunks, %v; want the 2 rows of int64's first window and 2 chunks", rows, chunks, err)
	}
	if st, err := s.Compact(ctx, math.MaxInt64); err != nil || st.Windows != 0 {
		t.Fatalf("compacting again: %+v, %v", st, err)
	}
}
