package rules

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/yamlpos"
)

func mustParse(t testing.TB, src string) *Set {
	t.Helper()
	set, err := Parse("rules.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return set
}

func TestParse(t *testing.T) {
	set := mustParse(t, `rules:
  - name: warm
    select: {metric: temperature, sensor: dev1-env}
    above: 25
    for: 10s
    severity: critical
    message: "{{ .Sensor }} is {{ .Value }}"
    labels: {team: ops}
  - name: dry
    select:
      metric: humidity
    below: 30.5
`)
	if len(set.Rules) != 2 {
		t.Fatalf("rules: %d", len(set.Rules))
	}
	warm, dry := set.Rules[0], set.Rules[1]
	check := func(r *Rule, name string, sel Selector, cond string, f time.Duration, sev, msg string, labels map[string]string) {
		t.Helper()
		if r.Name != name || !reflect.DeepEqual(r.Select, sel) || r.Condition != cond || r.For != f || r.Severity != sev || r.Message != msg || !reflect.DeepEqual(r.Labels, labels) {
			t.Errorf("got %+v", r)
		}
	}
	check(warm, "warm", Selector{Metric: "temperature", Sensor: "dev1-env", Metrics: []string{"temperature"}}, "value > 25", 10*time.Second, "critical", "{{ .Sensor }} is {{ .Value }}", map[string]string{"team": "ops"})
	check(dry, "dry", Selector{Metric: "humidity", Metrics: []string{"humidity"}}, "value < 30.5", 0, "warning", "", nil)
}

func TestParseEmpty(t *testing.T) {
	for _, src := range []string{"", "rules: []\n", "rules:\n"} {
		if set := mustParse(t, src); len(set.Rules) != 0 {
			t.Errorf("%q: %d rules", src, len(set.Rules))
		}
	}
}

func TestBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"unknown field", "rules:\n  - name: a\n    select: {metric: t}\n    above: 1\n    fro: 10s\n", []string{
			`rules.yaml:5:5: rules[0]: unknown field "fro" (did you mean "for"?)`,
		}},
		{"both above and below", "rules:\n  - name: a\n    select: {metric: t}\n    above: 1\n    below: 0\n", []string{
			`rules.yaml:5:12: rules[0].below: only one of above, below and condition may be set`,
		}},
		{"neither above nor below", "rules:\n  - name: a\n    select: {metric: t}\n", []string{
			`rules.yaml:2:5: rules[0].above: one of above, below or condition is required`,
		}},
		{"missing metric", "rules:\n  - name: a\n    select:\n      sensor: s\n    above: 1\n", []string{
			`rules.yaml:3:5: rules[0].select.metric: is required`,
		}},
		{"missing select", "rules:\n  - name: a\n    above: 1\n", []string{
			`rules.yaml:2:5: rules[0].select.metric: is required`,
		}},
		{"bad template", "rules:\n  - name: a\n    select: {metric: t}\n    above: 1\n    message: \"{{ .Sensor \"\n", []string{
			`rules.yaml:5:14: rules[0].message: invalid template: unclosed action`,
		}},
		{"unknown template field", "rules:\n  - name: a\n    select: {metric: t}\n    above: 1\n    message: \"{{ .Sensr }} hot\"\n", []string{
			`rules.yaml:5:14: rules[0].message: invalid template: at <.Sensr>: can't evaluate field Sensr in type *rules.MessageData`,
		}},
		{"bad template in block", "rules:\n  - name: a\n    select: {metric: t}\n    above: 1\n    message: |\n      line one\n      {{ nope }}\n", []string{
			`rules.yaml:5:14: rules[0].message: invalid template, line 2: function "nope" not defined`,
		}},
		{"duplicate name", "rules:\n  - name: a\n    select: {metric: t}\n    above: 1\n  - name: a\n    select: {metric: u}\n    below: 1\n", []string{
			`rules.yaml:5:11: rules[1].name: duplicate rule name "a" (rules[0] has it too)`,
		}},
		{"reserved name", "rules:\n  - name: sensor_health\n    select: {metric: t}\n    above: 1\n", []string{
			`rules.yaml:2:11: rules[0].name: "sensor_health" is reserved for the gateway's sensor health events`,
		}},
		{"bad types", "rules:\n  - name: a\n    select: {metric: t}\n    above: hot\n    for: 10\n", []string{
			`rules.yaml:4:12: rules[0].above: expected a number, got "hot"`,
			`rules.yaml:5:10: rules[0].for: duration 10 has no unit (write it like 500ms, 1s or 10m)`,
		}},
		{"many", `rules:
  - select: {metric: "t/x", sensor: "a b"}
    below: 1
    for: -1s
    severity: ""
    labels: {sensor: x, "bad key": y}
  - name: ok
    select: {metric: t}
    above: .inf
  - bogus
top: 1
`, []string{
			`rules.yaml:2:5: rules[0].name: is required`,
			`rules.yaml:2:22: rules[0].select.metric: "t/x" is not a valid name (use 1 to 64 of A-Z a-z 0-9 _ . -)`,
			`rules.yaml:2:37: rules[0].select.sensor: "a b" is not a valid name (use 1 to 64 of A-Z a-z 0-9 _ . -)`,
			`rules.yaml:4:10: rules[0].for: must not be negative, got -1s`,
			`rules.yaml:5:15: rules[0].severity: is required`,
			`rules.yaml:6:14: rules[0].labels.sensor: label "sensor" is set by the engine`,
			`rules.yaml:6:25: rules[0].labels.bad key: "bad key" is not a valid label name (use 1 to 64 of A-Z a-z 0-9 _ . -)`,
			`rules.yaml:9:12: rules[1].above: expected a finite number, got .inf`,
			`rules.yaml:10:5: rules[2]: expected a mapping, got "bogus"`,
			`rules.yaml:11:1: unknown field "top"`,
		}},
		{"syntax", "rules:\n  - name: [\n", []string{
			`rules.yaml:2:11: sequence end token ']' not found`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := Parse("rules.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("no error; set %+v", set)
			}
			if set != nil {
				t.Error("a set came back with the error")
			}
			var list yamlpos.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want yamlpos.ErrorList", err)
			}
			if got, want := err.Error(), strings.Join(tc.want, "\n"); got != want {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(p, []byte("rules:\n  - name: a\n    select: {metric: t}\n    above: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := LoadFile(p)
	if err != nil || len(set.Rules) != 1 {
		t.Fatalf("LoadFile: %v, %+v", err, set)
	}
	if _, err := LoadFile(filepath.Join(dir, "nope.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: got %v", err)
	}
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.yaml", "rules:\n  - {name: x, select: {metric: t}, above: 1}\n")
	b := write("b.yaml", "rules:\n  - {name: y, select: {metric: t}, above: 2}\n")
	set, err := LoadFiles(a, b)
	if err != nil || len(set.Rules) != 2 || set.Rules[0].Name != "x" || set.Rules[1].Name != "y" {
		t.Fatalf("LoadFiles: %v %+v", err, set)
	}

	c := write("c.yaml", "rules:\n  - {name: y, select: {metric: t}, above: 2}\n  - {name: x, select: {metric: t}, above: 1}\n")
	d := write("d.yaml", "rules:\n  - {name: z, select: {metric: t}}\n")
	_, err = LoadFiles(a, b, c, d, filepath.Join(dir, "nope.yaml"))
	want := strings.Join([]string{
		"rules: open " + filepath.Join(dir, "nope.yaml") + ": no such file or directory",
		c + `:2:12: rules[0].name: duplicate rule name "y" (first at ` + b + `:2:12)`,
		c + `:3:12: rules[1].name: duplicate rule name "x" (first at ` + a + `:2:12)`,
		d + `:2:5: rules[0].above: one of above, below or condition is required`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}

// A threshold that fails to decode does not count as given.
func TestBadThresholdIsNotGiven(t *testing.T) {
	_, err := Parse("r.yaml", []byte("rules:\n  - name: a\n    select: {metric: t}\n    above: hot\n    below: 1\n"))
	want := `r.yaml:4:12: rules[0].above: expected a number, got "hot"`
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}
