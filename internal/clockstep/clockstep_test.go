// Package clockstep tests a gateway whose wall clock lies at boot (a
// Raspberry Pi without a real-time clock) end to end: sim sensors, the
// outbox, the uplink to a real broker, the ingest service and its
// database (docs/clock.md). Tests only.
package clockstep

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/testclock"
	"github.com/outposthq/outpost/internal/testenv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// speed is how much faster than real time the gateway's clock runs: the
// 60 s before the step take 6 s.
const speed = 10

// The simulated sensor: polled every 50 ms of real time (0.5 s of the
// clock), 4 readings a poll.
const (
	pollInterval = 50 * time.Millisecond
	samples      = 4
)

// TestClockStepRebasesHeldReadings boots a gateway at a wrong wall clock,
// steps the clock to the true time after 60 s (of the gateway's clock),
// and checks that the database holds every reading once, each at its
// true time: the monotonic time it was taken at, counted from the true
// time of the boot. Before the step nothing is sent and the age cap
// evicts nothing.
func TestClockStepRebasesHeldReadings(t *testing.T) {
	truth := time.Now().Truncate(time.Second)
	for _, tc := range []struct {
		name    string
		boot    time.Time // what the wall clock shows at boot
		restart bool      // the gateway restarts after 30 s, before the step
	}{
		{"1970", time.Unix(0, 0), false},
		{"last-year", truth.AddDate(-1, 0, 0), false},
		{"1970-restart", time.Unix(0, 0), true},
	} {
		t.Run(tc.name, func(t *testing.T) { runStep(t, tc.boot, truth, tc.restart) })
	}
}

func runStep(t *testing.T, boot, truth time.Time, restart bool) {
	clk := testclock.NewRunning(boot, speed)
	// True time of a monotonic reading m: truth + m (the boot is at
	// monotonic 0, and truth is its true time).
	id := randomID(t)
	off := false
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: "gw-clock-" + id},
		DataDir: t.TempDir(),
		Sensors: []config.Sensor{{ID: "s1", Driver: config.SimDriver, Interval: pollInterval, Samples: samples,
			Metrics: []config.Metric{{Name: "m1", Signal: config.Signal{Kind: config.SignalRamp, Base: 10, Slope: 1}}}}},
		Batch: config.BatchConfig{MaxReadings: 100, Interval: 100 * time.Millisecond},
		// An age cap far shorter than the gap between the boot clock and
		// the true one: the held batches, stamped at the boot clock,
		// would be evicted at once if it did not wait.
		Buffer: config.BufferConfig{MaxAge: time.Hour},
		Uplink: config.UplinkConfig{
			Broker:         testenv.MQTT(t),
			TopicPrefix:    "outpost-clock/" + id,
			Window:         16,
			AckTimeout:     20 * time.Second, // of the fast clock: 2 s
			ConnectTimeout: 5 * time.Second,
			Backoff:        config.BackoffConfig{Initial: 100 * time.Millisecond, Max: time.Second},
		},
		Dashboard: config.DashboardConfig{Live: &off, Alerts: &off},
		// Wide enough that a scheduling pause between the two readings
		// of the fast clock never looks like a step.
		Clock: config.ClockConfig{Trust: config.ClockAuto, StepThreshold: 5 * time.Second},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: zerolog.TestWriter{T: t}, NoColor: true}).Level(zerolog.InfoLevel)

	store, err := stores.Open(context.Background(), testenv.DB(t), log)
	if err != nil {
		t.Fatal(err)
	}
	ing := ingest.New(store, &ingest.Options{
		Broker: cfg.Uplink.Broker, Group: "clock-" + id, TopicPrefix: cfg.Uplink.TopicPrefix,
		MaxReconnect: time.Second, Logger: log,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := ing.Start(ctx); err != nil {
		t.Fatalf("start ingest: %v", err)
	}
	opts := &gateway.Options{
		Logger: log, Now: clk.Now, Mono: clk.Mono,
		// The monotonic clock outlives a gateway process, as the boot's
		// does, so held batches survive a restart.
		BootID: "boot-" + id,
		// The build time: a day before the truth.
		ClockFloor: truth.Add(-24 * time.Hour),
		// A kernel that never says it is synchronised: trust comes from
		// the step past the floor.
		ClockSynced: func() (bool, error) { return false, nil },
	}
	var gw *gateway.Gateway
	start := func() {
		t.Helper()
		var err error
		if gw, err = gateway.New(cfg, opts); err != nil {
			t.Fatal(err)
		}
		if err := gw.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer ccancel()
		if gw != nil {
			if err := gw.Close(cctx); err != nil {
				t.Errorf("close gateway: %v", err)
			}
		}
		if err := ing.Close(cctx); err != nil {
			t.Errorf("close ingest: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
		clearRetained(t, cfg.Uplink.Broker, cfg.Uplink.TopicPrefix+"/"+cfg.Gateway.ID+"/status")
	})
	start()

	// The readings of runs before the last, with restart set.
	var emittedBefore, storedBefore int64
	if restart {
		waitFor(t, "30 s of the gateway's clock", time.Minute, func() bool { return clk.Mono() >= 30*time.Second })
		cctx, ccancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := gw.Close(cctx)
		ccancel()
		if err != nil {
			t.Fatal(err)
		}
		st := gw.Stats()
		if st.Uplink.Published != 0 || st.Clock.HeldRanges == 0 {
			t.Fatalf("first run: %d batches published, %d runs held", st.Uplink.Published, st.Clock.HeldRanges)
		}
		emittedBefore, storedBefore = st.ReadingsEmitted, st.ReadingsStored
		gw = nil
		start()
	}

	// 60 s of the gateway's clock under the boot clock.
	waitFor(t, "60 s of the gateway's clock", time.Minute, func() bool { return clk.Mono() >= 60*time.Second })
	st := gw.Stats()
	if st.Clock.Trusted {
		t.Fatalf("clock trusted at %v, before the floor", clk.Now())
	}
	if st.ReadingsStored == 0 || st.Outbox.Batches[1] == 0 {
		t.Fatalf("nothing stored before the step: %+v", st)
	}
	if st.Uplink.Published != 0 {
		// Held telemetry is never sent; the status and no alert are
		// all that may have gone out (Published counts batches).
		t.Fatalf("%d batches published under the untrusted clock", st.Uplink.Published)
	}
	c, err := store.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Readings != 0 {
		t.Fatalf("database holds %d readings before the clock was trusted", c.Readings)
	}
	beforeStep := storedBefore + st.ReadingsStored

	// NTP steps the wall clock to the truth.
	stepAt := clk.Mono()
	clk.Step(truth.Sub(boot))
	waitFor(t, "the clock trusted and the held batches re-based", time.Minute, func() bool {
		s := gw.Stats().Clock
		return s.Trusted && s.HeldRanges == 0
	})
	// 20 s more of trusted readings, then stop and deliver everything.
	waitFor(t, "20 s more", time.Minute, func() bool { return clk.Mono() >= stepAt+20*time.Second })
	gw.StopSensors()
	end := clk.Mono()
	if err := gw.WaitDrained(ctx); err != nil {
		t.Fatalf("not drained: %v\n%+v", err, gw.Stats())
	}
	st = gw.Stats()
	st.ReadingsEmitted += emittedBefore
	st.ReadingsStored += storedBefore
	t.Logf("clock %+v; emitted %d, stored %d before the step, published %d, acked %d",
		st.Clock, st.ReadingsEmitted, beforeStep, st.Uplink.Published, st.Uplink.Acked)

	if st.Clock.Steps < 1 || st.Clock.RebasedBatches == 0 || st.Clock.Uncorrected != 0 {
		t.Errorf("clock stats %+v: want a step, re-based batches, none uncorrected", st.Clock)
	}
	if st.Outbox.Evicted != 0 || st.ReadingsLost != 0 {
		t.Errorf("evicted %d batches, lost %d readings: the age cap must wait for the clock", st.Outbox.Evicted, st.ReadingsLost)
	}
	c, err = store.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Readings != st.ReadingsEmitted || c.DistinctReadings != c.Readings {
		t.Errorf("database holds %d readings (%d distinct), the gateway emitted %d", c.Readings, c.DistinctReadings, st.ReadingsEmitted)
	}
	if c.Gaps != 0 || c.DeadLetters != 0 {
		t.Errorf("%d gaps, %d dead letters", c.Gaps, c.DeadLetters)
	}

	// Every reading at its true time: within [boot, end] of the
	// monotonic clock counted from the truth. A poll's readings reach
	// back one poll interval of the clock at most.
	lo := truth.Add(-speed * pollInterval).UnixNano()
	hi := truth.Add(end).UnixNano()
	var n, early, beforeTruth int64
	var prev int64 = math.MinInt64
	for p, err := range store.Range(ctx, ingest.RangeQuery{Gateway: cfg.Gateway.ID, Sensor: "s1", Metric: "m1",
		From: math.MinInt64, To: math.MaxInt64, Limit: 1 << 30}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if p.TS < lo || p.TS > hi {
			beforeTruth++
			if beforeTruth <= 5 {
				t.Errorf("reading at %v, outside the true run [%v, %v]", time.Unix(0, p.TS).UTC(), time.Unix(0, lo).UTC(), time.Unix(0, hi).UTC())
			}
		}
		if p.TS < truth.Add(stepAt).UnixNano() {
			early++
		}
		if p.TS <= prev {
			t.Fatalf("timestamps not increasing: %d then %d", prev, p.TS)
		}
		prev = p.TS
	}
	if n != st.ReadingsEmitted {
		t.Errorf("range query found %d readings, want %d", n, st.ReadingsEmitted)
	}
	// The readings of the 60 s before the step are there, at their true
	// times (at least those stored when the step came).
	if early < beforeStep {
		t.Errorf("%d readings dated before the step, %d were stored by then", early, beforeStep)
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func randomID(t *testing.T) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// clearRetained removes the retained message the gateway left on a
// shared broker.
func clearRetained(t *testing.T, broker, topic string) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID("clock-clear-" + randomID(t)).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Errorf("connect %s: %v", broker, tok.Error())
		return
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, true, []byte{}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Errorf("clear %s: %v", topic, tok.Error())
	}
}
