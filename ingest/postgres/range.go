package postgres

import (
	"context"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/layout"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

// Range implements ingest.Store. It reads the series' chunks and rows in
// the window in time order, side by side on two connections, and merges
// them one chunk window (an hour) at a time: a chunk never spans two, so
// what a window yields is final, and memory holds one window's readings.
func (s *Store) Range(ctx context.Context, q ingest.RangeQuery) iter.Seq2[ingest.Point, error] {
	if err := rows.CheckRange(q); err != nil {
		return rows.Failed[ingest.Point](fmt.Errorf("postgres: range: %w", err))
	}
	return func(yield func(ingest.Point, error) bool) {
		fail := func(err error) { yield(ingest.Point{}, fmt.Errorf("postgres: range: %w", err)) }
		var id int64
		var unit string
		err := s.pool.QueryRow(ctx, `SELECT id, unit FROM series WHERE gateway = $1 AND sensor = $2 AND metric = $3`,
			q.Gateway, q.Sensor, q.Metric).Scan(&id, &unit)
		if err == pgx.ErrNoRows {
			return
		}
		if err != nil {
			fail(err)
			return
		}
		if q.From >= q.To {
			return
		}
		cs, err := s.pool.Query(ctx, `SELECT t_min, data FROM chunks
			WHERE series_id = $1 AND t_min >= $2 AND t_min < $3 AND t_max >= $4 ORDER BY t_min`,
			id, layout.WindowOf(q.From), q.To, q.From)
		if err != nil {
			fail(err)
			return
		}
		defer cs.Close()
		rs, err := s.pool.Query(ctx, `SELECT ts, value, quality FROM recent
			WHERE series_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts`, id, q.From, q.To)
		if err != nil {
			fail(err)
			return
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
		p := ingest.Point{Gateway: q.Gateway, Sensor: q.Sensor, Metric: q.Metric, Unit: unit}
		err = w.Yield(q.From, q.To, q.Limit, func(ts int64, v float64, qual outpost.Quality) bool {
			p.TS, p.Value, p.Quality = ts, v, qual
			return yield(p, nil)
		})
		if err != nil {
			fail(err)
		}
	}
}
