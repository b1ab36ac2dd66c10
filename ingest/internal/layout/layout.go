// Package layout is the part of the series-chunk layout
// (docs/storage.md) that both stores share. Split cuts a telemetry
// batch's series into pieces, per series its readings in time order cut
// at window boundaries, each either a chunk (enough readings to be worth
// one) or rows for the row table that the compactor folds into chunks
// later; Builder turns batches into what a store writes of them: the
// pieces encoded or as rows, and per batch and series its first and
// newest reading. Merge merges what a store reads back into one ordered
// stream, and Rechunk rewrites a window's runs as chunks when the store
// compacts it.
package layout

import (
	"cmp"
	"container/heap"
	"math"
	"slices"

	"github.com/outposthq/outpost"
)

// Window is the time window of what a commit writes, of the pending
// marks and of the rollups, in ns: a piece of a batch (and so a chunk a
// commit writes) never holds readings of two windows. Rollups and
// compaction work window by window.
const Window = int64(3600e9)

// Span is the widest a chunk reaches, in ns: a chunk never holds
// readings of two spans (UTC days), so a query for [from, to) reads the
// chunks whose first reading is in [SpanOf(from), to). The compactor
// folds the closed hours of a sparse series into one chunk of the day.
const Span = 24 * Window

// SmallChunk is the size below which a chunk of a window being
// compacted is merged with the window's other small chunks and rows
// rather than left as it is.
const SmallChunk = 4096

// SparseChunk is the size below which a closed chunk is merged with the
// other small chunks of its span (day), not only of its window: a series
// with fewer readings an hour than this gets one chunk a day, a row and
// an index entry for up to SmallChunk readings rather than for an hour's
// few. A small chunk already holding more than one window's readings is
// merged so too, until it has SmallChunk readings.
const SparseChunk = 1024

// MinTS is the first time whose span starts within int64: rows dated
// before it (never a real time) stay rows, since their window's or
// span's start is not an int64.
const MinTS = int64(math.MinInt64) + Span

// MinChunk is the fewest readings of one series in one window of a batch
// that go into a chunk at once; fewer go into the row table.
const MinChunk = 16

// WindowOf returns the start of the window holding ts (math.MinInt64 for
// the part of the first window that int64 cannot start).
func WindowOf(ts int64) int64 { return floor(ts, Window) }

// SpanOf returns the start of the span holding ts (math.MinInt64 for
// the part of the first span that int64 cannot start).
func SpanOf(ts int64) int64 { return floor(ts, Span) }

func floor(ts, size int64) int64 {
	r := ts % size
	if r < 0 {
		r += size
	}
	if ts < math.MinInt64+r {
		return math.MinInt64
	}
	return ts - r
}

// Piece is the readings of one series in one window of a batch, in time
// order (equal timestamps keep their order in the batch).
type Piece struct {
	Series  int // index of the series in the batch
	TS      []int64
	Values  []float64
	Quality []byte // nil when every reading is good
}

// Chunk reports whether the piece is stored as a chunk at once.
func (p *Piece) Chunk() bool { return len(p.TS) >= MinChunk }

// Scratch holds the buffers Split reuses from one batch to the next.
type Scratch struct {
	ts  []int64
	vs  []float64
	q   []byte
	idx []int
	out []Piece
}

// Split cuts the batch's series into pieces, ordered by series then time.
// The pieces' slices point into sc and are valid until its next use.
func Split(b *outpost.Batch, sc *Scratch) []Piece {
	n := b.Len()
	sc.ts, sc.vs, sc.q = slices.Grow(sc.ts[:0], n), slices.Grow(sc.vs[:0], n), slices.Grow(sc.q[:0], n)
	out := sc.out[:0]
	for si := range b.Series {
		s := &b.Series[si]
		if len(s.Values) == 0 {
			continue
		}
		lo := len(sc.ts)
		t, sorted := int64(0), true
		for i, d := range s.TS {
			if i == 0 {
				t = d
			} else {
				t += d
				sorted = sorted && d >= 0
			}
			sc.ts = append(sc.ts, t)
		}
		sc.vs = append(sc.vs, s.Values...)
		good := len(s.Quality) == 0 || allZero(s.Quality)
		if good {
			sc.q = append(sc.q, make([]byte, len(s.Values))...)
		} else {
			sc.q = append(sc.q, s.Quality...)
		}
		ts, vs, q := sc.ts[lo:], sc.vs[lo:], sc.q[lo:]
		if !sorted {
			sortRun(ts, vs, q, sc)
		}
		for i := 0; i < len(ts); {
			end := WindowOf(ts[i]) + Window
			j := i + 1
			for j < len(ts) && ts[j] < end {
				j++
			}
			p := Piece{Series: si, TS: ts[i:j:j], Values: vs[i:j:j]}
			if !good && !allZero(q[i:j]) {
				p.Quality = q[i:j:j]
			}
			out = append(out, p)
			i = j
		}
	}
	sc.out = out
	return out
}

// sortRun sorts a series' readings by time, stably.
func sortRun(ts []int64, vs []float64, q []byte, sc *Scratch) {
	sc.idx = sc.idx[:0]
	for i := range ts {
		sc.idx = append(sc.idx, i)
	}
	slices.SortStableFunc(sc.idx, func(a, b int) int { return cmp.Compare(ts[a], ts[b]) })
	t2, v2, q2 := slices.Clone(ts), slices.Clone(vs), slices.Clone(q)
	for k, i := range sc.idx {
		ts[k], vs[k], q[k] = t2[i], v2[i], q2[i]
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Run is a sorted run of one series' readings read back from a store: a
// decoded chunk, or rows.
type Run struct {
	TS      []int64
	Values  []float64
	Quality []byte // nil: all good
}

// Merge yields the readings of runs with from <= ts < to in time order,
// runs earlier in the list first among equal timestamps, until yield
// returns false. Each run must be sorted. It costs O(n log k) for n
// readings of k runs that overlap, O(n) when they do not.
func Merge(runs []Run, from, to int64, yield func(ts int64, v float64, q outpost.Quality) bool) {
	h := make(runHeap, 0, len(runs))
	for i := range runs {
		r := &runs[i]
		p, _ := slices.BinarySearch(r.TS, from)
		if p < len(r.TS) && r.TS[p] < to {
			h = append(h, cursor{run: r, pos: p, idx: i})
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		c := &h[0]
		r := c.run
		// Drain this run while it stays ahead of every other.
		limit := to
		if len(h) > 1 {
			limit = h[1].ts()
			if len(h) > 2 {
				limit = min(limit, h[2].ts())
			}
		}
		for c.pos < len(r.TS) && r.TS[c.pos] < to {
			t := r.TS[c.pos]
			if t > limit || t == limit && len(h) > 1 && !c.before(h[1:]) {
				break
			}
			q := outpost.QualityGood
			if r.Quality != nil {
				q = outpost.Quality(r.Quality[c.pos])
			}
			v := r.Values[c.pos]
			c.pos++
			if !yield(t, v, q) {
				return
			}
		}
		if c.pos >= len(r.TS) || r.TS[c.pos] >= to {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
}

// cursor is a run being merged.
type cursor struct {
	run      *Run
	pos, idx int
}

func (c *cursor) ts() int64 { return c.run.TS[c.pos] }

// before reports whether c goes before every cursor of cs at an equal
// timestamp: it comes earlier in the list.
func (c *cursor) before(cs []cursor) bool {
	for i := range cs[:min(2, len(cs))] {
		if cs[i].ts() == c.ts() && cs[i].idx < c.idx {
			return false
		}
	}
	return true
}

type runHeap []cursor

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	a, b := h[i].ts(), h[j].ts()
	return a < b || a == b && h[i].idx < h[j].idx
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(cursor)) }
func (h *runHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
