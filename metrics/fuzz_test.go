package metrics_test

import (
	"math"
	"testing"

	"github.com/outposthq/outpost/metrics"
	"github.com/outposthq/outpost/metrics/metricstest"
)

// Any label value and help text is escaped so that the strict parser
// reads back exactly what was written.
func FuzzWriterRoundTrip(f *testing.F) {
	f.Add("dev1", "Readings.", 1.5)
	f.Add("a\"b\\c\nd", "help\\with\nbreaks", math.Inf(-1))
	f.Add("", "", math.NaN())
	f.Fuzz(func(t *testing.T, label, help string, v float64) {
		var w metrics.Writer
		w.Family("outpost_fuzz", metrics.Gauge, help)
		w.Sample("outpost_fuzz", v, "sensor", label)
		s, err := metricstest.Parse(w.Bytes())
		if err != nil {
			t.Fatalf("%v\n%q", err, w.Bytes())
		}
		got, ok := s.Value("outpost_fuzz", "sensor", label)
		if !ok || !(got == v || math.IsNaN(got) && math.IsNaN(v)) {
			t.Fatalf("wrote %v with label %q, read %v (%v)\n%q", v, label, got, ok, w.Bytes())
		}
	})
}
