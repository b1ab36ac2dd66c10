package rules

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
)

const sec = int64(time.Second)

func rd(sensor, metric string, t float64, v float64) outpost.Reading {
	return outpost.Reading{Sensor: sensor, Metric: metric, TS: int64(t * float64(sec)), Value: v}
}

// brief renders alerts as "state fingerprint value started→changed #seq".
func brief(as []outpost.Alert) string {
	var b strings.Builder
	for _, a := range as {
		fmt.Fprintf(&b, "%s %s %g %g→%g #%d\n", a.State, a.Fingerprint, a.Value,
			float64(a.StartedAt)/float64(sec), float64(a.ChangedAt)/float64(sec), a.Seq)
	}
	return b.String()
}

// step is one Eval (readings) or Tick (tick > 0) and the alerts it must emit.
type step struct {
	rs   []outpost.Reading
	tick float64
	want string
}

func run(t *testing.T, e *Engine, steps []step) {
	t.Helper()
	for i, s := range steps {
		var got []outpost.Alert
		if s.rs != nil {
			got = e.Eval(s.rs, nil)
		} else {
			got = e.Tick(int64(s.tick*float64(sec)), nil)
		}
		if b := brief(got); b != s.want {
			t.Fatalf("step %d: got\n%swant\n%s", i, b, s.want)
		}
	}
}

func one(r outpost.Reading) []outpost.Reading { return []outpost.Reading{r} }

func TestAboveFiresAtOnce(t *testing.T) {
	e := NewEngine(mustParse(t, "rules:\n  - {name: hot, select: {metric: temp}, above: 25}\n"), nil)
	run(t, e, []step{
		{rs: one(rd("s", "temp", 1, 24)), want: ""},
		{rs: one(rd("s", "temp", 2, 25)), want: ""}, // strictly above
		{rs: one(rd("s", "temp", 3, 26)), want: "firing hot/s 26 3→3 #1\n"},
		{rs: one(rd("s", "temp", 4, 27)), want: ""},
		{rs: one(rd("s", "temp", 5, 20)), want: "resolved hot/s 20 3→5 #2\n"},
		{rs: one(rd("s", "temp", 6, 20)), want: ""},
		{rs: one(rd("s", "temp", 7, 30)), want: "firing hot/s 30 7→7 #3\n"},
	})
}

func TestBelow(t *testing.T) {
	e := NewEngine(mustParse(t, "rules:\n  - {name: cold, select: {metric: temp}, below: -5}\n"), nil)
	run(t, e, []step{
		{rs: []outpost.Reading{rd("s", "temp", 1, 0), rd("s", "temp", 2, -5), rd("s", "temp", 3, -5.5)}, want: "firing cold/s -5.5 3→3 #1\n"},
		{rs: one(rd("s", "temp", 4, -4)), want: "resolved cold/s -4 3→4 #2\n"},
	})
}

func TestForByReadingTime(t *testing.T) {
	e := NewEngine(mustParse(t, "rules:\n  - {name: hot, select: {metric: temp}, above: 25, for: 10s}\n"), nil)
	run(t, e, []step{
		{rs: one(rd("s", "temp", 100, 26)), want: "pending hot/s 26 100→100 #1\n"},
		{rs: one(rd("s", "temp", 105, 27)), want: ""},
		{rs: one(rd("s", "temp", 109.999, 27)), want: ""},
		{rs: one(rd("s", "temp", 110, 28)), want: "firing hot/s 28 100→110 #2\n"},
		{rs: one(rd("s", "temp", 111, 28)), want: ""},
		{rs: one(rd("s", "temp", 112, 1)), want: "resolved hot/s 1 100→112 #3\n"},
	})
}

func TestPendingToInactive(t *testing.T) {
	e := NewEngine(mustParse(t, "rules:\n  - {name: hot, select: {metric: temp}, above: 25, for: 10s}\n"), nil)
	run(t, e, []step{
		{rs: one(rd("s", "temp", 0, 26)), want: "pending hot/s 26 0→0 #1\n"},
		{rs: one(rd("s", "temp", 5, 24)), want: "inactive hot/s 24 0→5 #2\n"}, // cleared before For
		{tick: 11, want: ""},                           // no longer pending: Tick fires nothing
		{rs: one(rd("s", "temp", 11.5, 24)), want: ""}, // inactive stays silent
		{rs: one(rd("s", "temp", 12, 26)), want: "pending hot/s 26 12→12 #3\n"},
		{rs: one(rd("s", "temp", 20, 26)), want: ""}, // 8s held, not 10
		{tick: 21, want: ""},
		{rs: one(rd("s", "temp", 22, 26)), want: "firing hot/s 26 12→22 #4\n"},
	})
	if len(e.live) != 1 || e.live[0].state != outpost.StateFiring {
		t.Errorf("live list: %d", len(e.live))
	}
}

// The inactive transition is an ordinary alert: it renders its message and
// passes the wire contract, so the outbox and ingest take it like any other.
func TestPendingToInactiveAlert(t *testing.T) {
	e := NewEngine(mustParse(t, "rules:\n  - {name: hot, select: {metric: temp}, above: 25, for: 10s, message: \"{{ .State }} {{ .Value }}\"}\n"), &Options{Gateway: "gw"})
	as := e.Eval([]outpost.Reading{rd("s", "temp", 0, 26), rd("s", "temp", 3, 24)}, nil)
	if len(as) != 2 {
		t.Fatalf("got %s", brief(as))
	}
	a := as[1]
	if a.State != outpost.StateInactive || a.Message != "inactive 24" || a.Labels[LabelSensor] != "s" || a.StartedAt != 0 || a.ChangedAt != 3*sec {
		t.Fatalf("inactive alert %+v", a)
	}
	b := &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindAlert, Gateway: "gw", Epoch: 1, Seq: 1, Alerts: as}
	if err := b.Validate(); err != nil {
		t.Fatalf("inactive alert fails the wire contract: %v", err)
	}
}

func TestTickFiresPending(t *testing.T) {
	e := NewEngine(mustParse(t, `rules:
  - {name: hot, select: {metric: temp}, above: 25, for: 10s}
  - {name: dry, select: {metric: hum}, below: 20, for: 5s}
`), nil)
	run(t, e, []step{
		{rs: []outpost.Reading{rd("a", "temp", 0, 26), rd("b", "hum", 1, 10)}, want: "pending hot/a 26 0→0 #1\npending dry/b 10 1→1 #2\n"},
		{tick: 5.5, want: ""},
		{tick: 6, want: "firing dry/b 10 1→6 #3\n"},
		{tick: 9, want: ""},
		{tick: 10, want: "firing hot/a 26 0→10 #4\n"},
		{tick: 11, want: ""},
		{rs: one(rd("a", "temp", 11, 30)), want: ""}, // already firing
		{rs: one(rd("a", "temp", 9, 0)), want: ""},   // older than the change Tick made
		{rs: one(rd("a", "temp", 12, 0)), want: "resolved hot/a 0 0→12 #5\n"},
	})
}

func TestSeveralSensors(t *testing.T) {
	e := NewEngine(mustParse(t, `rules:
  - {name: hot, select: {metric: temp}, above: 25}
  - {name: hot1, select: {metric: temp, sensor: s1}, above: 20}
`), nil)
	run(t, e, []step{
		{rs: []outpost.Reading{rd("s1", "temp", 1, 26), rd("s2", "temp", 1, 22), rd("s1", "hum", 1, 99)},
			want: "firing hot/s1 26 1→1 #1\nfiring hot1/s1 26 1→1 #2\n"},
		{rs: []outpost.Reading{rd("s2", "temp", 2, 26), rd("s1", "temp", 2, 22)},
			want: "firing hot/s2 26 2→2 #3\nresolved hot/s1 22 1→2 #4\n"},
	})
	if len(e.series) != 2 {
		t.Errorf("series: want s1/temp and s2/temp only, got %v", e.series)
	}
}

func TestIgnoredReadings(t *testing.T) {
	e := NewEngine(mustParse(t, "rules:\n  - {name: hot, select: {metric: temp}, above: 25}\n"), nil)
	bad := rd("s", "temp", 1, 99)
	bad.Quality = outpost.QualityBad
	unsure := rd("s", "temp", 4, 99)
	unsure.Quality = outpost.QualityUncertain
	run(t, e, []step{
		{rs: []outpost.Reading{bad, rd("s", "temp", 2, math.NaN())}, want: ""},
		{rs: one(rd("s", "temp", 3, 26)), want: "firing hot/s 26 3→3 #1\n"},
		{rs: []outpost.Reading{bad, rd("s", "temp", 3.5, math.NaN())}, want: ""}, // neither resolves
		{rs: one(unsure), want: ""},
		{rs: one(rd("s", "temp", 5, 0)), want: "resolved hot/s 0 3→5 #2\n"},
	})
}

func TestAlertContent(t *testing.T) {
	e := NewEngine(mustParse(t, `rules:
  - name: hot
    select: {metric: temperature}
    above: 25
    severity: critical
    message: "{{ .State }}: {{ .Gateway }}/{{ .Sensor }} {{ .Metric }} is {{ .Value }} ({{ .Severity }}, team {{ .Labels.team }}{{ .Labels.nope }})"
    labels: {team: ops}
  - name: plain
    select: {metric: temperature}
    above: 25.5
`), &Options{Gateway: "gw-01"})
	got := e.Eval([]outpost.Reading{rd("dev1-env", "temperature", 7, 25.75)}, nil)
	want := []outpost.Alert{{
		Rule:        "hot",
		Fingerprint: "hot/dev1-env",
		State:       outpost.StateFiring,
		Severity:    "critical",
		Value:       25.75,
		Labels:      map[string]string{"team": "ops", "sensor": "dev1-env", "metric": "temperature", "gateway": "gw-01"},
		Message:     "firing: gw-01/dev1-env temperature is 25.75 (critical, team ops)",
		StartedAt:   7 * sec,
		ChangedAt:   7 * sec,
		Seq:         1,
	}, {
		Rule:        "plain",
		Fingerprint: "plain/dev1-env",
		State:       outpost.StateFiring,
		Severity:    "warning",
		Value:       25.75,
		Labels:      map[string]string{"sensor": "dev1-env", "metric": "temperature", "gateway": "gw-01"},
		Message:     "dev1-env temperature is 25.75 (plain: value > 25.5)",
		StartedAt:   7 * sec,
		ChangedAt:   7 * sec,
		Seq:         2,
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
	// Each alert owns its labels.
	got[0].Labels["team"] = "x"
	if again := e.Eval([]outpost.Reading{rd("dev1-env", "temperature", 8, 0)}, nil); again[0].Labels["team"] != "ops" {
		t.Errorf("labels shared between alerts: %v", again[0].Labels)
	}
}

func TestEvalAppends(t *testing.T) {
	e := NewEngine(mustParse(t, "rules:\n  - {name: hot, select: {metric: temp}, above: 25}\n"), nil)
	dst := make([]outpost.Alert, 1, 4)
	dst = e.Eval(one(rd("s", "temp", 1, 26)), dst)
	if len(dst) != 2 || dst[1].Rule != "hot" {
		t.Fatalf("got %+v", dst)
	}
}

func TestNilSetAndOptions(t *testing.T) {
	e := NewEngine(nil, nil)
	if got := e.Eval(one(rd("s", "temp", 1, 26)), nil); len(got) != 0 {
		t.Fatal(got)
	}
	if got := e.Tick(100*sec, nil); len(got) != 0 {
		t.Fatal(got)
	}
	// A hand-built rule has no compiled condition: it is ignored, not a panic.
	e = NewEngine(&Set{Rules: []*Rule{{Name: "x", Select: Selector{Metric: "temp"}}, nil}}, nil)
	if got := e.Eval(one(rd("s", "temp", 1, 26)), nil); len(got) != 0 {
		t.Fatal(got)
	}
}

func TestEvalNoAllocs(t *testing.T) {
	e := NewEngine(mustParse(t, `rules:
  - {name: hot, select: {metric: temp}, above: 25, for: 1m}
  - {name: s1, select: {metric: temp, sensor: s1}, below: -100}
`), nil)
	rs := []outpost.Reading{rd("s1", "temp", 0, 20), rd("s2", "temp", 0, 20), rd("s1", "hum", 0, 50)}
	dst := e.Eval(rs, nil) // first sight of each series allocates
	ts := int64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		ts++
		for i := range rs {
			rs[i].TS = ts
		}
		dst = e.Eval(rs, dst[:0])
	})
	if allocs != 0 {
		t.Fatalf("Eval allocates %v times per call on the no-transition path", allocs)
	}
}
