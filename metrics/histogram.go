package metrics

import (
	"math"
	"slices"
	"sort"
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds, in seconds, of the latency
// histograms: half a millisecond to a minute, about 2.5× apart.
var LatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Hist is a histogram with fixed buckets, safe for concurrent use.
// Observe takes no lock and allocates nothing: a binary search and two
// atomic adds (and a compare-and-swap loop for the sum).
type Hist struct {
	bounds []float64
	counts []atomic.Uint64 // len(bounds)+1, the last one +Inf
	sum    atomic.Uint64   // float64 bits
}

// NewHist returns a histogram with the given upper bounds, in any order;
// NaN, infinite and repeated bounds are left out (+Inf is always the last
// bucket).
func NewHist(bounds []float64) *Hist {
	bs := make([]float64, 0, len(bounds))
	for _, b := range bounds {
		if !math.IsNaN(b) && !math.IsInf(b, 0) {
			bs = append(bs, b)
		}
	}
	slices.Sort(bs)
	bs = slices.Compact(bs)
	return &Hist{bounds: bs, counts: make([]atomic.Uint64, len(bs)+1)}
}

// Observe counts v in its bucket and adds it to the sum. NaN is ignored.
func (h *Hist) Observe(v float64) {
	if math.IsNaN(v) {
		return
	}
	h.counts[sort.SearchFloat64s(h.bounds, v)].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// ObserveDuration observes d in seconds.
func (h *Hist) ObserveDuration(d time.Duration) { h.Observe(d.Seconds()) }

// Count is the number of observations so far.
func (h *Hist) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

type histSnapshot struct {
	counts []uint64
	sum    float64
}

// snapshot reads the buckets and the sum. An observation running at the
// same time may be in the buckets and not yet in the sum; the buckets and
// the count always agree, since the count is their total.
func (h *Hist) snapshot() histSnapshot {
	s := histSnapshot{counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		s.counts[i] = h.counts[i].Load()
	}
	s.sum = math.Float64frombits(h.sum.Load())
	return s
}
