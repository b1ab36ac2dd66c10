package main

import (
	"bytes"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

func TestRulesTest(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		code  int
		out   []string // each must appear in stdout
		err   []string // each must appear in stderr
		noOut bool
	}{
		{name: "pass", args: []string{"testdata/rules/ok.test.yaml"}, code: 0,
			out: []string{"ok    testdata/rules/ok.test.yaml: freezer warms up\n", "3 tests passed\n"}},
		{name: "fail", args: []string{"testdata/rules/ok.test.yaml", "testdata/rules/fail.test.yaml"}, code: 1,
			out: []string{
				"FAIL  testdata/rules/fail.test.yaml:3:5: fires too late for this test\n",
				"  - 5m      firing   freezer-temp/freezer-1 (line 8)\n",
				"  + 6m      firing   freezer-temp/freezer-1 severity=warning value=-14\n",
			},
			err: []string{"outpost rules test: 1 of 4 tests failed"}},
		{name: "missing file", args: []string{"testdata/rules/nope.test.yaml"}, code: 2, err: []string{"nope.test.yaml: no such file"}},
		{name: "no files", args: nil, code: 2, err: []string{"no test files"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(append([]string{"rules", "test"}, c.args...), &out, &errOut); code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out.String(), errOut.String())
			}
			for _, w := range c.out {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range c.err {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
				}
			}
		})
	}
}

// Errors in test files and in the rules files they name come with their
// positions, every one of them, and exit 2.
func TestRulesTestInvalid(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "bad-rules.yaml", "rules:\n  - name: a\n    select: {metric: m}\n    above: hot\n  - name: b\n    select: {metric: m}\n    below: 1\n    for: -1s\n")
	bad := writeFile(t, dir, "bad.test.yaml", "rule_files: [bad-rules.yaml]\ntests:\n  - input:\n      - {sensor: s, metric: m, values: \"1 2 3y\"}\n    expect:\n      - {at: 1m, rule: a, state: fired}\n")
	good := writeFile(t, dir, "rules-bad.test.yaml", "rule_files: [bad-rules.yaml]\ntests:\n  - input: [{sensor: s, metric: m, values: '1'}]\n")
	var out, errOut bytes.Buffer
	if code := run([]string{"rules", "test", bad, good}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2; stderr %s", code, errOut.String())
	}
	for _, w := range []string{
		`bad.test.yaml:4:45: tests[0].input[0].values: "3y": "3y" is not a finite number`,
		`bad.test.yaml:6:34: tests[0].expect[0].state: unknown state "fired"`,
		"rules-bad.test.yaml: rule_files:\n",
		`bad-rules.yaml:4:12: rules[0].above: `,
		`bad-rules.yaml:8:10: rules[1].for: must not be negative`,
	} {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
		}
	}
}

func TestRulesReplayGolden(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"rules", "replay", "--rules", "testdata/rules/rules.yaml", "--input", "testdata/rules/replay.csv"}
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	const golden = "testdata/rules/replay.golden"
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Fatalf("output differs from %s (go test -update to rewrite it):\n%s", golden, out.String())
	}

	// The same from stdin.
	f, err := os.Open("testdata/rules/replay.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := stdin
	stdin = f
	t.Cleanup(func() { stdin = old })
	out.Reset()
	args[len(args)-1] = "-"
	if code := run(args, &out, &errOut); code != 0 || out.String() != string(want) {
		t.Fatalf("stdin: exit %d, output:\n%s", code, out.String())
	}
}

// The exact output of `outpost buffer export --format csv` replays.
func TestRulesReplayBufferExport(t *testing.T) {
	dir := t.TempDir()
	fillOutbox(t, dir)
	var csv, errOut bytes.Buffer
	if code := run([]string{"buffer", "export", "--data-dir", dir, "--format", "csv"}, &csv, &errOut); code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut.String())
	}
	in := writeFile(t, dir, "export.csv", csv.String())
	rules := writeFile(t, dir, "rules.yaml", "rules:\n  - {name: warm, select: {metric: temperature}, above: 21, for: 1s}\n")
	var out bytes.Buffer
	if code := run([]string{"rules", "replay", "--rules", rules, "--input", in, "--gateway", "gw-1"}, &out, &errOut); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errOut.String())
	}
	// dev1 reads 20.5, 21.5, 22.5 each second, twice: pending at 1s, firing at 2s, ...
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 3 || !strings.Contains(lines[0], `"state":"pending"`) || !strings.Contains(lines[1], `"state":"firing"`) ||
		!strings.Contains(lines[0], `"gateway":"gw-1"`) {
		t.Fatalf("replay of an export:\n%s", out.String())
	}
}

func TestRulesReplayErrors(t *testing.T) {
	dir := t.TempDir()
	rules := writeFile(t, dir, "rules.yaml", validRules)
	badRules := writeFile(t, dir, "bad.yaml", strings.Replace(validRules, "above: 30", "above: hot", 1))
	badCSV := writeFile(t, dir, "bad.csv", "ts,sensor,metric,value\n2015-02-05T09:00:00Z,s,temperature,1\n2015-02-05T09:01:00Z,s,temperature,warm\n")
	cases := []struct {
		name string
		args []string
		msg  *regexp.Regexp
	}{
		{"no rules", []string{"--input", badCSV}, regexp.MustCompile(`--rules is required`)},
		{"no input", []string{"--rules", rules}, regexp.MustCompile(`--input is required`)},
		{"bad rules", []string{"--rules", badRules, "--input", badCSV}, regexp.MustCompile(`(?m)^\S+bad\.yaml:4:12: rules\[0\]\.above: `)},
		{"bad line", []string{"--rules", rules, "--input", badCSV}, regexp.MustCompile(`(?m)^outpost rules replay: \S+bad\.csv:3: value "warm" is not a number$`)},
		{"bad flag", []string{"--rules", rules, "--input", badCSV, "--tick", "often"}, regexp.MustCompile(`invalid value "often"`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(append([]string{"rules", "replay"}, c.args...), &out, &errOut); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errOut.String())
			}
			if !c.msg.MatchString(errOut.String()) {
				t.Fatalf("stderr does not match %s:\n%s", c.msg, errOut.String())
			}
		})
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"rules", "replay", "--rules", rules, "--input", dir + "/missing.csv"}, &out, &errOut); code != 1 {
		t.Fatalf("missing input: exit %d, want 1", code)
	}
	if code := run([]string{"rules", "frob"}, &out, &errOut); code != 2 {
		t.Fatalf("unknown subcommand: exit %d, want 2", code)
	}
}
