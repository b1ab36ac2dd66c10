// Package metricslib compares the hot-path cost of Outpost's metrics
// package with prometheus/client_golang and VictoriaMetrics/metrics. It is
// a module of its own so that the gateway's module never depends on
// either library; docs/benchmarks.md ("Metrics library") has the numbers
// and scripts/metricslib/size the binary sizes.
package metricslib

import (
	"sync/atomic"
	"testing"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outposthq/outpost/metrics"
)

func value(i int) float64 { return float64(i%1000) * 0.0001 }

func BenchmarkObserve(b *testing.B) {
	b.Run("outpost", func(b *testing.B) {
		h := metrics.NewHist(metrics.LatencyBuckets)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			h.Observe(value(i))
		}
	})
	b.Run("client_golang", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Help: "x", Buckets: metrics.LatencyBuckets})
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			h.Observe(value(i))
		}
	})
	b.Run("victoriametrics", func(b *testing.B) {
		h := vm.NewSet().NewPrometheusHistogramExt("x_seconds", metrics.LatencyBuckets)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			h.Update(value(i))
		}
	})
}

func BenchmarkObserveParallel(b *testing.B) {
	b.Run("outpost", func(b *testing.B) {
		h := metrics.NewHist(metrics.LatencyBuckets)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				h.Observe(value(i))
			}
		})
	})
	b.Run("client_golang", func(b *testing.B) {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x_seconds", Help: "x", Buckets: metrics.LatencyBuckets})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				h.Observe(value(i))
			}
		})
	})
	b.Run("victoriametrics", func(b *testing.B) {
		h := vm.NewSet().NewPrometheusHistogramExt("x_seconds", metrics.LatencyBuckets)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				h.Update(value(i))
			}
		})
	})
}

// BenchmarkInc: Outpost keeps its counters as atomic.Int64 in the parts'
// own Stats and reads them at scrape time.
func BenchmarkInc(b *testing.B) {
	b.Run("outpost", func(b *testing.B) {
		var c atomic.Int64
		b.ReportAllocs()
		for b.Loop() {
			c.Add(1)
		}
	})
	b.Run("client_golang", func(b *testing.B) {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})
		b.ReportAllocs()
		for b.Loop() {
			c.Inc()
		}
	})
	b.Run("victoriametrics", func(b *testing.B) {
		c := vm.NewSet().NewCounter("x_total")
		b.ReportAllocs()
		for b.Loop() {
			c.Inc()
		}
	})
}
