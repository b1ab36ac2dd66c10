package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/layout"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

// Range implements ingest.Store. In one read transaction on one reader
// connection, so that both see the same commits, it reads the series'
// chunks in the window by t_min and its recent rows by ts, two cursors
// side by side, and merges them one chunk window (an hour) at a time: a
// chunk never spans two, so what a window yields is final, and memory
// holds one window's readings.
func (s *Store) Range(ctx context.Context, q ingest.RangeQuery) iter.Seq2[ingest.Point, error] {
	if err := rows.CheckRange(q); err != nil {
		return rows.Failed[ingest.Point](fmt.Errorf("sqlite: range: %w", err))
	}
	return func(yield func(ingest.Point, error) bool) {
		if err := s.rangeTx(ctx, q, yield); err != nil {
			yield(ingest.Point{}, fmt.Errorf("sqlite: range: %w", err))
		}
	}
}

// rangeTx yields q's readings until they end, yield returns false or an
// error, which it returns.
func (s *Store) rangeTx(ctx context.Context, q ingest.RangeQuery, yield func(ingest.Point, error) bool) error {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() {
		if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
			s.log.Debug().Err(err).Msg("range: rollback")
		}
	}()
	var id int64
	var unit string
	err = tx.QueryRowContext(ctx, `SELECT id, unit FROM series WHERE gateway = ? AND sensor = ? AND metric = ?`,
		q.Gateway, q.Sensor, q.Metric).Scan(&id, &unit)
	if errors.Is(err, sql.ErrNoRows) || err == nil && q.From >= q.To {
		return nil
	}
	if err != nil {
		return err
	}
	cs, err := tx.QueryContext(ctx, `SELECT t_min, data FROM chunks
		WHERE series_id = ? AND t_min >= ? AND t_min < ? AND t_max >= ? ORDER BY t_min`,
		id, layout.WindowOf(q.From), q.To, q.From)
	if err != nil {
		return err
	}
	defer cs.Close()
	// At most Limit rows can be yielded.
	rs, err := tx.QueryContext(ctx, `SELECT ts, value, quality FROM recent
		WHERE series_id = ? AND ts >= ? AND ts < ? ORDER BY ts LIMIT ?`, id, q.From, q.To, q.Limit)
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
	p := ingest.Point{Gateway: q.Gateway, Sensor: q.Sensor, Metric: q.Metric, Unit: unit}
	return w.Yield(q.From, q.To, q.Limit, func(ts int64, v float64, qual outpost.Quality) bool {
		p.TS, p.Value, p.Quality = ts, v, qual
		return yield(p, nil)
	})
}
