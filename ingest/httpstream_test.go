package ingest

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/outposthq/outpost"
)

// appendPoint must write what Point.MarshalJSON writes.
func TestAppendPoint(t *testing.T) {
	for _, p := range []Point{
		{Gateway: "gw-01", Sensor: "dev1-env", Metric: "temperature", TS: 1748779200123456789, Value: 21.5, Unit: "Cel"},
		{Gateway: "gw-01", Sensor: "dev1-env", Metric: "humidity", Value: 48.25, Unit: "%RH"},
		{Gateway: "g", Sensor: "s", Metric: "m", Unit: "µg/m³ \"<&>\"\x01"},
		{Gateway: "g", Sensor: "s", Metric: "m", TS: 0, Value: math.NaN(), Quality: outpost.QualityUncertain},
		{Gateway: "g", Sensor: "s", Metric: "m", TS: -1, Value: math.Inf(1), Quality: outpost.QualityBad},
		{Gateway: "g", Sensor: "s", Metric: "m", TS: math.MaxInt64, Value: math.Inf(-1)},
		{Gateway: `a"b\c`, Sensor: "<s>&", Metric: "s2 ☃\u2028\x01", Value: 1e-7},
		{Gateway: "bad \xff utf-8", Sensor: "tab\t", Metric: "m", Value: 1e21},
		{Value: -0.0}, {Value: 1e20}, {Value: 123456789.125}, {Value: 5e-324}, {Value: math.MaxFloat64},
		{Quality: 7},
	} {
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendPoint([]byte("x"), p)
		if err != nil || string(got) != "x"+string(want) {
			t.Errorf("appendPoint(%+v) =\n%s, %v\nwant\n%s", p, got, err, want)
		}
	}
}

func FuzzAppendPoint(f *testing.F) {
	f.Add("gw", "s", "m", int64(1748779200123456789), 21.5, "Cel", uint8(0))
	f.Add("a\"\\<>&", "\xff\x00", "☃\u2029", int64(-1), 1e-9, "%\x00\xfe", uint8(3))
	f.Fuzz(func(t *testing.T, gw, sensor, metric string, ts int64, v float64, unit string, q uint8) {
		p := Point{Gateway: gw, Sensor: sensor, Metric: metric, TS: ts, Value: v, Unit: unit, Quality: outpost.Quality(q)}
		want, err := json.Marshal(p)
		if err != nil {
			t.Skip() // a time.Format beyond year 9999 is not JSON's problem
		}
		got, _ := appendPoint(nil, p)
		if string(got) != string(want) {
			t.Fatalf("appendPoint = %s\nwant         %s", got, want)
		}
	})
}

// A cursor reads back as the key it was made of, whatever the ids hold.
func FuzzCursor(f *testing.F) {
	f.Add("gw-01", "dev1-env", "temperature")
	f.Add("gw", "a/b", "s2 ☃%")
	f.Fuzz(func(t *testing.T, gw, sensor, metric string) {
		k := SeriesKey{Gateway: gw, Sensor: sensor, Metric: metric}
		for _, id := range []string{gw, sensor, metric} {
			if id == "" || CheckID(id) != nil {
				t.Skip()
			}
		}
		back, err := parseCursor(formatCursor(k))
		if err != nil || back != k {
			t.Fatalf("parseCursor(formatCursor(%q)) = %q, %v", k, back, err)
		}
	})
}
