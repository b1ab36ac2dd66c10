package examples

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
	"github.com/outposthq/outpost/rules/ruletest"
)

// The "Message templates" section of docs/rules.md shows the example
// gateway's rule and the messages it renders: the rule must be the one in
// rules.yaml, and each message one that the cookbook tests expect of it.
func TestRulesDocMessageTemplates(t *testing.T) {
	doc, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := fencedBlocks(t, section(t, string(doc), "### Message templates"))
	if len(blocks) != 2 || blocks[0].lang != "yaml" || blocks[1].lang != "" {
		t.Fatalf("want a yaml block and an output block, got %+v", blocks)
	}

	shown, err := rules.Parse("docs/rules.md", []byte("rules:\n"+indent(blocks[0].body, "  ")))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := rules.LoadFile("rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := shown.Rules[0]
	var r *rules.Rule
	for _, x := range ex.Rules {
		if x.Name == d.Name {
			r = x
		}
	}
	if r == nil {
		t.Fatalf("rules.yaml has no rule %q", d.Name)
	}
	if d.Message != r.Message || d.Condition != r.Condition || d.For != r.For || d.Select.Sensor != r.Select.Sensor {
		t.Errorf("docs/rules.md shows\n%+v\nrules.yaml has\n%+v", d, r)
	}

	f, err := ruletest.Load("cookbook/rules.test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	expected := map[string]bool{}
	for _, tc := range f.Tests {
		for _, x := range tc.Expect {
			if x.Rule == d.Name && x.Message != nil {
				expected[x.State.String()+" "+*x.Message] = true
			}
		}
	}
	lines := strings.Split(strings.TrimSpace(blocks[1].body), "\n")
	if len(lines) < 3 {
		t.Fatalf("output block has %d lines, want one per transition", len(lines))
	}
	for _, l := range lines {
		state, msg, _ := strings.Cut(l, " ")
		if !expected[state+" "+strings.TrimSpace(msg)] {
			t.Errorf("docs/rules.md shows %q, which no test in cookbook/rules.test.yaml expects", l)
		}
	}
}

// section is the text from heading to the next heading of its level.
func section(t *testing.T, doc, heading string) string {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("no %q", heading)
	}
	level := heading[:strings.IndexByte(heading, ' ')+1]
	if i := strings.Index(rest, "\n"+level); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

type block struct{ lang, body string }

// fencedBlocks are the ``` blocks of s.
func fencedBlocks(t *testing.T, s string) []block {
	t.Helper()
	var bs []block
	for {
		_, rest, ok := strings.Cut(s, "\n```")
		if !ok {
			return bs
		}
		lang, rest, _ := strings.Cut(rest, "\n")
		body, after, ok := strings.Cut(rest, "\n```")
		if !ok {
			t.Fatalf("unclosed block after %q", lang)
		}
		bs = append(bs, block{lang: lang, body: body + "\n"})
		s = after
	}
}

func indent(s, by string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = by + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

// The worked examples of docs/rules.md are rules of cookbook/rules.yaml,
// and the tests shown with them pass as shown and are tests of
// cookbook/rules.test.yaml.
func TestRulesDocWorkedExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	cookbook, err := rules.LoadFile("cookbook/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cookbookRules := map[string]*rules.Rule{}
	for _, r := range cookbook.Rules {
		cookbookRules[r.Name] = r
	}
	f, err := ruletest.Load("cookbook/rules.test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cookbookTests := map[string]*ruletest.Test{}
	for _, tc := range f.Tests {
		cookbookTests[tc.Name] = tc
	}
	shownRules, shownTests := 0, 0
	for _, b := range fencedBlocks(t, section(t, string(doc), "## Worked examples")) {
		if b.lang != "yaml" {
			t.Errorf("a %q block in the worked examples", b.lang)
			continue
		}
		if !strings.Contains(b.body, "\n  input:") {
			shown, err := rules.Parse("../docs/rules.md", []byte("rules:\n"+indent(b.body, "  ")))
			if err != nil {
				t.Errorf("a rule in the worked examples: %v", err)
				continue
			}
			for _, r := range shown.Rules {
				shownRules++
				if c := cookbookRules[r.Name]; c == nil || c.Hash() != r.Hash() {
					t.Errorf("docs/rules.md shows rule %s, which cookbook/rules.yaml does not have as shown", r.Name)
				}
			}
			continue
		}
		src := "rule_files: [../examples/cookbook/rules.yaml]\ninterval: 1m\ntests:\n" + indent(b.body, "  ")
		tf, err := ruletest.Parse("../docs/rules.md", []byte(src))
		if err != nil {
			t.Errorf("a test in the worked examples: %v", err)
			continue
		}
		set, err := tf.LoadRules()
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range tf.Tests {
			shownTests++
			if r := tc.Run(set); !r.Passed {
				t.Errorf("docs/rules.md shows test %q, which fails:\n%s", tc.Name, r.Report())
			}
			c := cookbookTests[tc.Name]
			if c == nil || !reflect.DeepEqual(c.Input, tc.Input) || !sameExpectations(c.Expect, tc.Expect) {
				t.Errorf("docs/rules.md shows test %q, which cookbook/rules.test.yaml does not have as shown", tc.Name)
			}
		}
	}
	if shownRules < 8 || shownTests < 4 {
		t.Errorf("%d rules and %d tests in the worked examples: the section moved?", shownRules, shownTests)
	}
}

// sameExpectations compares expectations, leaving out their lines.
func sameExpectations(a, b []ruletest.Expectation) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.Line, y.Line = 0, 0
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// The replay of a recording with a gap of three days, as docs/rules.md
// shows it: its rule, its input and its output.
func TestRulesDocReplayGap(t *testing.T) {
	doc, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	var session string
	for _, b := range fencedBlocks(t, section(t, string(doc), "## Replaying recordings: `outpost rules replay`")) {
		if strings.Contains(b.body, "$ cat reminder.yaml") {
			session = b.body
		}
	}
	// The lines after each command, by the command's first word after $.
	out := map[string]string{}
	var cmd string
	for _, l := range strings.Split(session, "\n") {
		if c, ok := strings.CutPrefix(l, "$ "); ok {
			cmd = c
			continue
		}
		if cmd != "" && l != "" {
			out[cmd] += l + "\n"
		}
	}
	var want string
	for c, o := range out {
		if strings.HasPrefix(c, "outpost rules replay --rules reminder.yaml --input gap.csv") {
			want = o
		}
	}
	if out["cat reminder.yaml"] == "" || out["cat gap.csv"] == "" || want == "" {
		t.Fatalf("no reminder.yaml, gap.csv and their replay in the replay section:\n%s", session)
	}
	set, err := rules.Parse("reminder.yaml", []byte(out["cat reminder.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	err = ruletest.Replay(context.Background(), set, strings.NewReader(out["cat gap.csv"]), func(as []outpost.Alert) error {
		for _, a := range as {
			fmt.Fprintf(&got, "%s %s\n", time.Unix(0, a.ChangedAt).UTC().Format(time.RFC3339Nano), a.State)
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != want {
		t.Errorf("docs/rules.md shows\n%sthe replay gives\n%s", want, got.String())
	}
}
