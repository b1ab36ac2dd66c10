package gateway

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// clockStateKey is the outbox state key of the clock's held batches.
const clockStateKey = "clock"

// maxClockState bounds the stored clock state that restore reads: 64
// segments and 4 096 ranges take well under it.
const maxClockState = 1 << 20

// clockState is what survives a restart of the gateway within one boot
// of the machine: the segments' offsets against the boot-wide monotonic
// clock (CLOCK_BOOTTIME), and the held runs of seqs. Another boot has
// another monotonic clock, so the state of an earlier boot is dropped.
type clockState struct {
	Boot string      `json:"boot"`
	Segs [][2]int64  `json:"segments"` // offset, last monotonic reading
	Held [][3]uint64 `json:"held"`     // first, end, segment
}

// persistent reports whether the tracker's monotonic clock outlives the
// process (it is the boot's, and the boot is known).
func (c *clockTracker) persistent() bool { return c.boot != "" }

// takeState returns the state to store if it changed since the last
// call: nil value with changed set means delete it (nothing held).
func (c *clockTracker) takeState() (val []byte, changed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty || c.boot == "" {
		return nil, false, nil
	}
	c.dirty = false
	if len(c.heldSeqs) == 0 {
		return nil, true, nil
	}
	st := clockState{Boot: c.boot}
	for _, s := range c.segs {
		st.Segs = append(st.Segs, [2]int64{s.off, s.last})
	}
	for _, r := range c.heldSeqs {
		st.Held = append(st.Held, [3]uint64{r.first, r.end, uint64(r.seg)})
	}
	val, err = json.Marshal(&st)
	return val, true, err
}

// restore takes the held runs of an earlier run of the gateway in this
// boot. Its segments come first; the current offset continues the last
// of them, or is a new segment if the clock stepped while the gateway
// was down. Call it before arm.
func (c *clockTracker) restore(val []byte) error {
	if len(val) == 0 || c.boot == "" {
		return nil
	}
	if len(val) > maxClockState {
		return fmt.Errorf("gateway: clock state of %d bytes, limit %d", len(val), maxClockState)
	}
	var st clockState
	if err := json.Unmarshal(val, &st); err != nil {
		return fmt.Errorf("gateway: clock state: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.Boot != c.boot {
		// Another boot: no monotonic link. Sent as stored (docs/clock.md).
		c.dirty = true
		return errors.New("gateway: clock state of another boot: its held batches cannot be re-based")
	}
	if len(st.Segs) == 0 || len(st.Segs) > maxClockSegments || len(st.Held) > maxHeldRanges {
		c.dirty = true
		return fmt.Errorf("gateway: clock state with %d segments and %d held runs: ignored", len(st.Segs), len(st.Held))
	}
	var held []heldRange
	for _, h := range st.Held {
		if h[2] >= uint64(len(st.Segs)) || h[0] == 0 || h[1] <= h[0] || len(held) > 0 && h[0] < held[len(held)-1].end {
			c.dirty = true
			return fmt.Errorf("gateway: clock state: bad held run %v: ignored", h)
		}
		held = append(held, heldRange{first: h[0], end: h[1], seg: int(h[2])})
	}
	cur := c.segs[len(c.segs)-1]
	segs := make([]clockSeg, 0, len(st.Segs)+1)
	for _, s := range st.Segs {
		segs = append(segs, clockSeg{off: s[0], last: s[1]})
	}
	if d := cur.off - segs[len(segs)-1].off; d > c.threshold || d < -c.threshold {
		c.steps.Add(1)
		c.log.Info().Dur("step", timeDuration(d)).Msg("wall clock stepped while the gateway was stopped")
		if len(segs) < maxClockSegments {
			segs = append(segs, cur)
		} else {
			segs[len(segs)-1].off = cur.off
		}
	}
	segs[len(segs)-1].last = max(segs[len(segs)-1].last, cur.last)
	c.segs = segs
	c.heldSeqs = held
	c.countHeld()
	c.log.Info().Int("held_runs", len(held)).Int("segments", len(segs)).
		Msg("held telemetry of the last run restored: it is re-based once the clock is trusted")
	return nil
}

// persistClock stores the clock's held runs when they changed, so that a
// restart before the clock is trusted still re-bases them. A failure is
// logged: the runs stay held in memory all the same.
func (bt *batcher) persistClock() {
	if bt.clock == nil || bt.ob == nil || !bt.clock.persistent() {
		return
	}
	val, changed, err := bt.clock.takeState()
	if !changed {
		return
	}
	if err == nil {
		err = bt.ob.PutState(clockStateKey, val)
	}
	if err != nil {
		bt.clock.mu.Lock()
		bt.clock.dirty = true // try again next time
		bt.clock.mu.Unlock()
		bt.rebaseFailed(fmt.Errorf("storing the clock's held runs: %w", err))
	}
}

// clockFloorKey is the outbox state key of the trusted wall clock's
// newest time, stored by the batcher once a minute and at a graceful
// stop: the next run's floor (docs/clock.md). An outbox that is empty at
// a restart says nothing of when the last run ended; this does.
const clockFloorKey = "clock.floor"

// floorEvery is how often a running gateway stores its floor: one small
// transaction a minute. A clock restored to within a minute before the
// last run stopped (a power cut right after a save of fake-hwclock) is
// trusted.
const floorEvery = time.Minute

// saveFloor stores the trusted wall clock as the next run's floor when a
// minute has passed on it since the last save, or at once with force (a
// graceful stop). Nothing is stored while the clock is untrusted, nor
// when it is behind the last time stored. A failure is logged with the
// re-base failures and tried again at the next call.
func (bt *batcher) saveFloor(force bool) {
	if bt.clock == nil || bt.ob == nil || !bt.clock.isTrusted() {
		return
	}
	w := bt.clock.now().UnixNano()
	if w <= bt.floorSaved || !force && bt.floorSaved != 0 && w-bt.floorSaved < int64(floorEvery) {
		return
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(w))
	if err := bt.ob.PutState(clockFloorKey, v[:]); err != nil {
		bt.rebaseFailed(fmt.Errorf("storing the clock's floor: %w", err))
		return
	}
	bt.floorSaved = w
}

// loadFloor reads the floor the last run stored (0: none).
func loadFloor(ob interface{ State(string) ([]byte, error) }) (int64, error) {
	v, err := ob.State(clockFloorKey)
	if err != nil || v == nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("gateway: clock floor of %d bytes, want 8", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}
