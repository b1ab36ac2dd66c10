package rules

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/outposthq/outpost"
)

// co2 is a reading of the sensor "s", metric "co2", at ts seconds.
func co2(ts, v float64) []outpost.Reading { return one(rd("s", "co2", ts, v)) }

func TestNextEvent(t *testing.T) {
	const m = int64(time.Minute)
	for _, tc := range []struct {
		name, rule string
		rs         []outpost.Reading
		now        int64
		want       int64
	}{
		{"nothing", "{name: r, select: {metric: co2}, above: 1000}", co2(0, 800), 0, NoEvent},
		{"firing, nothing due", "{name: r, select: {metric: co2}, above: 1000}", co2(0, 1200), 0, NoEvent},
		{"pending", "{name: r, select: {metric: co2}, above: 1000, for: 5m}", co2(60, 1200), 60 * sec, 6 * m},
		{"repeat", "{name: r, select: {metric: co2}, above: 1000, repeat: 10m}", co2(60, 1200), 60 * sec, 11 * m},
		{"no_data", "{name: r, select: {metric: co2}, above: 1000, no_data: {after: 3m}}", co2(60, 800), 60 * sec, 4 * m},
		{"the earliest", "{name: r, select: {metric: co2}, above: 1000, for: 5m, no_data: {after: 3m}}", co2(60, 1200), 60 * sec, 4 * m},
		{"keep_firing_for", "{name: r, select: {metric: co2}, above: 1000, keep_firing_for: 2m}",
			[]outpost.Reading{rd("s", "co2", 0, 1200), rd("s", "co2", 60, 800)}, 60 * sec, 3 * m},
		{"escalation", "{name: r, select: {metric: co2}, levels: [{severity: critical, above: 1500, for: 2m}, {severity: warning, above: 1000}]}",
			co2(60, 1600), 60 * sec, 3 * m},
		{"overdue: the next instant", "{name: r, select: {metric: co2}, above: 1000, for: 5m}", co2(60, 1200), 10 * m, 10*m + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEngine(mustParse(t, "rules:\n  - "+tc.rule+"\n"), nil)
			e.Eval(tc.rs, nil)
			if got := e.NextEvent(tc.now); got != tc.want {
				t.Fatalf("NextEvent(%v) = %v, want %v", time.Duration(tc.now), time.Duration(got), time.Duration(tc.want))
			}
		})
	}
	// Tick leaves an instance alone before its last transition (a clock
	// behind the readings'), so nothing is due before it.
	e := NewEngine(mustParse(t, "rules:\n  - {name: r, select: {metric: co2}, above: 1000, no_data: {after: 1m}}\n"), nil)
	e.Eval(co2(60, 800), nil)
	e.rules[0].order[0].changedAt = 10 * m
	if got := e.NextEvent(0); got != 10*m {
		t.Fatalf("NextEvent before the last transition = %v, want 10m", time.Duration(got))
	}
	if as := e.Tick(10*m-1, nil); len(as) != 0 || e.Tick(10*m, nil) == nil {
		t.Fatal("Tick does not leave the instance alone before its last transition")
	}
}

// Rules that use every timer Tick knows: for, escalation, step down,
// keep_firing_for, repeat, and each kind of no_data.
const timerRules = `rules:
  - name: lv
    select: {metric: a}
    levels:
      - {severity: critical, above: 80, for: 30s, reset_below: 70}
      - {severity: major, above: 60, for: 2m, reset_below: 50}
      - {severity: warning, above: 40, for: 5m}
    keep_firing_for: 3m
    repeat: 10m
    no_data: {after: 7m, state: firing, severity: major}
  - name: nd
    select: {metric: a}
    above: 50
    for: 90s
    no_data: {after: 4m}
  - name: rs
    select: {metric: b}
    below: 20
    keep_firing_for: 45s
    repeat: 1h
    no_data: {after: 10m, state: resolved}
  - name: win
    select: {metric: a}
    condition: 'avg(a, "5m") > 55'
    for: 1m
    repeat: 5m
  - name: quiet
    select: {metric: b}
    above: 70
    send_resolved: false
    repeat: 2m
`

// randomStream is readings grouped by timestamp, in time order: three
// sensors, two metrics, random walks with jumps, gaps from a second to
// half a day, half of them at whole seconds.
func randomStream(seed uint64, n int) [][]outpost.Reading {
	rng := rand.New(rand.NewPCG(seed, 12))
	ts := int64(1_700_000_000) * sec
	vals := map[string]float64{}
	var groups [][]outpost.Reading
	for range n {
		var g []outpost.Reading
		for _, s := range []string{"s1", "s2", "s3"} {
			for _, m := range []string{"a", "b"} {
				if rng.IntN(3) == 0 {
					continue
				}
				k := s + m
				v := vals[k] + rng.NormFloat64()*8
				if rng.IntN(15) == 0 {
					v = rng.Float64() * 100
				}
				vals[k] = min(max(v, 0), 100)
				g = append(g, outpost.Reading{Sensor: s, Metric: m, TS: ts, Value: vals[k]})
			}
		}
		if len(g) > 0 {
			groups = append(groups, g)
		}
		var gap time.Duration
		switch p := rng.IntN(100); {
		case p < 70:
			gap = time.Duration(1+rng.IntN(60)) * time.Second
		case p < 90:
			gap = time.Duration(1+rng.IntN(10)) * time.Minute
		case p < 98:
			gap = time.Duration(10+rng.IntN(110)) * time.Minute
		default:
			gap = time.Duration(2+rng.IntN(10)) * time.Hour
		}
		ts += int64(gap)
		if rng.IntN(2) == 0 {
			ts += rng.Int64N(sec) // off the tick grid; else the deadlines fall on it
		}
	}
	return groups
}

// drive feeds groups to e as a replay does: Eval the readings of a
// timestamp, Tick at it, then tick on the grid of multiples of tick
// before the next timestamp — at every point of it, or (jump) only at the
// first point at or after each NextEvent. It returns the alerts and the
// number of ticks.
func drive(t *testing.T, e *Engine, groups [][]outpost.Reading, tick int64, jump bool) ([]outpost.Alert, int) {
	t.Helper()
	var all []outpost.Alert
	ticks := 0
	for i, g := range groups {
		all = e.Eval(g, all)
		now := g[0].TS
		all = e.Tick(now, all)
		ticks++
		checkLive(t, e)
		if i+1 == len(groups) {
			break
		}
		next := groups[i+1][0].TS
		last := now
		for at := (now/tick + 1) * tick; at < next; at += tick {
			if jump {
				ev := e.NextEvent(last)
				if ev >= next {
					break
				}
				if ev > at {
					at += (ev - at + tick - 1) / tick * tick
				}
				if at >= next {
					break
				}
			}
			due := e.NextEvent(last)
			n := len(all)
			all = e.Tick(at, all)
			ticks++
			checkLive(t, e)
			if len(all) > n && at < due {
				t.Fatalf("Tick(%d) emitted %d alerts before NextEvent(%d) = %d", at, len(all)-n, last, due)
			}
			last = at
		}
	}
	return all, ticks
}

// checkLive checks what makes a Tick with nothing due change nothing:
// after a Tick, the live list holds no inactive instance.
func checkLive(t *testing.T, e *Engine) {
	t.Helper()
	for _, in := range e.live {
		if in.state == outpost.StateInactive || !in.live {
			t.Fatalf("%s is on the live list after Tick, inactive", in.fingerprint)
		}
	}
}

// Ticking only at NextEvent, on the grid, gives exactly the alerts of
// ticking at every point of the grid: same transitions, times, values,
// messages and sequence numbers, in the same order.
func TestNextEventJumpEqualsStep(t *testing.T) {
	set := mustParse(t, timerRules)
	kinds := map[string]int{}
	for seed := range uint64(6) {
		for _, tick := range []time.Duration{time.Second, 7 * time.Second} {
			t.Run(fmt.Sprintf("seed %d tick %v", seed, tick), func(t *testing.T) {
				groups := randomStream(seed, 150)
				step, nStep := drive(t, NewEngine(set, &Options{Gateway: "gw"}), groups, int64(tick), false)
				jump, nJump := drive(t, NewEngine(set, &Options{Gateway: "gw"}), groups, int64(tick), true)
				if !reflect.DeepEqual(step, jump) {
					for i := range min(len(step), len(jump)) {
						if !reflect.DeepEqual(step[i], jump[i]) {
							t.Fatalf("alert %d of %d/%d:\nstepping %+v\njumping  %+v", i, len(step), len(jump), step[i], jump[i])
						}
					}
					t.Fatalf("stepping emitted %d alerts, jumping %d", len(step), len(jump))
				}
				for i, a := range step {
					k := a.State.String()
					if i > 0 && a.State == outpost.StateFiring && a.ChangedAt > a.StartedAt && a.Severity == step[i-1].Severity {
						k = "firing again"
					}
					kinds[a.Rule+" "+k+" "+a.Severity]++
				}
				t.Logf("%d alerts; %d ticks stepping, %d jumping", len(step), nStep, nJump)
			})
		}
	}
	// The streams reach every timer.
	for _, k := range []string{"lv firing critical", "lv firing major", "lv firing warning", "lv resolved critical",
		"nd nodata warning", "nd pending warning", "rs firing warning", "rs resolved warning", "win firing warning", "quiet firing warning"} {
		if kinds[k] == 0 && !t.Failed() {
			t.Errorf("no %q in %v", k, kinds)
		}
	}
}
