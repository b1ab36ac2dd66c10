package rules

import (
	"strings"
	"testing"

	"github.com/outposthq/outpost"
)

// Every transition renders the message with its own State, the state it
// leaves, and the episode's start and length so far.
func TestMessagePerTransition(t *testing.T) {
	e := NewEngine(mustParse(t, `rules:
  - name: hot
    select: {metric: t}
    levels:
      - {severity: critical, above: 30, for: 5s}
      - {severity: warning, above: 25, for: 10s}
    repeat: 1m
    no_data: {after: 2m}
    message: "{{ .Previous }}->{{ .State }} {{ .Severity }} {{ .Value }} since {{ .Since.Unix }} after {{ .Duration }} (for {{ .For }})"
`), nil)
	for i, s := range []struct {
		rs   []outpost.Reading
		tick float64
		want string
	}{
		{rs: one(rd("s", "t", 0, 26)), want: "inactive->pending warning 26 since 0 after 0s (for 10s)"},
		{rs: one(rd("s", "t", 5, 20)), want: "pending->inactive warning 20 since 0 after 5s (for 10s)"},
		{rs: one(rd("s", "t", 10, 26)), want: "inactive->pending warning 26 since 10 after 0s (for 10s)"},
		{rs: one(rd("s", "t", 20, 26)), want: "pending->firing warning 26 since 10 after 10s (for 10s)"},
		{rs: one(rd("s", "t", 21, 31)), want: ""},
		{rs: one(rd("s", "t", 26, 31)), want: "firing->firing critical 31 since 10 after 16s (for 5s)"}, // escalation
		{tick: 86, want: "firing->firing critical 31 since 10 after 1m16s (for 5s)"},                    // repeat
		{rs: one(rd("s", "t", 90, 20)), want: "firing->resolved critical 20 since 10 after 1m20s (for 5s)"},
		// no_data's severity defaults to the most severe level's.
		{tick: 210, want: "inactive->nodata critical 20 since 210 after 0s (for 2m0s)"},
		// The resolved that ends a nodata has no_data's severity and for.
		{rs: one(rd("s", "t", 215, 20)), want: "nodata->resolved critical 20 since 210 after 5s (for 2m0s)"},
		{tick: 400, want: "inactive->nodata critical 20 since 400 after 0s (for 2m0s)"},
		{rs: one(rd("s", "t", 400.5, 26)), want: "nodata->pending warning 26 since 400 after 0s (for 10s)"},
		{rs: one(rd("s", "t", 400.75, 24)), want: "pending->inactive warning 24 since 400 after 250ms (for 10s)"},
	} {
		var got []outpost.Alert
		if s.rs != nil {
			got = e.Eval(s.rs, nil)
		} else {
			got = e.Tick(int64(s.tick*float64(sec)), nil)
		}
		var msgs []string
		for _, a := range got {
			if !strings.Contains(a.Message, "->"+a.State.String()+" ") {
				t.Errorf("step %d: %s alert with message %q", i, a.State, a.Message)
			}
			msgs = append(msgs, a.Message)
		}
		if g := strings.Join(msgs, "\n"); g != s.want {
			t.Errorf("step %d: got %q, want %q", i, g, s.want)
		}
	}
}

// The branch on .State that docs/rules.md shows: one template, a message
// that fits each transition.
func TestMessageBranchesOnState(t *testing.T) {
	e := NewEngine(mustParse(t, `rules:
  - name: warm
    select: {metric: temperature}
    above: 25
    for: 10s
    message: >-
      {{ .Sensor }} {{ .Metric }}
      {{- if eq .State "firing" }} {{ .Value }} Cel, above 25 for {{ .Duration }}
      {{- else if eq .State "pending" }} at {{ .Value }} Cel, above 25
      {{- else }} back to {{ .Value }} Cel (below 25){{ end }}
`), nil)
	var got []string
	for _, r := range []outpost.Reading{
		rd("dev1-env", "temperature", 0, 25.5),
		rd("dev1-env", "temperature", 10, 27.5),
		rd("dev1-env", "temperature", 30, 24.68),
	} {
		for _, a := range e.Eval(one(r), nil) {
			got = append(got, a.Message)
		}
	}
	want := []string{
		"dev1-env temperature at 25.5 Cel, above 25",
		"dev1-env temperature 27.5 Cel, above 25 for 10s",
		"dev1-env temperature back to 24.68 Cel (below 25)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
