package examples

import (
	"testing"

	"github.com/outposthq/outpost/rules/ruletest"
)

// The worked examples in docs/rules.md are rules that do what the doc
// says: their tests pass.
func TestCookbookRules(t *testing.T) {
	f, err := ruletest.Load("cookbook/rules.test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	set, err := f.LoadRules()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tests) < 4 {
		t.Fatalf("%d tests, want one per example at least", len(f.Tests))
	}
	for _, tc := range f.Tests {
		if r := tc.Run(set); !r.Passed {
			t.Errorf("%s", r.Report())
		}
	}
}
