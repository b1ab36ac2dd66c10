package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
)

// A rule with send_resolved: false sends no resolved to the alert lane,
// but the dashboard, which shows the current state, still sees its
// episodes end, in their place among the transitions: a nodata that a
// reading ends, and a firing whose resolve is followed at once by pending.
func TestDashboardSeesSilencedResolves(t *testing.T) {
	set, err := rules.Parse("r.yaml", []byte(`rules:
  - {name: quiet, select: {metric: m, sensor: s1}, above: 50, no_data: {after: 2s}, send_resolved: false}
  - name: step
    select: {metric: m, sensor: s2}
    send_resolved: false
    levels:
      - {severity: critical, above: 1500, reset_below: 1300}
      - {severity: warning, above: 1000, for: 10s}
`))
	if err != nil {
		t.Fatal(err)
	}
	d, pub, _ := newTestDashboard(dashboardOptions{Alerts: true})
	out := make(chan []outpost.Alert, 16)
	r := newRuler(rules.NewEngine(set, nil), set, nil)
	r.out, r.dash = out, d
	r.engine.OnSilenced(r.silenced) // as run does
	var sent []string
	step := func(as []outpost.Alert, want map[string]string) {
		t.Helper()
		if len(as) > 0 || len(r.quiet) > 0 {
			r.emit(as)
		}
		for len(out) > 0 {
			for _, a := range <-out {
				sent = append(sent, fmt.Sprintf("%s %s #%d", a.State, a.Fingerprint, a.Seq))
			}
		}
		d.publishAlerts(false)
		got := map[string]string{}
		for rule, doc := range alertDocs(t, pub.take()) {
			got[rule] = doc.brief()
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("dashboard\n got %v\nwant %v", got, want)
		}
	}
	at := func(s float64) int64 { return t0.Add(time.Duration(s * float64(time.Second))).UnixNano() }

	step(r.engine.Eval([]outpost.Reading{live("s1", 0, 20), live("s2", 0, 1600)}, nil),
		map[string]string{"step": "firing critical 1600 1 [s2:firing]"})
	if f, p := r.firing.Load(), r.pending.Load(); f != 1 || p != 0 {
		t.Errorf("counts: %d firing, %d pending; want step/s2 firing", f, p)
	}
	step(r.engine.Tick(at(2), nil), map[string]string{"quiet": "nodata warning 20 1 [s1:nodata]"})
	if f, p := r.firing.Load(), r.pending.Load(); f != 1 || p != 0 {
		t.Errorf("counts: %d firing, %d pending; want step/s2 firing (nodata counts in neither)", f, p)
	}
	step(r.engine.Eval([]outpost.Reading{live("s1", 3, 20), live("s2", 3, 1100)}, nil), map[string]string{
		"quiet": "resolved warning 20 0 [s1:resolved]",
		"step":  "pending warning 1100 1 [s2:pending]",
	})
	// The counts for the status document follow the same order: step/s2
	// resolved (silenced) and went pending again, quiet/s1 resolved.
	if f, p := r.firing.Load(), r.pending.Load(); f != 0 || p != 1 {
		t.Errorf("counts: %d firing, %d pending; want 0 and 1 (step/s2 pending)", f, p)
	}
	want := "[firing step/s2 #1 nodata quiet/s1 #2 pending step/s2 #3]"
	if fmt.Sprint(sent) != want {
		t.Errorf("alert lane\n got %v\nwant %s", sent, want)
	}
}

func TestWithSilenced(t *testing.T) {
	a := func(fp string, seq uint64) outpost.Alert { return outpost.Alert{Fingerprint: fp, Seq: seq} }
	for _, c := range []struct {
		as, quiet []outpost.Alert
		want      string
	}{
		{nil, nil, "[]"},
		{[]outpost.Alert{a("x", 4)}, nil, "[x#4]"},
		{nil, []outpost.Alert{a("q", 3)}, "[q#3]"},
		{[]outpost.Alert{a("x", 4), a("y", 5)}, []outpost.Alert{a("q", 3)}, "[q#3 x#4 y#5]"},
		{[]outpost.Alert{a("x", 4), a("y", 5)}, []outpost.Alert{a("q", 4)}, "[x#4 q#4 y#5]"},
		{[]outpost.Alert{a("x", 4), a("y", 5)}, []outpost.Alert{a("q", 4), a("r", 5)}, "[x#4 q#4 y#5 r#5]"},
	} {
		var got []string
		for _, x := range withSilenced(c.as, c.quiet) {
			got = append(got, fmt.Sprintf("%s#%d", x.Fingerprint, x.Seq))
		}
		if fmt.Sprint(got) != c.want {
			t.Errorf("withSilenced(%v, %v) = %v, want %s", c.as, c.quiet, got, c.want)
		}
	}
}
