// Package rollup is what both ingest stores share of the rollups
// (docs/storage.md, "Rollups"): per series, one row per minute and one
// per hour with the count, min, max, sum and last of the readings in it.
// The compactor computes a window's rows from all its readings when it
// folds the window (Window); a query with a step reads them where they
// are current and the readings themselves where they are not (Plan and
// Buckets).
package rollup

import (
	"math"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest/internal/layout"
)

// Resolutions of the rollup tables, in ns.
const (
	Minute = int64(60e9)
	Hour   = layout.Window
)

// The fewest readings an hour must hold for its rows to be kept. A row
// takes about 130 bytes with its index entry, and a sparser hour has no
// row: a query reads its readings instead, which cost no more to read
// than the rows would, and the rows do not outweigh the readings (a
// series that reports once a minute would need 2 B of hour rows per
// reading, on top of its ~3 B of chunk; one that reports once a second,
// 2 B of minute rows). HourRowsFrom is four readings a minute on
// average, MinuteRowsFrom about eight a second: there the rows add at
// most ~0.5 B and ~0.3 B per reading.
const (
	HourRowsFrom   = 240
	MinuteRowsFrom = 30_000
)

// Agg is the aggregate of the readings in one bucket. Readings of quality
// bad and NaN values are counted in N and left out of the rest: a bad
// reading is a fault, not a measurement.
type Agg struct {
	Bucket   int64   // start, unix ns
	N        int64   // readings, of any quality
	Count    int64   // readings aggregated (good or uncertain, not NaN)
	Min, Max float64 // of the aggregated readings; NaN when Count is 0
	Sum      float64
	LastTS   int64   // the newest aggregated reading; 0 when Count is 0
	Last     float64 // its value; NaN when Count is 0
}

// Empty returns the aggregate of no readings in the bucket.
func Empty(bucket int64) Agg {
	return Agg{Bucket: bucket, Min: math.NaN(), Max: math.NaN(), Last: math.NaN()}
}

// Add counts one reading. Among readings of one timestamp the last added
// is the last.
func (a *Agg) Add(ts int64, v float64, q outpost.Quality) {
	a.N++
	if q == outpost.QualityBad || math.IsNaN(v) {
		return
	}
	if a.Count == 0 {
		a.Min, a.Max, a.Sum, a.LastTS, a.Last = v, v, v, ts, v
		a.Count = 1
		return
	}
	a.Count++
	a.Min, a.Max, a.Sum = min(a.Min, v), max(a.Max, v), a.Sum+v
	if ts >= a.LastTS {
		a.LastTS, a.Last = ts, v
	}
}

// Merge adds b's readings to a (its bucket stays a's).
func (a *Agg) Merge(b Agg) {
	a.N += b.N
	if b.Count == 0 {
		return
	}
	if a.Count == 0 {
		a.Count, a.Min, a.Max, a.Sum, a.LastTS, a.Last = b.Count, b.Min, b.Max, b.Sum, b.LastTS, b.Last
		return
	}
	a.Count += b.Count
	a.Min, a.Max, a.Sum = min(a.Min, b.Min), max(a.Max, b.Max), a.Sum+b.Sum
	if b.LastTS >= a.LastTS {
		a.LastTS, a.Last = b.LastTS, b.Last
	}
}

// Avg is the mean of the aggregated readings; NaN when there are none.
func (a *Agg) Avg() float64 {
	if a.Count == 0 {
		return math.NaN()
	}
	return a.Sum / float64(a.Count)
}

// Floor returns the start of the bucket of width step (> 0) holding ts,
// buckets counted from the Unix epoch (math.MinInt64 for the part of the
// first bucket that int64 cannot start).
func Floor(ts, step int64) int64 {
	r := ts % step
	if r < 0 {
		r += step
	}
	if ts < math.MinInt64+r {
		return math.MinInt64
	}
	return ts - r
}

// End returns the end of the bucket of width step starting at b, or
// math.MaxInt64 for the last bucket, whose end int64 cannot hold.
func End(b, step int64) int64 {
	if b > math.MaxInt64-step {
		return math.MaxInt64
	}
	return b + step
}

// Window aggregates one window's readings: Add each, in any order, then
// Rows. It is reused window after window.
type Window struct {
	hour    Agg
	minutes [Hour / Minute]Agg
	start   int64
}

// Reset starts the window beginning at start.
func (w *Window) Reset(start int64) {
	w.start, w.hour = start, Empty(start)
	for i := range w.minutes {
		w.minutes[i] = Empty(start + int64(i)*Minute)
	}
}

// Add counts one reading of the window.
func (w *Window) Add(ts int64, v float64, q outpost.Quality) {
	w.hour.Add(ts, v, q)
	i := (ts - w.start) / Minute
	if i >= 0 && i < int64(len(w.minutes)) {
		w.minutes[i].Add(ts, v, q)
	}
}

// Rows returns the window's hour row, ok false when the hour has fewer
// readings than HourRowsFrom, and its minute rows, in time order: those
// with readings, none when the hour has fewer than MinuteRowsFrom. The
// minutes are valid until the next Reset.
func (w *Window) Rows(minutes []Agg) (hour Agg, ok bool, _ []Agg) {
	minutes = minutes[:0]
	if w.hour.N >= MinuteRowsFrom {
		for i := range w.minutes {
			if w.minutes[i].N > 0 {
				minutes = append(minutes, w.minutes[i])
			}
		}
	}
	return w.hour, w.hour.N >= HourRowsFrom, minutes
}
