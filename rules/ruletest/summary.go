package ruletest

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
)

// RuleSummary is what a replay's transitions say about one rule: how
// often it would have fired, for how long, and how noisy it is on the
// way.
type RuleSummary struct {
	Rule string
	// Transitions by state: every alert of the rule counts once, so
	// Firing includes changes of level and repeats.
	Pending, Firing, Resolved, Inactive, NoData int
	// Episodes is how many times an instance began firing: a firing
	// transition of an instance that was not firing (a change of level
	// and a repeat keep the episode going).
	Episodes int
	// Instances is how many instances (fingerprints) fired at least once.
	Instances int
	// FiringTime is the time spent firing, summed over the episodes:
	// from the transition that began each to the one that ended it
	// (resolved, or nodata, or any other state), or to the end of the
	// replay for an episode still firing then.
	FiringTime time.Duration
	// Longest is the longest episode (cut at the end of the replay, as
	// FiringTime).
	Longest time.Duration
	// FiringAtEnd is how many instances were still firing at the end of
	// the replay: their episodes are cut there, and may have gone on.
	FiringAtEnd int
}

// Summary gathers RuleSummary values from a replay's transitions. Add
// takes the transitions as ReplayFrom hands them to emit; Finish closes
// the episodes still open. It holds one small entry per alert instance
// that has had a transition, the engine's own order of size.
type Summary struct {
	rules  []*RuleSummary
	byName map[string]*RuleSummary
	inst   map[instKey]*instSummary
}

type instKey struct{ rule, fingerprint string }

type instSummary struct {
	rule   *RuleSummary
	firing bool
	since  int64 // unix ns the episode began, while firing
	fired  bool
}

// NewSummary returns a summary with a row for every rule of set (nil:
// none), in the set's order, so that a rule that never fired shows as
// such. A rule that only the alerts name gets a row after them.
func NewSummary(set *rules.Set) *Summary {
	s := &Summary{byName: map[string]*RuleSummary{}, inst: map[instKey]*instSummary{}}
	if set != nil {
		for _, r := range set.Rules {
			s.rule(r.Name)
		}
	}
	return s
}

func (s *Summary) rule(name string) *RuleSummary {
	rs := s.byName[name]
	if rs == nil {
		rs = &RuleSummary{Rule: name}
		s.byName[name] = rs
		s.rules = append(s.rules, rs)
	}
	return rs
}

// Add counts the transitions of as, in order. Its signature is
// ReplayFrom's emit; it never fails.
func (s *Summary) Add(as []outpost.Alert) error {
	for i := range as {
		a := &as[i]
		k := instKey{a.Rule, a.Fingerprint}
		in := s.inst[k]
		if in == nil {
			in = &instSummary{rule: s.rule(a.Rule)}
			s.inst[k] = in
		}
		rs := in.rule
		switch a.State {
		case outpost.StatePending:
			rs.Pending++
		case outpost.StateFiring:
			rs.Firing++
		case outpost.StateResolved:
			rs.Resolved++
		case outpost.StateInactive:
			rs.Inactive++
		case outpost.StateNoData:
			rs.NoData++
		}
		switch {
		case a.State == outpost.StateFiring && !in.firing:
			in.firing, in.since = true, a.ChangedAt
			rs.Episodes++
			if !in.fired {
				in.fired = true
				rs.Instances++
			}
		case a.State != outpost.StateFiring && in.firing:
			in.firing = false
			in.end(a.ChangedAt)
		}
	}
	return nil
}

// end adds the episode that ends at t (unix ns) to the rule's times. A
// transition may be stamped a moment before the repeat that came before
// it (docs/rules.md, "States and what is emitted"): an episode is never
// shorter than zero.
func (in *instSummary) end(t int64) {
	d := time.Duration(max(t-in.since, 0))
	in.rule.FiringTime += d
	in.rule.Longest = max(in.rule.Longest, d)
}

// Finish ends the episodes still firing at end (unix ns: the replay's
// last time, that of its last reading) and returns the rules' summaries:
// the set's rules in its order, then any other rule the alerts named.
// Call it once, after the replay.
func (s *Summary) Finish(end int64) []RuleSummary {
	for _, in := range s.inst {
		if in.firing {
			in.end(end)
			in.rule.FiringAtEnd++
			in.firing = false
		}
	}
	out := make([]RuleSummary, len(s.rules))
	for i, rs := range s.rules {
		out[i] = *rs
	}
	return out
}

// SummaryColumns are the columns WriteSummary writes, in order.
const SummaryColumns = "rule\tepisodes\tinstances\tfiring_time\tlongest\tat_end\tpending\tfiring\tresolved\tinactive\tnodata"

// WriteSummary writes rs as a table, one rule a line under a header of
// SummaryColumns, aligned with spaces: episodes, instances, firing time,
// longest episode and instances firing at the end (the RuleSummary
// fields), then the transitions by state. Times are Go durations,
// rounded to the second (to the millisecond below one).
func WriteSummary(w io.Writer, rs []RuleSummary) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, SummaryColumns)
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", r.Rule, r.Episodes, r.Instances,
			roundDuration(r.FiringTime), roundDuration(r.Longest), r.FiringAtEnd,
			r.Pending, r.Firing, r.Resolved, r.Inactive, r.NoData)
	}
	return tw.Flush()
}

// roundDuration rounds d to the second, or to the millisecond below one,
// as a message template's .Duration.
func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}
