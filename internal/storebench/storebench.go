// Package storebench measures the ingest stores where the issue of
// storage at scale asks (docs/benchmarks.md, "Ingest storage"): readings
// per second into PostgreSQL with 1000-reading batches, side by side in
// one run with a raw pgx row COPY of the same readings into a plain
// indexed row table, and the bytes each layout takes on disk per reading.
// The readings are the office recordings (testdata/occupancy), replayed
// by several gateways. Every phase runs in a PostgreSQL schema of its
// own, dropped at the end. Not part of make test: scripts/bench store.
package storebench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest/postgres"
	"github.com/outposthq/outpost/internal/drainbench"
)

// Options configure a run.
type Options struct {
	PG            string // base DSN of the PostgreSQL to measure
	Occupancy     string // directory of the office recordings
	Readings      int    // readings per phase
	BatchReadings int    // readings per batch (all series together)
	Gateways      int    // gateways replaying the recordings, each its own series
	Workers       int    // batches committed at once (the ingest service's workers)
	// LowRateSeries, when positive, adds the low-rate phase: that many
	// series (1 000 per gateway), each with 1 to 5 readings in a batch,
	// Readings readings in all, compaction included in its time.
	LowRateSeries int
	Out           io.Writer
}

// Result is one phase's figures.
type Result struct {
	Name     string
	Readings int64
	Elapsed  time.Duration
	Bytes    int64 // on disk: tables, indexes and TOAST of the phase's schema
	Tables   []TableSize
}

// TableSize is one table's bytes on disk with its indexes and TOAST.
type TableSize struct {
	Name  string
	Bytes int64
}

// Rate is readings per second.
func (r Result) Rate() float64 { return float64(r.Readings) / r.Elapsed.Seconds() }

// phase is one way of storing the batches.
type phase struct {
	name string
	// open prepares the schema at dsn.
	open  func(ctx context.Context, dsn string) (opened, error)
	group int // batches per commit
	// timeAfter counts opened.after in the phase's time.
	timeAfter bool
	// batches, if set, are the phase's own batches instead of the
	// office recordings.
	batches func(o Options) ([]*outpost.Batch, error)
}

// opened is a phase ready to run.
type opened struct {
	commit func(context.Context, []*outpost.Batch) error
	// after, if set, runs once every batch is in; it is not timed, and
	// the size is measured after it.
	after   func(context.Context) error
	closeFn func() error
}

// Run measures every phase on the same batches and prints a table.
func Run(ctx context.Context, o Options) ([]Result, error) {
	if o.Readings <= 0 || o.BatchReadings < drainbench.OccupancySeries || o.Gateways <= 0 || o.Workers <= 0 {
		return nil, errors.New("storebench: readings, batch readings (≥ 5), gateways and workers must be positive")
	}
	bs, err := makeBatches(o)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, b := range bs {
		total += int64(b.Len())
	}
	fmt.Fprintf(o.Out, "storebench: %d readings in %d batches of %d from %d gateways (office recordings), %d workers\n",
		total, len(bs), o.BatchReadings, o.Gateways, o.Workers)
	var out []Result
	for _, p := range phases(o) {
		bs, total := bs, total
		if p.batches != nil {
			if bs, err = p.batches(o); err != nil {
				return out, err
			}
			total = 0
			for _, b := range bs {
				total += int64(b.Len())
			}
			fmt.Fprintf(o.Out, "storebench: %s: %d readings in %d batches of %d series\n", p.name, total, len(bs), o.LowRateSeries)
		}
		r, err := runPhase(context.WithValue(ctx, outKey{}, o.Out), o, p, bs, total)
		if err != nil {
			return out, fmt.Errorf("storebench: %s: %w", p.name, err)
		}
		out = append(out, r)
		fmt.Fprintf(o.Out, "storebench: %-24s %10.0f readings/s  %6.2f B/reading (", r.Name, r.Rate(), float64(r.Bytes)/float64(r.Readings))
		for i, t := range r.Tables[:min(4, len(r.Tables))] {
			if i > 0 {
				fmt.Fprint(o.Out, ", ")
			}
			fmt.Fprintf(o.Out, "%s %.2f", t.Name, float64(t.Bytes)/float64(r.Readings))
		}
		fmt.Fprintln(o.Out, ")")
	}
	print(o.Out, out)
	return out, nil
}

func print(w io.Writer, rs []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\treadings\tseconds\treadings/s\t× raw COPY\tbytes on disk\tB/reading\t")
	base := rs[0].Rate()
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.0f\t%.2f\t%d\t%.1f\t\n", r.Name, r.Readings, r.Elapsed.Seconds(), r.Rate(), r.Rate()/base,
			r.Bytes, float64(r.Bytes)/float64(r.Readings))
	}
	tw.Flush()
}

// makeBatches replays the recordings for each gateway in turn, one batch
// each, until there are enough readings.
func makeBatches(o Options) ([]*outpost.Batch, error) {
	rows := o.BatchReadings / drainbench.OccupancySeries
	srcs := make([]*drainbench.Occupancy, o.Gateways)
	for i := range srcs {
		s, err := drainbench.LoadOccupancy(o.Occupancy, rows)
		if err != nil {
			return nil, err
		}
		srcs[i] = s
	}
	var bs []*outpost.Batch
	seq := make([]uint64, o.Gateways)
	for n := 0; n < o.Readings; {
		for g := 0; g < o.Gateways && n < o.Readings; g++ {
			b := srcs[g].Next(fmt.Sprintf("bench-%04d", g))
			seq[g]++
			b.Epoch, b.Seq = uint64(g+1), seq[g]
			bs = append(bs, b)
			n += b.Len()
		}
	}
	return bs, nil
}

func runPhase(ctx context.Context, o Options, p phase, bs []*outpost.Batch, total int64) (Result, error) {
	dsn, drop, err := schema(ctx, o.PG)
	if err != nil {
		return Result{}, err
	}
	defer drop()
	op, err := p.open(ctx, dsn)
	if err != nil {
		return Result{}, err
	}
	defer op.closeFn()
	commit := op.commit
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, o.Workers)
	start := time.Now()
	for range o.Workers {
		wg.Go(func() {
			g := int64(max(p.group, 1))
			for {
				i := next.Add(g) - g
				if i >= int64(len(bs)) {
					return
				}
				if err := commit(ctx, bs[i:min(i+g, int64(len(bs)))]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return Result{}, err
	}
	if op.after != nil {
		if err := op.after(ctx); err != nil {
			return Result{}, err
		}
		if p.timeAfter {
			elapsed = time.Since(start)
		}
	}
	r := Result{Name: p.name, Readings: total, Elapsed: elapsed}
	r.Tables, err = tableSizes(ctx, dsn)
	if err != nil {
		return Result{}, err
	}
	for _, t := range r.Tables {
		r.Bytes += t.Bytes
	}
	return r, nil
}

// tableSizes is the bytes on disk of each table of the schema at dsn
// (partitions each apart), largest first.
func tableSizes(ctx context.Context, dsn string) ([]TableSize, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT c.relname::text, pg_total_relation_size(c.oid)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm') ORDER BY 2 DESC`)
	if err != nil {
		return nil, fmt.Errorf("size: %w", err)
	}
	var out []TableSize
	var t TableSize
	_, err = pgx.ForEachRow(rows, []any{&t.Name, &t.Bytes}, func() error {
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("size: %w", err)
	}
	return out, nil
}

// schemaBytes is the bytes on disk of the schema at dsn.
func schemaBytes(ctx context.Context, dsn string) (int64, error) {
	ts, err := tableSizes(ctx, dsn)
	var n int64
	for _, t := range ts {
		n += t.Bytes
	}
	return n, err
}

// schema creates a schema of its own on base and returns the DSN that
// uses it and its drop.
func schema(ctx context.Context, base string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "storebench_" + hex.EncodeToString(rnd[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", nil, err
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+name+" CASCADE")
			c.Close(ctx)
		}
	}
	u, err := url.Parse(base)
	if err != nil {
		drop()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

func phases(o Options) []phase {
	ps := []phase{rawCopy(), store(1, false), store(16, false), store(16, true)}
	if o.LowRateSeries > 0 {
		low := store(16, true)
		low.name = "low-rate, groups of 16, compaction included"
		low.timeAfter, low.batches = true, lowRate
		ps = append(ps, low)
	}
	return ps
}

// lowRate makes batches of many low-rate series: o.LowRateSeries series
// of 1 000 per gateway, each sampled every 10 s (a random walk at two
// decimals), each batch o.BatchReadings readings of the next series of
// one gateway, 1 to 5 readings of each.
func lowRate(o Options) ([]*outpost.Batch, error) {
	const perGateway = 1000
	gws := max(1, o.LowRateSeries/perGateway)
	type cursor struct {
		next int       // the gateway's next series
		ts   []int64   // each series' next time
		v    []float64 // each series' last value
	}
	cs := make([]cursor, gws)
	for g := range cs {
		cs[g].ts, cs[g].v = make([]int64, perGateway), make([]float64, perGateway)
		for i := range perGateway {
			cs[g].ts[i] = lowRateStart + int64(i)*int64(time.Millisecond)
			cs[g].v[i] = 20
		}
	}
	rng := uint64(1)
	var bs []*outpost.Batch
	seqs := make([]uint64, gws)
	for n, k := 0, 0; n < o.Readings; k++ {
		g := k % gws
		c := &cs[g]
		bb := outpost.NewBatchBuilder()
		for got := 0; got < o.BatchReadings && n+got < o.Readings; {
			i := c.next
			c.next = (c.next + 1) % perGateway
			per := 1 + (i+k)%5
			rs := make([]outpost.Reading, per)
			for j := range rs {
				rng = rng*6364136223846793005 + 1442695040888963407
				c.v[i] = math.Round((c.v[i]+float64(int64(rng>>60)-8)/100)*100) / 100
				rs[j] = outpost.Reading{Sensor: fmt.Sprintf("s%04d", i), Metric: "v", Unit: "Cel", TS: c.ts[i], Value: c.v[i]}
				c.ts[i] += 10 * int64(time.Second)
			}
			bb.Add(rs)
			got += per
		}
		b := bb.Take(fmt.Sprintf("low-%04d", g), lowRateStart)
		seqs[g]++
		b.Epoch, b.Seq = uint64(g+1), seqs[g]
		bs = append(bs, b)
		n += b.Len()
	}
	return bs, nil
}

// lowRateStart is when the low-rate series begin: long ago, so that every
// window is closed when the phase compacts.
var lowRateStart = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// rawCopy is the yardstick: each batch's readings COPYed by pgx as rows
// into a plain table with the row store's index, one transaction each.
func rawCopy() phase {
	return phase{name: "raw row COPY", open: func(ctx context.Context, dsn string) (opened, error) {
		pool, err := postgresPool(ctx, dsn)
		if err != nil {
			return opened{}, err
		}
		if _, err := pool.Exec(ctx, `CREATE TABLE raw (gateway text NOT NULL, sensor text NOT NULL, metric text NOT NULL,
			ts bigint NOT NULL, value double precision NOT NULL, quality smallint NOT NULL);
			CREATE INDEX raw_series_ts ON raw (gateway, sensor, metric, ts)`); err != nil {
			pool.Close()
			return opened{}, err
		}
		cols := []string{"gateway", "sensor", "metric", "ts", "value", "quality"}
		commit := func(ctx context.Context, bs []*outpost.Batch) error {
			_, err := pool.CopyFrom(ctx, pgx.Identifier{"raw"}, cols, &rowSource{b: bs[0], s: 0, i: -1})
			return err
		}
		return opened{commit: commit, closeFn: func() error { pool.Close(); return nil }}, nil
	}}
}

// store is the ingest service's PostgreSQL store, committing group
// batches at a time (CommitGroup), or one by one (Commit) when group is 1.
func store(group int, compact bool) phase {
	name := "store"
	if group > 1 {
		name = fmt.Sprintf("store, groups of %d", group)
	}
	if compact {
		name += ", compacted"
	}
	return phase{name: name, group: group, open: func(ctx context.Context, dsn string) (opened, error) {
		out := ctx.Value(outKey{}).(io.Writer)
		s, err := postgres.Open(ctx, dsn, zerolog.Nop())
		if err != nil {
			return opened{}, err
		}
		var after func(context.Context) error
		if compact {
			// Everything compacted, and the space of the rows it
			// deleted given back, as autovacuum would reuse it.
			after = func(ctx context.Context) error {
				start := time.Now()
				st, err := s.Compact(ctx, math.MaxInt64)
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "storebench: compacted %d windows, %d rows into %d chunks in %.1f s\n",
					st.Windows, st.Rows, st.ChunksWritten, time.Since(start).Seconds())
				conn, err := pgx.Connect(ctx, dsn)
				if err != nil {
					return err
				}
				defer conn.Close(context.WithoutCancel(ctx))
				_, err = conn.Exec(ctx, "VACUUM FULL")
				return err
			}
		}
		commit := func(ctx context.Context, bs []*outpost.Batch) error {
			var dups []bool
			var err error
			if len(bs) == 1 && group == 1 {
				var dup bool
				dup, err = s.Commit(ctx, bs[0], 0)
				dups = []bool{dup}
			} else {
				dups, err = s.CommitGroup(ctx, bs, make([]int, len(bs)))
			}
			if err != nil {
				return err
			}
			for i, d := range dups {
				if d {
					return fmt.Errorf("batch %d/%d taken for a duplicate", bs[i].Epoch, bs[i].Seq)
				}
			}
			return nil
		}
		return opened{commit: commit, after: after, closeFn: s.Close}, nil
	}}
}

// postgresPool opens a pool at dsn with a connection per worker and some.
func postgresPool(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 16
	return pgxpool.NewWithConfig(ctx, cfg)
}

// rowSource yields a batch's readings as rows, walking its series'
// delta-encoded timestamps, without copying them first.
type rowSource struct {
	b    *outpost.Batch
	s, i int
	ts   int64
	row  [6]any
}

func (r *rowSource) Next() bool {
	for r.s < len(r.b.Series) {
		sr := &r.b.Series[r.s]
		r.i++
		if r.i < len(sr.TS) {
			if r.i == 0 {
				r.ts = sr.TS[0]
			} else {
				r.ts += sr.TS[r.i]
			}
			q := int16(0)
			if len(sr.Quality) > 0 {
				q = int16(sr.Quality[r.i])
			}
			r.row = [6]any{r.b.Gateway, sr.Sensor, sr.Metric, r.ts, sr.Values[r.i], q}
			return true
		}
		r.s, r.i = r.s+1, -1
	}
	return false
}

func (r *rowSource) Values() ([]any, error) { return r.row[:], nil }
func (r *rowSource) Err() error             { return nil }

// outKey carries Options.Out to a phase's open.
type outKey struct{}
