package postgres

import (
	"context"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/chunk"
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
		err := s.pool.QueryRow(ctx, `SELECT id FROM series WHERE gateway = $1 AND sensor = $2 AND metric = $3`,
			q.Gateway, q.Sensor, q.Metric).Scan(&id)
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
		m := rangeMerge{chunks: cs, rows: rs}
		left := q.Limit
		p := ingest.Point{Gateway: q.Gateway, Sensor: q.Sensor, Metric: q.Metric}
		for left > 0 {
			runs, ok, err := m.window()
			if err != nil {
				fail(err)
				return
			}
			if !ok {
				return
			}
			stop := false
			layout.Merge(runs, q.From, q.To, func(ts int64, v float64, qual outpost.Quality) bool {
				p.TS, p.Value, p.Quality = ts, v, qual
				left--
				if !yield(p, nil) {
					stop = true
				}
				return !stop && left > 0
			})
			if stop {
				return
			}
		}
	}
}

// rangeMerge reads a series' chunks (by t_min) and rows (by ts) window by
// window.
type rangeMerge struct {
	chunks, rows pgx.Rows
	// The next chunk or row read but not yet used: it opens a later window.
	chunkAhead, rowAhead bool
	cMin                 int64
	cData                []byte
	rTS                  int64
	rValue               float64
	rQuality             int16
	chunksDone, rowsDone bool
	runs                 []layout.Run
	row                  layout.Run
}

// window returns the runs of the next window that has any readings.
func (m *rangeMerge) window() ([]layout.Run, bool, error) {
	if err := m.peek(); err != nil {
		return nil, false, err
	}
	if !m.chunkAhead && !m.rowAhead {
		return nil, false, nil
	}
	var w int64
	switch {
	case m.chunkAhead && m.rowAhead:
		w = min(layout.WindowOf(m.cMin), layout.WindowOf(m.rTS))
	case m.chunkAhead:
		w = layout.WindowOf(m.cMin)
	default:
		w = layout.WindowOf(m.rTS)
	}
	m.runs = m.runs[:0]
	for m.chunkAhead && layout.WindowOf(m.cMin) == w {
		var r layout.Run
		var err error
		r.TS, r.Values, r.Quality, err = chunk.Decode(m.cData, nil, nil, nil)
		if err != nil {
			return nil, false, fmt.Errorf("chunk at %d: %w", m.cMin, err)
		}
		if allGood(r.Quality) {
			r.Quality = nil
		}
		m.runs = append(m.runs, r)
		m.chunkAhead = false
		if err := m.peek(); err != nil {
			return nil, false, err
		}
	}
	m.row = layout.Run{}
	good := true
	for m.rowAhead && layout.WindowOf(m.rTS) == w {
		m.row.TS = append(m.row.TS, m.rTS)
		m.row.Values = append(m.row.Values, m.rValue)
		m.row.Quality = append(m.row.Quality, byte(m.rQuality))
		good = good && m.rQuality == 0
		m.rowAhead = false
		if err := m.peek(); err != nil {
			return nil, false, err
		}
	}
	if len(m.row.TS) > 0 {
		if good {
			m.row.Quality = nil
		}
		m.runs = append(m.runs, m.row)
	}
	return m.runs, true, nil
}

// peek reads the next chunk and row if none is waiting.
func (m *rangeMerge) peek() error {
	if !m.chunkAhead && !m.chunksDone {
		if m.chunks.Next() {
			if err := m.chunks.Scan(&m.cMin, &m.cData); err != nil {
				return err
			}
			m.chunkAhead = true
		} else {
			m.chunksDone = true
			if err := m.chunks.Err(); err != nil {
				return err
			}
		}
	}
	if !m.rowAhead && !m.rowsDone {
		if m.rows.Next() {
			if err := m.rows.Scan(&m.rTS, &m.rValue, &m.rQuality); err != nil {
				return err
			}
			m.rowAhead = true
		} else {
			m.rowsDone = true
			if err := m.rows.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

func allGood(q []byte) bool {
	for _, c := range q {
		if c != 0 {
			return false
		}
	}
	return true
}
