package rows

import (
	"testing"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

func TestLatest(t *testing.T) {
	b := &outpost.Batch{Gateway: "gw", Series: []outpost.Series{
		{Sensor: "b", Metric: "m", TS: []int64{100, -50, 10}, Values: []float64{1, 2, 3}},             // ts 100, 50, 60: newest is the first
		{Sensor: "a", Metric: "m", TS: []int64{5, 0}, Values: []float64{1, 2}, Quality: []byte{0, 2}}, // equal ts: the later wins
		{Sensor: "b", Metric: "m", TS: []int64{100}, Values: []float64{9}},                            // the same series again, same ts: later wins
		{Sensor: "c", Metric: "m"}, // empty: skipped
	}}
	got := Latest(b)
	want := []ingest.Point{
		{Gateway: "gw", Sensor: "a", Metric: "m", TS: 5, Value: 2, Quality: outpost.QualityBad},
		{Gateway: "gw", Sensor: "b", Metric: "m", TS: 100, Value: 9},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestLabels(t *testing.T) {
	for _, tc := range []struct {
		in   map[string]string
		want string
	}{
		{nil, "{}"},
		{map[string]string{"b": "2", "a": "1"}, `{"a":"1","b":"2"}`},
	} {
		got, err := Labels(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Labels(%v) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
