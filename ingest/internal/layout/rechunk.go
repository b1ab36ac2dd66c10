package layout

import (
	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest/internal/chunk"
)

// Rechunk merges runs over [from, to) as Merge does and encodes the
// readings, in time order, as chunks of at most chunk.MaxReadings
// readings each: the compactors' rewrite of a window. It calls emit with
// each chunk's first and last timestamps, its number of readings and its
// bytes (valid until emit returns), and stops at the first error, of
// emit or of the encoder, which it returns.
func Rechunk(runs []Run, from, to int64, emit func(tMin, tMax int64, n int, data []byte) error) error {
	return rechunk(runs, from, to, chunk.MaxReadings, emit)
}

func rechunk(runs []Run, from, to int64, most int, emit func(tMin, tMax int64, n int, data []byte) error) error {
	var ts []int64
	var vs []float64
	var qs, data []byte
	good := true
	flush := func() error {
		if len(ts) == 0 {
			return nil
		}
		q := qs
		if good {
			q = nil
		}
		var err error
		if data, err = chunk.Append(data[:0], ts, vs, q); err != nil {
			return err
		}
		if err := emit(ts[0], ts[len(ts)-1], len(ts), data); err != nil {
			return err
		}
		ts, vs, qs, good = ts[:0], vs[:0], qs[:0], true
		return nil
	}
	var err error
	Merge(runs, from, to, func(t int64, v float64, q outpost.Quality) bool {
		if len(ts) == most {
			if err = flush(); err != nil {
				return false
			}
		}
		ts, vs, qs = append(ts, t), append(vs, v), append(qs, byte(q))
		good = good && q == outpost.QualityGood
		return true
	})
	if err != nil {
		return err
	}
	return flush()
}
