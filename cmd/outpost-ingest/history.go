package main

import (
	"container/heap"
	"context"
	"fmt"
	"io"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/rules"
)

// Bounds of the history a backtest reads (`outpost-ingest rules replay`).
// Variables so that tests can make them small; the program never changes
// them.
var (
	// maxHistorySeries is how many series one backtest merges at most:
	// more is refused, with a hint to narrow it (--sensor, --metric, the
	// rules' select). It bounds the merge's memory (below) and the
	// queries of its first round, one per series.
	maxHistorySeries = 10000
	// historyBudget is how many buffered readings all the series'
	// buffers hold together at most (24 bytes each: 24 MiB), shared out
	// into a page per series between historyMinPage and historyMaxPage
	// readings: a few series read in large pages, many series in smaller
	// ones. With maxHistorySeries series of historyMinPage readings the
	// buffers hold 640 000 readings, within the budget.
	historyBudget  = 1 << 20
	historyMinPage = 64
	historyMaxPage = 8192
	// historyPage, when positive, is the page of every series instead
	// (tests: several pages from a few readings).
	historyPage = 0
	// historyMaxSameTS is the largest page asked for when a whole page
	// is readings of one timestamp (a series stored with many duplicates
	// of one time); one more is an error, not an unbounded buffer.
	historyMaxSameTS = 1 << 16
	// seriesListPage is how many series one Series query lists.
	seriesListPage = 1000
)

// historySeries lists the series of gateway that the backtest reads: the
// series that sensor and metric (exact; "" for any) select, that hold
// readings in [from, to) by their first and last timestamps, and that a
// rule of set selects (rules.Selector's Matches and MatchesLabels, with
// the series' labels: what the engine would give the series to).
// Readings of other series would only move the replay's clock
// (ruletest.ReplayFrom; docs/rules.md, "Backtest on stored history"). It
// pages through Series, seriesListPage at a time, keeping only what it
// selects, and refuses more than maxHistorySeries selected series. total
// is how many series of the gateway (with sensor and metric) it listed,
// selected or not.
func historySeries(ctx context.Context, store ingest.Store, set *rules.Set, gateway, sensor, metric string, from, to int64) (sel []ingest.SeriesInfo, total int, err error) {
	q := ingest.SeriesQuery{Gateway: gateway, Sensor: sensor, Metric: metric, Limit: seriesListPage}
	page := make([]ingest.SeriesInfo, 0, seriesListPage)
	for {
		page = page[:0]
		for si, err := range store.Series(ctx, q) {
			if err != nil {
				return nil, 0, fmt.Errorf("list the series of gateway %q: %w", gateway, err)
			}
			page = append(page, si)
		}
		total += len(page)
		for _, si := range page {
			if si.LastTS != 0 && si.LastTS < from || si.FirstTS != 0 && si.FirstTS >= to || !selected(set, &si) {
				continue
			}
			if len(sel) == maxHistorySeries {
				return nil, 0, fmt.Errorf("gateway %q has more than %d series with readings in the window that the rules select: "+
					"narrow it with --sensor or --metric, or split the rules", gateway, maxHistorySeries)
			}
			sel = append(sel, si)
		}
		if len(page) < q.Limit {
			return sel, total, nil
		}
		q.After = page[len(page)-1].Key()
	}
}

// selected reports whether a rule of set selects the series si.
func selected(set *rules.Set, si *ingest.SeriesInfo) bool {
	for _, r := range set.Rules {
		if r.Select.Matches(si.Sensor, si.Metric) && r.Select.MatchesLabels(si.Labels) {
			return true
		}
	}
	return false
}

// history yields the stored readings of some series of one gateway with
// from <= ts < to, merged into one stream in time order: it is the
// ruletest.ReadingSource of `outpost-ingest rules replay`. Readings of
// one timestamp come in the order of their series as Series lists them
// (by sensor, then metric), those of one series in the store's order.
//
// Memory and connections. The Store's query iterators hold a database
// connection while a range over one runs, and the Store must not be
// called from inside such a range (ingest.Store). A k-way merge over one
// open Range per series would hold a connection per series, more than
// any pool has, and would call the Store (the next series' query) from
// inside the others' loops. history keeps no query open instead: each
// series has a cursor with a buffer of at most a page of readings, and
// a cursor whose buffer runs dry is refilled by one Range query of a
// page, run to its end (its loop body only appends to the buffer) before
// Read returns. So at most one query is open at any time, on one
// connection, between two Reads only while a buffer refills; the merge is
// a heap of the cursors that hold readings, by the time of each one's
// next reading. The buffers hold a compact copy of each reading (time,
// value, quality: 24 bytes; a series' names and unit are held once, by
// its cursor), at most historyPage readings each, a page sized so that
// all of them together stay within historyBudget: memory is bounded by
// the number of series, not by the length of the window, and a month
// costs what a minute does. The price is a query per page per series.
//
// Paging. A series' next page starts where the last one stopped, as
// /api/v1/readings' next does: a page that comes back full may have cut
// the readings of its last timestamp (a reading stored twice has two
// rows), so those are dropped from it and the next page starts at that
// timestamp, which gives each reading exactly once; a page that is
// nothing but readings of one timestamp is asked for again with twice
// the limit, up to historyMaxSameTS.
//
// history is not a snapshot: each page is its own query, so readings
// committed while it runs (a gateway's backlog arriving for the window)
// are seen or not depending on where the cursor of their series is.
type history struct {
	ctx     context.Context
	store   ingest.Store
	gateway string
	to      int64
	page    int

	cursors []*cursor
	heads   cursorHeap // the cursors with buffered readings

	// What Read has done: readings yielded, the time of the last one,
	// queries run.
	readings int64
	last     int64
	queries  int64
}

// cursor is where history is in one series.
type cursor struct {
	idx                  int // in the Series order: ties of time go by it
	sensor, metric, unit string
	buf                  []sample // buf[pos:] are not yet yielded
	pos                  int
	from                 int64 // where the next page starts
	done                 bool  // the store has nothing after buf in [from, to)
}

// sample is one buffered reading of a cursor's series.
type sample struct {
	ts    int64
	value float64
	q     outpost.Quality
}

// newHistory returns a history of the series ss of gateway, which fills
// every series' first page at once (a query each) so that the merge
// knows where each starts.
func newHistory(ctx context.Context, store ingest.Store, gateway string, ss []ingest.SeriesInfo, from, to int64) (*history, error) {
	h := &history{ctx: ctx, store: store, gateway: gateway, to: to, page: historyPage, cursors: make([]*cursor, len(ss))}
	if h.page <= 0 {
		h.page = min(max(historyBudget/max(len(ss), 1), historyMinPage), historyMaxPage)
	}
	for i, si := range ss {
		c := &cursor{idx: i, sensor: si.Sensor, metric: si.Metric, unit: si.Unit, from: from}
		h.cursors[i] = c
		if err := h.fill(c); err != nil {
			return nil, err
		}
		if len(c.buf) > 0 {
			h.heads = append(h.heads, c)
		}
	}
	heap.Init(&h.heads)
	return h, nil
}

// Read returns the next reading in time order, or io.EOF after the last.
func (h *history) Read() (outpost.Reading, error) {
	if len(h.heads) == 0 {
		return outpost.Reading{}, io.EOF
	}
	c := h.heads[0]
	s := c.buf[c.pos]
	c.pos++
	r := outpost.Reading{Sensor: c.sensor, Metric: c.metric, Unit: c.unit, TS: s.ts, Value: s.value, Quality: s.q}
	if c.pos == len(c.buf) {
		if !c.done {
			if err := h.fill(c); err != nil {
				return outpost.Reading{}, err
			}
		}
		if c.pos == len(c.buf) {
			c.buf = nil // drained: give its memory back
			heap.Pop(&h.heads)
		} else {
			heap.Fix(&h.heads, 0)
		}
	} else {
		heap.Fix(&h.heads, 0)
	}
	h.readings++
	h.last = r.TS
	return r, nil
}

// fill replaces c's buffer with its series' next page (see history).
func (h *history) fill(c *cursor) error {
	if cap(c.buf) > 2*h.page {
		c.buf = nil // grown for a page of one timestamp: not kept
	}
	limit := h.page
	for {
		c.buf, c.pos = c.buf[:0], 0
		q := ingest.RangeQuery{Gateway: h.gateway, Sensor: c.sensor, Metric: c.metric, From: c.from, To: h.to, Limit: limit}
		h.queries++
		for p, err := range h.store.Range(h.ctx, q) {
			if err != nil {
				return fmt.Errorf("read series %s/%s of gateway %q: %w", c.sensor, c.metric, h.gateway, err)
			}
			c.buf = append(c.buf, sample{ts: p.TS, value: p.Value, q: p.Quality})
			if len(c.buf) == limit {
				break // the store's last row; a store that gave more would grow the buffer
			}
		}
		n := len(c.buf)
		if n < limit {
			c.done = true
			return nil
		}
		last := c.buf[n-1].ts
		k := n - 1
		for k > 0 && c.buf[k-1].ts == last {
			k--
		}
		if k > 0 {
			c.buf, c.from = c.buf[:k], last
			return nil
		}
		if limit >= historyMaxSameTS {
			return fmt.Errorf("read series %s/%s of gateway %q: more than %d readings stored at one time, %s",
				c.sensor, c.metric, h.gateway, limit, fmtNS(last))
		}
		limit = min(2*limit, historyMaxSameTS)
	}
}

// cursorHeap orders cursors by the time of their next reading, then by
// their series.
type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i].buf[h[i].pos].ts, h[j].buf[h[j].pos].ts
	return a < b || a == b && h[i].idx < h[j].idx
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}
