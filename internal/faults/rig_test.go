package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/testenv"
)

// The simulated sensors: 4 devices at 50 Hz, each with a FIFO of 4
// samples per poll and 2 metrics, so 1 600 readings/s. The values are
// ramps, a deterministic function of each reading's timestamp.
const (
	rigSensors  = 4
	rigMetrics  = 2
	rigInterval = 20 * time.Millisecond
	rigSamples  = 4
)

// drainTimeout bounds the wait for the outbox to empty after the sensors
// stop: generous, since a faulty link may have to be retried many times.
const drainTimeout = 3 * time.Minute

// rig is one gateway and one ingest service, each on the broker URL it is
// given, and the ingest store whose tables the scenario checks.
type rig struct {
	t     *testing.T
	opts  rigOptions
	cfg   *config.Config
	store ingest.Store // the real store: counts come from here
	ing   *ingest.Service
	gw    *gateway.Gateway
}

type rigOptions struct {
	gatewayBroker string // the gateway's broker URL, perhaps a proxy
	ingestBroker  string // the ingest service's, always the broker itself
	// commitDelay slows down every commit of the ingest service, and
	// workers (default 4) bounds how many run at once.
	commitDelay time.Duration
	workers     int
}

// newRig builds the gateway's config in code and opens the store
// (PostgreSQL when OUTPOST_TEST_PG is set, else SQLite). Nothing runs yet.
func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	id := randomID(t)
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: "gw-faults-" + id},
		DataDir: t.TempDir(),
		// A batch every interval (max_delay at most the interval): the
		// tests count on the rate batches are sealed at.
		Batch: config.BatchConfig{MaxReadings: 500, Interval: 100 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
		Uplink: config.UplinkConfig{
			Broker: o.gatewayBroker,
			// A topic prefix of its own keeps tests on a shared broker apart.
			TopicPrefix:    "outpost-faults/" + id,
			Window:         16,
			AckTimeout:     1500 * time.Millisecond,
			KeepAlive:      2 * time.Second,
			ConnectTimeout: 2 * time.Second,
			Backoff:        config.BackoffConfig{Initial: 100 * time.Millisecond, Max: time.Second},
		},
	}
	for i := range rigSensors {
		s := config.Sensor{ID: fmt.Sprintf("s%d", i+1), Driver: config.SimDriver, Interval: rigInterval, Samples: rigSamples}
		for j := range rigMetrics {
			s.Metrics = append(s.Metrics, config.Metric{Name: fmt.Sprintf("m%d", j+1), Signal: config.Signal{
				Kind: config.SignalRamp, Base: float64(100*i + 10*j), Slope: 1,
			}})
		}
		cfg.Sensors = append(cfg.Sensors, s)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	store, err := stores.Open(context.Background(), testenv.DB(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, opts: o, cfg: cfg, store: store}
	t.Cleanup(r.close)
	return r
}

func (r *rig) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if r.gw != nil {
		if err := r.gw.Close(ctx); err != nil {
			r.t.Errorf("close gateway: %v", err)
		}
	}
	if r.ing != nil {
		if err := r.ing.Close(ctx); err != nil {
			r.t.Errorf("close ingest: %v", err)
		}
	}
	if err := r.store.Close(); err != nil {
		r.t.Errorf("close store: %v", err)
	}
}

func (r *rig) startIngest() {
	r.t.Helper()
	var store ingest.Store = r.store
	if r.opts.commitDelay > 0 {
		store = &slowStore{Store: r.store, delay: r.opts.commitDelay}
	}
	r.ing = ingest.New(store, &ingest.Options{
		Broker:      r.opts.ingestBroker,
		Group:       "faults-" + randomID(r.t),
		TopicPrefix: r.cfg.Uplink.TopicPrefix,
		Workers:     r.opts.workers,
		// Back within a second of the broker, like the gateway's backoff.
		MaxReconnect: time.Second,
		Logger:       testLogger(r.t),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.ing.Start(ctx); err != nil {
		r.ing = nil
		r.t.Fatalf("start ingest: %v", err)
	}
}

func (r *rig) startGateway() {
	r.t.Helper()
	gw, err := gateway.New(r.cfg, &gateway.Options{Logger: testLogger(r.t)})
	if err != nil {
		r.t.Fatalf("new gateway: %v", err)
	}
	r.gw = gw // closed by close even if Start fails
	if err := gw.Start(context.Background()); err != nil {
		r.t.Fatalf("start gateway: %v", err)
	}
}

// waitAcked waits until more than n batches were acked, i.e. a batch
// made the whole round trip gateway → broker → ingest → database →
// broker → gateway; it returns the count then.
func (r *rig) waitAcked(what string, n int64, timeout time.Duration) int64 {
	r.t.Helper()
	var acked int64
	waitFor(r.t, what, timeout, func() bool {
		acked = r.gw.Stats().Uplink.Acked
		return acked > n
	})
	return acked
}

// finish stops the sensors, waits until the outbox is empty (every batch
// acked by ingest), and checks that the database holds every reading the
// gateway emitted exactly once. It returns the counts.
func (r *rig) finish() (gateway.Stats, ingest.Counts) {
	r.t.Helper()
	r.gw.StopSensors()
	stopped := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := r.gw.WaitDrained(ctx); err != nil {
		r.t.Fatalf("outbox not drained %v after the sensors stopped: %v\ngateway %+v\ningest %+v",
			drainTimeout, err, r.gw.Stats(), r.ing.Stats())
	}
	drained := time.Since(stopped)
	st := r.gw.Stats()
	c, err := r.store.Counts(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	is := r.ing.Stats()
	r.t.Logf("emitted %d readings; database: %d rows, %d distinct, %d batches, %d gaps, %d dead letters; drained in %v",
		st.ReadingsEmitted, c.Readings, c.DistinctReadings, c.Batches, c.Gaps, c.DeadLetters, drained.Round(time.Millisecond))
	r.t.Logf("uplink: published %d, resent %d, acked %d, dropped %d (all: %+v)",
		st.Uplink.Published, st.Uplink.Resent, st.Uplink.Acked, st.Uplink.Dropped, st.Uplink)
	r.t.Logf("ingest: %d batches committed, %d duplicates acked again, %d readings, %d errors",
		is.Batches, is.Duplicates, is.Readings, is.Errors)

	if st.ReadingsLost != 0 || st.ReadingsStored != st.ReadingsEmitted {
		r.t.Errorf("gateway: %d readings emitted, %d stored in the outbox, %d lost before it",
			st.ReadingsEmitted, st.ReadingsStored, st.ReadingsLost)
	}
	if st.Outbox.Evicted != 0 {
		r.t.Errorf("the outbox evicted %d batches", st.Outbox.Evicted)
	}
	if c.Readings != st.ReadingsEmitted {
		r.t.Errorf("database holds %d readings, the gateway emitted %d (%+d)", c.Readings, st.ReadingsEmitted, c.Readings-st.ReadingsEmitted)
	}
	if c.DistinctReadings != c.Readings {
		r.t.Errorf("%d duplicate (gateway, sensor, metric, ts) rows", c.Readings-c.DistinctReadings)
	}
	if c.Batches != st.BatchesStored {
		r.t.Errorf("database holds %d batches, the gateway stored %d", c.Batches, st.BatchesStored)
	}
	if c.DeadLetters != 0 || c.Gaps != 0 {
		r.t.Errorf("%d dead letters, %d gaps", c.DeadLetters, c.Gaps)
	}
	if st.ReadingsEmitted == 0 {
		r.t.Error("no readings emitted")
	}
	return st, c
}

// slowStore delays every commit, to make the ingest service a slow
// subscriber.
type slowStore struct {
	ingest.Store
	delay time.Duration
}

func (s *slowStore) Commit(ctx context.Context, b *outpost.Batch, size int) (bool, error) {
	t := time.NewTimer(s.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	return s.Store.Commit(ctx, b, size)
}

// sysCounter follows one numeric $SYS topic of a Mosquitto broker.
type sysCounter struct {
	c mqtt.Client
	n atomic.Int64
}

// watchSys subscribes to topic on broker until the test ends.
func watchSys(t *testing.T, broker, topic string) *sysCounter {
	t.Helper()
	s := &sysCounter{}
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID("faults-sys-" + randomID(t)).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	s.c = mqtt.NewClient(o)
	if tok := s.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { s.c.Disconnect(100) })
	tok := s.c.Subscribe(topic, 0, func(_ mqtt.Client, m mqtt.Message) {
		if v, err := strconv.ParseInt(string(m.Payload()), 10, 64); err == nil {
			s.n.Store(v)
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	return s
}

// sharedOrOwnBroker is the shared broker named by OUTPOST_TEST_MQTT, or a
// Mosquitto started for this test.
func sharedOrOwnBroker(t *testing.T) string {
	t.Helper()
	if testenv.ExternalMQTT() {
		return testenv.MQTT(t)
	}
	return testenv.StartMosquitto(t, nil).URL("tcp")
}

// hostPort is a broker URL's host:port.
func hostPort(t *testing.T, broker string) string {
	t.Helper()
	u, err := url.Parse(broker)
	if err != nil || u.Port() == "" {
		t.Fatalf("broker URL %q: want scheme://host:port (%v)", broker, err)
	}
	return u.Host
}

// waitFor polls cond every 20 ms until it holds, or fails the test after
// timeout.
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

// hold lets the scenario run for d: the sensors keep emitting and the
// faults keep acting. It is the scenario's length, never an assertion.
func hold(d time.Duration) { time.Sleep(d) }

func randomID(t *testing.T) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// testLogger logs warnings and errors into the test's output.
func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.ConsoleWriter{Out: zerolog.TestWriter{T: t}, NoColor: true}).Level(zerolog.WarnLevel)
}
