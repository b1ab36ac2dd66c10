package outpost_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/outposthq/outpost"
)

// The JSON names are a contract with the ingest service and the web
// console: every field, in order, and what is left out when empty.
func TestStatusJSON(t *testing.T) {
	st := outpost.Status{
		State: "online", Gateway: "gw-1", TS: "2026-12-06T10:00:00.123Z",
		Version: "outpost v1.2.3 go1.26.8 linux/arm", StartedAt: "2026-12-06T09:00:00Z",
		Labels:  map[string]string{"site": "plant-3"},
		Sensors: map[string]outpost.SensorStatus{"bme-1": {Labels: map[string]string{}}},
		Health: &outpost.StatusHealth{
			OutboxBatches: 12, OutboxBytes: 34567, OutboxOldest: "2026-12-06T09:55:00Z", ReadingsPerS: 6.25,
			AlertsFiring: 1, SensorsFailing: map[string][]string{"bme-1": {"failing"}},
		},
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"state":"online","gateway":"gw-1","ts":"2026-12-06T10:00:00.123Z","version":"outpost v1.2.3 go1.26.8 linux/arm",` +
		`"started_at":"2026-12-06T09:00:00Z","labels":{"site":"plant-3"},"sensors":{"bme-1":{"labels":{}}},"health":{"outbox_batches":12,"outbox_bytes":34567,` +
		`"outbox_oldest":"2026-12-06T09:55:00Z","readings_per_s":6.25,"alerts_firing":1,"alerts_pending":0,"sensors_failing":{"bme-1":["failing"]}}}`
	if string(b) != want {
		t.Fatalf("got\n%s\nwant\n%s", b, want)
	}
	// An empty outbox has no oldest batch; no sensor failing is {}.
	b, err = json.Marshal(outpost.StatusHealth{SensorsFailing: map[string][]string{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != `{"outbox_batches":0,"outbox_bytes":0,"readings_per_s":0,"alerts_firing":0,"alerts_pending":0,"sensors_failing":{}}` {
		t.Errorf("empty health %s", got)
	}
	// The last will, and a gateway of an earlier release: no health.
	var old outpost.Status
	if err := json.Unmarshal([]byte(`{"state":"online","gateway":"gw","ts":"2026-11-26T15:40:02Z","sensors":{"a":{"labels":{}}}}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Health != nil || old.Version != "" || old.StartedAt != "" || old.CheckProcess() != nil {
		t.Errorf("an older gateway's status: %+v", old)
	}
	if b, _ := json.Marshal(outpost.Status{State: "offline", Gateway: "gw"}); string(b) != `{"state":"offline","gateway":"gw"}` {
		t.Errorf("last will %s", b)
	}
}

func TestStatusChecks(t *testing.T) {
	long := func(n int) string { return strings.Repeat("v", n) }
	for _, tc := range []struct {
		name string
		st   outpost.Status
		want string // "" valid
	}{
		{"nothing", outpost.Status{}, ""},
		{"version at its bound", outpost.Status{Version: long(outpost.MaxStatusVersionLen)}, ""},
		{"UTF-8 version", outpost.Status{Version: "outpost v1 – été"}, ""},
		{"long version", outpost.Status{Version: long(outpost.MaxStatusVersionLen + 1)}, "version of 257 bytes, longer than 256"},
		{"NUL in version", outpost.Status{Version: "v1\x00"}, "version contains a NUL byte"},
		{"bad UTF-8 version", outpost.Status{Version: "v1\xff"}, "version is not valid UTF-8"},
		{"started_at", outpost.Status{StartedAt: "2026-12-06T09:00:00+01:00"}, ""},
		{"started_at with ns", outpost.Status{StartedAt: "2026-12-06T09:00:00.123456789Z"}, ""},
		{"bad started_at", outpost.Status{StartedAt: "yesterday"}, `started_at "yesterday" is not an RFC 3339 time`},
		{"started_at without zone", outpost.Status{StartedAt: "2026-12-06T09:00:00"}, "is not an RFC 3339 time"},
	} {
		err := tc.st.CheckProcess()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: CheckProcess = %v, want %q", tc.name, err, tc.want)
		}
	}

	manySensors := map[string][]string{}
	for i := range outpost.MaxStatusSensors + 1 {
		manySensors[fmt.Sprint("s", i)] = []string{"failing"}
	}
	manyConds := make([]string, outpost.MaxSensorConditions+1)
	for i := range manyConds {
		manyConds[i] = fmt.Sprint("c", i)
	}
	for _, tc := range []struct {
		name string
		h    outpost.StatusHealth
		want string
	}{
		{"zero", outpost.StatusHealth{}, ""},
		{"every condition", outpost.StatusHealth{SensorsFailing: map[string][]string{"s": outpost.SensorConditions()}}, ""},
		{"a later release's condition", outpost.StatusHealth{SensorsFailing: map[string][]string{"s": {"overheated"}}}, ""},
		{"conditions at the bound", outpost.StatusHealth{SensorsFailing: map[string][]string{"s": manyConds[:outpost.MaxSensorConditions]}}, ""},
		{"negative batches", outpost.StatusHealth{OutboxBatches: -1}, "outbox_batches is negative (-1)"},
		{"negative bytes", outpost.StatusHealth{OutboxBytes: -1}, "outbox_bytes is negative"},
		{"negative firing", outpost.StatusHealth{AlertsFiring: -1}, "alerts_firing is negative"},
		{"negative pending", outpost.StatusHealth{AlertsPending: -2}, "alerts_pending is negative"},
		{"negative rate", outpost.StatusHealth{ReadingsPerS: -1}, "readings_per_s is -1, not a finite number >= 0"},
		{"NaN rate", outpost.StatusHealth{ReadingsPerS: math.NaN()}, "readings_per_s is NaN"},
		{"infinite rate", outpost.StatusHealth{ReadingsPerS: math.Inf(1)}, "readings_per_s is +Inf"},
		{"bad oldest", outpost.StatusHealth{OutboxOldest: "2026-13-01T00:00:00Z"}, "outbox_oldest"},
		{"too many sensors", outpost.StatusHealth{SensorsFailing: manySensors}, "sensors_failing: 4097 sensors, more than 4096"},
		{"bad sensor id", outpost.StatusHealth{SensorsFailing: map[string][]string{"a/b": {"failing"}}}, `sensors_failing: sensor id "a/b" is not a valid name`},
		{"no conditions", outpost.StatusHealth{SensorsFailing: map[string][]string{"s": {}}}, "sensor s: no conditions"},
		{"null conditions", outpost.StatusHealth{SensorsFailing: map[string][]string{"s": nil}}, "sensor s: no conditions"},
		{"too many conditions", outpost.StatusHealth{SensorsFailing: map[string][]string{"s": manyConds}}, "17 conditions, more than 16"},
		{"bad condition", outpost.StatusHealth{SensorsFailing: map[string][]string{"s": {"on fire"}}}, `condition "on fire" is not a valid name`},
		{"long condition", outpost.StatusHealth{SensorsFailing: map[string][]string{"s": {long(outpost.MaxConditionLen + 1)}}}, "of at most 32 bytes"},
		{"twice", outpost.StatusHealth{SensorsFailing: map[string][]string{"s": {"failing", "slow", "failing"}}}, "condition failing listed twice"},
	} {
		err := tc.h.Check()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Check = %v, want %q", tc.name, err, tc.want)
		}
	}

	conds := outpost.SensorConditions()
	if !slices.IsSorted(conds) || len(conds) == 0 || len(conds) > outpost.MaxSensorConditions {
		t.Errorf("SensorConditions() = %v: want sorted, within the bound", conds)
	}
	conds[0] = "changed"
	if outpost.SensorConditions()[0] == "changed" {
		t.Error("SensorConditions shares its slice")
	}
	tooMany := outpost.Status{Sensors: map[string]outpost.SensorStatus{}}
	for i := range outpost.MaxStatusSensors + 1 {
		tooMany.Sensors[fmt.Sprint("s", i)] = outpost.SensorStatus{}
	}
	if err := tooMany.CheckSensors(); err == nil || !strings.Contains(err.Error(), "4097 sensors, more than 4096") {
		t.Errorf("CheckSensors = %v", err)
	}
}

// StatusSize bounds every document a gateway with these sensors makes:
// any version within its bound, any counts, rate and times, any subset
// of the conditions failing; and it counts the health, so it is well
// above what the sensors alone take.
func TestStatusSizeBoundsEveryDocument(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sensors := outpost.StatusSensors(map[string]map[string]string{
		"bme-1": {"room": "lab"}, strings.Repeat("x", outpost.MaxNameLen): nil, "d": {"a": "<&>\u2028"},
	})
	labels := map[string]string{"site": "plant-3", "ring": "<canary>"}
	bound := outpost.StatusSize("gw-1", labels, sensors)
	if without := outpost.StatusSize("gw-1", nil, sensors); bound <= without {
		t.Fatalf("StatusSize with labels %d, without %d: the labels are not counted", bound, without)
	}
	plain, err := json.Marshal(outpost.Status{State: "offline", Gateway: "gw-1", TS: "2006-01-02T15:04:05.999999999Z", Labels: labels, Sensors: sensors})
	if err != nil {
		t.Fatal(err)
	}
	if min := len(plain) + len(sensors)*len(`"":["bad","failing","slow","stuck"],`); bound < min {
		t.Fatalf("StatusSize %d, less than the sensors (%d bytes) all failing", bound, len(plain))
	}
	conds := outpost.SensorConditions()
	for i := range 20000 {
		failing := map[string][]string{}
		for id := range sensors {
			var cs []string
			for _, c := range conds {
				if r.IntN(2) == 0 {
					cs = append(cs, c)
				}
			}
			if len(cs) > 0 {
				failing[id] = cs
			}
		}
		st := outpost.Status{
			State: []string{"online", "offline"}[r.IntN(2)], Gateway: "gw-1",
			TS:      time.Unix(0, r.Int64()).UTC().Format(time.RFC3339Nano),
			Version: randomVersion(r), StartedAt: time.Unix(r.Int64N(1<<34), 0).UTC().Format(time.RFC3339),
			Labels: labels, Sensors: sensors,
			Health: &outpost.StatusHealth{
				OutboxBatches: r.Int64(), OutboxBytes: r.Int64(), AlertsFiring: r.Int64(), AlertsPending: r.Int64(),
				OutboxOldest: time.Unix(r.Int64N(1<<34), 0).UTC().Format(time.RFC3339),
				ReadingsPerS: randomRate(r), SensorsFailing: failing,
			},
		}
		if err := st.CheckProcess(); err != nil {
			t.Fatal(err)
		}
		if err := st.Health.Check(); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > bound {
			t.Fatalf("document %d of %d bytes, over StatusSize %d:\n%s", i, len(b), bound, b)
		}
	}
}

// randomVersion is a version within the bound: often the worst bytes
// for JSON (escaped to six each), else random runes.
func randomVersion(r *rand.Rand) string {
	if r.IntN(4) == 0 {
		return strings.Repeat("<", outpost.MaxStatusVersionLen)
	}
	var b []byte
	for {
		var rb [utf8.UTFMax]byte
		n := utf8.EncodeRune(rb[:], rune(1+r.IntN(0x10FFFF)))
		if len(b)+n > outpost.MaxStatusVersionLen {
			return string(b)
		}
		b = append(b, rb[:n]...)
	}
}

// randomRate is a finite rate >= 0 of any magnitude and precision.
func randomRate(r *rand.Rand) float64 {
	for {
		f := math.Float64frombits(r.Uint64() &^ (1 << 63))
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
	}
}

// The example in docs/wire-format.md ("Status") is a document the types
// read whole, field for field, and the ingest service accepts.
func TestStatusDocExample(t *testing.T) {
	doc, err := os.ReadFile("docs/wire-format.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "\n### Status\n")
	if !ok {
		t.Fatal("no Status section")
	}
	_, rest, ok = strings.Cut(rest, "```json\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no JSON example in the Status section")
	}
	dec := json.NewDecoder(strings.NewReader(example))
	dec.DisallowUnknownFields()
	var st outpost.Status
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("example: %v\n%s", err, example)
	}
	if err := errors.Join(st.CheckLabels(), st.CheckSensors(), st.CheckProcess(), st.Health.Check()); err != nil {
		t.Fatal(err)
	}
	if st.Version == "" || st.StartedAt == "" || len(st.Labels) == 0 || st.Health.OutboxOldest == "" || len(st.Health.SensorsFailing) == 0 {
		t.Errorf("the example leaves out a field: %+v %+v", st, st.Health)
	}
}

// A gateway's labels round-trip in its status document, are left out
// when it has none, and are held to the bounds of a sensor's labels.
func TestStatusLabels(t *testing.T) {
	long := func(n int) string { return strings.Repeat("v", n) }
	in := outpost.Status{State: "online", Gateway: "gw-1", Labels: map[string]string{"site": "plant-3", "ring": "canary"}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out outpost.Status
	if err := json.Unmarshal(b, &out); err != nil || !maps.Equal(out.Labels, in.Labels) || out.CheckLabels() != nil {
		t.Fatalf("%s: %+v, %v", b, out, err)
	}
	b, err = json.Marshal(outpost.Status{State: "offline", Gateway: "gw-1"})
	if err != nil || strings.Contains(string(b), "labels") {
		t.Fatalf("without labels: %s, %v", b, err)
	}
	var old outpost.Status
	if err := json.Unmarshal([]byte(`{"state":"online","gateway":"gw-1"}`), &old); err != nil || old.Labels != nil || old.CheckLabels() != nil {
		t.Fatalf("an earlier release's status: %+v, %v", old, err)
	}
	many := map[string]string{}
	for i := range outpost.MaxSensorLabels + 1 {
		many[fmt.Sprint("l", i)] = "v"
	}
	for _, c := range []struct {
		labels map[string]string
		want   string
	}{
		{many, "labels: 65 labels, more than 64"},
		{map[string]string{"": "x"}, "labels: a label with an empty name"},
		{map[string]string{long(outpost.MaxLabelNameLen + 1): "x"}, "longer than 128"},
		{map[string]string{"a": long(outpost.MaxLabelValueLen + 1)}, "longer than 1024"},
		{map[string]string{"a": "x\x00y"}, "NUL"},
		{map[string]string{"a": "\xff"}, "UTF-8"},
	} {
		if err := (&outpost.Status{Labels: c.labels}).CheckLabels(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckLabels(%.40q) = %v, want %q", c.labels, err, c.want)
		}
	}
}
