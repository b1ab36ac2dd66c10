package layout

import (
	"fmt"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest/internal/chunk"
)

// Windows walks one series as a store reads it back for a range: its
// chunks ordered by t_min and its rows ordered by ts, two streams side by
// side, one group at a time. A group is a chunk with every chunk after it
// that starts before the group's last reading, and the rows up to that
// reading; or, before the next chunk, the rows of one window. Groups do
// not overlap, so what a group merges is final. A chunk never spans two
// spans (days), so neither does a group of chunks, and memory holds at
// most a span's readings, most often one chunk's; the buffers are reused
// group after group.
type Windows struct {
	// NextChunk reads the next chunk: its t_min and its bytes (valid
	// until the next call); ok false at the end.
	NextChunk func() (tMin int64, data []byte, ok bool, err error)
	// NextRow reads the next row; ok false at the end.
	NextRow func() (ts int64, v float64, q outpost.Quality, ok bool, err error)

	chunkAhead, rowAhead bool
	chunksDone, rowsDone bool
	cMin                 int64
	ahead                Run // the chunk read but not yet used, decoded
	rTS                  int64
	rValue               float64
	rQuality             outpost.Quality
	runs, bufs           []Run
	row                  Run
}

// Yield merges the windows' readings with from <= ts < to in time order
// and calls yield with each, at most limit of them, until yield returns
// false.
func (w *Windows) Yield(from, to int64, limit int, yield func(ts int64, v float64, q outpost.Quality) bool) error {
	for limit > 0 {
		runs, ok, err := w.next()
		if err != nil || !ok {
			return err
		}
		stop := false
		Merge(runs, from, to, func(ts int64, v float64, q outpost.Quality) bool {
			limit--
			stop = !yield(ts, v, q)
			return !stop && limit > 0
		})
		if stop {
			return nil
		}
	}
	return nil
}

// next returns the runs of the next group, valid until the next call.
func (w *Windows) next() ([]Run, bool, error) {
	if err := w.peek(); err != nil {
		return nil, false, err
	}
	if !w.chunkAhead && !w.rowAhead {
		return nil, false, nil
	}
	w.runs = w.runs[:0]
	// in reports whether a row at ts belongs to the group.
	var in func(ts int64) bool
	if w.chunkAhead && (!w.rowAhead || w.cMin <= w.rTS) {
		last := w.ahead.TS[len(w.ahead.TS)-1]
		for w.chunkAhead && w.cMin <= last {
			last = max(last, w.ahead.TS[len(w.ahead.TS)-1])
			// The group takes the decoded chunk; ahead gets a buffer
			// the group does not use, to decode the next one into.
			i := len(w.runs)
			if i == len(w.bufs) {
				w.bufs = append(w.bufs, Run{})
			}
			w.bufs[i], w.ahead = w.ahead, w.bufs[i]
			r := w.bufs[i]
			if len(r.Quality) == 0 {
				r.Quality = nil // all good
			}
			w.runs = append(w.runs, r)
			w.chunkAhead = false
			if err := w.peek(); err != nil {
				return nil, false, err
			}
		}
		in = func(ts int64) bool { return ts <= last }
	} else {
		win, chunk, next := WindowOf(w.rTS), w.chunkAhead, w.cMin
		in = func(ts int64) bool { return WindowOf(ts) == win && (!chunk || ts < next) }
	}
	w.row.TS, w.row.Values, w.row.Quality = w.row.TS[:0], w.row.Values[:0], w.row.Quality[:0]
	good := true
	for w.rowAhead && in(w.rTS) {
		w.row.TS = append(w.row.TS, w.rTS)
		w.row.Values = append(w.row.Values, w.rValue)
		w.row.Quality = append(w.row.Quality, byte(w.rQuality))
		good = good && w.rQuality == outpost.QualityGood
		w.rowAhead = false
		if err := w.peek(); err != nil {
			return nil, false, err
		}
	}
	if len(w.row.TS) > 0 {
		r := w.row
		if good {
			r.Quality = nil
		}
		w.runs = append(w.runs, r)
	}
	return w.runs, true, nil
}

// peek reads the next chunk, decoding it, and the next row, if none is
// waiting.
func (w *Windows) peek() error {
	if !w.chunkAhead && !w.chunksDone {
		tMin, data, ok, err := w.NextChunk()
		switch {
		case err != nil:
			return err
		case !ok:
			w.chunksDone = true
		default:
			w.cMin = tMin
			if err := w.decode(data); err != nil {
				return fmt.Errorf("chunk at %d: %w", tMin, err)
			}
			w.chunkAhead = true
		}
	}
	if !w.rowAhead && !w.rowsDone {
		ts, v, q, ok, err := w.NextRow()
		switch {
		case err != nil:
			return err
		case !ok:
			w.rowsDone = true
		case q > outpost.QualityBad:
			return fmt.Errorf("recent row at %d: quality %d", ts, q)
		default:
			w.rTS, w.rValue, w.rQuality, w.rowAhead = ts, v, q, true
		}
	}
	return nil
}

// decode decodes a chunk just read into ahead. The merge needs its
// readings in time order and within the window of t_min, as the stores
// write them: a chunk otherwise is refused, not merged out of order.
func (w *Windows) decode(data []byte) error {
	a := &w.ahead
	var err error
	if a.TS, a.Values, a.Quality, err = chunk.Decode(data, a.TS[:0], a.Values[:0], a.Quality[:0]); err != nil {
		return err
	}
	span := SpanOf(w.cMin)
	if a.TS[0] < w.cMin || SpanOf(a.TS[len(a.TS)-1]) != span {
		return fmt.Errorf("readings from %d to %d are not from t_min on within its day", a.TS[0], a.TS[len(a.TS)-1])
	}
	for i := 1; i < len(a.TS); i++ {
		if a.TS[i] < a.TS[i-1] {
			return fmt.Errorf("reading %d at %d is before the one before it", i, a.TS[i])
		}
	}
	return nil
}
