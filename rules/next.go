package rules

import (
	"math"

	"github.com/outposthq/outpost"
)

// NoEvent is what NextEvent returns when only a reading can change
// anything.
const NoEvent = math.MaxInt64

// NextEvent returns the earliest time after now (unix ns) at which Tick
// could emit or change anything if no reading comes first: the end of a
// running `for` (pending, escalation, or a step down while
// keep_firing_for runs), the end of keep_firing_for, a repeat falling
// due, a no_data deadline; NoEvent when there is none.
// Once Tick has run at now (after the last Eval), a Tick before that time
// changes nothing, so a replay may tick on its grid only at the first
// point at or after each NextEvent and get what ticking at every point of
// the grid gives: the same alerts, in the same order.
func (e *Engine) NextEvent(now int64) int64 {
	next := int64(NoEvent)
	at := func(in *instance, t int64) {
		// Tick leaves an instance alone before its last transition.
		next = min(next, max(t, in.changedAt, now+1))
	}
	for _, in := range e.live {
		if t := in.nextTimer(); t != NoEvent {
			at(in, t)
		}
	}
	for _, rt := range e.noData {
		after := int64(rt.rule.NoData.After)
		for _, in := range rt.order {
			if !in.stale && in.lastSeen != noTime {
				at(in, addSat(in.lastSeen, after))
			}
		}
	}
	return next
}

// nextTimer is when timers next has something to do for in, or NoEvent.
// It mirrors timers: each time here is the first at which one of its
// conditions becomes true.
func (in *instance) nextTimer() int64 {
	r := in.rt.rule
	next := int64(NoEvent)
	runs := func(i int) { // level i's `for` ends
		if in.since[i] != noTime {
			next = min(next, addSat(in.since[i], int64(r.Levels[i].For)))
		}
	}
	switch in.state {
	case outpost.StatePending:
		for i := range r.Levels {
			runs(i)
		}
	case outpost.StateFiring:
		for i := 0; i < in.level; i++ {
			runs(i) // escalation
		}
		if in.keepUntil != noTime {
			for j := in.level + 1; j < len(r.Levels); j++ {
				runs(j) // a step down while keep_firing_for runs
			}
			next = min(next, in.keepUntil)
		}
		if r.Repeat > 0 {
			next = min(next, addSat(in.sentAt, int64(r.Repeat)))
		}
	}
	return next
}

// met reports whether level i's condition has held for its `for` at now.
func (in *instance) met(i int, now int64) bool {
	s := in.since[i]
	return s != noTime && now-s >= int64(in.rt.rule.Levels[i].For)
}

// firingAtLeast reports whether a firing instance is at severity sev or at
// a level more severe than the level of that severity. A severity that
// names no level of the rule is not ranked against them: an instance
// firing at a level is not at it.
func (in *instance) firingAtLeast(sev string) bool {
	if in.severity() == sev {
		return true
	}
	if in.level < 0 {
		return false
	}
	for _, l := range in.rt.rule.Levels[in.level+1:] {
		if l.Severity == sev {
			return true
		}
	}
	return false
}

// levelSet is a set of level indexes, a bit each; the zero value is empty.
type levelSet []uint64

func (s levelSet) has(i int) bool {
	return i >= 0 && i/64 < len(s) && s[i/64]&(1<<(i%64)) != 0
}

// add adds level i; negative i (no_data's level) is not a level.
func (s *levelSet) add(i int) {
	if i < 0 {
		return
	}
	for i/64 >= len(*s) {
		*s = append(*s, 0)
	}
	(*s)[i/64] |= 1 << (i % 64)
}

func (s levelSet) clear() { clear(s) }

// levels lists the set's levels in order, nil when empty.
func (s levelSet) levels() []int {
	var ls []int
	for i := range len(s) * 64 {
		if s.has(i) {
			ls = append(ls, i)
		}
	}
	return ls
}

// addSat is t+d, or NoEvent when that overflows.
func addSat(t, d int64) int64 {
	if d > 0 && t > math.MaxInt64-d {
		return NoEvent
	}
	return t + d
}
