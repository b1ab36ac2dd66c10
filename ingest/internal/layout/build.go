package layout

import (
	"fmt"
	"slices"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest/internal/chunk"
)

// Builder turns telemetry batches into what a series-chunk store writes
// for them: their pieces as encoded chunks or as rows for the row table,
// and per batch and series its first and newest reading. Both stores
// build through it; they differ only in how they send the result. A
// Builder keeps its buffers from one use to the next, so that building
// allocates nothing once they have grown. The zero Builder is ready.
type Builder struct {
	// Chunks, Rows and Series are what the batches added since the
	// last Reset make, in the order added. They stay valid until the
	// next Add or Reset.
	Chunks []Chunk
	Rows   []Row
	Series []SeriesUpdate

	split   Scratch
	data    []byte // the chunks, back to back
	batches int
	canon   []int             // per series of the batch, the index of its first occurrence
	names   map[[2]string]int // series name to its first index
	at      []int             // per series of the batch, its update in Series, or -1
}

// Chunk is one chunk to write: the readings of one piece (Chunk reports
// true), encoded in format 1 of ingest/internal/chunk.
type Chunk struct {
	Batch      int // which Add since Reset made it, from 0
	Series     int // the series' first index in its batch's Series
	TMin, TMax int64
	N          int // readings
	start, end int // Data is data[start:end]
}

// Row is one reading to write into the row table.
type Row struct {
	Batch   int
	Series  int // the series' first index in its batch's Series
	TS      int64
	Value   float64
	Quality byte
}

// SeriesUpdate is what one batch sets of one of its series: the time of
// its first reading, and its newest reading. Of readings with equal
// timestamps the later in the batch is the newest; a series that the
// batch holds more than once (by sensor and metric) has one update.
// Across batches a store applies the updates in commit order: first
// moves back, the newest moves forward only, and an equal timestamp
// replaces it, so that the later committed wins.
type SeriesUpdate struct {
	Batch       int
	Series      int    // the series' first index in its batch's Series
	Unit        string // the unit of its last occurrence in the batch
	First, Last int64
	LastValue   float64
	LastQuality byte
}

// Reset empties the Builder, keeping its buffers.
func (bd *Builder) Reset() {
	bd.Chunks, bd.Rows, bd.Series, bd.data, bd.batches = bd.Chunks[:0], bd.Rows[:0], bd.Series[:0], bd.data[:0], 0
}

// Data returns the bytes of c, one of bd.Chunks, valid until the next
// Add or Reset.
func (bd *Builder) Data(c *Chunk) []byte { return bd.data[c.start:c.end:c.end] }

// Add builds the telemetry batch b after those added before. An error
// means readings the chunk format refuses (a quality over 2); Add then
// leaves the Builder as it was.
func (bd *Builder) Add(b *outpost.Batch) error {
	nc, nr, ns, nd := len(bd.Chunks), len(bd.Rows), len(bd.Series), len(bd.data)
	if err := bd.add(b); err != nil {
		bd.Chunks, bd.Rows, bd.Series, bd.data = bd.Chunks[:nc], bd.Rows[:nr], bd.Series[:ns], bd.data[:nd]
		return err
	}
	bd.batches++
	return nil
}

func (bd *Builder) add(b *outpost.Batch) error {
	bd.name(b)
	bi := bd.batches
	bd.at = slices.Grow(bd.at[:0], len(b.Series))[:len(b.Series)]
	for i := range bd.at {
		bd.at[i] = -1
	}
	for _, p := range Split(b, &bd.split) {
		si := bd.canon[p.Series]
		if p.Chunk() {
			start := len(bd.data)
			var err error
			if bd.data, err = chunk.Append(bd.data, p.TS, p.Values, p.Quality); err != nil {
				return fmt.Errorf("series %d: %w", p.Series, err)
			}
			bd.Chunks = append(bd.Chunks, Chunk{Batch: bi, Series: si, TMin: p.TS[0], TMax: p.TS[len(p.TS)-1],
				N: len(p.TS), start: start, end: len(bd.data)})
		} else {
			for i, t := range p.TS {
				q := byte(0)
				if p.Quality != nil {
					q = p.Quality[i]
				}
				bd.Rows = append(bd.Rows, Row{Batch: bi, Series: si, TS: t, Value: p.Values[i], Quality: q})
			}
		}
		// Pieces come by series, in the batch's order, then by time: a
		// later piece's last reading is newer, or as new and later in
		// the batch.
		last := len(p.TS) - 1
		q := byte(0)
		if p.Quality != nil {
			q = p.Quality[last]
		}
		unit := b.Series[p.Series].Unit
		if k := bd.at[si]; k >= 0 {
			u := &bd.Series[k]
			u.First, u.Unit = min(u.First, p.TS[0]), unit
			if p.TS[last] >= u.Last {
				u.Last, u.LastValue, u.LastQuality = p.TS[last], p.Values[last], q
			}
			continue
		}
		bd.at[si] = len(bd.Series)
		bd.Series = append(bd.Series, SeriesUpdate{Batch: bi, Series: si, Unit: unit, First: p.TS[0], Last: p.TS[last],
			LastValue: p.Values[last], LastQuality: q})
	}
	return nil
}

// name sets canon: each series of b to the index of its first occurrence
// by sensor and metric.
func (bd *Builder) name(b *outpost.Batch) {
	n := len(b.Series)
	bd.canon = slices.Grow(bd.canon[:0], n)[:n]
	for i := range n {
		bd.canon[i] = i
	}
	if n < 2 {
		return
	}
	if bd.names == nil {
		bd.names = make(map[[2]string]int, n)
	}
	clear(bd.names)
	for i := range b.Series {
		s := &b.Series[i]
		k := [2]string{s.Sensor, s.Metric}
		if j, ok := bd.names[k]; ok {
			bd.canon[i] = j
		} else {
			bd.names[k] = i
		}
	}
}
