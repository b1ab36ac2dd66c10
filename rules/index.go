package rules

import (
	"slices"
	"strings"
)

// ruleIndex finds the rules that select a series, visiting only rules
// that can: under the series' metric, those naming its sensor, those
// whose rarest select.labels pair the sensor carries, and the rest (no
// sensor and no labels, or a sensor glob without labels). Each rule is
// in one bucket per metric it selects, and Selector.Matches and
// MatchesLabels still decide, so a bucket may hold rules that turn out
// not to match (a glob, the other labels of a rule) but never misses one.
//
// The engine uses it when it first sees a series; afterwards a reading
// costs one map lookup whatever the index holds. An index is immutable
// once built; the zero value holds no rules.
type ruleIndex struct {
	rules    []*ruleRT // in set order: buckets hold positions in it
	byMetric map[string]*metricRules
}

// metricRules are the rules of one metric, by bucket; each bucket lists
// positions in ascending order.
type metricRules struct {
	bySensor map[string][]int32
	byLabel  map[labelPair][]int32
	rest     []int32
}

type labelPair struct{ key, value string }

// newRuleIndex indexes rules. sensorLabels (the engine's
// Options.SensorLabels) tells how many sensors carry each label pair, so
// that a rule selecting several labels is filed under the pair the
// fewest sensors have: binding the series of a sensor visits the rules
// filed under the pairs it carries. The counts only rank a rule's pairs;
// a sensor that matches carries every pair, so any choice is correct.
func newRuleIndex(rules []*ruleRT, sensorLabels map[string]map[string]string) ruleIndex {
	carriers := map[labelPair]int{}
	for _, labels := range sensorLabels {
		for k, v := range labels {
			carriers[labelPair{k, v}]++
		}
	}
	x := ruleIndex{rules: rules, byMetric: map[string]*metricRules{}}
	for pos, rt := range rules {
		sel := &rt.rule.Select
		for i, m := range sel.Metrics {
			if indexOf(sel.Metrics[:i], m) >= 0 {
				continue // listed twice: one bucket is enough
			}
			mr := x.byMetric[m]
			if mr == nil {
				mr = &metricRules{bySensor: map[string][]int32{}, byLabel: map[labelPair][]int32{}}
				x.byMetric[m] = mr
			}
			p := int32(pos)
			switch {
			case sel.Sensor != "" && !isGlob(sel.Sensor):
				mr.bySensor[sel.Sensor] = append(mr.bySensor[sel.Sensor], p)
			case len(sel.Labels) > 0:
				lp := rarest(sel.Labels, carriers)
				mr.byLabel[lp] = append(mr.byLabel[lp], p)
			default:
				mr.rest = append(mr.rest, p)
			}
		}
	}
	return x
}

// selects reports whether any rule selects metric.
func (x *ruleIndex) selects(metric string) bool {
	_, ok := x.byMetric[metric]
	return ok
}

// match appends to dst the rules that select the series (sensor, metric)
// of a sensor with these labels, in set order, and returns it. scratch is
// reusable room for the candidates' positions; match returns it grown.
func (x *ruleIndex) match(sensor, metric string, labels map[string]string, dst []*ruleRT, scratch []int32) ([]*ruleRT, []int32) {
	cand := x.candidates(sensor, metric, labels, scratch[:0])
	for _, p := range cand {
		rt := x.rules[p]
		if rt.rule.Select.Matches(sensor, metric) && rt.rule.Select.MatchesLabels(labels) {
			dst = append(dst, rt)
		}
	}
	return dst, cand
}

// candidates appends the positions of the rules in the buckets the series
// visits, ascending, to dst.
func (x *ruleIndex) candidates(sensor, metric string, labels map[string]string, dst []int32) []int32 {
	mr := x.byMetric[metric]
	if mr == nil {
		return dst
	}
	dst = append(dst, mr.bySensor[sensor]...)
	for k, v := range labels {
		dst = append(dst, mr.byLabel[labelPair{k, v}]...)
	}
	dst = append(dst, mr.rest...)
	// Set order decides the order of the series' instances, hence of the
	// alerts of one reading. A rule is in one bucket of a metric, so there
	// are no duplicates to drop.
	slices.Sort(dst)
	return dst
}

// rarest is the pair of labels that the fewest sensors carry, the least
// key first among equals.
func rarest(labels map[string]string, carriers map[labelPair]int) labelPair {
	var best labelPair
	n := -1
	for k, v := range labels {
		lp := labelPair{k, v}
		c := carriers[lp]
		if n < 0 || c < n || c == n && k < best.key {
			best, n = lp, c
		}
	}
	return best
}

// isGlob reports whether a select.sensor is a pattern (see matchSensor).
func isGlob(sensor string) bool { return strings.ContainsAny(sensor, "*?[\\") }
