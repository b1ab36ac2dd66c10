package gateway

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/testenv"
)

// shutdownPrefix is the topic prefix of these tests; each gateway has an
// id of its own, since the broker may be shared.
const shutdownPrefix = "outpost-test/shutdown"

// shutdownConfig is a gateway of n simulated sensors at broker, each
// polled every 10 ms for samples readings; a batch is sealed at
// maxReadings or after 5 s, so the last one is partial when the gateway
// stops. The dashboard is off (no retained topics but the status), and
// the grace is long: a test ends it by emptying the outbox or by ctx.
func shutdownConfig(t *testing.T, broker string, n, samples, maxReadings int) *config.Config {
	t.Helper()
	off := false
	grace := config.MaxShutdownGrace
	cfg := &config.Config{
		Gateway:       config.GatewayConfig{ID: fmt.Sprintf("gw-stop-%d", time.Now().UnixNano())},
		DataDir:       t.TempDir(),
		ShutdownGrace: &grace,
		Batch:         config.BatchConfig{MaxReadings: maxReadings, Interval: 5 * time.Second},
		Uplink:        config.UplinkConfig{Broker: broker, TopicPrefix: shutdownPrefix},
		Dashboard:     config.DashboardConfig{Live: &off, Alerts: &off},
	}
	for i := range n {
		cfg.Sensors = append(cfg.Sensors, config.Sensor{
			ID: fmt.Sprintf("dev%d", i), Driver: SimDriver, Interval: 10 * time.Millisecond, Samples: samples,
			Metrics: []config.Metric{{Name: "temperature", Unit: "Cel", Signal: config.Signal{Kind: config.SignalSine, Base: 20, Amplitude: 2, Period: time.Minute}}},
		})
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// clearStatus removes the gateway's retained status from the broker at
// the end of the test.
func clearStatus(t testing.TB, broker string, cfg *config.Config) {
	t.Helper()
	c := brokerClient(t, broker)
	t.Cleanup(func() {
		c.Publish(cfg.Uplink.TopicPrefix+"/"+cfg.Gateway.ID+"/status", 1, true, []byte{}).WaitTimeout(5 * time.Second)
	})
}

// startIngest runs an ingest service for prefix into a fresh database.
func startIngest(t *testing.T, broker, prefix string) ingest.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := stores.Open(ctx, testenv.DB(t), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	svc := ingest.New(store, &ingest.Options{
		Broker: broker, TopicPrefix: prefix, Group: fmt.Sprintf("shutdown-%d", time.Now().UnixNano()),
	})
	if err := svc.Start(ctx); err != nil {
		store.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := svc.Close(ctx); err != nil {
			t.Errorf("close ingest: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return store
}

// logSink collects a gateway's log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(bytes.TrimSpace(p)))
	return len(p), nil
}

// find returns the first line containing s, or "".
func (l *logSink) find(s string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

func startLogged(t *testing.T, cfg *config.Config) (*Gateway, *logSink) {
	t.Helper()
	sink := &logSink{}
	g, err := New(cfg, &Options{Logger: zerolog.New(sink)})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return g, sink
}

// stored reads the outbox file the gateway left: the telemetry batches
// and the readings in them.
func stored(t *testing.T, cfg *config.Config) (batches, readings int) {
	t.Helper()
	ob, err := buffer.Open(filepath.Join(cfg.DataDir, OutboxFile), &buffer.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	return outboxTelemetry(t, ob)
}

// Under load, a graceful stop delivers everything: the partial batch
// sealed at the stop and whatever was in flight reach the database (or
// the broker's PUBACK) within the grace, and Shutdown returns with the
// outbox empty.
func TestShutdownDeliversEverything(t *testing.T) {
	for _, ack := range []string{"ingest", "broker"} {
		t.Run("ack "+ack, func(t *testing.T) {
			broker := testenv.MQTT(t)
			// 49 readings a poll: the last batch is partial unless 49000
			// readings were emitted, far more than the test waits for.
			const maxReadings = 1000
			cfg := shutdownConfig(t, broker, 4, 49, maxReadings)
			cfg.Uplink.Ack = ack
			var db ingest.Store
			if ack == "ingest" {
				db = startIngest(t, broker, cfg.Uplink.TopicPrefix)
			}
			clearStatus(t, broker, cfg)
			g, logs := startLogged(t, cfg)
			waitFor(t, func() bool { st := g.Stats(); return st.Uplink.Acked >= 1 && st.ReadingsEmitted >= 10*maxReadings })

			if err := g.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			st := g.Stats()
			t.Logf("emitted %d readings (%d in the last, partial batch), %d batches; uplink %+v",
				st.ReadingsEmitted, st.ReadingsEmitted%maxReadings, st.BatchesStored, st.Uplink)
			if st.ReadingsLost != 0 || st.ReadingsStored != st.ReadingsEmitted {
				t.Fatalf("emitted %d readings, stored %d, lost %d", st.ReadingsEmitted, st.ReadingsStored, st.ReadingsLost)
			}
			if n, r := stored(t, cfg); n != 0 {
				t.Fatalf("the outbox holds %d batches (%d readings) after the grace, want none", n, r)
			}
			if line := logs.find("stopped: 0 batches left in the outbox"); line == "" {
				t.Errorf("no final log line; logs:\n%s", strings.Join(logs.lines, "\n"))
			} else {
				t.Log(line)
			}
			if db == nil {
				return
			}
			// ingest acks after its commit: the database holds it all.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := db.Counts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if c.Readings != st.ReadingsEmitted || c.DistinctReadings != st.ReadingsEmitted || c.DeadLetters != 0 {
				t.Fatalf("database: %d readings (%d distinct), %d dead letters; the gateway emitted %d",
					c.Readings, c.DistinctReadings, c.DeadLetters, st.ReadingsEmitted)
			}
		})
	}
}

// A second signal (ctx cancelled before or during the grace) ends the
// grace at once: with nothing acking, every reading stays in the outbox,
// the open batch included, for the next start. goleak (TestMain) checks
// that nothing outlives Shutdown.
func TestShutdownCancelledKeepsBatches(t *testing.T) {
	for _, during := range []bool{false, true} {
		name := "cancelled before"
		if during {
			name = "cancelled during the grace"
		}
		t.Run(name, func(t *testing.T) {
			broker := testenv.MQTT(t)
			// No batch fills up: the one batch is the open one, sealed
			// at the stop.
			cfg := shutdownConfig(t, broker, 1, 7, config.MaxBatchSize)
			clearStatus(t, broker, cfg)
			g, logs := startLogged(t, cfg)
			waitFor(t, func() bool { st := g.Stats(); return st.Uplink.Connected && st.ReadingsEmitted >= 100 })

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if !during {
				cancel()
			}
			done := make(chan error, 1)
			go func() { done <- g.Shutdown(ctx) }()
			if during {
				waitFor(t, func() bool { return logs.find("delivering what is stored") != "" })
				cancel()
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(config.MaxShutdownGrace / 2): // a failure guard: the grace is a minute
				t.Fatal("Shutdown did not return after its ctx was cancelled")
			}

			st := g.Stats()
			n, r := stored(t, cfg)
			if n != 1 || int64(r) != st.ReadingsEmitted || st.ReadingsStored != st.ReadingsEmitted {
				t.Fatalf("outbox holds %d batches with %d readings; emitted %d, stored %d: want all in one batch",
					n, r, st.ReadingsEmitted, st.ReadingsStored)
			}
			if st.Uplink.Acked != 0 {
				t.Fatalf("%d batches acked with no ingest running", st.Uplink.Acked)
			}
			want := "grace cut short"
			if line := logs.find(want); line == "" || !strings.Contains(line, fmt.Sprintf(`"left_readings":%d`, r)) {
				t.Errorf("no %q line with the readings left; logs:\n%s", want, strings.Join(logs.lines, "\n"))
			}
		})
	}
}

// With no broker, the grace runs out and Shutdown returns: nothing hangs
// on the uplink's reconnect attempts.
func TestShutdownDisconnectedEndsWithGrace(t *testing.T) {
	cfg := shutdownConfig(t, "tcp://127.0.0.1:1", 1, 7, config.MaxBatchSize) // nothing listens there
	grace := 100 * time.Millisecond
	cfg.ShutdownGrace = &grace
	g, logs := startLogged(t, cfg)
	waitFor(t, func() bool { return g.Stats().ReadingsEmitted >= 50 })
	done := make(chan error, 1)
	go func() { done <- g.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a failure guard
		t.Fatal("Shutdown did not return after its grace")
	}
	if n, r := stored(t, cfg); n != 1 || int64(r) != g.Stats().ReadingsEmitted {
		t.Fatalf("outbox holds %d batches with %d readings, want all %d readings in one", n, r, g.Stats().ReadingsEmitted)
	}
	if line := logs.find("grace of 100ms ended with 1 batches unacked"); line == "" {
		t.Errorf("no grace line; logs:\n%s", strings.Join(logs.lines, "\n"))
	}
}

// Shutdown and Close neither block nor panic whatever came before: no
// Start, the other one, or themselves.
func TestShutdownAndCloseInAnyOrder(t *testing.T) {
	shutdown := func(g *Gateway) error { return g.Shutdown(context.Background()) }
	closeG := func(g *Gateway) error { return g.Close(context.Background()) }
	cases := []struct {
		name  string
		start bool
		grace time.Duration
		calls []func(*Gateway) error
	}{
		{"shutdown before start", false, time.Minute, []func(*Gateway) error{shutdown, shutdown, closeG}},
		{"close before start", false, time.Minute, []func(*Gateway) error{closeG, shutdown}},
		{"shutdown twice", true, 0, []func(*Gateway) error{shutdown, shutdown, closeG}},
		{"close then shutdown", true, time.Minute, []func(*Gateway) error{closeG, shutdown}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The broker is unreachable: a grace of a minute that ran
			// would trip the guard below.
			cfg := shutdownConfig(t, "tcp://127.0.0.1:1", 1, 7, config.MaxBatchSize)
			cfg.ShutdownGrace = &c.grace
			g, err := New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.start {
				if err := g.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				waitFor(t, func() bool { return g.Stats().ReadingsEmitted > 0 })
			}
			done := make(chan error, 1)
			go func() {
				var err error
				for _, call := range c.calls {
					if e := call(g); e != nil && err == nil {
						err = e
					}
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(config.MaxShutdownGrace / 2): // a failure guard
				t.Fatal("blocked")
			}
			if n, r := stored(t, cfg); int64(r) != g.Stats().ReadingsEmitted {
				t.Fatalf("outbox holds %d batches with %d readings, want all %d readings", n, r, g.Stats().ReadingsEmitted)
			}
		})
	}
}
