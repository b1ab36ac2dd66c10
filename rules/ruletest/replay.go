package ruletest

import (
	"container/heap"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
)

// CSVHeader is the header line replay input must start with; it is what
// `outpost buffer export --format csv` writes.
const CSVHeader = "ts,sensor,metric,value"

// CSVReader reads readings from CSV, one at a time: a CSVHeader line,
// then one reading a line. ts is RFC 3339 (any fraction of a second) or
// unix milliseconds; value is a Go float. Lines starting with # are
// comments (buffer export writes them for batches it cannot read); blank
// lines are skipped.
type CSVReader struct {
	r      *csv.Reader
	line   int
	header bool
}

// NewCSVReader returns a reader of r. It buffers r itself.
func NewCSVReader(r io.Reader) *CSVReader {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1 // checked by Read, with a better message
	cr.ReuseRecord = true
	return &CSVReader{r: cr}
}

// LineError is a bad line of CSV input.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// Line returns the line of the last record Read returned.
func (c *CSVReader) Line() int { return c.line }

// Read returns the next reading, io.EOF after the last, or a *LineError.
func (c *CSVReader) Read() (outpost.Reading, error) {
	rec, err := c.r.Read()
	if err == io.EOF {
		if !c.header {
			return outpost.Reading{}, &LineError{Line: 1, Err: fmt.Errorf("empty input: want the header %s", CSVHeader)}
		}
		return outpost.Reading{}, io.EOF
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return outpost.Reading{}, &LineError{Line: pe.Line, Err: pe.Err}
		}
		return outpost.Reading{}, err
	}
	c.line, _ = c.r.FieldPos(0)
	if !c.header {
		if strings.Join(trimAll(rec), ",") != CSVHeader {
			return outpost.Reading{}, &LineError{Line: c.line, Err: fmt.Errorf("want the header %s, got %q", CSVHeader, strings.Join(rec, ","))}
		}
		c.header = true
		return c.Read()
	}
	if len(rec) != 4 {
		return outpost.Reading{}, &LineError{Line: c.line, Err: fmt.Errorf("%d fields, want 4 (%s)", len(rec), CSVHeader)}
	}
	rec = trimAll(rec)
	ts, err := parseTS(rec[0])
	if err != nil {
		return outpost.Reading{}, &LineError{Line: c.line, Err: err}
	}
	if rec[1] == "" || rec[2] == "" {
		return outpost.Reading{}, &LineError{Line: c.line, Err: errors.New("sensor and metric must not be empty")}
	}
	v, err := strconv.ParseFloat(rec[3], 64)
	if err != nil {
		return outpost.Reading{}, &LineError{Line: c.line, Err: fmt.Errorf("value %q is not a number", rec[3])}
	}
	return outpost.Reading{Sensor: rec[1], Metric: rec[2], TS: ts, Value: v}, nil
}

func trimAll(rec []string) []string {
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	return rec
}

// parseTS reads RFC 3339 or unix milliseconds into unix ns.
func parseTS(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		const limit = math.MaxInt64 / int64(time.Millisecond)
		if ms > limit || ms < -limit {
			return 0, fmt.Errorf("ts %s: unix milliseconds out of range", s)
		}
		return ms * int64(time.Millisecond), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("ts %q: want RFC 3339 (2006-01-02T15:04:05Z) or unix milliseconds", s)
	}
	return t.UnixNano(), nil
}

// Defaults of ReplayOptions.
const (
	DefaultReorder = time.Minute
	DefaultTick    = time.Second // the gateway's
)

// ReplayOptions configure Replay. A nil *ReplayOptions means defaults.
type ReplayOptions struct {
	// Reorder is how far out of time order readings may come; Replay
	// sorts them within it, holding that much input in memory. A reading
	// later than that is an error. 0 means DefaultReorder; negative means
	// the input must be in time order.
	Reorder time.Duration
	// Tick is how often the engine's clock ticks between readings, as
	// the gateway's does, so that a `for` ends on time across a gap in
	// the input. 0 means DefaultTick; negative means no ticks between
	// timestamps.
	Tick time.Duration
	// Engine configures the engine; nil means rules' defaults.
	Engine *rules.Options
}

// Replay runs the rules of set over the readings of in (CSV, see
// CSVReader) on the readings' own clock, and hands every alert
// transition to emit, in order: ReplayFrom over a CSVReader of in. A bad
// line of in, and a reading out of time order beyond opts.Reorder, is a
// *LineError (wrapped) that gives its line.
func Replay(ctx context.Context, set *rules.Set, in io.Reader, emit func([]outpost.Alert) error, opts *ReplayOptions) error {
	return ReplayFrom(ctx, set, NewCSVReader(in), emit, opts)
}

// ReadingSource is what ReplayFrom reads: readings one at a time.
// CSVReader is one; `outpost-ingest rules replay` has another, which
// merges a gateway's stored series in time order.
type ReadingSource interface {
	// Read returns the next reading, or io.EOF after the last. Any
	// other error stops the replay, and ReplayFrom returns it wrapped.
	Read() (outpost.Reading, error)
}

// ReplayFrom runs the rules of set over the readings of src on the
// readings' own clock, and hands every alert transition to emit, in
// order. The alerts passed to emit are valid only during the call. Replay
// (CSV) and `outpost-ingest rules replay` (stored history) both run
// through it, so that the same readings give the same transitions
// whichever way they come.
//
// Readings are evaluated in time order; after the readings of one
// timestamp, Tick runs at it, and then as if at every multiple of
// opts.Tick before the next, however long the gap: ReplayFrom ticks only
// at the multiples where the engine has something due
// (Engine.NextEvent), which gives the same alerts as ticking at each. A
// transition is stamped with the time of the Eval or Tick that made it.
// Every reading moves this clock, also one that no rule selects or that
// the engine ignores (bad quality, NaN): it is the input's clock, not the
// rules'. ReplayFrom streams: it holds only the readings within
// opts.Reorder of the newest one.
//
// An error of src is returned wrapped ("ruletest: …"). A reading that is
// older than one already replayed (out of order by more than
// opts.Reorder) is an error too; when src has a Line method (CSVReader),
// that error is a *LineError naming the line of the reading, as src's
// own errors are. An error of emit, or of ctx, is returned as it is.
func ReplayFrom(ctx context.Context, set *rules.Set, src ReadingSource, emit func([]outpost.Alert) error, opts *ReplayOptions) error {
	if opts == nil {
		opts = &ReplayOptions{}
	}
	p := &player{engine: rules.NewEngine(set, opts.Engine), emit: emit, tick: opts.Tick}
	if p.tick == 0 {
		p.tick = DefaultTick
	}
	reorder := opts.Reorder
	if reorder == 0 {
		reorder = DefaultReorder
	}
	reorder = max(reorder, 0)
	var q readingHeap
	newest := int64(-1 << 63)
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		r, err := src.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("ruletest: %w", err)
		}
		if p.started && r.TS < p.now {
			err := fmt.Errorf("ts %s is %v before a reading already replayed (%s): input must be in time order within the reorder window (%v)",
				fmtTS(r.TS), time.Duration(p.now-r.TS), fmtTS(p.now), reorder)
			if l, ok := src.(interface{ Line() int }); ok {
				err = &LineError{Line: l.Line(), Err: err}
			}
			return fmt.Errorf("ruletest: %w", err)
		}
		heap.Push(&q, queued{r: r, seq: n})
		newest = max(newest, r.TS)
		for len(q) > 0 && q[0].r.TS <= newest-int64(reorder) {
			if err := p.play(heap.Pop(&q).(queued).r); err != nil {
				return err
			}
		}
	}
	for len(q) > 0 {
		if err := p.play(heap.Pop(&q).(queued).r); err != nil {
			return err
		}
	}
	if p.started {
		return p.send(p.engine.Tick(p.now, p.buf[:0]))
	}
	return nil
}

// player drives an engine through readings in time order.
type player struct {
	engine  *rules.Engine
	emit    func([]outpost.Alert) error
	tick    time.Duration
	started bool
	now     int64 // the timestamp being played
	one     [1]outpost.Reading
	buf     []outpost.Alert
}

func (p *player) play(r outpost.Reading) error {
	if !p.started {
		p.started, p.now = true, r.TS
	}
	if r.TS > p.now {
		// The readings of p.now are done: tick at it, and as time passes.
		if err := p.send(p.engine.Tick(p.now, p.buf[:0])); err != nil {
			return err
		}
		if err := p.gap(r.TS); err != nil {
			return err
		}
		p.now = r.TS
	}
	p.one[0] = r
	return p.send(p.engine.Eval(p.one[:], p.buf[:0]))
}

// gap ticks between p.now, just ticked, and the next timestamp, on the
// grid of multiples of p.tick. A tick before the engine's next event does
// nothing, so gap jumps from one event to the first tick of the grid at
// or after the next: a gap of a week with nothing due costs no tick.
func (p *player) gap(next int64) error {
	if p.tick <= 0 {
		return nil
	}
	tick := int64(p.tick)
	last := p.now
	for t := (p.now/tick + 1) * tick; t < next; {
		ev := p.engine.NextEvent(last)
		if ev >= next {
			return nil
		}
		if ev > t {
			t += (ev - t - 1) / tick * tick
			if t > math.MaxInt64-tick {
				return nil
			}
			t += tick // the first tick at or after ev
			if t >= next {
				return nil
			}
		}
		if err := p.send(p.engine.Tick(t, p.buf[:0])); err != nil {
			return err
		}
		last = t
		if t > math.MaxInt64-tick {
			return nil
		}
		t += tick
	}
	return nil
}

func (p *player) send(as []outpost.Alert) error {
	p.buf = as[:0]
	if len(as) == 0 {
		return nil
	}
	return p.emit(as)
}

func fmtTS(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// queued is a reading waiting in the reorder window; seq keeps the input
// order of readings with the same timestamp.
type queued struct {
	r   outpost.Reading
	seq int
}

type readingHeap []queued

func (h readingHeap) Len() int { return len(h) }
func (h readingHeap) Less(i, j int) bool {
	return h[i].r.TS < h[j].r.TS || h[i].r.TS == h[j].r.TS && h[i].seq < h[j].seq
}
func (h readingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *readingHeap) Push(x any)   { *h = append(*h, x.(queued)) }
func (h *readingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
