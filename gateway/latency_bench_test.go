package gateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/internal/discardstore"
	"github.com/outposthq/outpost/internal/testenv"
)

// latencyRules: "hot" fires at once on the probe sensor; the background
// telemetry is evaluated by it too (same metric) but never crosses it.
const latencyRules = `rules:
  - name: hot
    select: {metric: temperature}
    above: 100
    for: 0s
    send_resolved: false
`

// BenchmarkAlertLatency measures, per alert, the time from publishing
// the triggering reading on a running gateway's bus to its alert batch
// arriving at an MQTT subscriber of the gateway's batch topic: the whole
// gateway as New and Start build it with the config's defaults (bus
// queue 256, batches of 1000 readings or 1 s, window 16, zstd), bus →
// ruler → batcher → bbolt outbox → uplink, through the broker
// (OUTPOST_TEST_MQTT, else an embedded one) to the subscriber, while an
// ingest service acks every batch into a store (OUTPOST_TEST_PG, else
// SQLite), as in production. It reports p50, p99, p99.9 and max; with
// load, a background publisher adds the given rate of non-alerting
// readings (100 sensors, the rule's metric) in slices of 100. Run it
// with enough alerts for the p99.9, e.g.
//
//	go test -run '^$' -bench AlertLatency -benchtime 3000x ./gateway/
func BenchmarkAlertLatency(b *testing.B) {
	for _, rate := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("load=%dk", rate/1000), func(b *testing.B) {
			benchAlertLatency(b, rate)
		})
	}
}

func benchAlertLatency(b *testing.B, rate int) {
	broker := testenv.MQTT(b)
	dir := b.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(latencyRules), 0o644); err != nil {
		b.Fatal(err)
	}
	off := false
	id := fmt.Sprintf("alertbench-%d", time.Now().UnixNano())
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: id},
		DataDir: filepath.Join(dir, "data"),
		// The config needs a sensor; this one reads once an hour, on
		// another metric.
		Sensors: []config.Sensor{{ID: "idle", Driver: SimDriver, Interval: time.Hour,
			Metrics: []config.Metric{{Name: "idle", Signal: config.Signal{Kind: "constant", Value: 1}}}}},
		Rules:     config.RulesConfig{Files: []string{rulesFile}},
		Uplink:    config.UplinkConfig{Broker: broker, TopicPrefix: "outpost-alertbench/" + id},
		Dashboard: config.DashboardConfig{Live: &off, Alerts: &off},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	// Ingest acks every batch, into a store that keeps nothing: what is
	// measured is the gateway's path, not a database on the same disk.
	ing := ingest.New(discardstore.New(), &ingest.Options{Broker: broker, TopicPrefix: cfg.Uplink.TopicPrefix, Group: id})
	if err := ing.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ing.Close(ctx); err != nil {
			b.Errorf("close ingest: %v", err)
		}
	}()
	clearStatus(b, broker, cfg)

	// The subscriber notes when each firing alert of the probe arrives.
	arrived := make(chan time.Time, 16)
	sub := brokerClient(b, broker)
	tok := sub.Subscribe(cfg.Uplink.TopicPrefix+"/"+id+"/batch", 1, func(_ mqtt.Client, m mqtt.Message) {
		now := time.Now()
		bt, err := outpost.DecodeBatch(m.Payload())
		if err != nil || bt.Kind != outpost.KindAlert {
			return
		}
		for _, a := range bt.Alerts {
			if a.Rule == "hot" && a.State == outpost.StateFiring {
				arrived <- now
			}
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("subscribe: %v", tok.Error())
	}

	g, err := New(cfg, &Options{Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.Close(ctx); err != nil {
			b.Errorf("close: %v", err)
		}
	}()
	waitForTB(b, func() bool { return g.Stats().Uplink.Connected })

	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	var sent int
	if rate > 0 {
		load.Go(func() { sent = publishLoad(&g.bus, rate, stopLoad) })
	}
	// Let the load reach its rate before the first alert.
	time.Sleep(time.Second)

	lat := make([]time.Duration, 0, 1024)
	start := time.Now()
	for b.Loop() {
		// The reset reading first, then the trigger: the bus keeps their
		// order, so every trigger fires a new alert.
		ts := time.Now().UnixNano()
		g.bus.Publish(context.Background(), []outpost.Reading{{Sensor: "probe", Metric: "temperature", TS: ts, Value: 20}})
		t0 := time.Now()
		g.bus.Publish(context.Background(), []outpost.Reading{{Sensor: "probe", Metric: "temperature", TS: ts + 1, Value: 150}})
		select {
		case t1 := <-arrived:
			lat = append(lat, t1.Sub(t0))

		case <-time.After(30 * time.Second):
			b.Fatalf("alert %d did not arrive in 30 s", len(lat)+1)
		}
	}
	elapsed := time.Since(start)
	close(stopLoad)
	load.Wait()

	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(q(0.999), "p99.9-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	b.ReportMetric(float64(sent)/(elapsed.Seconds()+1), "load-readings/s")
	b.ReportMetric(0, "ns/op") // ns/op is the latency plus the reset: see p50
}

// waitForTB is waitFor for benchmarks too.
func waitForTB(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// publishLoad publishes rate readings per second of 100 sensors, in slices
// of 100, until stop; it returns how many it published.
func publishLoad(bus *Bus, rate int, stop <-chan struct{}) int {
	const slice = 100
	var names [slice]string
	for i := range names {
		names[i] = fmt.Sprintf("s%03d", i)
	}
	start := time.Now()
	sent := 0
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return sent
		case <-t.C:
		}
		due := int(time.Since(start).Seconds() * float64(rate))
		for ; sent+slice <= due; sent += slice {
			ts := time.Now().UnixNano()
			rs := make([]outpost.Reading, slice)
			for i := range rs {
				rs[i] = outpost.Reading{Sensor: names[i], Metric: "temperature", TS: ts, Value: 20 + float64(i%7)}
			}
			bus.Publish(context.Background(), rs)
		}
	}
}
