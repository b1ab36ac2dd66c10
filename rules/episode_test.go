package rules

import (
	"encoding/json"
	"testing"

	"github.com/outposthq/outpost"
)

const co2Step = `rules:
  - name: step
    select: {metric: co2}
    levels:
      - {severity: critical, above: 1500, reset_below: 1300}
      - {severity: warning, above: 1000, for: 10m, reset_below: 900}
`

// On a step down, a lower level is entered only if it is met (its
// condition held for its for) or fired in this episode and has not
// reset; otherwise the alert resolves, and a level whose condition holds
// goes pending at once, its for counted from there.
func TestStepDown(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		steps     []step
	}{
		{"into a level that never held resolves", co2Step, []step{
			{rs: co2(0, 800), want: ""},
			{rs: co2(60, 1600), want: "firing/critical step/s 1600 60→60 #1\n"},
			{rs: co2(120, 950), want: "resolved/critical step/s 950 60→120 #2\n"},
			{rs: co2(180, 950), want: ""},
			{tick: 1000, want: ""},
		}},
		{"a lower level that holds but not for its for goes pending", co2Step, []step{
			{rs: co2(60, 1600), want: "firing/critical step/s 1600 60→60 #1\n"},
			{rs: co2(120, 1100), want: "resolved/critical step/s 1100 60→120 #2\npending/warning step/s 1100 120→120 #3\n"},
			{rs: co2(600, 1100), want: ""},
			{tick: 719, want: ""},
			{tick: 720, want: "firing/warning step/s 1100 120→720 #4\n"},
		}},
		{"back to a level that fired in the episode, by its hysteresis", co2Step, []step{
			{rs: co2(0, 1100), want: "pending/warning step/s 1100 0→0 #1\n"},
			{tick: 600, want: "firing/warning step/s 1100 0→600 #2\n"},
			{rs: co2(660, 1600), want: "firing/critical step/s 1600 0→660 #3\n"},
			{rs: co2(720, 950), want: "firing/warning step/s 950 0→720 #4\n"}, // 950 is not below 900
			{rs: co2(780, 1600), want: "firing/critical step/s 1600 0→780 #5\n"},
			{rs: co2(840, 850), want: "resolved/critical step/s 850 0→840 #6\n"}, // warning reset too
		}},
		{"into a level met but never fired", co2Step, []step{
			{rs: co2(0, 1100), want: "pending/warning step/s 1100 0→0 #1\n"},
			{rs: co2(60, 1600), want: "firing/critical step/s 1600 0→60 #2\n"},
			{rs: co2(600, 1100), want: "firing/warning step/s 1100 0→600 #3\n"}, // warning held since 0
		}},
		{"keep_firing_for does not delay a step down", co2Step + "    keep_firing_for: 15m\n", []step{
			{rs: co2(0, 1100), want: "pending/warning step/s 1100 0→0 #1\n"},
			{rs: co2(60, 1600), want: "firing/critical step/s 1600 0→60 #2\n"},
			{rs: co2(600, 1100), want: "firing/warning step/s 1100 0→600 #3\n"},
		}},
		{"a lower level's for runs out while keep_firing_for runs", co2Step + "    keep_firing_for: 15m\n", []step{
			{rs: co2(60, 1600), want: "firing/critical step/s 1600 60→60 #1\n"},
			{rs: co2(120, 1100), want: ""}, // critical reset; warning held since 60 only
			{tick: 659, want: ""},
			{tick: 660, want: "firing/warning step/s 1100 60→660 #2\n"},
		}},
		{"keep_firing_for ends first: resolved, then pending", co2Step + "    keep_firing_for: 5m\n", []step{
			{rs: co2(60, 1600), want: "firing/critical step/s 1600 60→60 #1\n"},
			{rs: co2(120, 1100), want: ""},
			{tick: 419, want: ""},
			{tick: 420, want: "resolved/critical step/s 1100 60→420 #2\npending/warning step/s 1100 420→420 #3\n"},
			{tick: 1019, want: ""},
			{tick: 1020, want: "firing/warning step/s 1100 420→1020 #4\n"},
		}},
		{"a lower level without for is met at once", `rules:
  - name: step
    select: {metric: co2}
    levels:
      - {severity: critical, above: 1500, reset_below: 1300}
      - {severity: warning, above: 1000, reset_below: 900}
`, []step{
			{rs: co2(60, 1600), want: "firing/critical step/s 1600 60→60 #1\n"},
			{rs: co2(120, 1100), want: "firing/warning step/s 1100 60→120 #2\n"},
			{rs: co2(180, 1600), want: "firing/critical step/s 1600 60→180 #3\n"},
			{rs: co2(240, 950), want: "firing/warning step/s 950 60→240 #4\n"}, // fired in this episode
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runS(t, NewEngine(mustParse(t, tc.src), nil), tc.steps)
		})
	}
}

const co2Silent = `rules:
  - name: silent
    select: {metric: co2}
    levels:
      - {severity: critical, above: 1500}
      - {severity: warning, above: 1000}
`

// no_data {state: firing} fires at its severity from any state, also over
// a less severe firing level; over one at least as severe it changes
// nothing. The alerts that end a no_data episode have its severity.
func TestNoDataOverAFiringLevel(t *testing.T) {
	for _, tc := range []struct {
		name, noData string
		steps        []step
	}{
		{"warning firing goes critical, and resolves as critical", "{after: 5m, state: firing}", []step{
			{rs: co2(0, 1200), want: "firing/warning silent/s 1200 0→0 #1\n"},
			{tick: 299, want: ""},
			{tick: 300, want: "firing/critical silent/s 1200 0→300 #2\n"},
			{tick: 900, want: ""},
			{rs: co2(960, 800), want: "resolved/critical silent/s 800 0→960 #3\n"},
		}},
		{"data back at a level fires that level", "{after: 5m, state: firing}", []step{
			{rs: co2(0, 1200), want: "firing/warning silent/s 1200 0→0 #1\n"},
			{tick: 300, want: "firing/critical silent/s 1200 0→300 #2\n"},
			{rs: co2(360, 1200), want: "firing/warning silent/s 1200 0→360 #3\n"},
		}},
		{"already at its severity: nothing", "{after: 5m, state: firing}", []step{
			{rs: co2(0, 1600), want: "firing/critical silent/s 1600 0→0 #1\n"},
			{tick: 300, want: ""},
			{rs: co2(360, 800), want: "resolved/critical silent/s 800 0→360 #2\n"},
		}},
		{"at a more severe level: nothing", "{after: 5m, state: firing, severity: warning}", []step{
			{rs: co2(0, 1600), want: "firing/critical silent/s 1600 0→0 #1\n"},
			{tick: 300, want: ""},
			{rs: co2(360, 1200), want: "firing/warning silent/s 1200 0→360 #2\n"}, // critical reset; warning holds
		}},
		{"a severity that names no level replaces any", "{after: 5m, state: firing, severity: page}", []step{
			{rs: co2(0, 1600), want: "firing/critical silent/s 1600 0→0 #1\n"},
			{tick: 300, want: "firing/page silent/s 1600 0→300 #2\n"},
			{rs: co2(360, 800), want: "resolved/page silent/s 800 0→360 #3\n"},
		}},
		{"the resolved that ends a nodata has no_data's severity", "{after: 5m}", []step{
			{rs: co2(0, 1200), want: "firing/warning silent/s 1200 0→0 #1\n"},
			{rs: co2(60, 800), want: "resolved/warning silent/s 800 0→60 #2\n"},
			{tick: 360, want: "nodata/critical silent/s 800 360→360 #3\n"},
			{rs: co2(400, 800), want: "resolved/critical silent/s 800 360→400 #4\n"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runS(t, NewEngine(mustParse(t, co2Silent+"    no_data: "+tc.noData+"\n"), nil), tc.steps)
		})
	}
}

// The reading that ends a no_data firing with the condition true starts
// the `for` (not the reading after it).
func TestForAfterNoDataFiring(t *testing.T) {
	e := NewEngine(mustParse(t, "rules:\n  - {name: f, select: {metric: co2}, above: 1000, for: 5m, no_data: {after: 3m, state: firing}}\n"), nil)
	runS(t, e, []step{
		{rs: co2(0, 800), want: ""},
		{tick: 180, want: "firing/warning f/s 800 180→180 #1\n"},
		{rs: co2(240, 1200), want: "resolved/warning f/s 1200 180→240 #2\npending/warning f/s 1200 240→240 #3\n"},
		{rs: []outpost.Reading{rd("s", "co2", 300, 1200), rd("s", "co2", 420, 1200)}, want: ""},
		{tick: 539, want: ""},
		{tick: 540, want: "firing/warning f/s 1200 240→540 #4\n"},
	})
}

// The levels fired in an episode survive a restart; state saved before
// they were kept restores, counting only the current level as fired.
func TestStateKeepsFiredLevels(t *testing.T) {
	e1 := NewEngine(mustParse(t, co2Step), nil)
	runS(t, e1, []step{
		{rs: co2(0, 1100), want: "pending/warning step/s 1100 0→0 #1\n"},
		{tick: 600, want: "firing/warning step/s 1100 0→600 #2\n"},
		{rs: co2(660, 1600), want: "firing/critical step/s 1600 0→660 #3\n"},
	})
	b, err := json.Marshal(e1.State())
	if err != nil {
		t.Fatal(err)
	}
	var st EngineState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if got := st.Instances[0].Fired; len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("fired %v in %s", got, b)
	}
	e2 := NewEngine(mustParse(t, co2Step), nil)
	if n := e2.Restore(st); n != 1 {
		t.Fatalf("restored %d", n)
	}
	runS(t, e2, []step{{rs: co2(720, 950), want: "firing/warning step/s 950 0→720 #4\n"}})

	// The same state as the version before wrote it: no fired.
	st.Instances[0].Fired = nil
	e3 := NewEngine(mustParse(t, co2Step), nil)
	if n := e3.Restore(st); n != 1 {
		t.Fatalf("restored %d", n)
	}
	runS(t, e3, []step{{rs: co2(720, 950), want: "resolved/critical step/s 950 0→720 #4\n"}})
}

// A nodata instance saved with the level it had before (as the version
// before did) restores at no_data's severity.
func TestRestoreOldNoData(t *testing.T) {
	set := mustParse(t, co2Silent+"    no_data: {after: 5m}\n")
	old := `{"seq": 3, "instances": [{"rule": "silent", "hash": "` + set.Rules[0].Hash() + `", "fingerprint": "silent/s",
		"group": {"sensor": "s"}, "state": 4, "level": 1, "severity": "critical", "started_at": 360000000000,
		"changed_at": 360000000000, "last_seen": 60000000000, "sent_at": 360000000000, "value": 800, "stale": true}]}`
	var st EngineState
	if err := json.Unmarshal([]byte(old), &st); err != nil {
		t.Fatal(err)
	}
	e := NewEngine(set, nil)
	if n := e.Restore(st); n != 1 {
		t.Fatalf("restored %d", n)
	}
	runS(t, e, []step{{rs: co2(400, 800), want: "resolved/critical silent/s 800 360→400 #4\n"}})
}
