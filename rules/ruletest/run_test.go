package ruletest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// load parses a test file written to a temporary directory beside a copy
// of testdata/rules.yaml, and loads its rules.
func load(t *testing.T, body string) (*File, error) {
	t.Helper()
	dir := t.TempDir()
	rules, err := os.ReadFile("testdata/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"rules.yaml": string(rules), "t.test.yaml": body} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Load(filepath.Join(dir, "t.test.yaml"))
}

// runAll runs every test of f and returns the results.
func runAll(t *testing.T, f *File) []*Result {
	t.Helper()
	set, err := f.LoadRules()
	if err != nil {
		t.Fatal(err)
	}
	var rs []*Result
	for _, tc := range f.Tests {
		rs = append(rs, tc.Run(set))
	}
	return rs
}

func TestRunPass(t *testing.T) {
	f, err := Load("testdata/pass.test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runAll(t, f) {
		if !r.Passed {
			t.Errorf("%s failed:\n%s", r.Test.Name, r.Report())
		}
	}
}

func TestRunFail(t *testing.T) {
	cases := []struct {
		name, test string
		want       []string // lines of the report, in order
	}{
		{
			name: "late and unexpected",
			test: `
    input:
      - {sensor: freezer-1, metric: temperature, values: "-20 -14x6 -20"}
    expect:
      - {at: 1m, rule: freezer-temp, state: pending}
      - {at: 5m, rule: freezer-temp, sensor: freezer-1, state: firing}
`,
			want: []string{
				"    1m      pending  freezer-temp/freezer-1 severity=warning value=-14",
				"  - 5m      firing   freezer-temp/freezer-1 (line 8)",
				"  + 6m      firing   freezer-temp/freezer-1 severity=warning value=-14",
				"  + 8m      resolved freezer-temp/freezer-1 severity=warning value=-20",
			},
		},
		{
			name: "wrong field",
			test: `
    only_expected: false
    input:
      - {sensor: freezer-1, metric: temperature, values: "-14x5"}
    expect:
      - {at: 5m, rule: freezer-temp, state: firing, severity: critical, labels: {team: ops}}
`,
			want: []string{
				"  - 5m      firing   freezer-temp severity=critical team=\"ops\" (line 8)",
			},
		},
		{
			name: "nothing happens",
			test: `
    input:
      - {sensor: freezer-1, metric: temperature, values: "-20x10"}
    expect:
      - {at: 10m, rule: freezer-temp, state: firing, value: -20}
`,
			want: []string{"  - 10m     firing   freezer-temp value=-20 (line 7)"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := load(t, "rule_files: [rules.yaml]\ntests:\n  - name: x"+c.test)
			if err != nil {
				t.Fatal(err)
			}
			r := runAll(t, f)[0]
			if r.Passed {
				t.Fatal("passed")
			}
			lines := strings.Split(strings.TrimRight(r.Report(), "\n"), "\n")[1:] // after the legend
			if strings.Join(lines, "\n") != strings.Join(c.want, "\n") {
				t.Fatalf("report:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

// A vague expectation must not take the transition a precise one needs.
func TestRunMostSpecificFirst(t *testing.T) {
	f, err := load(t, `rule_files: [rules.yaml]
interval: 1m
tests:
  - input:
      - {sensor: a, metric: co2, values: "1100"}
      - {sensor: b, metric: co2, values: "1200"}
    until: 15m
    expect:
      - {at: 0, rule: co2-high, state: pending}
      - {at: 0, rule: co2-high, state: pending, sensor: a}
      - {at: 15m, rule: co2-high, state: firing}
      - {at: 15m, rule: co2-high, state: firing, value: 1100}
`)
	if err != nil {
		t.Fatal(err)
	}
	if r := runAll(t, f)[0]; !r.Passed {
		t.Fatalf("failed:\n%s", r.Report())
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, body string
		want       []string // each a line of the error
	}{
		{
			name: "values term",
			body: "rule_files: [rules.yaml]\ntests:\n  - input:\n      - {sensor: s, metric: m, values: \"1 2 3y\"}\n",
			want: []string{`t.test.yaml:4:45: tests[0].input[0].values: "3y": "3y" is not a finite number`},
		},
		{
			name: "plain values term",
			body: "rule_files: [rules.yaml]\ntests:\n  - input:\n      - sensor: s\n        metric: m\n        values: 1 x2\n",
			want: []string{`t.test.yaml:6:19: tests[0].input[0].values: "x2"`},
		},
		{
			name: "many",
			body: `rule_files: [rules.yaml]
interval: 1m
tests:
  - input:
      - {sensor: s, values: "1"}
    expect:
      - {at: 90s, rule: r, state: fired}
      - {at: 1m, state: firing, vaule: 3}
`,
			want: []string{
				`t.test.yaml:5:9: tests[0].input[0].metric: is required`,
				`t.test.yaml:7:14: tests[0].expect[0].at: 1m30s is not a step`,
				`t.test.yaml:7:35: tests[0].expect[0].state: unknown state "fired"`,
				`t.test.yaml:8:9: tests[0].expect[1].rule: is required (or fingerprint)`,
				`t.test.yaml:8:33: tests[0].expect[1]: unknown field "vaule" (did you mean "value"?)`,
			},
		},
		{
			name: "empty",
			body: "interval: -1m\n",
			want: []string{
				`t.test.yaml:1:1: rule_files: is required`,
				`t.test.yaml:1:11: interval: must be positive`,
				`t.test.yaml:1:1: tests: is required`,
			},
		},
		{
			name: "syntax",
			body: "tests: [\n",
			want: []string{`t.test.yaml:1:`},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := load(t, c.body)
			if err == nil {
				t.Fatal("no error")
			}
			lines := strings.Split(err.Error(), "\n")
			for _, w := range c.want {
				found := false
				for _, l := range lines {
					l = l[strings.LastIndex(l, "/")+1:]
					found = found || strings.HasPrefix(l, w)
				}
				if !found {
					t.Errorf("no line starting %q in:\n%s", w, err)
				}
			}
		})
	}
}

func TestRulesErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("rules:\n  - name: x\n    select: {metric: m}\n    above: hot\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "t.yaml"), []byte("rule_files: [bad.yaml, missing.yaml]\ntests:\n  - input: [{sensor: s, metric: m, values: '1'}]\n"), 0o644)
	f, err := Load(filepath.Join(dir, "t.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.LoadRules()
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:4:12: ") || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("err %v, want both files' problems", err)
	}
}

func TestFormatOffset(t *testing.T) {
	for d, want := range map[string]string{"0s": "0s", "7m": "7m", "90s": "1m30s", "1h": "1h", "1h30m": "1h30m", "500ms": "500ms"} {
		dd, _ := time.ParseDuration(d)
		if got := FormatOffset(dd); got != want {
			t.Errorf("FormatOffset(%s) = %s, want %s", d, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/pass.test.yaml"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("rule_files: [r]\ntests:\n  - input: [{sensor: s, metric: m, values: '1 _x2 3+1x4'}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := Parse("f.yaml", data)
		if err != nil {
			return
		}
		for _, tc := range tf.Tests {
			if tc.Interval <= 0 || tc.Until < 0 {
				t.Fatalf("bad test %+v", tc)
			}
		}
	})
}
