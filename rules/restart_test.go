package rules_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
)

// A restart (State, JSON, a fresh engine, Restore, as the gateway does it)
// changes no alert: no_data still comes for a sensor silent since before
// it, Tick's alerts still name the sensor of the latest reading, and one
// Tick's alerts come in the same order with the same Seq.
func TestRestartRepro(t *testing.T) {
	sec := int64(time.Second)
	labels := map[string]map[string]string{"s1": {"device": "d1"}, "s2": {"device": "d1"}}
	rd := func(s string, at, v float64) outpost.Reading {
		return outpost.Reading{Sensor: s, Metric: "temp", TS: int64(at * float64(sec)), Value: v}
	}
	for _, tc := range []struct {
		name, rule string
		rs         []outpost.Reading
	}{
		{"no_data forgotten", "{name: stale, select: {metric: temp}, above: 50, no_data: {after: 10s}}", []outpost.Reading{rd("s1", 0, 20)}},
		{"sensor forgotten", "{name: hot, select: {metric: temp}, group_by: [device], above: 50, for: 5s}", []outpost.Reading{rd("s1", 0, 60)}},
		{"tick order", "{name: warm, select: {metric: temp}, above: 50, for: 5s}", []outpost.Reading{rd("s1", 0, 20), rd("s2", 0.5, 60), rd("s1", 0.7, 60)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := rules.Parse("r.yaml", []byte("rules:\n  - "+tc.rule+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			run := func(restart bool) (out []string) {
				e := rules.NewEngine(set, &rules.Options{SensorLabels: labels})
				next := 0
				for now := int64(0); now <= 12*sec; now += sec / 2 {
					if restart && now == 3*sec/2 {
						e = restarted(t, e, set, &rules.Options{SensorLabels: labels})
					}
					var as []outpost.Alert
					for ; next < len(tc.rs) && tc.rs[next].TS <= now; next++ {
						as = e.Eval(tc.rs[next:next+1], as)
					}
					if now%sec == 0 {
						as = e.Tick(now, as)
					}
					for _, a := range as {
						out = append(out, fmt.Sprintf("%v %s %s #%d %q", time.Duration(a.ChangedAt), a.State, a.Fingerprint, a.Seq, a.Message))
					}
				}
				return out
			}
			a, b := run(false), run(true)
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("straight:  %q\nrestarted: %q", a, b)
			}
			if len(a) == 0 {
				t.Error("no alert: the case shows nothing")
			}
		})
	}
}

// An instance that went inactive since the last Tick is still on Tick's
// list, where it stays if it goes pending again before that Tick: after a
// restart in between too.
func TestRestartKeepsInactiveOnTheList(t *testing.T) {
	sec := int64(time.Second)
	set, err := rules.Parse("r.yaml", []byte("rules:\n  - {name: warm, select: {metric: temp}, above: 50, for: 5s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rs := []outpost.Reading{
		{Sensor: "s1", Metric: "temp", TS: 0, Value: 60},
		{Sensor: "s2", Metric: "temp", TS: sec, Value: 60},
		{Sensor: "s1", Metric: "temp", TS: 2 * sec, Value: 20}, // s1 inactive, still first on the list
		{Sensor: "s1", Metric: "temp", TS: 3 * sec, Value: 60}, // pending again: first
	}
	run := func(restart bool) (out []string) {
		e := rules.NewEngine(set, nil)
		for i := range rs {
			if restart && i == 3 {
				e = restarted(t, e, set, nil)
			}
			for _, a := range e.Eval(rs[i:i+1], nil) {
				out = append(out, fmt.Sprintf("%s %s #%d", a.State, a.Fingerprint, a.Seq))
			}
		}
		for _, a := range e.Tick(8*sec, nil) {
			out = append(out, fmt.Sprintf("%s %s #%d", a.State, a.Fingerprint, a.Seq))
		}
		return out
	}
	want := "[pending warm/s1 #1 pending warm/s2 #2 inactive warm/s1 #3 pending warm/s1 #4 firing warm/s1 #5 firing warm/s2 #6]"
	for _, restart := range []bool{false, true} {
		if got := fmt.Sprint(run(restart)); got != want {
			t.Errorf("restart %v: got\n%s\nwant\n%s", restart, got, want)
		}
	}
}

// restarted saves e's state as the gateway does (JSON) and returns a
// fresh engine that restored it.
func restarted(t *testing.T, e *rules.Engine, set *rules.Set, opts *rules.Options) *rules.Engine {
	t.Helper()
	data, err := json.Marshal(e.State())
	if err != nil {
		t.Fatal(err)
	}
	var st rules.EngineState
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	fresh := rules.NewEngine(set, opts)
	if n := fresh.Restore(st); n != len(st.Instances) {
		t.Fatalf("restored %d of %d instances: %s", n, len(st.Instances), data)
	}
	return fresh
}

// State saved by the version before (no version, no inactive instances,
// no places on the live list, last_seen 0 for none) restores as it did:
// instances in the order saved, the sensor of the group.
func TestRestoreStateOfTheVersionBefore(t *testing.T) {
	sec := int64(time.Second)
	set, err := rules.Parse("r.yaml", []byte(`rules:
  - {name: warm, select: {metric: temp}, above: 50, for: 5s, no_data: {after: 1m}}
`))
	if err != nil {
		t.Fatal(err)
	}
	hash := set.Rules[0].Hash()
	old := `{"seq":7,"instances":[
{"rule":"warm","hash":"` + hash + `","fingerprint":"warm/s1","group":{"sensor":"s1"},"state":1,"level":0,"severity":"warning","started_at":2000000000,"changed_at":2000000000,"last_seen":2000000000,"sent_at":2000000000,"value":60,"timers":[{"level":0,"since":2000000000}]},
{"rule":"warm","hash":"` + hash + `","fingerprint":"warm/s2","group":{"sensor":"s2"},"state":1,"level":0,"severity":"warning","started_at":1000000000,"changed_at":1000000000,"last_seen":0,"sent_at":1000000000,"value":70,"timers":[{"level":0,"since":1000000000}]}]}`
	var st rules.EngineState
	if err := json.Unmarshal([]byte(old), &st); err != nil {
		t.Fatal(err)
	}
	e := rules.NewEngine(set, nil)
	if n := e.Restore(st); n != 2 {
		t.Fatalf("restored %d of 2", n)
	}
	var got []string
	for _, a := range e.Tick(7*sec, nil) {
		got = append(got, fmt.Sprintf("%s %s #%d %q", a.State, a.Fingerprint, a.Seq, a.Message))
	}
	want := []string{
		`firing warm/s1 #8 "s1 temp is 60 (warm: value > 50)"`,
		`firing warm/s2 #9 "s2 temp is 70 (warm: value > 50)"`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// s2's last_seen of 0 meant no reading: no_data does not watch it,
	// s1's comes a minute after its reading.
	if next := e.NextEvent(7 * sec); next != 62*sec {
		t.Errorf("NextEvent %v, want 1m2s", time.Duration(next))
	}
}

// An inactive instance is saved only if no_data watches it or it is still
// on Tick's list, with only what those need.
func TestStateOfInactiveInstances(t *testing.T) {
	set, err := rules.Parse("r.yaml", []byte(`rules:
  - {name: quiet, select: {metric: temp}, above: 50, no_data: {after: 1m}}
  - {name: plain, select: {metric: temp}, above: 50}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := rules.NewEngine(set, nil)
	e.Eval([]outpost.Reading{{Sensor: "s1", Metric: "temp", TS: 1e9, Value: 20}}, nil)
	data, err := json.Marshal(e.State())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":1,"seq":0,"instances":[{"rule":"quiet","hash":"` + set.Rules[0].Hash() +
		`","fingerprint":"quiet/s1","group":{"sensor":"s1"},"state":0,"changed_at":0,"last_seen":1000000000,"value":20}]}`
	if string(data) != want {
		t.Errorf("state\n%s\nwant\n%s", data, want)
	}
}
