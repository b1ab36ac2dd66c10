package drainbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/internal/baseline"
	"github.com/outposthq/outpost/internal/discardstore"
	"github.com/outposthq/outpost/internal/testenv"
)

// envDuration overrides how long BenchmarkEndToEnd's sensors run.
const envDuration = "OUTPOST_E2E_DURATION"

// e2eRules are the gateway's rules in BenchmarkEndToEnd: one per metric,
// each evaluated on every reading of its metric, and one that fires and
// resolves as the random walk crosses its threshold.
const e2eRules = `rules:
  - name: hot
    select: {metric: temperature}
    condition: value > 21.5
    for: 1s
    severity: warning
  - name: damp
    select: {metric: humidity}
    condition: value > 90
    severity: info
  - name: pressure_low
    select: {metric: pressure}
    condition: value < 90000
    severity: critical
`

// BenchmarkEndToEnd runs the whole gateway as `outpost run` does, with
// the default dashboard: simulated sensors → bus → rules → batcher →
// durable outbox (fsync) → uplink (QoS 1, app acks) → the broker
// (OUTPOST_TEST_MQTT, else the embedded one) → ingest, into a store that
// keeps nothing (internal/discardstore), so what is measured is the
// pipeline up to a database. Readings are counted at the ingest: the rate
// is what ingest committed between the end of a 2 s warm-up and the
// sensors' stop. Then the outbox drains and the run checks that ingest
// committed every reading the gateway stored, once. In the same run, for
// the same duration, the naive baseline (internal/baseline: one JSON
// message per reading, QoS 1) goes through the same broker.
//
// It runs with the default batch size (1 000 readings) and with
// scripts/bench.yaml's (5 000).
//
//	go test -run='^$' -bench=EndToEnd -benchtime=1x ./internal/drainbench/
//	go test -run='^$' -bench='EndToEnd/batch=5000' -benchtime=1x -cpuprofile cpu.out ./internal/drainbench/
func BenchmarkEndToEnd(b *testing.B) {
	d := 10 * time.Second
	if s := os.Getenv(envDuration); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < 3*time.Second {
			b.Fatalf("%s=%q: want a duration of at least 3s", envDuration, s)
		}
	}
	broker := testenv.MQTT(b)
	for _, batch := range []int{config.DefaultBatchReadings, 5000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchEndToEnd(b, broker, batch, d) })
	}

	// The naive way, same broker, same duration.
	b.Run("baseline", func(b *testing.B) {
		var rate, bytes float64
		for range b.N {
			res, err := baseline.Run(context.Background(), broker, d, zerolog.Nop())
			if err != nil {
				b.Fatal(err)
			}
			rate, bytes = rate+res.ReadingsPerSec, bytes+res.BytesPerReading
		}
		b.ReportMetric(rate/float64(b.N), "readings/s")
		b.ReportMetric(bytes/float64(b.N), "B/reading")
		b.ReportMetric(0, "ns/op")
	})
}

func benchEndToEnd(b *testing.B, broker string, batch int, d time.Duration) {
	var rate, offered, bytes, busy, self, mosq float64
	for range b.N {
		r := runEndToEnd(b, broker, batch, d)
		rate += r.rate
		offered += r.offered
		bytes += r.bytesPerReading
		cb, cs, cm, _ := r.cpuBefore.Cores(r.cpuAfter)
		busy, self, mosq = busy+cb, self+cs, mosq+cm
	}
	n := float64(b.N)
	b.ReportMetric(rate/n, "readings/s")
	b.ReportMetric(offered/n, "emitted/s")
	b.ReportMetric(bytes/n, "B/reading")
	b.ReportMetric(busy/n, "cores-busy")
	b.ReportMetric(self/n, "cores-gw+ingest")
	b.ReportMetric(mosq/n, "cores-mosquitto")
	b.ReportMetric(max(0, busy-self-mosq)/n, "cores-other")
	b.ReportMetric(0, "ns/op")
}

type e2eResult struct {
	rate, offered, bytesPerReading float64
	cpuBefore, cpuAfter            CPU
}

func runEndToEnd(b *testing.B, broker string, batch int, d time.Duration) e2eResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Minute)
	defer cancel()
	cfg := e2eConfig(b, broker, batch)

	store := discardstore.New()
	svc := ingest.New(store, &ingest.Options{Broker: broker, TopicPrefix: cfg.Uplink.TopicPrefix, Group: cfg.Gateway.ID})
	if err := svc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	svcClosed := false
	defer func() {
		if !svcClosed {
			closeIngest(b, svc)
		}
	}()
	g, err := gateway.New(cfg, &gateway.Options{Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	gwClosed := false
	defer func() {
		if !gwClosed {
			closeGateway(b, g)
		}
	}()
	testenv.CleanupRetained(b, broker, cfg.Uplink.TopicPrefix)

	if err := g.Start(ctx); err != nil {
		b.Fatal(err)
	}
	const warmup = 2 * time.Second
	time.Sleep(warmup)
	var res e2eResult
	res.cpuBefore = ReadCPU()
	c0, e0, t0 := svc.Stats().Readings, g.Stats().ReadingsEmitted, time.Now()
	time.Sleep(d - warmup)
	c1, e1, t1 := svc.Stats().Readings, g.Stats().ReadingsEmitted, time.Now()
	res.cpuAfter = ReadCPU()
	g.StopSensors()
	res.rate = float64(c1-c0) / t1.Sub(t0).Seconds()
	res.offered = float64(e1-e0) / t1.Sub(t0).Seconds()

	if err := waitEmpty(ctx, g); err != nil {
		b.Fatalf("%v (ingest: %+v, gateway: %+v)", err, svc.Stats(), g.Stats().Uplink)
	}
	st := g.Stats()
	closeGateway(b, g)
	gwClosed = true
	closeIngest(b, svc)
	svcClosed = true

	// Every reading the gateway stored, committed once; none lost on the
	// way in.
	is := svc.Stats()
	if st.ReadingsLost != 0 || st.ReadingsStored != st.ReadingsEmitted {
		b.Fatalf("gateway stored %d of %d readings emitted, lost %d", st.ReadingsStored, st.ReadingsEmitted, st.ReadingsLost)
	}
	if is.DeadLetters != 0 || is.Readings != st.ReadingsStored {
		b.Fatalf("ingest committed %d readings, want %d; %d dead letters", is.Readings, st.ReadingsStored, is.DeadLetters)
	}
	c, err := store.Counts(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if c.Readings != st.ReadingsStored {
		b.Fatalf("store holds %d readings, want %d once each", c.Readings, st.ReadingsStored)
	}
	if st.AlertsRaised == 0 {
		b.Fatal("no rule fired: the rules were not on the path")
	}
	res.bytesPerReading = float64(st.Uplink.BytesSent) / float64(st.ReadingsStored)
	return res
}

// e2eConfig is scripts/bench.yaml's load with more samples per poll: 6
// simulated devices × 3 metrics polled every 10 ms, 4 000 samples each
// (7.2 M readings/s asked for; the sensors make what the cores leave
// them), the rules above, batches of batch readings, and otherwise the
// defaults (zstd, window 64, the dashboard on).
func e2eConfig(b *testing.B, broker string, batch int) *config.Config {
	b.Helper()
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		b.Fatal(err)
	}
	id := "e2ebench-" + hex.EncodeToString(rnd[:])
	dir := b.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(e2eRules), 0o644); err != nil {
		b.Fatal(err)
	}
	env := []config.Metric{
		{Name: "temperature", Unit: "Cel", Signal: config.Signal{Kind: config.SignalRandomWalk, Base: 21, Step: 0.02, Min: -40, Max: 85, HasMin: true, HasMax: true, Resolution: 0.01, Seed: 1}},
		{Name: "humidity", Unit: "%RH", Signal: config.Signal{Kind: config.SignalRandomWalk, Base: 45, Step: 0.05, Min: 0, Max: 100, HasMin: true, HasMax: true, Resolution: 0.01, Seed: 2}},
		{Name: "pressure", Unit: "Pa", Signal: config.Signal{Kind: config.SignalSine, Base: 101325, Amplitude: 150, Period: 10 * time.Minute, Noise: 2, Resolution: 1}},
	}
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: id},
		DataDir: filepath.Join(dir, "data"),
		Rules:   config.RulesConfig{Files: []string{rulesFile}},
		Batch:   config.BatchConfig{MaxReadings: batch},
		Uplink:  config.UplinkConfig{Broker: broker, TopicPrefix: "e2ebench/" + id, Window: 64, AckTimeout: 30 * time.Second},
	}
	for i := range 6 {
		cfg.Sensors = append(cfg.Sensors, config.Sensor{ID: fmt.Sprintf("dev%d", i+1), Driver: config.SimDriver,
			Interval: 10 * time.Millisecond, Samples: e2eSamples, Metrics: env})
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	return cfg
}

// e2eSamples is each poll's samples per metric.
const e2eSamples = 4000
