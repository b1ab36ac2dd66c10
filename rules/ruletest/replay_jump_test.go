package ruletest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
)

// A gap of three days in the input with repeat: 6h gets all twelve
// repeats (the replay once stopped ticking 36 hours into a gap).
func TestReplayLongGap(t *testing.T) {
	set, err := rules.Parse("r.yaml", []byte("rules:\n  - {name: r, select: {metric: co2}, above: 1000, repeat: 6h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	csv := "ts,sensor,metric,value\n2015-02-05T09:00:00Z,office,co2,1200\n2015-02-08T09:01:00Z,office,co2,1200\n"
	base := time.Date(2015, 2, 5, 9, 0, 0, 0, time.UTC).UnixNano()
	var got []string
	err = Replay(context.Background(), set, strings.NewReader(csv), func(as []outpost.Alert) error {
		for _, a := range as {
			if a.StartedAt != base {
				t.Errorf("%s started at %s", a.State, fmtTS(a.StartedAt))
			}
			got = append(got, fmt.Sprintf("%s@%s", a.State, FormatOffset(time.Duration(a.ChangedAt-base))))
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"firing@0s"}
	for h := 6; h <= 72; h += 6 {
		want = append(want, fmt.Sprintf("firing@%dh", h))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

// Rules with every timer the engine has.
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
  - name: quiet
    select: {metric: b}
    above: 70
    send_resolved: false
    repeat: 2m
`

// randomReadings is a recording of three sensors' two metrics: random
// walks with jumps, gaps from a second to two days, half of the
// timestamps at whole seconds.
func randomReadings(seed uint64, n int) []outpost.Reading {
	rng := rand.New(rand.NewPCG(seed, 6))
	ts := time.Date(2015, 2, 5, 9, 0, 0, 0, time.UTC).UnixNano()
	vals := map[string]float64{}
	var rs []outpost.Reading
	for range n {
		for _, s := range []string{"s1", "s2", "s3"} {
			for _, m := range []string{"a", "b"} {
				if rng.IntN(3) > 0 {
					v := vals[s+m] + rng.NormFloat64()*8
					if rng.IntN(15) == 0 {
						v = rng.Float64() * 100
					}
					vals[s+m] = min(max(v, 0), 100)
					rs = append(rs, outpost.Reading{Sensor: s, Metric: m, TS: ts, Value: vals[s+m]})
				}
			}
		}
		gap := time.Duration(1+rng.IntN(60)) * time.Second
		switch p := rng.IntN(100); {
		case p < 20:
			gap = time.Duration(1+rng.IntN(10)) * time.Minute
		case p < 28:
			gap = time.Duration(10+rng.IntN(110)) * time.Minute
		case p < 30:
			gap = time.Duration(2+rng.IntN(46)) * time.Hour
		}
		ts += int64(gap)
		if rng.IntN(2) == 0 {
			ts += rng.Int64N(int64(time.Second))
		}
	}
	return rs
}

// stepReplay is Replay as it was, less the cap: Tick after each
// timestamp and at every multiple of tick up to the next.
func stepReplay(set *rules.Set, rs []outpost.Reading, tick int64) []outpost.Alert {
	e := rules.NewEngine(set, nil)
	var all []outpost.Alert
	for i, r := range rs {
		all = e.Eval([]outpost.Reading{r}, all)
		if i+1 < len(rs) && rs[i+1].TS == r.TS {
			continue
		}
		all = e.Tick(r.TS, all)
		if i+1 < len(rs) {
			for t := (r.TS/tick + 1) * tick; t < rs[i+1].TS; t += tick {
				all = e.Tick(t, all)
			}
		}
	}
	return all
}

// Replay ticks only when something is due, and emits exactly what ticking
// at every multiple of the tick does.
func TestReplayJumpEqualsStep(t *testing.T) {
	set, err := rules.Parse("r.yaml", []byte(timerRules))
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(4) {
		for _, tick := range []time.Duration{time.Second, 5 * time.Second} {
			t.Run(fmt.Sprintf("seed %d tick %v", seed, tick), func(t *testing.T) {
				rs := randomReadings(seed, 120)
				var csv strings.Builder
				csv.WriteString(CSVHeader + "\n")
				for _, r := range rs {
					fmt.Fprintf(&csv, "%s,%s,%s,%v\n", fmtTS(r.TS), r.Sensor, r.Metric, r.Value)
				}
				var got []outpost.Alert
				err := Replay(context.Background(), set, strings.NewReader(csv.String()), func(as []outpost.Alert) error {
					got = append(got, as...)
					return nil
				}, &ReplayOptions{Tick: tick, Reorder: -1})
				if err != nil {
					t.Fatal(err)
				}
				want := stepReplay(set, rs, int64(tick))
				if len(want) < 100 {
					t.Fatalf("only %d alerts: a weak test", len(want))
				}
				if !reflect.DeepEqual(got, want) {
					for i := range min(len(got), len(want)) {
						if !reflect.DeepEqual(got[i], want[i]) {
							t.Fatalf("alert %d:\njumping  %+v\nstepping %+v", i, got[i], want[i])
						}
					}
					t.Fatalf("jumping emitted %d alerts, stepping %d", len(got), len(want))
				}
			})
		}
	}
}
