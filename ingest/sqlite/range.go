package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/chunk"
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
	err = tx.QueryRowContext(ctx, `SELECT id FROM series WHERE gateway = ? AND sensor = ? AND metric = ?`,
		q.Gateway, q.Sensor, q.Metric).Scan(&id)
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
	m := rangeMerge{chunks: cs, rows: rs}
	left := q.Limit
	p := ingest.Point{Gateway: q.Gateway, Sensor: q.Sensor, Metric: q.Metric}
	for left > 0 {
		runs, ok, err := m.window()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		stop := false
		layout.Merge(runs, q.From, q.To, func(ts int64, v float64, qual outpost.Quality) bool {
			p.TS, p.Value, p.Quality = ts, v, qual
			left--
			stop = !yield(p, nil)
			return !stop && left > 0
		})
		if stop {
			return nil
		}
	}
	return nil
}

// rangeMerge reads a series' chunks (by t_min) and rows (by ts) window by
// window.
type rangeMerge struct {
	chunks, rows *sql.Rows
	// The next chunk or row read but not yet used: it opens a later
	// window. A chunk is decoded when read (its bytes are SQLite's only
	// until the next step), into ahead.
	chunkAhead, rowAhead bool
	chunksDone, rowsDone bool
	cMin                 int64
	cData                sql.RawBytes
	ahead                layout.Run
	rTS                  int64
	rValue               sql.NullFloat64
	rQuality             int64
	// The window's runs: its chunks, held in bufs, and its rows in row.
	// Each buffer is reused window after window.
	runs []layout.Run
	bufs []layout.Run
	row  layout.Run
}

// window returns the runs of the next window that has any readings. They
// are valid until the next call.
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
		// The window takes the decoded chunk; ahead gets a buffer the
		// window does not use, to decode the next one into.
		i := len(m.runs)
		if i == len(m.bufs) {
			m.bufs = append(m.bufs, layout.Run{})
		}
		m.bufs[i], m.ahead = m.ahead, m.bufs[i]
		r := m.bufs[i]
		if len(r.Quality) == 0 {
			r.Quality = nil // all good
		}
		m.runs = append(m.runs, r)
		m.chunkAhead = false
		if err := m.peek(); err != nil {
			return nil, false, err
		}
	}
	m.row.TS, m.row.Values, m.row.Quality = m.row.TS[:0], m.row.Values[:0], m.row.Quality[:0]
	good := true
	for m.rowAhead && layout.WindowOf(m.rTS) == w {
		m.row.TS = append(m.row.TS, m.rTS)
		m.row.Values = append(m.row.Values, float(m.rValue))
		m.row.Quality = append(m.row.Quality, byte(m.rQuality))
		good = good && m.rQuality == 0
		m.rowAhead = false
		if err := m.peek(); err != nil {
			return nil, false, err
		}
	}
	if len(m.row.TS) > 0 {
		r := m.row
		if good {
			r.Quality = nil
		}
		m.runs = append(m.runs, r)
	}
	return m.runs, true, nil
}

// peek reads the next chunk, decoding it, and the next row, if none is
// waiting.
func (m *rangeMerge) peek() error {
	if !m.chunkAhead && !m.chunksDone {
		if m.chunks.Next() {
			if err := m.chunks.Scan(&m.cMin, &m.cData); err != nil {
				return err
			}
			if err := m.decode(); err != nil {
				return fmt.Errorf("chunk at %d: %w", m.cMin, err)
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
			if m.rQuality < 0 || m.rQuality > int64(outpost.QualityBad) {
				return fmt.Errorf("recent row at %d: quality %d", m.rTS, m.rQuality)
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

// decode decodes the chunk just read into ahead. The merge needs its
// readings in time order and within the window of t_min, as the store
// writes them: a chunk otherwise is refused, not merged out of order.
func (m *rangeMerge) decode() error {
	a := &m.ahead
	var err error
	if a.TS, a.Values, a.Quality, err = chunk.Decode(m.cData, a.TS[:0], a.Values[:0], a.Quality[:0]); err != nil {
		return err
	}
	w := layout.WindowOf(m.cMin)
	if layout.WindowOf(a.TS[0]) != w || layout.WindowOf(a.TS[len(a.TS)-1]) != w {
		return fmt.Errorf("readings from %d to %d are not in the hour of t_min", a.TS[0], a.TS[len(a.TS)-1])
	}
	for i := 1; i < len(a.TS); i++ {
		if a.TS[i] < a.TS[i-1] {
			return fmt.Errorf("reading %d at %d is before the one before it", i, a.TS[i])
		}
	}
	return nil
}
