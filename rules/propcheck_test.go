package rules_test

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/outposthq/outpost"
)

// The checks of TestProperty that follow the alerts of one run.

// checkTimeOrder: a transition is stamped with a time between the
// previous call's and its own call's (the engine's clock does not go
// back), each instance's transitions and each call's come in time order,
// and an episode does not start after its transition. (The stream is fed
// in time order, ticks included: a reading that comes after a later
// Tick may by design make an alert stamped before a repeat.)
func checkTimeOrder(c *propCase) []violation {
	var vs []violation
	prevAt := int64(-1 << 63)
	last := map[string]*outpost.Alert{}
	for _, call := range c.plain().calls {
		var before *outpost.Alert
		for i := range call.alerts {
			a := &call.alerts[i]
			var why string
			switch p := last[a.Fingerprint]; {
			case a.ChangedAt > call.at:
				why = fmt.Sprintf("is stamped %s, after the time of the call that emitted it", off(a.ChangedAt))
			case a.ChangedAt < prevAt:
				why = fmt.Sprintf("is stamped %s, before the previous call's time %s", off(a.ChangedAt), off(prevAt))
			case before != nil && a.ChangedAt < before.ChangedAt:
				why = fmt.Sprintf("is stamped %s, before the alert emitted before it in the same call (%s)", off(a.ChangedAt), fmtAlert(before))
			case p != nil && a.ChangedAt < p.ChangedAt:
				why = fmt.Sprintf("is stamped %s, before the instance's previous transition (%s)", off(a.ChangedAt), fmtAlert(p))
			case a.StartedAt > a.ChangedAt:
				why = fmt.Sprintf("starts its episode at %s, after its transition", off(a.StartedAt))
			}
			if why != "" {
				v := violation{rule: a.Rule, at: call.at, msg: fmt.Sprintf("%s: %s", fmtAlert(a), why)}
				if p := last[a.Fingerprint]; call.tick && p != nil && a.State == outpost.StateFiring && p.State == outpost.StateFiring &&
					a.Annotations["prev"] == "firing" && a.Severity == p.Severity && a.ChangedAt == p.ChangedAt {
					v.bug = bugRepeatStamp
				}
				vs = append(vs, v)
			}
			last[a.Fingerprint], before = a, a
		}
		prevAt = call.at
	}
	return vs
}

// fedReading is a reading an instance was fed: its index in the stream.
type fedReading struct {
	idx int
	ts  int64
	v   float64
}

// histories are the readings (not NaN, as the engine ignores those) that
// each instance of r was fed, by fingerprint.
func (c *propCase) histories(r *genRule) map[string][]fedReading {
	h := map[string][]fedReading{}
	for i := range c.stream {
		rd := &c.stream[i]
		if rd.Value != rd.Value {
			continue
		}
		if fp, ok := r.fingerprint(rd); ok {
			h[fp] = append(h[fp], fedReading{i, rd.TS, rd.Value})
		}
	}
	return h
}

// fedBefore is the part of h fed before stream index n.
func fedBefore(h []fedReading, n int) []fedReading {
	k, _ := slices.BinarySearchFunc(h, n, func(f fedReading, n int) int { return f.idx - n })
	return h[:k]
}

// checkForHeld: for threshold rules, whose conditions the check computes
// itself, a firing at a level — from a non-firing state, or an
// escalation — comes only when the level's condition has held at every
// reading of the instance for at least the level's `for`; a step-down
// goes only to a level that has been met (held for its `for`) in the
// episode. A firing by no_data (state firing, at its severity, after its
// `after` without readings) has no level condition; repeats are left out.
func checkForHeld(c *propCase) []violation {
	var vs []violation
	run := c.plain()
	for ri := range c.rules {
		r := &c.rules[ri]
		if !r.threshold() {
			continue
		}
		hist := c.histories(r)
		last := map[string]*outpost.Alert{}
		for _, call := range run.calls {
			for i := range call.alerts {
				a := &call.alerts[i]
				if a.Rule != r.name {
					continue
				}
				p := last[a.Fingerprint]
				last[a.Fingerprint] = a
				if a.State != outpost.StateFiring {
					continue
				}
				h := fedBefore(hist[a.Fingerprint], call.fed)
				if r.noDataFiring(a, call, h) {
					continue
				}
				l := r.level(a.Severity)
				if l < 0 {
					vs = append(vs, violation{rule: r.name, at: call.at, msg: fmt.Sprintf("%s: fires at a severity of no level, and not by no_data", fmtAlert(a))})
					continue
				}
				what := "fires"
				if a.Annotations["prev"] == "firing" && p != nil && p.State == outpost.StateFiring {
					if p.Severity == a.Severity {
						continue // a repeat, or data back after no_data at its severity
					}
					if pl := r.level(p.Severity); pl >= 0 && l > pl {
						if !r.metIn(l, h, a.StartedAt, call.at) {
							vs = append(vs, violation{rule: r.name, at: call.at, bug: bugStepDownNotHeld, msg: fmt.Sprintf(
								"%s: steps down from %s to levels[%d] (%s), whose condition has not held for its `for` since the episode began",
								fmtAlert(a), p.Severity, l, r.levelText(l))})
						}
						continue
					}
					what = "escalates"
				}
				k := len(h) - 1
				if k < 0 || !r.holds(l, h[k].v) {
					vs = append(vs, violation{rule: r.name, at: call.at, msg: fmt.Sprintf(
						"%s: %s at levels[%d] (%s), whose condition does not hold at the instance's last reading", fmtAlert(a), what, l, r.levelText(l))})
					continue
				}
				for k > 0 && r.holds(l, h[k-1].v) {
					k--
				}
				if held := time.Duration(call.at - h[k].ts); held < r.levels[l].forD {
					vs = append(vs, violation{rule: r.name, at: call.at, msg: fmt.Sprintf(
						"%s: %s at levels[%d] (%s) at %s, when its condition had held for %v only (since %s)",
						fmtAlert(a), what, l, r.levelText(l), off(call.at), held, off(h[k].ts))})
				}
			}
		}
	}
	return vs
}

// noDataFiring reports whether a firing alert is no_data's: a Tick's, at
// no_data's severity, `after` or more since the instance's last reading.
func (r *genRule) noDataFiring(a *outpost.Alert, call propCall, h []fedReading) bool {
	nd := r.noData
	return nd != nil && nd.state == "firing" && call.tick && a.Severity == r.noDataSeverity() &&
		len(h) > 0 && call.at-h[len(h)-1].ts >= int64(nd.after)
}

// metIn reports whether level l may have been met (its condition held
// for its `for`) at some time between since and now, given the readings
// h up to now: whether a run of readings at which it holds lasted for its
// `for`, counting until the reading that ended it, and ended after since.
func (r *genRule) metIn(l int, h []fedReading, since, now int64) bool {
	start := notHeld
	for _, f := range h {
		switch {
		case r.holds(l, f.v) && start == notHeld:
			start = f.ts
		case !r.holds(l, f.v) && start != notHeld:
			if f.ts >= since && f.ts-start >= int64(r.levels[l].forD) {
				return true
			}
			start = notHeld
		}
	}
	return start != notHeld && now-start >= int64(r.levels[l].forD)
}

func (r *genRule) levelText(l int) string {
	return strings.Join(r.levels[l].fields(), ", ")
}

// ordered reports whether a more severe level's condition implies every
// less severe one's (above with falling thresholds, or below with rising
// ones): then no reset or resolve ever clears a level whose condition
// holds.
func (r *genRule) ordered() bool {
	for i := 1; i < len(r.levels); i++ {
		p, l := &r.levels[i-1], &r.levels[i]
		switch {
		case p.above != nil && l.above != nil && *p.above >= *l.above:
		case p.below != nil && l.below != nil && *p.below <= *l.below:
		default:
			return false
		}
	}
	return true
}

// instTrack follows an instance through a run: its state as its alerts
// leave it, and for each level since when its condition has held.
type instTrack struct {
	state    outpost.AlertState // inactive, pending, firing or nodata
	last     *outpost.Alert
	lastTS   int64 // of the last reading fed; 0: none
	runStart []int64
	n        int // readings fed
}

const notHeld = int64(-1 << 63)

// checkForFires, the converse of for-held: for threshold rules with
// ordered levels, once a level's condition has held for its `for` — at
// every reading, with no gap of no_data's `after` between readings (which
// may stop the timers), counted from the last resolve if one came since
// (docs/rules.md: a level that holds at a resolve starts a new episode,
// its `for` counted from there) — the instance fires at that level or a
// more severe one, at that call. An instance that may be stale is left out.
func checkForFires(c *propCase) []violation {
	var vs []violation
	run := c.plain()
	for ri := range c.rules {
		r := &c.rules[ri]
		if !r.threshold() || !r.ordered() {
			continue
		}
		insts := map[string]*instTrack{}
		var order []string
		fed := 0
		alerts := map[string][]*outpost.Alert{} // by fingerprint
		for _, call := range run.calls {
			fedNow := map[string]bool{} // the instances this call evaluated, with Tick's: all
			for ; fed < call.fed; fed++ {
				rd := &c.stream[fed]
				fp, ok := r.fingerprint(rd)
				if !ok || rd.Value != rd.Value {
					continue
				}
				fedNow[fp] = true
				in := insts[fp]
				if in == nil {
					in = &instTrack{runStart: make([]int64, len(r.levels))}
					insts[fp] = in
					order = append(order, fp)
				}
				gapped := r.noData != nil && in.n > 0 && rd.TS-in.lastTS >= int64(r.noData.after)
				for l := range r.levels {
					switch {
					case !r.holds(l, rd.Value):
						in.runStart[l] = notHeld
					case in.n == 0 || gapped || in.runStart[l] == notHeld:
						in.runStart[l] = rd.TS
					}
				}
				in.lastTS = rd.TS
				in.n++
			}
			for i := range call.alerts {
				a := &call.alerts[i]
				if a.Rule != r.name {
					continue
				}
				in := insts[a.Fingerprint]
				if in == nil {
					continue // reported by episodes, if wrong
				}
				alerts[a.Fingerprint] = append(alerts[a.Fingerprint], a)
				if a.State == outpost.StateResolved || in.state == outpost.StateFiring && a.Annotations["prev"] == "inactive" {
					// A resolve (silent with send_resolved: false) ends the
					// episode: a level that still holds counts its `for`
					// from then.
					for l, s := range in.runStart {
						if s != notHeld {
							in.runStart[l] = max(s, a.ChangedAt)
						}
					}
				}
				in.last, in.state = a, afterState(a.State)
			}
			for _, fp := range order {
				in := insts[fp]
				if !call.tick && !fedNow[fp] || r.noData != nil && call.at-in.lastTS >= int64(r.noData.after) {
					continue
				}
				met := -1
				for l := range r.levels {
					if s := in.runStart[l]; s != notHeld && call.at-s >= int64(r.levels[l].forD) {
						met = l
						break
					}
				}
				if met < 0 {
					continue
				}
				cur := -1
				if in.state == outpost.StateFiring {
					cur = r.level(in.last.Severity)
				}
				if cur >= 0 && cur <= met {
					continue
				}
				v := violation{rule: r.name, at: call.at, msg: fmt.Sprintf(
					"%s: at %s levels[%d] (%s) has held since %s, for %v, but the instance is %s (its last alert: %s)",
					fp, off(call.at), met, r.levelText(met), off(in.runStart[met]), time.Duration(call.at-in.runStart[met]),
					in.state, fmtLast(in.last))}
				if r.afterNoDataFiring(alerts[fp], in.runStart[met]) {
					v.bug = bugForAfterNoData
				}
				vs = append(vs, v)
				break // one per call
			}
		}
	}
	return vs
}

// afterNoDataFiring reports whether, by the alerts as of an instance,
// it was firing by no_data until t: its last alert before t is a firing
// at no_data's severity.
func (r *genRule) afterNoDataFiring(as []*outpost.Alert, t int64) bool {
	if r.noData == nil || r.noData.state != "firing" {
		return false
	}
	for i := len(as) - 1; i >= 0; i-- {
		if as[i].ChangedAt < t {
			return as[i].State == outpost.StateFiring && as[i].Severity == r.noDataSeverity()
		}
	}
	return false
}

// afterState is the state an instance is in after an alert of state s.
func afterState(s outpost.AlertState) outpost.AlertState {
	if s == outpost.StateResolved {
		return outpost.StateInactive
	}
	return s
}

func fmtLast(a *outpost.Alert) string {
	if a == nil {
		return "none"
	}
	return fmtAlert(a)
}

// checkEpisodes: each alert's .Previous is the state the instance's last
// alert left it in (with send_resolved: false, firing and nodata may have
// ended silently), and the transition is one the states allow: pending from
// inactive or nodata; nodata from inactive, pending or firing; inactive
// only from pending; resolved only from firing or nodata, never with
// send_resolved: false. So every episode is closed at most once, by the
// closing transition of its state; a resolved carries the severity of
// the firing or nodata it ends. (An inactive may not carry the pending
// alert's: a pending instance moves between levels without an alert.)
func checkEpisodes(c *propCase) []violation {
	var vs []violation
	byName := c.ruleMap()
	insts := map[string]*instTrack{}
	for _, call := range c.plain().calls {
		for i := range call.alerts {
			a := &call.alerts[i]
			r := byName[a.Rule]
			in := insts[a.Fingerprint]
			if in == nil {
				in = &instTrack{}
				insts[a.Fingerprint] = in
			}
			cur := in.state
			prev := a.Annotations["prev"]
			if (cur == outpost.StateFiring || cur == outpost.StateNoData) && !r.sendsResolved() && prev == "inactive" {
				cur = outpost.StateInactive // resolved without an alert, as send_resolved: false says
			}
			var why string
			var bug string
			switch {
			case prev != cur.String():
				why = fmt.Sprintf("its .Previous is %s, but the instance's last alert left it %s", prev, cur)
			case !transitionAllowed(cur, a.State):
				why = fmt.Sprintf("a %s alert for an instance that is %s", a.State, cur)
			case a.State == outpost.StateResolved && !r.sendsResolved():
				why = "a resolved alert from a rule with send_resolved: false"
				if cur == outpost.StateNoData {
					bug = bugNoDataSendResolved
				}
			case a.State == outpost.StateResolved && in.last != nil && a.Severity != in.last.Severity:
				why = fmt.Sprintf("it closes a %s episode at severity %s, but the instance was %s at %s", cur, a.Severity, cur, in.last.Severity)
				if cur == outpost.StateNoData {
					bug = bugNoDataResolveSev
				}
			}
			if why != "" {
				vs = append(vs, violation{rule: a.Rule, at: call.at, bug: bug, msg: fmt.Sprintf("%s: %s (last alert: %s)", fmtAlert(a), why, fmtLast(in.last))})
			}
			in.state, in.last = afterState(a.State), a
		}
	}
	return vs
}

func transitionAllowed(from, to outpost.AlertState) bool {
	switch to {
	case outpost.StatePending:
		return from == outpost.StateInactive || from == outpost.StateNoData
	case outpost.StateFiring:
		return true
	case outpost.StateNoData:
		return from != outpost.StateNoData
	case outpost.StateInactive:
		return from == outpost.StatePending
	case outpost.StateResolved:
		return from == outpost.StateFiring || from == outpost.StateNoData
	}
	return false
}

func (c *propCase) ruleMap() map[string]*genRule {
	m := make(map[string]*genRule, len(c.rules))
	for i := range c.rules {
		m[c.rules[i].name] = &c.rules[i]
	}
	return m
}

// checkNoData: at a Tick `after` or more since an instance's last
// reading, the instance is in no_data's state: nodata; firing at
// no_data's severity (or at a more severe level); or resolved (inactive).
func checkNoData(c *propCase) []violation {
	var vs []violation
	run := c.plain()
	for ri := range c.rules {
		r := &c.rules[ri]
		if r.noData == nil {
			continue
		}
		after := int64(r.noData.after)
		insts := map[string]*instTrack{}
		var order []string
		fed := 0
		// firingWhenStale: the instances that were firing, not at no_data's
		// severity, after the first Tick of their silence that found them
		// stale.
		firingWhenStale := map[string]bool{}
		// keptFiring: those that no_data left firing at their level, as
		// firing at its severity or more severe.
		keptFiring := map[string]bool{}
		for _, call := range run.calls {
			for ; fed < call.fed; fed++ {
				rd := &c.stream[fed]
				if fp, ok := r.fingerprint(rd); ok && rd.Value == rd.Value {
					in := insts[fp]
					if in == nil {
						in = &instTrack{}
						insts[fp] = in
						order = append(order, fp)
					}
					in.lastTS, in.n = rd.TS, 0
					delete(firingWhenStale, fp)
					delete(keptFiring, fp)
				}
			}
			for i := range call.alerts {
				a := &call.alerts[i]
				if in := insts[a.Fingerprint]; a.Rule == r.name && in != nil {
					if (in.state == outpost.StateFiring && a.State != outpost.StateFiring || in.state == outpost.StateNoData) && a.Annotations["prev"] == "inactive" {
						in.state = outpost.StateInactive // send_resolved: false
					}
					in.last, in.state = a, afterState(a.State)
				}
			}
			if !call.tick {
				continue
			}
			for _, fp := range order {
				if in := insts[fp]; call.at-in.lastTS >= after && in.n == 0 {
					in.n = 1 // stale from this Tick on
					firingWhenStale[fp] = in.state == outpost.StateFiring && in.last.Severity != r.noDataSeverity()
					keptFiring[fp] = in.state == outpost.StateFiring && !(call.at-in.last.ChangedAt == 0 && in.last.Annotations["prev"] != "firing")
				}
			}
			for _, fp := range order {
				in := insts[fp]
				if call.at-in.lastTS < after {
					continue
				}
				var why, bug string
				switch sev := r.noDataSeverity(); r.noData.state {
				case "", "nodata":
					if in.state != outpost.StateNoData {
						why = "nodata"
					}
				case "firing":
					switch {
					case in.state != outpost.StateFiring:
						why = "firing at " + sev
					case in.last.Severity != sev && !(r.level(sev) >= 0 && r.level(in.last.Severity) >= 0 && r.level(in.last.Severity) < r.level(sev)):
						why = "firing at " + sev
					}
				case "resolved":
					if in.state != outpost.StateInactive && (in.state != outpost.StateFiring || r.sendsResolved()) {
						why = "resolved"
					}
				}
				if why != "" {
					switch {
					case firingWhenStale[fp] && r.noData.state == "firing":
						bug = bugNoDataEscalate
					case keptFiring[fp] && r.noData.state == "firing" && r.keepFiring > 0 && in.last.State == outpost.StateResolved:
						bug = bugNoDataKeepFiring
					}
					vs = append(vs, violation{rule: r.name, at: call.at, bug: bug, msg: fmt.Sprintf(
						"%s: at %s, %v after its last reading (no_data after %v), the instance should be %s, but it is %s (its last alert: %s)",
						fp, off(call.at), time.Duration(call.at-in.lastTS), r.noData.after, why, in.state, fmtLast(in.last))})
					break
				}
			}
		}
	}
	return vs
}
