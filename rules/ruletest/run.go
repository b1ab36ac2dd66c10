package ruletest

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
)

// Result is the outcome of one test.
type Result struct {
	Test   *Test
	Got    []Transition // every transition the engine emitted, in order
	Diff   []DiffLine   // expected and emitted transitions in time order
	Passed bool
}

// Transition is one alert transition of a test run.
type Transition struct {
	At    time.Duration // ChangedAt, from t=0
	Alert outpost.Alert
}

// DiffLine is one line of a result: a transition that was expected and
// happened (Op ' '), was expected and did not happen ('-'), or happened
// unexpected ('+', only with only_expected).
type DiffLine struct {
	Op   byte
	At   time.Duration
	Text string
}

// LoadRules loads the rules files the test file names, relative to it.
// Errors are the rules package's, each as file:line:col: message.
func (f *File) LoadRules() (*rules.Set, error) {
	paths, err := f.ruleFiles()
	if err != nil {
		return nil, err
	}
	return rules.LoadFiles(paths...)
}

// Run runs the test against set, on a fresh engine.
func (t *Test) Run(set *rules.Set) *Result {
	e := rules.NewEngine(set, &rules.Options{SensorLabels: t.Labels})
	var alerts []outpost.Alert
	rs := make([]outpost.Reading, 0, len(t.Input))
	for step := 0; time.Duration(step)*t.Interval <= t.Until; step++ {
		ts := Epoch + int64(time.Duration(step)*t.Interval)
		rs = rs[:0]
		for _, in := range t.Input {
			if step < len(in.Samples) && !in.Samples[step].Missing {
				rs = append(rs, outpost.Reading{Sensor: in.Sensor, Metric: in.Metric, TS: ts, Value: in.Samples[step].Value})
			}
		}
		alerts = e.Eval(rs, alerts)
		alerts = e.Tick(ts, alerts)
	}
	res := &Result{Test: t}
	for _, a := range alerts {
		res.Got = append(res.Got, Transition{At: time.Duration(a.ChangedAt - Epoch), Alert: a})
	}
	res.Diff, res.Passed = t.diff(res.Got)
	return res
}

// diff matches expectations to transitions. The most specific
// expectations pick first, so that a vaguer one cannot take the
// transition a precise one needs.
func (t *Test) diff(got []Transition) ([]DiffLine, bool) {
	order := make([]int, len(t.Expect))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return t.Expect[b].fields() - t.Expect[a].fields() })
	used := make([]bool, len(got))
	matched := make([]bool, len(t.Expect))
	for _, i := range order {
		x := &t.Expect[i]
		for j := range got {
			if !used[j] && got[j].At == x.At && x.matches(&got[j].Alert) {
				used[j], matched[i] = true, true
				break
			}
		}
	}
	type line struct {
		DiffLine
		rank, seq int // at the same time: matched, then missing, then unexpected
	}
	var lines []line
	passed := true
	for j, g := range got {
		switch {
		case used[j]:
			lines = append(lines, line{DiffLine{' ', g.At, describe(&g.Alert)}, 0, j})
		case t.OnlyExpected:
			lines = append(lines, line{DiffLine{'+', g.At, describe(&g.Alert)}, 2, j})
			passed = false
		}
	}
	for i := range t.Expect {
		if !matched[i] {
			x := &t.Expect[i]
			lines = append(lines, line{DiffLine{'-', x.At, x.describe()}, 1, i})
			passed = false
		}
	}
	slices.SortStableFunc(lines, func(a, b line) int {
		return cmp.Or(cmp.Compare(a.At, b.At), cmp.Compare(a.rank, b.rank), cmp.Compare(a.seq, b.seq))
	})
	out := make([]DiffLine, len(lines))
	for i, l := range lines {
		out[i] = l.DiffLine
	}
	return out, passed
}

// Report returns the result for people: nothing for a pass, else one line
// per transition, "-" expected but missing, "+" emitted but not expected.
func (r *Result) Report() string {
	if r.Passed {
		return ""
	}
	var b strings.Builder
	b.WriteString("    (- expected, not emitted; + emitted, not expected)\n")
	for _, l := range r.Diff {
		fmt.Fprintf(&b, "  %c %-7s %s\n", l.Op, FormatOffset(l.At), l.Text)
	}
	return b.String()
}

// FormatOffset writes an offset from t=0 the way test files do: "7m",
// "1h30m", "90s" rather than "7m0s".
func FormatOffset(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// matches reports whether a has every field x gives.
func (x *Expectation) matches(a *outpost.Alert) bool {
	switch {
	case x.State != a.State,
		x.Rule != "" && x.Rule != a.Rule,
		x.Fingerprint != "" && x.Fingerprint != a.Fingerprint,
		x.Sensor != "" && x.Sensor != a.Labels[rules.LabelSensor],
		x.Severity != "" && x.Severity != a.Severity,
		x.Value != nil && !near(*x.Value, a.Value),
		x.Message != nil && *x.Message != a.Message:
		return false
	}
	for k, v := range x.Labels {
		if got, ok := a.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// fields counts the fields x gives, for matching the most specific first.
func (x *Expectation) fields() int {
	n := len(x.Labels)
	for _, s := range []string{x.Rule, x.Fingerprint, x.Sensor, x.Severity} {
		if s != "" {
			n++
		}
	}
	if x.Value != nil {
		n++
	}
	if x.Message != nil {
		n++
	}
	return n
}

func (x *Expectation) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s ", x.State)
	switch {
	case x.Fingerprint != "":
		b.WriteString(x.Fingerprint)
		if x.Sensor != "" {
			b.WriteString(" sensor=" + x.Sensor)
		}
	case x.Sensor != "":
		b.WriteString(x.Rule + "/" + x.Sensor)
	default:
		b.WriteString(x.Rule)
	}
	if x.Severity != "" {
		b.WriteString(" severity=" + x.Severity)
	}
	if x.Value != nil {
		b.WriteString(" value=" + formatFloat(*x.Value))
	}
	for _, k := range slices.Sorted(maps.Keys(x.Labels)) {
		fmt.Fprintf(&b, " %s=%q", k, x.Labels[k])
	}
	if x.Message != nil {
		fmt.Fprintf(&b, " message=%q", *x.Message)
	}
	fmt.Fprintf(&b, " (line %d)", x.Line)
	return b.String()
}

func describe(a *outpost.Alert) string {
	return fmt.Sprintf("%-8s %s severity=%s value=%s", a.State, a.Fingerprint, a.Severity, formatFloat(a.Value))
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// near compares floats with a relative tolerance, so that 0.1+0.2
// matches 0.3 in a test file.
func near(want, got float64) bool {
	if want == got {
		return true
	}
	return math.Abs(want-got) <= 1e-9*math.Max(math.Abs(want), math.Abs(got))
}
