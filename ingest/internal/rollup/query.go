package rollup

import (
	"fmt"
	"slices"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// Source is one series as a store reads it for a query with a step.
type Source struct {
	// Hours reads the series' hour rows with from <= bucket < to, in
	// time order.
	Hours func(from, to int64) ([]Agg, error)
	// Stale reads the windows in [from, to) whose rows are not current:
	// readings arrived for them since they were last rolled up (the
	// compactor has yet to fold them). Any order.
	Stale func(from, to int64) ([]int64, error)
	// Minutes reads the minute rows with from <= bucket < to in time
	// order, calling yield with each until it returns false.
	Minutes func(from, to int64, yield func(Agg) bool) error
	// Raw reads the readings with from <= ts < to in time order, calling
	// yield with each until it returns false.
	Raw func(from, to int64, yield func(ts int64, v float64, q outpost.Quality) bool) error
}

// Query asks for the buckets of width Step that hold readings with
// From <= ts < To, at most Limit of them. Buckets start at multiples of
// Step since the Unix epoch; the first holds From, and the last may end
// after To, aggregating only the readings before it.
type Query struct {
	From, To, Step int64
	Limit          int
}

// Check reports what is wrong with q.
func (q Query) Check() error {
	switch {
	case q.Step <= 0:
		return fmt.Errorf("step %d: must be positive", q.Step)
	case q.Limit < 1:
		return fmt.Errorf("limit %d: must be at least 1", q.Limit)
	}
	return nil
}

// segment is a stretch of time [from, to) read one way.
type segment struct {
	from, to int64
	rows     bool // from the rollup rows (of the query's resolution), else raw
}

// resolution is the rollup a step is served from: the hour rows if it is
// a whole number of hours, the minute rows if of minutes, else none (0).
func resolution(step int64) int64 {
	switch {
	case step%Hour == 0:
		return Hour
	case step%Minute == 0:
		return Minute
	}
	return 0
}

// plan cuts [from, to) into segments: the hours whose rows are current
// and lie wholly within it are read from the rows of resolution res (the
// minute rows only of hours that have them), the rest raw. hours are the
// hour rows in the range, stale the windows not current.
func plan(from, to, res int64, hours []Agg, stale []int64) []segment {
	var out []segment
	add := func(s segment) {
		if s.from >= s.to {
			return
		}
		if n := len(out); n > 0 && out[n-1].rows == s.rows && out[n-1].to == s.from {
			out[n-1].to = s.to
			return
		}
		out = append(out, s)
	}
	at := from
	for _, h := range hours {
		end := End(h.Bucket, Hour)
		if h.Bucket < at || end > to {
			continue
		}
		if _, isStale := slices.BinarySearch(stale, h.Bucket); isStale || res == 0 || res == Minute && h.N < MinuteRowsFrom {
			continue
		}
		add(segment{at, h.Bucket, false})
		add(segment{h.Bucket, end, true})
		at = end
	}
	add(segment{at, to, false})
	return out
}

// Buckets answers q from src, calling yield with each bucket that holds
// readings (N > 0), in time order, until it returns false.
func Buckets(src Source, q Query, yield func(Agg) bool) error {
	if err := q.Check(); err != nil {
		return err
	}
	from := Floor(q.From, q.Step)
	if from >= q.To {
		return nil
	}
	res := resolution(q.Step)
	var segs []segment
	var hours []Agg
	if res == 0 {
		segs = []segment{{from, q.To, false}}
	} else {
		// The stale windows first, then the hour rows of the hours that
		// begin in the range (the plan keeps those wholly within it): a
		// store that reads them at two moments then never takes rows
		// older than what made them stale for current.
		stale, err := src.Stale(Floor(from, Hour), q.To)
		if err != nil {
			return err
		}
		hours, err = src.Hours(Floor(from, Hour), q.To)
		if err != nil {
			return err
		}
		slices.Sort(stale)
		segs = plan(from, q.To, res, hours, stale)
	}
	c := combiner{step: q.Step, left: q.Limit, yield: yield, cur: Empty(from)}
	for _, sg := range segs {
		var err error
		switch {
		case !sg.rows:
			err = src.Raw(sg.from, sg.to, func(ts int64, v float64, qual outpost.Quality) bool {
				if !c.move(ts) {
					return false
				}
				c.cur.Add(ts, v, qual)
				return true
			})
		case res == Hour:
			for _, h := range hours {
				if h.Bucket >= sg.from && h.Bucket < sg.to && !c.add(h) {
					break
				}
			}
		default:
			err = src.Minutes(sg.from, sg.to, c.add)
		}
		if err != nil {
			return err
		}
		if c.done {
			return nil
		}
	}
	c.flush()
	return nil
}

// combiner gathers rows and readings, in time order, into buckets of step.
type combiner struct {
	step  int64
	left  int
	yield func(Agg) bool
	cur   Agg
	done  bool
}

// move makes the bucket of ts the current one, yielding the one before
// if it holds readings; false when no more buckets are wanted.
func (c *combiner) move(ts int64) bool {
	if c.done {
		return false
	}
	b := Floor(ts, c.step)
	if b == c.cur.Bucket {
		return true
	}
	c.flush()
	if c.done {
		return false
	}
	c.cur = Empty(b)
	return true
}

// add merges a row (of a bucket within one of step) into its bucket.
func (c *combiner) add(a Agg) bool {
	if !c.move(a.Bucket) {
		return false
	}
	c.cur.Merge(a)
	return true
}

// flush yields the current bucket if it holds readings.
func (c *combiner) flush() {
	if c.done || c.cur.N == 0 {
		return
	}
	c.left--
	if !c.yield(c.cur) || c.left == 0 {
		c.done = true
	}
	c.cur.N = 0
}

// Tables makes a Source of a store's reader of the rollup tables (read
// yields the rows of table with from <= bucket < to in time order), its
// stale windows and its readings.
func Tables(read func(table string, from, to int64, yield func(Agg) bool) error,
	stale func(from, to int64) ([]int64, error),
	raw func(from, to int64, yield func(int64, float64, outpost.Quality) bool) error) Source {
	return Source{
		Hours: func(from, to int64) ([]Agg, error) {
			var out []Agg
			err := read("rollup_1h", from, to, func(a Agg) bool { out = append(out, a); return true })
			return out, err
		},
		Minutes: func(from, to int64, yield func(Agg) bool) error {
			return read("rollup_1m", from, to, yield)
		},
		Stale: stale,
		Raw:   raw,
	}
}

// Serve answers q from src, one series with its unit, as a store's
// Buckets yields: each bucket, or an error.
func Serve(src Source, q ingest.BucketQuery, unit string, yield func(ingest.Bucket, error) bool) error {
	b := ingest.Bucket{Gateway: q.Gateway, Sensor: q.Sensor, Metric: q.Metric, Unit: unit}
	return Buckets(src, Query{From: q.From, To: q.To, Step: q.Step, Limit: q.Limit}, func(a Agg) bool {
		b.TS, b.N, b.Count, b.LastTS = a.Bucket, a.N, a.Count, a.LastTS
		b.Min, b.Max, b.Avg, b.Last = a.Min, a.Max, a.Avg(), a.Last
		return yield(b, nil)
	})
}
