package gateway

import (
	"testing"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
)

func ruleStats(st Stats, rule string) (rules.RuleStats, bool) {
	for _, s := range st.Rules {
		if s.Rule == rule {
			return s, true
		}
	}
	return rules.RuleStats{}, false
}

// Stats reports per-rule counters, taken by the ruler once a tick: a rule
// that fired shows evaluations and its transition; one that never holds
// shows evaluations only. A reload keeps the counts of unchanged rules, and
// the final counts outlive the run.
func TestGatewayRuleStats(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, twoRules+`  - name: cold
    select: {metric: temperature}
    below: 0
`)
	l := &alertLog{}
	g := startGateway(t, rulesConfig(t, dir, 40), l)
	waitUntil(t, "hot firing", func() bool { return l.has("hot", outpost.StateFiring) })
	waitUntil(t, "hot's counters in Stats", func() bool {
		s, ok := ruleStats(g.Stats(), "hot")
		return ok && s.Evaluations > 0 && s.Transitions >= 1
	})

	// A reload keeps the counts of unchanged rules.
	before, _ := ruleStats(g.Stats(), "hot")
	writeRules(t, dir, twoRules+`  - name: cold
    select: {metric: temperature}
    below: -10
`)
	if err := g.ReloadRules(); err != nil {
		t.Fatal(err)
	}
	after, _ := ruleStats(g.Stats(), "hot")
	if after.Evaluations < before.Evaluations || after.Transitions != before.Transitions {
		t.Errorf("hot %+v after a reload, %+v before: an unchanged rule keeps its counts", after, before)
	}
	waitUntil(t, "the changed cold rule evaluated", func() bool {
		s, _ := ruleStats(g.Stats(), "cold")
		return s.Evaluations > 0
	})
	closeGateway(t, g)

	st := g.Stats()
	if len(st.Rules) != 3 {
		t.Fatalf("rules stats %+v, want hot, slow and cold", st.Rules)
	}
	for i, name := range []string{"hot", "slow", "cold"} {
		if st.Rules[i].Rule != name {
			t.Fatalf("rules stats %+v: want the rules in file order", st.Rules)
		}
	}
	hot, _ := ruleStats(st, "hot")
	cold, _ := ruleStats(st, "cold")
	if hot.Evaluations == 0 || hot.Transitions != 1 || hot.Errors != 0 {
		t.Errorf("hot %+v: want evaluations and one transition", hot)
	}
	if cold.Evaluations == 0 || cold.Transitions != 0 {
		t.Errorf("cold %+v: want evaluations and no transition", cold)
	}
	// cold changed in the reload: it counts from there; hot since the start.
	if cold.Evaluations > hot.Evaluations {
		t.Errorf("cold evaluated %d times, hot %d: the reload must restart cold's counts", cold.Evaluations, hot.Evaluations)
	}
}
