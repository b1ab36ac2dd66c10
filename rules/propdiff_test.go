package rules_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/outposthq/outpost"
)

// The checks of TestProperty that compare two runs of one case.

// checkRestore: a run restarted at the case's cuts — State, JSON as the
// gateway saves it, a fresh engine, Restore — emits the same alerts as a
// run without restarts, call by call, and restores every saved instance.
// Rules with windows or joins are left out: window contents and the
// latest values of other metrics are documented not to survive a restart
// (and then the alert sequence numbers are not compared either).
func checkRestore(c *propCase) []violation {
	if len(c.cuts) == 0 {
		return nil
	}
	a, b := c.plain(), c.run(runOpts{cuts: c.cuts})
	var vs []violation
	for _, msg := range b.restoreLost {
		vs = append(vs, violation{at: c.stream[len(c.stream)-1].TS, msg: msg})
	}
	skip := map[string]bool{}
	for _, r := range c.rules {
		if r.windowed() {
			skip[r.name] = true
		}
	}
	keep := func(as []outpost.Alert) []outpost.Alert {
		var out []outpost.Alert
		for _, x := range as {
			if !skip[x.Rule] {
				out = append(out, x)
			}
		}
		return out
	}
	withSeq := len(skip) == 0
	noSeq := func(p, q outpost.Alert) bool { return sameAlert(p, q, false) }
	for i := range a.calls {
		ca, cb := &a.calls[i], &b.calls[i]
		x, y := keep(ca.alerts), keep(cb.alerts)
		if slices.EqualFunc(x, y, func(p, q outpost.Alert) bool { return sameAlert(p, q, withSeq) }) {
			continue
		}
		// Compare instance by instance; a difference that leaves both
		// engines in the same state is reported, and the comparison goes on.
		xf, yf := byFingerprint(x), byFingerprint(y)
		diverged, differs := false, false
		for _, fp := range slices.Sorted(maps.Keys(mergeKeys(xf, yf))) {
			p, q := xf[fp], yf[fp]
			if slices.EqualFunc(p, q, noSeq) {
				continue
			}
			differs = true
			v := violation{rule: strings.SplitN(fp, "/", 2)[0], at: ca.at, msg: fmt.Sprintf(
				"at %s, with restarts after %s, the restarted engine emits\n%s  but the engine that ran on emits\n%s",
				off(ca.at), fmtCuts(c.cuts, ca.at), fmtAlerts(q), fmtAlerts(p))}
			switch {
			case c.sensorForgotten(p, q, ca.fed):
				v.bug = bugRestoreSensor
			case onlyNoDataResolveSeverity(p, q):
				v.bug = bugNoDataResolveSev
			case len(q) == 0 && len(p) > 0 && c.noDataForgotten(b, &p[0], ca):
				v.bug, diverged = bugRestoreNoData, true
			default:
				diverged = true
			}
			vs = append(vs, v)
		}
		if diverged {
			break
		}
		if !differs && withSeq {
			v := violation{at: ca.at, msg: fmt.Sprintf(
				"at %s, with restarts after %s, the restarted engine emits\n%s  but the engine that ran on emits\n%s",
				off(ca.at), fmtCuts(c.cuts, ca.at), fmtAlerts(y), fmtAlerts(x))}
			if slices.Equal(slices.Sorted(slices.Values(alertSeqs(x))), slices.Sorted(slices.Values(alertSeqs(y)))) {
				v.bug = bugRestoreOrder
			}
			vs = append(vs, v)
		}
	}
	return vs
}

// byFingerprint groups alerts by fingerprint, in order.
func byFingerprint(as []outpost.Alert) map[string][]outpost.Alert {
	m := map[string][]outpost.Alert{}
	for _, a := range as {
		m[a.Fingerprint] = append(m[a.Fingerprint], a)
	}
	return m
}

func mergeKeys[V any](a, b map[string]V) map[string]bool {
	m := map[string]bool{}
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}

func alertSeqs(as []outpost.Alert) []uint64 {
	s := make([]uint64, len(as))
	for i := range as {
		s[i] = as[i].Seq
	}
	return s
}

// onlyNoDataResolveSeverity reports whether x and y differ only in the
// severity of resolved alerts that end a nodata.
func onlyNoDataResolveSeverity(x, y []outpost.Alert) bool {
	return len(x) == len(y) && slices.EqualFunc(x, y, func(p, q outpost.Alert) bool {
		if p.State == outpost.StateResolved && p.Annotations["prev"] == "nodata" {
			q.Severity = p.Severity
		}
		return sameAlert(p, q, false)
	})
}

// sensorForgotten reports whether x and y differ only in messages that
// name the sensor of the instance's latest reading in x and nothing in y.
func (c *propCase) sensorForgotten(x, y []outpost.Alert, fed int) bool {
	if len(x) != len(y) {
		return false
	}
	byName := c.ruleMap()
	for j := range x {
		if sameAlert(x[j], y[j], false) {
			continue
		}
		sensor := ""
		for k := fed - 1; k >= 0 && sensor == ""; k-- {
			if fp, ok := byName[x[j].Rule].fingerprint(&c.stream[k]); ok && fp == x[j].Fingerprint {
				sensor = c.stream[k].Sensor
			}
		}
		xm := x[j]
		xm.Message = y[j].Message
		if sensor == "" || y[j].Message != strings.Replace(x[j].Message, sensor, "", 1) || !sameAlert(xm, y[j], false) {
			return false
		}
	}
	return true
}

// noDataForgotten reports whether m, an alert of a Tick of the run
// without restarts that the restarted run b lacks, is of a rule with
// no_data, for an instance that the last restart before it did not save
// (it was inactive) and that has had no reading since.
func (c *propCase) noDataForgotten(b *propRun, m *outpost.Alert, call *propCall) bool {
	if !call.tick {
		return false
	}
	r := c.ruleMap()[m.Rule]
	if r.noData == nil {
		return false
	}
	cut := int64(-1 << 63)
	for _, t := range c.cuts {
		if t < call.at {
			cut = max(cut, t)
		}
	}
	if cut == -1<<63 {
		return false
	}
	for k := range call.fed {
		if fp, ok := r.fingerprint(&c.stream[k]); ok && fp == m.Fingerprint && c.stream[k].TS > cut {
			return false // a reading since the restart
		}
	}
	return !b.saved[cut][m.Fingerprint]
}

func fmtCuts(cuts []int64, until int64) string {
	var s []string
	for _, c := range slices.Sorted(slices.Values(cuts)) {
		if c < until {
			s = append(s, off(c))
		}
	}
	return strings.Join(s, ", ")
}

func fmtAlerts(as []outpost.Alert) string {
	if len(as) == 0 {
		return "    nothing\n"
	}
	var b strings.Builder
	for i := range as {
		fmt.Fprintf(&b, "    %s\n", fmtAlert(&as[i]))
	}
	return b.String()
}

// checkReplayReorder: Replay of the stream reordered within the reorder
// window emits what Replay of the sorted stream does.
func checkReplayReorder(c *propCase) []violation {
	sorted, err := c.replay(c.stream)
	if err != nil {
		return []violation{{msg: fmt.Sprintf("replay of the sorted stream: %v", err)}}
	}
	got, err := c.replay(c.reordered())
	if err != nil {
		return []violation{{msg: fmt.Sprintf("replay of the stream reordered within %v: %v", c.reorder, err)}}
	}
	return diffAlerts(got, sorted, fmt.Sprintf("replay of the stream reordered within %v", c.reorder), "replay of the sorted stream")
}

// checkReplayClock: Replay of the sorted stream emits what the engine
// driven on the gateway's clock (propCase.run) does.
func checkReplayClock(c *propCase) []violation {
	got, err := c.replay(c.stream)
	if err != nil {
		return []violation{{msg: fmt.Sprintf("replay: %v", err)}}
	}
	return diffAlerts(got, c.plain().flat(), "replay", "the engine ticked every second")
}

// checkDeterminism: a second run emits the same alerts, call by call,
// and so does a run that evaluates the readings of one time in one Eval.
func checkDeterminism(c *propCase) []violation {
	a := c.plain()
	again := c.run(runOpts{})
	if vs := diffAlerts(again.flat(), a.flat(), "a second run", "the first"); len(vs) > 0 {
		return vs
	}
	return diffAlerts(c.run(runOpts{batch: true}).flat(), a.flat(), "a run in batches of one time", "a run of one reading per Eval")
}

// diffAlerts reports the first difference of two alert lists.
func diffAlerts(got, want []outpost.Alert, gotName, wantName string) []violation {
	for i := range max(len(got), len(want)) {
		if i < len(got) && i < len(want) && sameAlert(got[i], want[i], true) {
			continue
		}
		var g, w []outpost.Alert
		var rule string
		at := int64(-1 << 63)
		if i < len(got) {
			g, rule, at = got[i:i+1], got[i].Rule, got[i].ChangedAt
		}
		if i < len(want) {
			w, rule, at = want[i:i+1], want[i].Rule, max(at, want[i].ChangedAt)
		}
		return []violation{{rule: rule, at: at, msg: fmt.Sprintf("alert %d of %s:\n%s  of %s:\n%s", i, gotName, fmtAlerts(g), wantName, fmtAlerts(w))}}
	}
	return nil
}
