package rules

import "math"

// sample is one reading kept by a window.
type sample struct {
	ts int64
	v  float64
}

// ring is a growable FIFO/deque of samples. It allocates only to grow.
type ring struct {
	s    []sample
	head int
	n    int
}

func (r *ring) push(x sample) {
	if r.n == len(r.s) {
		grown := make([]sample, max(8, 2*len(r.s)))
		for i := range r.n {
			grown[i] = r.at(i)
		}
		r.s, r.head = grown, 0
	}
	r.s[(r.head+r.n)%len(r.s)] = x
	r.n++
}

func (r *ring) at(i int) sample { return r.s[(r.head+i)%len(r.s)] }
func (r *ring) front() sample   { return r.s[r.head] }
func (r *ring) back() sample    { return r.at(r.n - 1) }
func (r *ring) popFront()       { r.head, r.n = (r.head+1)%len(r.s), r.n-1 }
func (r *ring) popBack()        { r.n-- }

// window is the incremental state of one windowSpec in one instance: the
// samples in (now-dur, now] with their running sum, and monotonic deques
// for min and max. Every operation is O(1) amortized.
type window struct {
	spec       *windowSpec
	buf        ring
	sum        float64
	mins, maxs ring
}

func (w *window) push(ts int64, v float64) {
	w.buf.push(sample{ts, v})
	w.sum += v
	if w.spec.min {
		for w.mins.n > 0 && w.mins.back().v >= v {
			w.mins.popBack()
		}
		w.mins.push(sample{ts, v})
	}
	if w.spec.max {
		for w.maxs.n > 0 && w.maxs.back().v <= v {
			w.maxs.popBack()
		}
		w.maxs.push(sample{ts, v})
	}
}

// evict drops the samples at or before now-dur.
func (w *window) evict(now int64) {
	cut := now - w.spec.dur
	for w.buf.n > 0 && w.buf.front().ts <= cut {
		w.sum -= w.buf.front().v
		w.buf.popFront()
	}
	if w.buf.n == 0 {
		w.sum = 0 // no drift survives an empty window
	}
	for w.mins.n > 0 && w.mins.front().ts <= cut {
		w.mins.popFront()
	}
	for w.maxs.n > 0 && w.maxs.front().ts <= cut {
		w.maxs.popFront()
	}
}

func (w *window) eval(fn windowFn) float64 {
	n := w.buf.n
	switch fn {
	case fnCount:
		return float64(n)
	case fnAvg:
		if n == 0 {
			return nan
		}
		return w.sum / float64(n)
	case fnMin:
		if w.mins.n == 0 {
			return nan
		}
		return w.mins.front().v
	case fnMax:
		if w.maxs.n == 0 {
			return nan
		}
		return w.maxs.front().v
	case fnRate:
		if n < 2 {
			return nan
		}
		first, last := w.buf.front(), w.buf.back()
		if last.ts == first.ts {
			return nan
		}
		return (last.v - first.v) / (float64(last.ts-first.ts) / 1e9)
	}
	return math.NaN()
}
