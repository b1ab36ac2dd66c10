package metrics_test

import (
	"testing"

	"github.com/outposthq/outpost/metrics"
)

// BenchmarkHistObserve is the hot-path cost of a latency observation
// (docs/benchmarks.md, "Metrics library").
func BenchmarkHistObserve(b *testing.B) {
	h := metrics.NewHist(metrics.LatencyBuckets)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Observe(float64(i%1000) * 0.0001)
	}
}

func BenchmarkHistObserveParallel(b *testing.B) {
	h := metrics.NewHist(metrics.LatencyBuckets)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			h.Observe(float64(i%1000) * 0.0001)
		}
	})
}
