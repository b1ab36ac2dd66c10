package gateway

import (
	"math"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/config"
)

// maxClockSegments bounds the wall-clock offsets remembered while the
// clock is untrusted. A clock that steps more often than that before it
// is trusted is hopeless: later steps are merged into the last segment,
// whose readings then get the newest offset's correction (logged).
const maxClockSegments = 64

// maxHeldRanges bounds the seq ranges of held batches. Ranges of one
// segment that follow each other merge, so a few ranges per segment is
// usual; beyond the bound new untrusted batches are not held (sent as
// they are, their times uncorrected, logged).
const maxHeldRanges = 4096

// clockTracker decides whether the gateway's wall clock can be trusted
// (docs/clock.md). Every clock reading of the gateway goes through now,
// which compares the wall clock with the monotonic one: a change of their
// offset beyond the threshold is a step. While the clock is untrusted each
// offset seen is kept as a segment; readings are classified into segments
// by their timestamps, the batches holding them are held back from the
// uplink, and once the clock is trusted each is re-based by
// trusted offset − its segment's offset. Safe for concurrent use.
type clockTracker struct {
	mode      string
	threshold int64 // ns: an offset change beyond it is a step
	wall      func() time.Time
	mono      func() time.Duration
	synced    func() (bool, error) // the kernel's NTP status; nil where there is none
	log       zerolog.Logger

	trusted  atomic.Bool
	plainAll atomic.Bool  // trusted in the first segment: nothing to classify
	held     atomic.Int64 // ranges in heldSeqs, for the uplink's fast path
	steps    atomic.Int64

	mu       sync.Mutex
	armed    bool  // the floor is final: trust may be decided
	floor    int64 // unix ns: a wall clock before it is untrusted
	segs     []clockSeg
	lastM    int64 // mono ns of the newest clock reading noted
	tIdx     int   // the segment trust was decided in
	trustOff int64 // its offset then: what every held reading is re-based to
	checked  int64 // mono ns of the last kernel status check; -1 never
	syncErr  bool  // the kernel check failed once: logged
	heldSeqs []heldRange
	holdFrom uint64 // while an append of held batches runs: every seq from it on is held
	boot     string // the boot the monotonic clock belongs to; "": the process's own (nothing persists)
	dirty    bool   // held runs changed since takeState
}

// clockSeg is one offset of the wall clock against the monotonic clock.
type clockSeg struct {
	off  int64 // wall − mono, ns
	last int64 // mono ns of the last clock reading under this offset
}

// heldRange is a run of telemetry seqs [first, end) stored while the
// clock was untrusted, whose readings belong to segment seg.
type heldRange struct {
	first, end uint64
	seg        int
}

// clockOptions are what newClockTracker needs besides the config.
type clockOptions struct {
	wall   func() time.Time
	mono   func() time.Duration // default: the boot's monotonic clock (Linux), else time since the tracker was made
	boot   string               // the boot mono belongs to (default with the default mono: the kernel's boot id)
	floor  time.Time            // default: the binary's build time (vcs.time), if stamped
	synced func() (bool, error) // default: kernelSynced (Linux adjtimex), nil elsewhere
	log    zerolog.Logger
}

// newClockTracker starts a tracker at the current offset. Nothing is
// trusted until arm gives it the final floor (unless the mode is always).
func newClockTracker(cfg config.ClockConfig, o clockOptions) *clockTracker {
	if o.mono == nil {
		o.mono, o.boot = bootClock()
	}
	if o.mono == nil {
		start := time.Now()
		o.mono = func() time.Duration { return time.Since(start) } // monotonic reading
	}
	if o.floor.IsZero() {
		o.floor = buildTime()
		if o.floor.Before(minFloor) {
			o.floor = minFloor
		}
	}
	if o.synced == nil {
		o.synced = kernelSynced
	}
	cfg.SetDefaults() // a config built in code may leave the section out
	c := &clockTracker{mode: cfg.Trust, threshold: int64(cfg.StepThreshold), wall: o.wall, mono: o.mono,
		synced: o.synced, log: o.log.With().Str("component", "clock").Logger(), checked: -1, boot: o.boot}
	c.floor = o.floor.UnixNano()
	w, m := c.wall().UnixNano(), int64(c.mono())
	c.segs = []clockSeg{{off: w - m, last: m}}
	c.lastM = m
	if c.mode == config.ClockAlways {
		c.armed = true
		c.trust(w, "clock.trust is always")
	}
	return c
}

// arm raises the floor to newest (the newest batch in the outbox, unix
// ns) and lets trust be decided from now on.
func (c *clockTracker) arm(newest int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.floor = max(c.floor, newest)
	c.armed = true
	if !c.trusted.Load() {
		w := c.wall().UnixNano()
		c.observe(w, int64(c.mono()))
		if !c.trusted.Load() {
			c.log.Warn().Time("clock", time.Unix(0, w)).Time("floor", time.Unix(0, c.floor)).Str("trust", c.mode).
				Msg("wall clock not trusted yet: telemetry is stored but held back until it is, then re-based")
		}
	}
}

// now is the gateway's clock: the wall clock, checked against the
// monotonic one at every reading.
func (c *clockTracker) now() time.Time {
	t := c.wall()
	m := int64(c.mono())
	c.mu.Lock()
	c.observe(t.UnixNano(), m)
	c.mu.Unlock()
	return t
}

// observe notes a clock reading (wall w, mono m, ns). The caller holds mu.
func (c *clockTracker) observe(w, m int64) {
	off := w - m
	if m < c.lastM {
		// Taken before the newest reading noted (goroutines race from
		// their clock reads to the lock): it cannot tell of a new step,
		// but its segment must cover it.
		for i := len(c.segs) - 1; i >= 0; i-- {
			if d := off - c.segs[i].off; d <= c.threshold && d >= -c.threshold {
				c.segs[i].last = max(c.segs[i].last, m)
				return
			}
		}
		return
	}
	c.lastM = m
	cur := &c.segs[len(c.segs)-1]
	if d := off - cur.off; d > c.threshold || d < -c.threshold {
		c.steps.Add(1)
		trusted := c.trusted.Load()
		ev := c.log.Info()
		if trusted {
			ev = c.log.Warn()
		}
		ev = ev.Dur("step", time.Duration(d)).Time("clock", time.Unix(0, w)).Bool("trusted", trusted)
		switch {
		case trusted:
			ev.Msg("wall clock stepped while trusted: readings before the step are not corrected")
			cur.off = off
		case len(c.segs) >= maxClockSegments:
			ev.Msg("wall clock stepped again; too many steps to tell apart: merged with the last")
			cur.off = off
		default:
			ev.Msg("wall clock stepped")
			c.segs = append(c.segs, clockSeg{off: off, last: m})
			c.dirty = c.dirty || len(c.heldSeqs) > 0
			cur = &c.segs[len(c.segs)-1]
		}
	}
	cur.last = max(cur.last, m)
	if c.armed && !c.trusted.Load() {
		c.decide(w, m)
	}
}

// decide trusts the clock when the mode's condition holds. The kernel's
// status is read at most once a second. The caller holds mu.
func (c *clockTracker) decide(w, m int64) {
	if c.mode == config.ClockAuto && w >= c.floor {
		c.trust(w, "at or after the floor")
		return
	}
	if c.synced == nil || c.checked >= 0 && m-c.checked < int64(time.Second) {
		return
	}
	c.checked = m
	ok, err := c.synced()
	if err != nil {
		if !c.syncErr {
			c.syncErr = true
			c.log.Warn().Err(err).Msg("cannot read the kernel's clock status; trusting by the floor alone")
		}
		if c.mode == config.ClockSync {
			// No kernel signal at all: fall back to the floor.
			if w >= c.floor {
				c.trust(w, "at or after the floor (kernel status unavailable)")
			}
		}
		return
	}
	if ok {
		c.trust(w, "kernel clock synchronised")
	}
}

// trust marks the clock trusted in the current segment. The caller holds
// mu (or owns c).
func (c *clockTracker) trust(w int64, why string) {
	c.tIdx = len(c.segs) - 1
	c.trustOff = c.segs[c.tIdx].off
	c.plainAll.Store(c.tIdx == 0)
	c.trusted.Store(true)
	if c.mode == config.ClockAlways {
		return
	}
	ev := c.log.Info().Str("reason", why).Time("clock", time.Unix(0, w)).Int64("steps", c.steps.Load())
	if c.tIdx > 0 {
		ev = ev.Dur("correction", time.Duration(c.trustOff-c.segs[0].off))
	}
	ev.Msg("wall clock trusted")
}

// isTrusted reports whether the clock is trusted.
func (c *clockTracker) isTrusted() bool { return c.trusted.Load() }

// classify returns the segment of a reading stamped ts (unix ns) and
// whether its batch must be held and re-based: while untrusted every
// reading is held; once trusted, those of earlier segments. A reading
// belongs to the oldest segment under whose offset it is no later than
// the last clock reading made with that offset; a reading stamped by a
// sensor before a backward step can be taken for one of the later
// segment (docs/clock.md).
func (c *clockTracker) classify(ts int64) (seg int, hold bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	trusted := c.trusted.Load()
	n := len(c.segs)
	if trusted {
		n = c.tIdx
	}
	for i := range n {
		s := &c.segs[i]
		if i == len(c.segs)-1 || ts-s.off <= s.last+c.threshold/2 {
			return i, true
		}
	}
	return c.tIdx, false
}

// plain reports whether every reading is trusted as stamped: the clock
// was trusted in its first segment, so classify need not be asked.
func (c *clockTracker) plain() bool { return c.plainAll.Load() }

// delta is the correction of segment seg's readings: 0 until the clock
// is trusted.
func (c *clockTracker) delta(seg int) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.trusted.Load() || seg < 0 || seg >= len(c.segs) {
		return 0, false
	}
	return c.trustOff - c.segs[seg].off, true
}

// hold records that the telemetry seqs [first, end) hold readings of
// segment seg: the uplink does not send them until they are re-based.
// With follows set no telemetry was stored since the last range, which
// it then extends if it is of the same segment (the seqs between, if
// any, are of the alert lane).
func (c *clockTracker) hold(first, end uint64, seg int, follows bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.heldSeqs); n > 0 && follows {
		last := &c.heldSeqs[n-1]
		if last.seg == seg && last.end <= first {
			last.end = end
			c.dirty = true
			return
		}
	}
	if len(c.heldSeqs) >= maxHeldRanges {
		c.log.Error().Uint64("seq", first).Msg("too many held batches: sending this one with its times uncorrected")
		return
	}
	c.heldSeqs = append(c.heldSeqs, heldRange{first: first, end: end, seg: seg})
	c.dirty = true
	c.countHeld()
}

// holdAppend holds every seq from next on (0: stop): the batcher calls it
// around an append of batches to be held, whose seqs it learns only once
// the append returns, by which time the uplink may have read them.
func (c *clockTracker) holdAppend(next uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holdFrom = next
	c.countHeld()
}

// countHeld publishes whether anything is held. The caller holds mu.
func (c *clockTracker) countHeld() {
	n := int64(len(c.heldSeqs))
	if c.holdFrom != 0 {
		n++
	}
	c.held.Store(n)
}

// isHeld reports whether telemetry seq is held back.
func (c *clockTracker) isHeld(seq uint64) bool {
	_, held := c.heldUntil(seq)
	return held
}

// heldUntil reports whether telemetry seq is held back and, if so, the
// first seq after it that may not be (math.MaxUint64: none).
func (c *clockTracker) heldUntil(seq uint64) (uint64, bool) {
	if c.held.Load() == 0 {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holdFrom != 0 && seq >= c.holdFrom {
		return math.MaxUint64, true
	}
	i := sort.Search(len(c.heldSeqs), func(i int) bool { return c.heldSeqs[i].end > seq })
	if i < len(c.heldSeqs) && c.heldSeqs[i].first <= seq {
		end := c.heldSeqs[i].end
		if c.holdFrom != 0 && end >= c.holdFrom {
			end = math.MaxUint64
		}
		return end, true
	}
	return 0, false
}

// oldestHeld returns the oldest held range, if any.
func (c *clockTracker) oldestHeld() (heldRange, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.heldSeqs) == 0 {
		return heldRange{}, false
	}
	return c.heldSeqs[0], true
}

// release stops holding the seqs of the oldest range before end.
func (c *clockTracker) release(end uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.heldSeqs) == 0 {
		return
	}
	c.dirty = true
	if r := &c.heldSeqs[0]; end < r.end {
		r.first = max(r.first, end)
		return
	}
	c.heldSeqs = append(c.heldSeqs[:0], c.heldSeqs[1:]...)
	c.countHeld()
}

// holdAge reports whether the outbox's age cap must wait: the clock is
// not trusted yet, or batches stored under it still wait to be re-based.
func (c *clockTracker) holdAge() bool {
	if c == nil {
		return true // the outbox opens before the tracker is armed
	}
	return !c.trusted.Load() || c.held.Load() > 0
}

func timeDuration(ns int64) time.Duration { return time.Duration(ns) }

// minFloor is the floor when the build stamped no time: no release of
// this code runs before it was written.
var minFloor = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// buildTime is the binary's VCS commit time, if the build stamped it:
// no reading can be older than the code that took it.
func buildTime() time.Time {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return time.Time{}
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.time" {
			t, err := time.Parse(time.RFC3339, s.Value)
			if err == nil {
				return t
			}
		}
	}
	return time.Time{}
}
