package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/metrics"
)

// BenchmarkScrape is the cost of one /metrics answer of a gateway with
// 8 sensors, without the HTTP round trip (docs/benchmarks.md,
// "Metrics library").
func BenchmarkScrape(b *testing.B) {
	off := false
	cfg := &config.Config{
		Gateway:   config.GatewayConfig{ID: "gw-bench"},
		DataDir:   b.TempDir(),
		Uplink:    config.UplinkConfig{Broker: "tcp://127.0.0.1:1"}, // offline: the scrape is what is measured
		Dashboard: config.DashboardConfig{Live: &off, Alerts: &off},
	}
	for i := range 8 {
		cfg.Sensors = append(cfg.Sensors, config.Sensor{ID: fmt.Sprintf("dev%d", i), Driver: SimDriver, Interval: time.Second,
			Metrics: []config.Metric{{Name: "temperature", Unit: "Cel", Signal: config.Signal{Kind: "constant", Value: 20}}}})
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	g, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer g.Close(context.Background())
	var w metrics.Writer
	b.ReportAllocs()
	for b.Loop() {
		w.Reset()
		g.WriteMetrics(&w)
	}
	b.ReportMetric(float64(len(w.Bytes())), "bytes/scrape")
}
