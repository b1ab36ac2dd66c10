package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/postgres"
	"github.com/outposthq/outpost/ingest/storetest"
)

// Two ingest processes compacting one database at once fold each window
// once: one holds the compactor's lock, the other skips its turn.
func TestCompactTwoProcesses(t *testing.T) {
	d := dsn(t)
	a, b := open(t, d), open(t, d)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	hour := int64(time.Hour)
	base := storetest.T0 - storetest.T0%hour
	for i := range 200 {
		rs := storetest.Series(fmt.Sprint("s", i%20), "t", base+int64(i)*int64(time.Minute), time.Second, 3, float64(i))
		if _, err := a.Commit(ctx, storetest.Telemetry("gw", 1, uint64(i+1), rs...), 1); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var windows atomic.Int64
	errs := make(chan error, 2)
	for _, s := range []*postgres.Store{a, b} {
		wg.Go(func() {
			st, err := s.Compact(ctx, base+10*hour)
			if err != nil {
				errs <- err
			}
			windows.Add(st.Windows)
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	// 200 minutes of 20 series: every series has readings in hours 0–3.
	if n := windows.Load(); n != 20*4 {
		t.Fatalf("%d windows compacted, want %d", n, 20*4)
	}
	c, err := a.Counts(ctx)
	if err != nil || c.Readings != 600 || c.DistinctReadings != 600 {
		t.Fatalf("counts after compacting: %+v, %v", c, err)
	}
}

// A range read while the compactor folds the rows it reads never misses
// a reading committed before it began: its chunks and rows are read in
// one snapshot, so a fold committed between the two queries shows the
// readings in one place or the other.
func TestRangeDuringCompaction(t *testing.T) {
	d := dsn(t)
	s := open(t, d)
	defer s.Close()
	ctx := context.Background()
	hour := int64(time.Hour)
	base := storetest.T0 - storetest.T0%hour
	var committed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { // the gateway: three readings a batch into four closed hours
		defer close(stop)
		for i := range 300 {
			at := base + int64(i%4)*hour + int64(i)*int64(time.Second)
			if _, err := s.Commit(ctx, storetest.Telemetry("gw", 1, uint64(i+1), storetest.Series("s", "t", at, time.Millisecond, 3, float64(i))...), 1); err != nil {
				errs <- err
				return
			}
			committed.Add(3)
		}
	})
	wg.Go(func() { // the compactor, as fast as it goes
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Compact(ctx, base+10*hour); err != nil {
				errs <- err
				return
			}
		}
	})
	reads := 0
	for done := false; !done; reads++ {
		select {
		case <-stop:
			done = true
		default:
		}
		before := committed.Load()
		pts, err := storetest.Collect(s.Range(ctx, ingest.RangeQuery{Gateway: "gw", Sensor: "s", Metric: "t", From: base, To: base + 4*hour, Limit: 100000}))
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(pts)) < before {
			t.Fatalf("read %d: %d readings, but %d were committed before it began", reads, len(pts), before)
		}
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d reads while %d readings were committed and compacted", reads, committed.Load())
}
