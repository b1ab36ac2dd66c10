package rules_test

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/outposthq/outpost"
)

// What the property test prints for a violation: the seed, and the case
// shrunk to a rules file and a prefix of the stream that still break the
// same invariant, ready for `outpost rules replay`.

// propReport describes violation v of check ch in case c.
func propReport(c *propCase, ch propCheck, v violation) string {
	s, sv := shrinkCase(c, ch, v)
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, invariant %s: %s\n", c.seed, ch.name, sv.msg)
	if sv.bug != "" {
		fmt.Fprintf(&b, "(the known engine bug %q, no longer in knownEngineBugs)\n", sv.bug)
	}
	fmt.Fprintf(&b, "rerun: go test ./rules -run 'TestProperty/%s$' -args -rules.seed=%d\n", ch.name, c.seed)
	fmt.Fprintf(&b, "shrunk from %d rules and %d readings to %d and %d:\n", len(c.rules), len(c.stream), len(s.rules), len(s.stream))
	fmt.Fprintf(&b, "--- rules.yaml\n%s", s.yaml())
	if s.gateway != "" {
		fmt.Fprintf(&b, "--- gateway id: %s\n", s.gateway)
	}
	b.WriteString("--- sensor labels: s1 {device: d1, room: a}, s2 {device: d1, room: b}, s3 {device: d2, room: a}, s4 none\n")
	fmt.Fprintf(&b, "--- readings.csv (outpost rules replay --rules rules.yaml --input readings.csv)\n%s", streamCSV(s.stream))
	switch ch.name {
	case "restore":
		fmt.Fprintf(&b, "--- restarts: before the first call after each of %s\n", fmtCuts(s.cuts, 1<<62))
	case "replay-reorder":
		fmt.Fprintf(&b, "--- reordered within %v (--reorder %v):\n%s", s.reorder, s.reorder, streamCSV(s.reordered()))
	}
	keep := func(string) bool { return true }
	if sv.rule != "" {
		keep = func(fp string) bool { return strings.HasPrefix(fp, sv.rule+"/") }
	}
	fmt.Fprintf(&b, "--- the alerts of the run up to %s:\n%s", off(sv.at), fmtCalls(s.plain(), sv.at, keep))
	return b.String()
}

// shrinkCase returns a smaller case in which check ch still finds a
// violation explained by the same known bug as v (or by none): the
// stream up to v's time, the one rule v concerns, then readings and
// restarts removed one chunk at a time while it still fails.
func shrinkCase(c *propCase, ch propCheck, v violation) (*propCase, violation) {
	best, bv := c, v
	budget := 400
	try := func(d *propCase) bool {
		if budget == 0 || d.parse() != nil {
			return false
		}
		budget--
		for _, u := range ch.fn(d) {
			if u.bug == v.bug {
				best, bv = d, u
				return true
			}
		}
		return false
	}
	prefix := func() {
		n, _ := slices.BinarySearchFunc(best.stream, bv.at+1, func(r outpost.Reading, t int64) int { return cmp.Compare(r.TS, t) })
		if n < len(best.stream) && n > 0 {
			try(best.with(best.rules, best.stream[:n], best.cuts))
		}
	}
	prefix()
	if bv.rule != "" && len(best.rules) > 1 {
		for _, r := range best.rules {
			if r.name == bv.rule {
				try(best.with([]genRule{r}, best.stream, best.cuts))
				break
			}
		}
	}
	for n := len(best.stream) / 2; n >= 1; n /= 2 {
		for i := 0; i+n <= len(best.stream) && len(best.stream) > n; {
			if !try(best.with(best.rules, slices.Concat(best.stream[:i], best.stream[i+n:]), best.cuts)) {
				i += n
			}
		}
		prefix()
	}
	for i := 0; i < len(best.cuts); {
		if !try(best.with(best.rules, best.stream, slices.Delete(slices.Clone(best.cuts), i, i+1))) {
			i++
		}
	}
	return best, bv
}

// with is a copy of c with other rules, stream and restarts.
func (c *propCase) with(rs []genRule, stream []outpost.Reading, cuts []int64) *propCase {
	return &propCase{seed: c.seed, rules: rs, gateway: c.gateway, stream: stream, cuts: cuts, reorder: c.reorder}
}
