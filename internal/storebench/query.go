package storebench

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/postgres"
)

// QueryOptions configure the query phase: Series series at 1 Hz for Days
// days (a random walk at two decimals, 1 000-reading batches), compacted,
// plus LatestSeries series of one reading each; then the queries the
// issue names, each Repeat times on random series.
type QueryOptions struct {
	Series, Days, LatestSeries, Repeat int
}

// QueryResult is the query phase's figures.
type QueryResult struct {
	Readings             int64
	Load, Compact        time.Duration
	Bytes                int64
	Raw24h, Month1h      []time.Duration // per query
	Latest10k            []time.Duration
	Raw24hN, Month1hN, L int // what one query answered
}

// RunQueries loads the store and times the queries.
func RunQueries(ctx context.Context, o Options, q QueryOptions) (QueryResult, error) {
	var r QueryResult
	dsn, drop, err := schema(ctx, o.PG)
	if err != nil {
		return r, err
	}
	defer drop()
	s, err := postgres.Open(ctx, dsn, zerolog.Nop())
	if err != nil {
		return r, err
	}
	defer s.Close()
	day := int64(24 * time.Hour)
	now := time.Now().UnixNano()
	start := now - now%day - int64(q.Days)*day
	end := start + int64(q.Days)*day
	const perBatch = 1000
	perSeries := int64(q.Days) * day / int64(time.Second)
	batches := int64(q.Series) * ((perSeries + perBatch - 1) / perBatch)
	fmt.Fprintf(o.Out, "storebench: queries: loading %d series × %d days at 1 Hz (%d readings, %d batches), groups of 16\n",
		q.Series, q.Days, int64(q.Series)*perSeries, batches)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, o.Workers)
	t0 := time.Now()
	for range o.Workers {
		wg.Go(func() {
			for {
				k := next.Add(16) - 16
				if k >= batches {
					return
				}
				var bs []*outpost.Batch
				for j := k; j < min(k+16, batches); j++ {
					bs = append(bs, monthBatch(j, q.Series, perBatch, start, end))
				}
				if _, err := s.CommitGroup(ctx, bs, make([]int, len(bs))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return r, err
	}
	r.Load = time.Since(t0)
	r.Readings = int64(q.Series) * perSeries
	for i := 0; i < q.LatestSeries; i += 1000 {
		bb := outpost.NewBatchBuilder()
		for j := i; j < min(i+1000, q.LatestSeries); j++ {
			bb.Add([]outpost.Reading{{Sensor: fmt.Sprintf("l%05d", j), Metric: "v", Unit: "Cel", TS: end - int64(time.Second), Value: float64(j)}})
		}
		b := bb.Take("latest", end)
		b.Epoch, b.Seq = 7, uint64(i/1000+1)
		if _, err := s.Commit(ctx, b, 0); err != nil {
			return r, err
		}
	}
	t0 = time.Now()
	if _, err := s.Compact(ctx, math.MaxInt64); err != nil {
		return r, err
	}
	r.Compact = time.Since(t0)
	if r.Bytes, err = schemaBytes(ctx, dsn); err != nil {
		return r, err
	}
	rng := uint64(7)
	pick := func() string {
		rng = rng*6364136223846793005 + 1442695040888963407
		return fmt.Sprintf("m%04d", int(rng>>33)%q.Series)
	}
	for range q.Repeat {
		sensor := pick()
		t := time.Now()
		n := 0
		for _, err := range s.Range(ctx, ingest.RangeQuery{Gateway: "month", Sensor: sensor, Metric: "v", From: end - day, To: end, Limit: 100000}) {
			if err != nil {
				return r, err
			}
			n++
		}
		r.Raw24h, r.Raw24hN = append(r.Raw24h, time.Since(t)), n
		t = time.Now()
		n = 0
		for _, err := range s.Buckets(ctx, ingest.BucketQuery{Gateway: "month", Sensor: sensor, Metric: "v", From: end - 30*day, To: end, Step: int64(time.Hour), Limit: 100000}) {
			if err != nil {
				return r, err
			}
			n++
		}
		r.Month1h, r.Month1hN = append(r.Month1h, time.Since(t)), n
		t = time.Now()
		n = 0
		for _, err := range s.Latest(ctx, ingest.LatestQuery{Gateway: "latest", Limit: 10000}) {
			if err != nil {
				return r, err
			}
			n++
		}
		r.Latest10k, r.L = append(r.Latest10k, time.Since(t)), n
	}
	printQueries(o.Out, r)
	return r, nil
}

// monthBatch is batch k of the month: 1 000 readings of one series.
func monthBatch(k int64, series, perBatch int, start, end int64) *outpost.Batch {
	si, bi := k%int64(series), k/int64(series)
	ts0 := start + bi*int64(perBatch)*int64(time.Second)
	rs := make([]outpost.Reading, 0, perBatch)
	v := 20 + float64(si%10)
	rng := uint64(k)*0x9E3779B97F4A7C15 + 1
	for i := range perBatch {
		ts := ts0 + int64(i)*int64(time.Second)
		if ts >= end {
			break
		}
		rng = rng*6364136223846793005 + 1442695040888963407
		v = math.Round((v+float64(int64(rng>>60)-8)/100)*100) / 100
		rs = append(rs, outpost.Reading{Sensor: fmt.Sprintf("m%04d", si), Metric: "v", Unit: "Cel", TS: ts, Value: v})
	}
	bb := outpost.NewBatchBuilder()
	bb.Add(rs)
	b := bb.Take("month", ts0)
	b.Epoch, b.Seq = uint64(si+1), uint64(bi+1)
	return b
}

func printQueries(w io.Writer, r QueryResult) {
	st := func(ds []time.Duration) string {
		s := slices.Clone(ds)
		slices.Sort(s)
		return fmt.Sprintf("median %6.1f ms, max %6.1f ms", ms(s[len(s)/2]), ms(s[len(s)-1]))
	}
	fmt.Fprintf(w, "storebench: queries: %d readings loaded in %.1f s (%.0f readings/s), compacted in %.1f s, %.2f B/reading on disk\n",
		r.Readings, r.Load.Seconds(), float64(r.Readings)/r.Load.Seconds(), r.Compact.Seconds(), float64(r.Bytes)/float64(r.Readings))
	fmt.Fprintf(w, "storebench: queries: one series, 24 h raw (%d readings):       %s (%d runs)\n", r.Raw24hN, st(r.Raw24h), len(r.Raw24h))
	fmt.Fprintf(w, "storebench: queries: one series, 30 days at step=1h (%d buckets): %s\n", r.Month1hN, st(r.Month1h))
	fmt.Fprintf(w, "storebench: queries: latest of %d series:                   %s\n", r.L, st(r.Latest10k))
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
