package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/outposthq/outpost"
)

// sbrief is brief with the severity.
func sbrief(as []outpost.Alert) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "%s/%s %s %g %g→%g #%d\n", a.State, a.Severity, a.Fingerprint, a.Value,
			float64(a.StartedAt)/float64(sec), float64(a.ChangedAt)/float64(sec), a.Seq)
	}
	return b.String()
}

func runS(t *testing.T, e *Engine, steps []step) {
	t.Helper()
	for i, s := range steps {
		var got []outpost.Alert
		if s.rs != nil {
			got = e.Eval(s.rs, nil)
		} else {
			got = e.Tick(int64(s.tick*float64(sec)), nil)
		}
		if b := sbrief(got); b != s.want {
			t.Fatalf("step %d: got\n%swant\n%s", i, b, s.want)
		}
	}
}

const freezer = `rules:
  - name: freezer
    select: {metric: temp, sensor: "freezer-*"}
    levels:
      - {severity: critical, above: -10, for: 2m, reset_below: -16.5}
      - {severity: warning,  above: -15, for: 5m, reset_below: -16.5}
`

// The example: warmer than -15 for 5m is a warning, warmer than
// -10 for 2m critical, over only below -16.5.
func TestFreezerHysteresis(t *testing.T) {
	e := NewEngine(mustParse(t, freezer), nil)
	f := func(ts, v float64) []outpost.Reading { return one(rd("freezer-1", "temp", ts, v)) }
	runS(t, e, []step{
		{rs: f(0, -20), want: ""},
		{rs: one(rd("other", "temp", 0, 50)), want: ""}, // not selected by the glob
		{rs: f(60, -14), want: "pending/warning freezer/freezer-1 -14 60→60 #1\n"},
		{rs: f(120, -9), want: ""}, // critical's timer starts
		{tick: 239, want: ""},      //
		{tick: 240, want: "firing/critical freezer/freezer-1 -9 60→240 #2\n"},
		{rs: f(300, -12), want: ""}, // below -10 but not reset
		{rs: f(400, -16), want: ""}, // still above -16.5
		{rs: f(500, -17), want: "resolved/critical freezer/freezer-1 -17 60→500 #3\n"},
		{rs: f(510, -17), want: ""},
	})
}

func TestLevelsEscalateAndStepDown(t *testing.T) {
	e := NewEngine(mustParse(t, `rules:
  - name: f
    select: {metric: temp}
    levels:
      - {severity: critical, above: -10, for: 2m, reset_below: -12}
      - {severity: warning,  above: -15, for: 5m, reset_below: -16.5}
`), nil)
	f := func(ts, v float64) []outpost.Reading { return one(rd("s", "temp", ts, v)) }
	runS(t, e, []step{
		{rs: f(0, -14), want: "pending/warning f/s -14 0→0 #1\n"},
		{tick: 300, want: "firing/warning f/s -14 0→300 #2\n"},
		{rs: f(310, -9), want: ""},
		{rs: f(430, -9), want: "firing/critical f/s -9 0→430 #3\n"},
		{rs: f(440, -11), want: ""},                                  // critical not reset yet
		{rs: f(450, -14), want: "firing/warning f/s -14 0→450 #4\n"}, // critical reset, warning not
		{rs: f(460, -20), want: "resolved/warning f/s -20 0→460 #5\n"},
	})
}

func TestKeepFiringFor(t *testing.T) {
	e := NewEngine(mustParse(t, "rules:\n  - {name: h, select: {metric: t}, above: 25, keep_firing_for: 10s}\n"), nil)
	f := func(ts, v float64) []outpost.Reading { return one(rd("s", "t", ts, v)) }
	runS(t, e, []step{
		{rs: f(0, 26), want: "firing/warning h/s 26 0→0 #1\n"},
		{rs: f(5, 20), want: ""},
		{rs: f(8, 26), want: ""}, // back: the keep timer stops
		{rs: f(9, 20), want: ""},
		{tick: 18, want: ""},
		{tick: 19, want: "resolved/warning h/s 20 0→19 #2\n"},
	})
}

func TestExprConditionAndReset(t *testing.T) {
	e := NewEngine(mustParse(t, `rules:
  - name: x
    select: {metric: t}
    condition: 'value > 10 && labels.sensor == "s" && t == value'
    reset: 'value < 5'
`), nil)
	f := func(ts, v float64) []outpost.Reading { return one(rd("s", "t", ts, v)) }
	runS(t, e, []step{
		{rs: f(0, 11), want: "firing/warning x/s 11 0→0 #1\n"},
		{rs: f(1, 7), want: ""},
		{rs: f(2, 4), want: "resolved/warning x/s 4 0→2 #2\n"},
	})
}

func TestWindowCondition(t *testing.T) {
	e := NewEngine(mustParse(t, `rules:
  - name: avg
    select: {metric: t}
    condition: 'avg(t, "10s") > 5 && count(t, "10s") >= 3 && rate(t, "10s") >= 0 && age(t) < 1'
`), nil)
	f := func(ts, v float64) []outpost.Reading { return one(rd("s", "t", ts, v)) }
	runS(t, e, []step{
		{rs: f(0, 9), want: ""}, // count 1
		{rs: f(1, 9), want: ""}, // count 2
		{rs: f(2, 9), want: "firing/warning avg/s 9 2→2 #1\n"},
		{rs: f(3, 0), want: "resolved/warning avg/s 0 2→3 #2\n"}, // rate < 0
		{rs: f(20, 8), want: ""},                                 // window emptied: count 1
	})
}

// The incremental windows equal a recompute over the same readings.
func TestWindowMatchesRecompute(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	spec := windowSpec{dur: int64(30 * sec), min: true, max: true}
	w := window{spec: &spec}
	var all []sample
	ts := int64(0)
	for i := range 5000 {
		ts += rng.Int64N(int64(5 * sec))
		v := math.Round(rng.NormFloat64()*1000) / 10
		w.push(ts, v)
		all = append(all, sample{ts, v})
		w.evict(ts)
		var in []sample
		for _, s := range all {
			if s.ts > ts-spec.dur {
				in = append(in, s)
			}
		}
		sum, lo, hi := 0.0, math.Inf(1), math.Inf(-1)
		for _, s := range in {
			sum += s.v
			lo, hi = min(lo, s.v), max(hi, s.v)
		}
		want := map[windowFn]float64{fnCount: float64(len(in)), fnAvg: sum / float64(len(in)), fnMin: lo, fnMax: hi, fnRate: math.NaN()}
		if len(in) >= 2 && in[len(in)-1].ts != in[0].ts {
			want[fnRate] = (in[len(in)-1].v - in[0].v) / (float64(in[len(in)-1].ts-in[0].ts) / 1e9)
		}
		for fn, x := range want {
			got := w.eval(fn)
			if !(math.Abs(got-x) <= 1e-9*max(1, math.Abs(x)) || math.IsNaN(got) && math.IsNaN(x)) {
				t.Fatalf("reading %d fn %d: got %v, want %v", i, fn, got, x)
			}
		}
	}
}

func TestJoinOnLabel(t *testing.T) {
	set := mustParse(t, `rules:
  - name: door-open-while-cooling
    select: {metrics: [door_open, compressor_power], labels: {room: store}}
    group_by: [device]
    condition: 'door_open > 0.5 && avg(compressor_power, "1m") > 50'
    for: 30s
`)
	e := NewEngine(set, &Options{SensorLabels: map[string]map[string]string{
		"door-1": {"device": "f1", "room": "store"}, "comp-1": {"device": "f1", "room": "store"},
		"door-2": {"device": "f2", "room": "store"}, "comp-9": {"device": "f9", "room": "lab"},
	}})
	runS(t, e, []step{
		{rs: one(rd("comp-1", "compressor_power", 0, 60)), want: ""},
		{rs: one(rd("comp-9", "compressor_power", 0, 60)), want: ""}, // not in the room
		{rs: one(rd("door-2", "door_open", 1, 1)), want: ""},         // f2 has no compressor reading
		{rs: one(rd("door-1", "door_open", 1, 1)), want: "pending/warning door-open-while-cooling/f1 1 1→1 #1\n"},
		{rs: one(rd("comp-1", "compressor_power", 31, 60)), want: "firing/warning door-open-while-cooling/f1 60 1→31 #2\n"},
		{rs: one(rd("door-1", "door_open", 32, 0)), want: "resolved/warning door-open-while-cooling/f1 0 1→32 #3\n"},
	})
	a := e.Eval(one(rd("door-1", "door_open", 40, 1)), nil)
	if len(a) != 1 || a[0].Labels["device"] != "f1" || a[0].Labels[LabelSensor] != "" {
		t.Fatalf("labels: %+v", a)
	}
}

func TestNoData(t *testing.T) {
	for _, tc := range []struct {
		state string
		want  []step
	}{
		{"nodata", []step{
			{rs: one(rd("s", "t", 0, 20)), want: ""},
			{tick: 119, want: ""},
			{tick: 120, want: "nodata/warning h/s 20 120→120 #1\n"},
			{tick: 200, want: ""},
			{rs: one(rd("s", "t", 210, 20)), want: "resolved/warning h/s 20 120→210 #2\n"},
			{tick: 330, want: "nodata/warning h/s 20 330→330 #3\n"},
			{rs: one(rd("s", "t", 340, 30)), want: "firing/warning h/s 30 340→340 #4\n"},
		}},
		{"firing", []step{
			{rs: one(rd("s", "t", 0, 20)), want: ""},
			{tick: 120, want: "firing/page h/s 20 120→120 #1\n"},
			{rs: one(rd("s", "t", 130, 20)), want: "resolved/page h/s 20 120→130 #2\n"},
		}},
		{"resolved", []step{
			{rs: one(rd("s", "t", 0, 30)), want: "firing/warning h/s 30 0→0 #1\n"},
			{tick: 120, want: "resolved/warning h/s 30 0→120 #2\n"},
			{tick: 500, want: ""},
		}},
	} {
		t.Run(tc.state, func(t *testing.T) {
			e := NewEngine(mustParse(t, "rules:\n  - {name: h, select: {metric: t}, above: 25, no_data: {after: 2m, state: "+tc.state+", severity: page}}\n"), nil)
			if tc.state == "nodata" || tc.state == "resolved" {
				e = NewEngine(mustParse(t, "rules:\n  - {name: h, select: {metric: t}, above: 25, no_data: {after: 2m, state: "+tc.state+"}}\n"), nil)
			}
			runS(t, e, tc.want)
		})
	}
}

func TestRepeatAndSendResolved(t *testing.T) {
	e := NewEngine(mustParse(t, "rules:\n  - {name: h, select: {metric: t}, above: 25, repeat: 10m, send_resolved: false}\n"), nil)
	runS(t, e, []step{
		{rs: one(rd("s", "t", 0, 26)), want: "firing/warning h/s 26 0→0 #1\n"},
		{tick: 599, want: ""},
		{tick: 600, want: "firing/warning h/s 26 0→600 #2\n"}, // a repeat is stamped when sent
		{tick: 700, want: ""},
		{tick: 1200, want: "firing/warning h/s 26 0→1200 #3\n"},
		{rs: one(rd("s", "t", 1201, 20)), want: ""}, // no resolved
		{tick: 1900, want: ""},
		{rs: one(rd("s", "t", 1902, 26)), want: "firing/warning h/s 26 1902→1902 #4\n"},
	})
}

// A repeat is stamped when it is sent; the episode keeps its start. It
// is not a transition: a reading newer than the last transition but older
// than the repeat still counts.
func TestRepeatStampedWhenSent(t *testing.T) {
	e := NewEngine(mustParse(t, "rules:\n  - {name: r, select: {metric: co2}, above: 1000, repeat: 10m}\n"), nil)
	runS(t, e, []step{
		{rs: one(rd("s", "co2", 0, 1200)), want: "firing/warning r/s 1200 0→0 #1\n"},
		{tick: 599, want: ""},
		{tick: 600, want: "firing/warning r/s 1200 0→600 #2\n"},
		{tick: 1199, want: ""},
		{tick: 1200, want: "firing/warning r/s 1200 0→1200 #3\n"},
		{rs: one(rd("s", "co2", 1150, 800)), want: "resolved/warning r/s 800 0→1150 #4\n"},
	})
}

func TestAnnotations(t *testing.T) {
	e := NewEngine(mustParse(t, `rules:
  - name: h
    select: {metric: t}
    group_by: [device]
    above: 25
    annotations: {summary: "{{ .Labels.device }} at {{ .Value }}", empty: ""}
    message: "{{ .Annotations.summary }}! ({{ .Severity }} {{ .State }})"
`), &Options{SensorLabels: map[string]map[string]string{"s": {"device": "f1"}}})
	a := e.Eval(one(rd("s", "t", 1, 26.5)), nil)
	if len(a) != 1 || a[0].Message != "f1 at 26.5! (warning firing)" || a[0].Fingerprint != "h/f1" {
		t.Fatalf("got %+v", a)
	}
	// The rendered annotations travel with the alert; an empty template
	// renders none.
	if want := map[string]string{"summary": "f1 at 26.5"}; !reflect.DeepEqual(a[0].Annotations, want) {
		t.Fatalf("annotations %v, want %v", a[0].Annotations, want)
	}
}

func TestStateRestore(t *testing.T) {
	src := "rules:\n  - {name: h, select: {metric: t}, above: 25, for: 5m}\n  - {name: g, select: {metric: t}, above: 0}\n"
	e1 := NewEngine(mustParse(t, src), nil)
	runS(t, e1, []step{{rs: one(rd("s", "t", 0, 26)), want: "pending/warning h/s 26 0→0 #1\nfiring/warning g/s 26 0→0 #2\n"}})
	b, err := json.Marshal(e1.State())
	if err != nil {
		t.Fatal(err)
	}
	var st EngineState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	// The same rules in another layout: same hashes.
	same := `rules:
  - name: h   # comment
    for: 300s
    above: 25.0
    select:
      metric: t
    severity: warning
  - name: g
    select: {metric: t}
    above: 0
`
	e2 := NewEngine(mustParse(t, same), nil)
	if n := e2.Restore(st); n != 2 {
		t.Fatalf("restored %d of %s", n, b)
	}
	runS(t, e2, []step{
		{tick: 299, want: ""},
		{tick: 300, want: "firing/warning h/s 26 0→300 #3\n"}, // the for timer kept running
		{rs: one(rd("s", "t", 301, -1)), want: "resolved/warning h/s -1 0→301 #4\nresolved/warning g/s -1 0→301 #5\n"},
	})
	changed := NewEngine(mustParse(t, "rules:\n  - {name: h, select: {metric: t}, above: 26, for: 5m}\n"), nil)
	if n := changed.Restore(st); n != 0 {
		t.Fatalf("a changed rule restored %d", n)
	}
}

func TestHashStable(t *testing.T) {
	h := func(src string) string { return mustParse(t, src).Rules[0].Hash() }
	base := h("rules:\n  - {name: a, select: {metric: t}, above: 1}\n")
	for _, src := range []string{
		"rules:\n  - name: a\n    # x\n    above: 1.0\n    select:\n      metric: t\n",
		"rules:\n  - {name: a, select: {metrics: [t]}, above: 1, severity: warning, group_by: [sensor], send_resolved: true}\n",
	} {
		if got := h(src); got != base || got == "" {
			t.Errorf("%q: hash %s, want %s", src, got, base)
		}
	}
	for _, src := range []string{
		"rules:\n  - {name: a, select: {metric: t}, above: 2}\n",
		"rules:\n  - {name: a, select: {metric: t}, above: 1, for: 1s}\n",
		"rules:\n  - {name: a, select: {metric: t}, above: 1, labels: {x: y}}\n",
	} {
		if h(src) == base {
			t.Errorf("%q: same hash as a different rule", src)
		}
	}
}

func TestStats(t *testing.T) {
	e := NewEngine(mustParse(t, "rules:\n  - {name: h, select: {metric: t}, above: 25}\n  - {name: x, select: {metric: t}, condition: 'int(labels.nope) > 0'}\n"), nil)
	for i := range 200 {
		e.Eval(one(rd("s", "t", float64(i), float64(i%50))), nil)
	}
	st := e.Stats()
	if len(st) != 2 || st[0].Rule != "h" || st[0].Evaluations != 200 || st[0].Transitions != 7 || st[0].Time <= 0 || st[1].Errors != 200 {
		t.Fatalf("stats %+v", st)
	}
}

// Every problem is reported, positioned inside expressions.
func TestBadExpressions(t *testing.T) {
	src := `rules:
  - name: a
    select: {metrics: [t, u]}
    condition: 'avg(t, "5x") > 1 && nope > 2'
  - name: b
    select: {metric: t}
    condition: "value + 1"
  - name: c
    select: {metric: t}
    condition: |
      t > 1 &&
        frob(t)
  - name: d
    select: {metric: t}
    levels:
      - {severity: critical, above: 2, reset_above: 3}
      - {severity: critical, below: 1, reset: 'x'}
    annotations: {summary: "{{ .Nope }}"}
    for: 1s
  - name: e
    select: {metric: t}
    condition: metric["zz"] > max(u, 5)
`
	want := `rules.yaml:4:17: rules[0].condition: avg: invalid window "5x" (want a positive duration like "30s" or "5m")
rules.yaml:4:37: rules[0].condition: unknown name nope
rules.yaml:7:17: rules[1].condition: expected bool, but got float64
rules.yaml:12:9: rules[2].condition: unknown name frob
rules.yaml:16:53: rules[3].levels[0].reset_above: goes with below
rules.yaml:17:20: rules[3].levels[1].severity: severity "critical" is used by levels[0] too
rules.yaml:17:47: rules[3].levels[1].reset: goes with condition (use reset_below or reset_above with a threshold)
rules.yaml:18:28: rules[3].annotations.summary: invalid template: at <.Nope>: can't evaluate field Nope in type *rules.MessageData
rules.yaml:19:5: rules[3].for: goes in each level when levels are given
rules.yaml:22:22: rules[4].condition: metric "zz" is not selected by the rule (it selects t)
rules.yaml:22:31: rules[4].condition: max: "u" is not a metric the rule selects (it selects t)`
	set, err := Parse("rules.yaml", []byte(src))
	if err == nil || set != nil {
		t.Fatalf("no error, set %+v", set)
	}
	if err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}

func TestTooManyAnnotations(t *testing.T) {
	var b strings.Builder
	b.WriteString("rules:\n  - name: r\n    select: {metric: m}\n    above: 1\n    annotations:\n")
	for i := range 65 {
		fmt.Fprintf(&b, "      a%d: x\n", i)
	}
	_, err := Parse("r.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "r.yaml:6:7: rules[0].annotations: 65 annotations, at most 64") {
		t.Fatalf("got %v", err)
	}
}
