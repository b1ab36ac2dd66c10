package ruletest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
)

// sliceSource is a ReadingSource of a slice, without lines.
type sliceSource struct {
	rs  []outpost.Reading
	err error // returned after the readings, instead of io.EOF, if set
}

func (s *sliceSource) Read() (outpost.Reading, error) {
	if len(s.rs) == 0 {
		if s.err != nil {
			return outpost.Reading{}, s.err
		}
		return outpost.Reading{}, io.EOF
	}
	r := s.rs[0]
	s.rs = s.rs[1:]
	return r, nil
}

// ReplayFrom over readings gives what Replay gives over the same readings
// as CSV; its errors of order have no line, and a source's error comes
// back wrapped.
func TestReplayFrom(t *testing.T) {
	set, err := rules.Parse("r.yaml", []byte(co2Rules))
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2015, 2, 5, 9, 0, 0, 0, time.UTC).UnixNano()
	rs := []outpost.Reading{
		{Sensor: "office", Metric: "co2", TS: base, Value: 1200},
		{Sensor: "office", Metric: "co2", TS: base + int64(15*time.Minute), Value: 1300},
		{Sensor: "office", Metric: "co2", TS: base + int64(20*time.Minute), Value: 900},
	}
	var fromCSV, fromSlice bytes.Buffer
	wc := NewJSONWriter(&fromCSV)
	csv := CSVHeader + "\n2015-02-05T09:00:00Z,office,co2,1200\n2015-02-05T09:15:00Z,office,co2,1300\n2015-02-05T09:20:00Z,office,co2,900\n"
	if err := Replay(context.Background(), set, strings.NewReader(csv), wc.Write, nil); err != nil {
		t.Fatal(err)
	}
	ws := NewJSONWriter(&fromSlice)
	if err := ReplayFrom(context.Background(), set, &sliceSource{rs: rs}, ws.Write, nil); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(wc.Flush(), ws.Flush()); err != nil {
		t.Fatal(err)
	}
	if fromCSV.String() != fromSlice.String() || strings.Count(fromCSV.String(), "\n") != 3 {
		t.Fatalf("CSV:\n%s\nslice:\n%s", fromCSV.String(), fromSlice.String())
	}

	back := []outpost.Reading{rs[1], rs[0]}
	err = ReplayFrom(context.Background(), set, &sliceSource{rs: back}, func([]outpost.Alert) error { return nil }, &ReplayOptions{Reorder: -1})
	var le *LineError
	if err == nil || errors.As(err, &le) || !strings.Contains(err.Error(), "ruletest: ts 2015-02-05T09:00:00Z is 15m0s before a reading already replayed") {
		t.Fatalf("out of order: %v", err)
	}
	boom := errors.New("boom")
	err = ReplayFrom(context.Background(), set, &sliceSource{rs: rs[:1], err: boom}, func([]outpost.Alert) error { return nil }, nil)
	if !errors.Is(err, boom) || err.Error() != "ruletest: boom" {
		t.Fatalf("source error: %v", err)
	}
}

// The lines are what `outpost rules replay` always printed: a value in
// strconv's shortest 'g' form, null for NaN, labels by key.
func TestJSONWriter(t *testing.T) {
	var b bytes.Buffer
	w := NewJSONWriter(&b)
	as := []outpost.Alert{
		{Rule: "r", Fingerprint: "r/s", State: outpost.StateFiring, Severity: "warning", Value: 1e-7, ChangedAt: 1500000000,
			Labels: map[string]string{"sensor": "s", "metric": "m", "a<b": "&"}},
		{Rule: "r", Fingerprint: "r/s", State: outpost.StateNoData, Severity: "warning", Value: math.NaN(), ChangedAt: -1},
		{Rule: "r", Fingerprint: "r/s", State: outpost.StateResolved, Value: 1e21, ChangedAt: 0},
	}
	if err := w.Write(as); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `{"ts":"1970-01-01T00:00:01.5Z","rule":"r","fingerprint":"r/s","state":"firing","severity":"warning","value":1e-07,"labels":{"a\u003cb":"\u0026","metric":"m","sensor":"s"}}
{"ts":"1969-12-31T23:59:59.999999999Z","rule":"r","fingerprint":"r/s","state":"nodata","severity":"warning","value":null,"labels":null}
{"ts":"1970-01-01T00:00:00Z","rule":"r","fingerprint":"r/s","state":"resolved","severity":"","value":1e+21,"labels":null}
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	for i, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var j JSONLine
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatal(err)
		}
		if v := float64(j.Value); !(v == as[i].Value || math.IsNaN(v) && math.IsNaN(as[i].Value)) {
			t.Errorf("line %d: value %v, want %v", i, v, as[i].Value)
		}
	}
	var v JSONValue
	if err := json.Unmarshal([]byte(`"x"`), &v); err == nil {
		t.Error("a string read as a value")
	}
}

// Episodes, firing time and transitions of known alerts.
func TestSummary(t *testing.T) {
	set, err := rules.Parse("r.yaml", []byte("rules:\n  - {name: a, select: {metric: m}, above: 1}\n  - {name: quiet, select: {metric: m}, above: 9}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSummary(set)
	at := func(sec int64) int64 { return sec * int64(time.Second) }
	alert := func(fp string, st outpost.AlertState, sec int64) outpost.Alert {
		return outpost.Alert{Rule: "a", Fingerprint: fp, State: st, ChangedAt: at(sec)}
	}
	s.Add([]outpost.Alert{alert("a/x", outpost.StatePending, 0), alert("a/x", outpost.StateFiring, 10)})
	s.Add([]outpost.Alert{
		alert("a/x", outpost.StateFiring, 20), // a repeat or a change of level: the same episode
		alert("a/y", outpost.StateFiring, 25),
		alert("a/y", outpost.StateNoData, 30),   // 5 s
		alert("a/y", outpost.StateResolved, 40), // the end of the nodata: no firing ended
		alert("a/x", outpost.StateResolved, 70), // 60 s
		alert("a/x", outpost.StatePending, 70),  // at once pending again
		alert("a/x", outpost.StateInactive, 80), // and cleared
		alert("a/x", outpost.StateFiring, 95),
		alert("a/x", outpost.StateResolved, 94), // stamped a moment before the firing it follows: 0 s, not negative
		alert("a/y", outpost.StateFiring, 100),  // until the end: 20 s
		{Rule: "other", Fingerprint: "other", State: outpost.StatePending, ChangedAt: at(1)},
	})
	got := s.Finish(at(120))
	want := []RuleSummary{
		{Rule: "a", Pending: 2, Firing: 5, Resolved: 3, Inactive: 1, NoData: 1, Episodes: 4, Instances: 2,
			FiringTime: 85 * time.Second, Longest: 60 * time.Second, FiringAtEnd: 1},
		{Rule: "quiet"},
		{Rule: "other", Pending: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("rule %d: got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	var b bytes.Buffer
	if err := WriteSummary(&b, got); err != nil {
		t.Fatal(err)
	}
	wantTable := `rule   episodes  instances  firing_time  longest  at_end  pending  firing  resolved  inactive  nodata
a      4         2          1m25s        1m0s     1       2        5       3         1         1
quiet  0         0          0s           0s       0       0        0       0         0         0
other  0         0          0s           0s       0       1        0       0         0         0
`
	if b.String() != wantTable {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), wantTable)
	}
}
