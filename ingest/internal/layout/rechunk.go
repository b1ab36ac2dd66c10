package layout

import (
	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest/internal/chunk"
)

// Rechunk merges runs over [from, to) as Merge does and encodes the
// readings, in time order, as chunks: the compactors' rewrite of a span's
// small chunks and rows. A window with SparseChunk readings or more gets
// chunks of its own, of at most chunk.MaxReadings readings; the windows
// with fewer between two such share one chunk, so that a sparse series
// takes a chunk a day rather than one an hour. Callers keep [from, to)
// within one span. Rechunk calls emit with each chunk's first and last
// timestamps, its number of readings and its bytes (valid until emit
// returns), and stops at the first error, of emit or of the encoder,
// which it returns.
func Rechunk(runs []Run, from, to int64, emit func(tMin, tMax int64, n int, data []byte) error) error {
	return rechunk(runs, from, to, chunk.MaxReadings, Window, SparseChunk, emit)
}

// rechunk is Rechunk with its bounds as parameters: at most most
// readings a chunk, windows of size ns, dense from sparse readings.
func rechunk(runs []Run, from, to int64, most int, size int64, sparse int, emit func(tMin, tMax int64, n int, data []byte) error) error {
	var all Run
	Merge(runs, from, to, func(t int64, v float64, q outpost.Quality) bool {
		all.TS, all.Values, all.Quality = append(all.TS, t), append(all.Values, v), append(all.Quality, byte(q))
		return true
	})
	var data []byte
	// put encodes readings [lo, hi) as one chunk.
	put := func(lo, hi int) error {
		if lo == hi {
			return nil
		}
		q := all.Quality[lo:hi]
		if allZero(q) {
			q = nil
		}
		var err error
		if data, err = chunk.Append(data[:0], all.TS[lo:hi], all.Values[lo:hi], q); err != nil {
			return err
		}
		return emit(all.TS[lo], all.TS[hi-1], hi-lo, data)
	}
	acc := 0 // the sparse windows gathered, from acc to the window at i
	for i := 0; i < len(all.TS); {
		win := floor(all.TS[i], size)
		j := i + 1
		for j < len(all.TS) && floor(all.TS[j], size) == win {
			j++
		}
		if j-i < sparse && j-i <= most {
			if j-acc > most {
				if err := put(acc, i); err != nil {
					return err
				}
				acc = i
			}
			i = j
			continue
		}
		if err := put(acc, i); err != nil {
			return err
		}
		for ; i < j; i += min(most, j-i) {
			if err := put(i, i+min(most, j-i)); err != nil {
				return err
			}
		}
		acc = j
	}
	return put(acc, len(all.TS))
}
