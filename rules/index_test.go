package rules

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/outposthq/outpost"
)

// TestIndexMatchesScan checks the index against a scan of every rule with
// Select.Matches and MatchesLabels, over random rule sets: one metric or
// several, no sensor, an exact sensor or a glob, and zero to three
// labels; sensors with random labels, some with none, some that no rule
// names.
func TestIndexMatchesScan(t *testing.T) {
	metrics := []string{"t", "h", "p", "co2"}
	sensors := []string{"s0", "s1", "s2", "s10", "s11", "s21", "a1", "b2", "other"}
	globs := []string{"s*", "s1*", "s?", "[ab]*", "*1", "s[0-1]"}
	keys := []string{"room", "floor", "zone"}
	values := []string{"x", "y", "z"}
	for seed := range uint64(50) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 12))
			pick := func(list []string) string { return list[rng.IntN(len(list))] }

			labels := map[string]map[string]string{}
			for _, s := range sensors {
				if rng.IntN(4) == 0 {
					continue // no labels at all
				}
				ls := map[string]string{}
				for _, k := range keys {
					if rng.IntN(3) > 0 {
						ls[k] = pick(values)
					}
				}
				labels[s] = ls
			}

			var src strings.Builder
			src.WriteString("rules:\n")
			for i := range 1 + rng.IntN(60) {
				fmt.Fprintf(&src, "  - name: r%d\n    above: 1\n    select:\n", i)
				if rng.IntN(4) == 0 {
					ms := slices.Clone(metrics)
					rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
					fmt.Fprintf(&src, "      metrics: [%s]\n", strings.Join(ms[:2+rng.IntN(2)], ", "))
				} else {
					fmt.Fprintf(&src, "      metric: %s\n", pick(metrics))
				}
				switch rng.IntN(3) {
				case 1:
					fmt.Fprintf(&src, "      sensor: %s\n", pick(sensors))
				case 2:
					fmt.Fprintf(&src, "      sensor: %q\n", pick(globs))
				}
				if n := rng.IntN(4); n > 0 {
					src.WriteString("      labels: {")
					for j, k := range keys[:n] {
						if j > 0 {
							src.WriteString(", ")
						}
						fmt.Fprintf(&src, "%s: %s", k, pick(values))
					}
					src.WriteString("}\n")
				}
			}
			e := NewEngine(mustParse(t, src.String()), &Options{SensorLabels: labels})

			for _, s := range append(sensors, "new") {
				for _, m := range append(metrics, "unselected") {
					var want []string
					for _, rt := range e.rules {
						if rt.rule.Select.Matches(s, m) && rt.rule.Select.MatchesLabels(labels[s]) {
							want = append(want, rt.rule.Name)
						}
					}
					got, _ := e.index.match(s, m, labels[s], nil, nil)
					if names := ruleNames(got); !slices.Equal(names, want) {
						t.Errorf("%s/%s: index gives %v, a scan %v\nsensor labels %v\n%s", s, m, names, want, labels[s], src.String())
					}
				}
			}
		})
	}
}

// TestIndexCandidates checks that the index narrows: a new series visits
// the rules naming its sensor, the rules filed under the rarest of their
// label pairs that the sensor carries, and the rules without either, not
// every rule of its metric.
func TestIndexCandidates(t *testing.T) {
	set := mustParse(t, `rules:
  - {name: s1, select: {metric: t, sensor: s1}, above: 1}
  - {name: s2, select: {metric: t, sensor: s2}, above: 1}
  - {name: s1-h, select: {metric: h, sensor: s1}, above: 1}
  - {name: all, select: {metric: t}, above: 1}
  - {name: glob, select: {metric: t, sensor: "s*"}, above: 1}
  - {name: roomA, select: {metric: t, labels: {floor: f1, room: a}}, above: 1}
  - {name: roomB, select: {metric: t, labels: {floor: f1, room: b}}, above: 1}
  - {name: floor, select: {metric: t, labels: {floor: f1}}, above: 1}
  - {name: s1-roomB, select: {metric: t, sensor: s1, labels: {room: b}}, above: 1}
  - {name: glob-roomA, select: {metric: t, sensor: "s*", labels: {room: a}}, above: 1}
  - {name: join, select: {metrics: [h, t], labels: {room: a}}, above: 1}
`)
	labels := map[string]map[string]string{
		"s1": {"floor": "f1", "room": "a"},
		"s2": {"floor": "f1", "room": "b"},
		"s3": {"floor": "f1", "room": "b"},
	}
	e := NewEngine(set, &Options{SensorLabels: labels})
	for _, tc := range []struct {
		sensor, metric string
		candidates     string // visited
		match          string // selected
	}{
		// roomA and roomB are filed under room (one or two sensors), not
		// floor (three).
		{"s1", "t", "s1 all glob roomA floor s1-roomB glob-roomA join", "s1 all glob roomA floor glob-roomA join"},
		{"s2", "t", "s2 all glob roomB floor", "s2 all glob roomB floor"},
		{"s3", "t", "all glob roomB floor", "all glob roomB floor"},
		{"s1", "h", "s1-h join", "s1-h join"},
		{"x", "t", "all glob", "all"},
		{"s1", "p", "", ""},
	} {
		var got []string
		for _, p := range e.index.candidates(tc.sensor, tc.metric, labels[tc.sensor], nil) {
			got = append(got, e.rules[p].rule.Name)
		}
		if g := strings.Join(got, " "); g != tc.candidates {
			t.Errorf("%s/%s: visits %q, want %q", tc.sensor, tc.metric, g, tc.candidates)
		}
		matched, _ := e.index.match(tc.sensor, tc.metric, labels[tc.sensor], nil, nil)
		if g := strings.Join(ruleNames(matched), " "); g != tc.match {
			t.Errorf("%s/%s: matches %q, want %q", tc.sensor, tc.metric, g, tc.match)
		}
	}
}

// TestIndexAlertOrder: the alerts of one reading come in rule order,
// whichever buckets the rules are filed in.
func TestIndexAlertOrder(t *testing.T) {
	set := mustParse(t, `rules:
  - {name: a, select: {metric: t}, above: 1}
  - {name: b, select: {metric: t, labels: {room: x}}, above: 1}
  - {name: c, select: {metric: t, sensor: s}, above: 1}
  - {name: d, select: {metric: t, sensor: "s*"}, above: 1}
  - {name: e, select: {metric: t, sensor: s}, above: 1}
  - {name: f, select: {metrics: [h, t], labels: {room: x}}, above: 1}
  - {name: g, select: {metric: t}, above: 1}
`)
	e := NewEngine(set, &Options{SensorLabels: map[string]map[string]string{"s": {"room": "x"}}})
	got := e.Eval([]outpost.Reading{rd("s", "t", 1, 2)}, nil)
	var names []string
	for _, a := range got {
		names = append(names, a.Rule)
	}
	if g := strings.Join(names, " "); g != "a b c d e f g" {
		t.Errorf("alerts of rules %q, want a b c d e f g", g)
	}
}

func ruleNames(rts []*ruleRT) []string {
	var names []string
	for _, rt := range rts {
		names = append(names, rt.rule.Name)
	}
	return names
}
