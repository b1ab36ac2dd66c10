package examples

import (
	"os"
	"strings"
	"testing"

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
