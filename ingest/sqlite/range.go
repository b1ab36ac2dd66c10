package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"math"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/layout"
	"github.com/outposthq/outpost/ingest/internal/rollup"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

// Range implements ingest.Store, in one read transaction on one reader
// connection (readTx).
func (s *Store) Range(ctx context.Context, q ingest.RangeQuery) iter.Seq2[ingest.Point, error] {
	if err := rows.CheckRange(q); err != nil {
		return rows.Failed[ingest.Point](fmt.Errorf("sqlite: range: %w", err))
	}
	return func(yield func(ingest.Point, error) bool) {
		err := s.readTx(ctx, func(tx *sql.Tx) error {
			id, unit, ok, err := seriesID(ctx, tx, q.Gateway, q.Sensor, q.Metric)
			if err != nil || !ok || q.From >= q.To {
				return err
			}
			p := ingest.Point{Gateway: q.Gateway, Sensor: q.Sensor, Metric: q.Metric, Unit: unit}
			return raw(ctx, tx, id, q.From, q.To, q.Limit, func(ts int64, v float64, qual outpost.Quality) bool {
				p.TS, p.Value, p.Quality = ts, v, qual
				return yield(p, nil)
			})
		})
		if err != nil {
			yield(ingest.Point{}, fmt.Errorf("sqlite: range: %w", err))
		}
	}
}

// readTx runs f in a read transaction on a reader connection, so that
// what f reads sees the same commits.
func (s *Store) readTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() {
		if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
			s.log.Debug().Err(err).Msg("read: rollback")
		}
	}()
	return f(tx)
}

// seriesID looks a series up: its id and unit, ok false if there is none.
func seriesID(ctx context.Context, tx *sql.Tx, gateway, sensor, metric string) (id int64, unit string, ok bool, err error) {
	err = tx.QueryRowContext(ctx, `SELECT id, unit FROM series WHERE gateway = ? AND sensor = ? AND metric = ?`,
		gateway, sensor, metric).Scan(&id, &unit)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", false, nil
	}
	return id, unit, err == nil, err
}

// raw yields the series' readings with from <= ts < to in time order, at
// most limit of them: it reads the chunks by t_min and the recent rows by
// ts, two cursors side by side, and merges them a group of overlapping
// chunks at a time (layout.Windows): a chunk starts at most a span (a
// day) before from, and what a group yields is final.
func raw(ctx context.Context, tx *sql.Tx, id, from, to int64, limit int, yield func(int64, float64, outpost.Quality) bool) error {
	cs, err := tx.QueryContext(ctx, `SELECT t_min, data FROM chunks
		WHERE series_id = ? AND t_min >= ? AND t_min < ? AND t_max >= ? ORDER BY t_min`,
		id, layout.SpanOf(from), to, from)
	if err != nil {
		return err
	}
	defer cs.Close()
	// At most limit rows can be yielded.
	rs, err := tx.QueryContext(ctx, `SELECT ts, value, quality FROM recent
		WHERE series_id = ? AND ts >= ? AND ts < ? ORDER BY ts LIMIT ?`, id, from, to, limit)
	if err != nil {
		return err
	}
	defer rs.Close()
	var cData sql.RawBytes
	w := layout.Windows{
		NextChunk: func() (int64, []byte, bool, error) {
			var tMin int64
			if !cs.Next() {
				return 0, nil, false, cs.Err()
			}
			err := cs.Scan(&tMin, &cData)
			return tMin, cData, err == nil, err
		},
		NextRow: func() (int64, float64, outpost.Quality, bool, error) {
			var ts, q int64
			var v sql.NullFloat64
			if !rs.Next() {
				return 0, 0, 0, false, rs.Err()
			}
			if err := rs.Scan(&ts, &v, &q); err != nil {
				return 0, 0, 0, false, err
			}
			if q < 0 || q > int64(outpost.QualityBad) {
				return 0, 0, 0, false, fmt.Errorf("recent row at %d: quality %d", ts, q)
			}
			return ts, float(v), outpost.Quality(q), true, nil
		},
	}
	return w.Yield(from, to, limit, yield)
}

// Buckets implements ingest.Store: from the rollup rows where they are
// current, from the readings elsewhere (rollup.Buckets), in one read
// transaction.
func (s *Store) Buckets(ctx context.Context, q ingest.BucketQuery) iter.Seq2[ingest.Bucket, error] {
	rq := rollup.Query{From: q.From, To: q.To, Step: q.Step, Limit: q.Limit}
	if err := rq.Check(); err != nil {
		return rows.Failed[ingest.Bucket](fmt.Errorf("sqlite: buckets: %w", err))
	}
	return func(yield func(ingest.Bucket, error) bool) {
		err := s.readTx(ctx, func(tx *sql.Tx) error {
			id, unit, ok, err := seriesID(ctx, tx, q.Gateway, q.Sensor, q.Metric)
			if err != nil || !ok {
				return err
			}
			return rollup.Serve(rollupSource(ctx, tx, id), q, unit, yield)
		})
		if err != nil {
			yield(ingest.Bucket{}, fmt.Errorf("sqlite: buckets: %w", err))
		}
	}
}

// rollupSource reads series id in tx for rollup.Buckets.
func rollupSource(ctx context.Context, tx *sql.Tx, id int64) rollup.Source {
	rowsOf := func(table string, from, to int64, yield func(rollup.Agg) bool) error {
		rs, err := tx.QueryContext(ctx, `SELECT bucket, n, count, min, max, sum, last_ts, last FROM `+table+`
			WHERE series_id = ? AND bucket >= ? AND bucket < ? ORDER BY bucket`, id, from, to)
		if err != nil {
			return err
		}
		defer rs.Close()
		var a rollup.Agg
		var mn, mx, sum, last sql.NullFloat64
		for rs.Next() {
			if err := rs.Scan(&a.Bucket, &a.N, &a.Count, &mn, &mx, &sum, &a.LastTS, &last); err != nil {
				return err
			}
			a.Min, a.Max, a.Sum, a.Last = float(mn), float(mx), float(sum), float(last)
			if !yield(a) {
				return nil
			}
		}
		return rs.Err()
	}
	return rollup.Tables(rowsOf,
		func(from, to int64) ([]int64, error) {
			rs, err := tx.QueryContext(ctx, `SELECT win FROM pending WHERE series_id = ?1 AND win >= ?2 AND win < ?3
				UNION SELECT DISTINCT ts - ((ts % ?4) + ?4) % ?4 FROM recent
				WHERE series_id = ?1 AND ts >= max(?2, ?5) AND ts < ?3`, id, from, to, layout.Window, layout.MinTS)
			if err != nil {
				return nil, err
			}
			defer rs.Close()
			var out []int64
			for rs.Next() {
				var w int64
				if err := rs.Scan(&w); err != nil {
					return nil, err
				}
				out = append(out, w)
			}
			return out, rs.Err()
		},
		func(from, to int64, yield func(int64, float64, outpost.Quality) bool) error {
			return raw(ctx, tx, id, from, to, math.MaxInt, yield)
		})
}
