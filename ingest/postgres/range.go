package postgres

import (
	"context"
	"fmt"
	"iter"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/layout"
	"github.com/outposthq/outpost/ingest/internal/rollup"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

// Range implements ingest.Store.
func (s *Store) Range(ctx context.Context, q ingest.RangeQuery) iter.Seq2[ingest.Point, error] {
	if err := rows.CheckRange(q); err != nil {
		return rows.Failed[ingest.Point](fmt.Errorf("postgres: range: %w", err))
	}
	return func(yield func(ingest.Point, error) bool) {
		fail := func(err error) { yield(ingest.Point{}, fmt.Errorf("postgres: range: %w", err)) }
		id, unit, ok, err := s.seriesID(ctx, q.Gateway, q.Sensor, q.Metric)
		if err != nil {
			fail(err)
			return
		}
		if !ok || q.From >= q.To {
			return
		}
		p := ingest.Point{Gateway: q.Gateway, Sensor: q.Sensor, Metric: q.Metric, Unit: unit}
		err = s.raw(ctx, q.Gateway, id, q.From, q.To, q.Limit, func(ts int64, v float64, qual outpost.Quality) bool {
			p.TS, p.Value, p.Quality = ts, v, qual
			return yield(p, nil)
		})
		if err != nil {
			fail(err)
		}
	}
}

// seriesID looks a series up: its id and unit, ok false if there is none.
func (s *Store) seriesID(ctx context.Context, gateway, sensor, metric string) (id int64, unit string, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT id, unit FROM series WHERE gateway = $1 AND sensor = $2 AND metric = $3`,
		gateway, sensor, metric).Scan(&id, &unit)
	if err == pgx.ErrNoRows {
		return 0, "", false, nil
	}
	return id, unit, err == nil, err
}

// raw yields the series' readings with from <= ts < to in time order, at
// most limit of them. It reads the chunks and rows side by side, on two
// connections in one snapshot (the second imports the first's), so that
// a compaction committed between the two queries neither hides readings
// it moved nor shows them twice; and merges them a group of overlapping
// chunks at a time (layout.Windows): a chunk starts at most a span (a
// day) before from, and what a group yields is final.
func (s *Store) raw(ctx context.Context, gateway string, id, from, to int64, limit int, yield func(int64, float64, outpost.Quality) bool) error {
	ta, tb, done, err := s.snapshotPair(ctx)
	if err != nil {
		return err
	}
	defer done()
	cs, err := ta.Query(ctx, `SELECT t_min, data FROM chunks
		WHERE series_id = $1 AND t_min >= $2 AND t_min < $3 AND t_max >= $4 ORDER BY t_min`,
		id, layout.SpanOf(from), to, from)
	if err != nil {
		return err
	}
	defer cs.Close()
	// The staged rows of the series' gateway, by their windows, and the
	// series' readings in them.
	rs, err := tb.Query(ctx, `SELECT u.ts, u.value, u.quality
		FROM staged s CROSS JOIN LATERAL unnest(s.series, s.ts, s.value, s.quality) AS u(series_id, ts, value, quality)
		WHERE s.gateway = $1 AND s.win >= $2 AND s.win < $3 AND u.series_id = $4 AND u.ts >= $5 AND u.ts < $3
		ORDER BY u.ts`, gateway, layout.WindowOf(from), to, id, from)
	if err != nil {
		return err
	}
	defer rs.Close()
	w := layout.Windows{
		NextChunk: func() (int64, []byte, bool, error) {
			var tMin int64
			var data []byte
			if !cs.Next() {
				return 0, nil, false, cs.Err()
			}
			err := cs.Scan(&tMin, &data)
			return tMin, data, err == nil, err
		},
		NextRow: func() (int64, float64, outpost.Quality, bool, error) {
			var ts int64
			var v float64
			var q int16
			if !rs.Next() {
				return 0, 0, 0, false, rs.Err()
			}
			if err := rs.Scan(&ts, &v, &q); err != nil {
				return 0, 0, 0, false, err
			}
			if q < 0 || q > int16(outpost.QualityBad) {
				return 0, 0, 0, false, fmt.Errorf("recent row at %d: quality %d", ts, q)
			}
			return ts, v, outpost.Quality(q), true, nil
		},
	}
	return w.Yield(from, to, limit, yield)
}

// Buckets implements ingest.Store: from the rollup rows where they are
// current, from the readings elsewhere (rollup.Buckets).
func (s *Store) Buckets(ctx context.Context, q ingest.BucketQuery) iter.Seq2[ingest.Bucket, error] {
	rq := rollup.Query{From: q.From, To: q.To, Step: q.Step, Limit: q.Limit}
	if err := rq.Check(); err != nil {
		return rows.Failed[ingest.Bucket](fmt.Errorf("postgres: buckets: %w", err))
	}
	return func(yield func(ingest.Bucket, error) bool) {
		fail := func(err error) { yield(ingest.Bucket{}, fmt.Errorf("postgres: buckets: %w", err)) }
		id, unit, ok, err := s.seriesID(ctx, q.Gateway, q.Sensor, q.Metric)
		if err != nil {
			fail(err)
			return
		}
		if !ok {
			return
		}
		if err := rollup.Serve(s.rollupSource(ctx, q.Gateway, id), q, unit, yield); err != nil {
			fail(err)
		}
	}
}

// rollupSource reads series id, of gateway, for rollup.Buckets.
func (s *Store) rollupSource(ctx context.Context, gateway string, id int64) rollup.Source {
	rowsOf := func(table string, from, to int64, yield func(rollup.Agg) bool) error {
		rs, err := s.pool.Query(ctx, `SELECT bucket, n, count, min, max, sum, last_ts, last FROM `+table+`
			WHERE series_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket`, id, from, to)
		if err != nil {
			return err
		}
		defer rs.Close()
		var a rollup.Agg
		for rs.Next() {
			if err := rs.Scan(&a.Bucket, &a.N, &a.Count, &a.Min, &a.Max, &a.Sum, &a.LastTS, &a.Last); err != nil {
				return err
			}
			if !yield(a) {
				return nil
			}
		}
		return rs.Err()
	}
	return rollup.Tables(rowsOf,
		func(from, to int64) ([]int64, error) {
			rs, err := s.pool.Query(ctx, `SELECT win FROM pending WHERE series_id = $1 AND win >= $2 AND win < $3
				UNION SELECT DISTINCT win FROM staged
				WHERE gateway = $4 AND win >= $5 AND win < $3 AND $1 = ANY(series)`, id, from, to, gateway, layout.WindowOf(from))
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rs, pgx.RowTo[int64])
		},
		func(from, to int64, yield func(int64, float64, outpost.Quality) bool) error {
			return s.raw(ctx, gateway, id, from, to, math.MaxInt, yield)
		})
}

// snapshotPair begins two read-only transactions on two connections that
// see the same snapshot; done rolls both back and releases them.
func (s *Store) snapshotPair(ctx context.Context) (a, b pgx.Tx, done func(), err error) {
	opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	var txs []pgx.Tx
	done = func() {
		for _, tx := range txs {
			_ = tx.Rollback(context.WithoutCancel(ctx)) // read only: nothing to lose; a broken conn is discarded
		}
	}
	if a, err = s.pool.BeginTx(ctx, opts); err != nil {
		return nil, nil, nil, err
	}
	txs = append(txs, a)
	var snap string
	if err = a.QueryRow(ctx, `SELECT pg_export_snapshot()`).Scan(&snap); err != nil {
		done()
		return nil, nil, nil, err
	}
	if !validSnapshot(snap) {
		done()
		return nil, nil, nil, fmt.Errorf("snapshot id %q", snap)
	}
	if b, err = s.pool.BeginTx(ctx, opts); err != nil {
		done()
		return nil, nil, nil, err
	}
	txs = append(txs, b)
	// SET TRANSACTION SNAPSHOT takes a literal, not a parameter; the id
	// is the server's own, checked above.
	if _, err = b.Exec(ctx, `SET TRANSACTION SNAPSHOT '`+snap+`'`); err != nil {
		done()
		return nil, nil, nil, err
	}
	return a, b, done, nil
}

// validSnapshot reports whether id looks like a snapshot id of
// pg_export_snapshot (hex digits and dashes).
func validSnapshot(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F' || c >= 'a' && c <= 'f' || c == '-') {
			return false
		}
	}
	return true
}
