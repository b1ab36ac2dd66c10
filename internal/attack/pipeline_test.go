package attack

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/testenv"
)

// pipeline is the victim gateway and an ingest service, each logged in to
// the broker with its own identity, and the store the checks read.
type pipeline struct {
	t     *testing.T
	b     *Broker
	cfg   *config.Config
	store ingest.Store
	ing   *ingest.Service
	gw    *gateway.Gateway
}

// newPipeline configures the gateway (two simulated sensors, 500
// readings a second, a batch every 100 ms; edit may change its uplink)
// and opens the store (PostgreSQL when OUTPOST_TEST_PG is set, else
// SQLite). Nothing runs yet.
func newPipeline(t *testing.T, b *Broker, edit ...func(*config.UplinkConfig)) *pipeline {
	t.Helper()
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: victim},
		DataDir: t.TempDir(),
		Batch:   config.BatchConfig{MaxReadings: 500, Interval: 100 * time.Millisecond},
		Uplink: config.UplinkConfig{
			Broker:         b.URL(),
			TopicPrefix:    b.Prefix,
			Username:       victim,
			PasswordFile:   b.PasswordFile(victim),
			Window:         16,
			AckTimeout:     time.Second,
			KeepAlive:      2 * time.Second,
			ConnectTimeout: 2 * time.Second,
			Backoff:        config.BackoffConfig{Initial: 100 * time.Millisecond, Max: time.Second},
		},
	}
	for i := range 2 {
		cfg.Sensors = append(cfg.Sensors, config.Sensor{
			ID: fmt.Sprintf("s%d", i+1), Driver: config.SimDriver, Interval: 20 * time.Millisecond, Samples: 5,
			Metrics: []config.Metric{{Name: "temperature", Signal: config.Signal{Kind: config.SignalRamp, Base: float64(10 * i), Slope: 1}}},
		})
	}
	for _, e := range edit {
		e(&cfg.Uplink)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	store, err := stores.Open(context.Background(), testenv.DB(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{t: t, b: b, cfg: cfg, store: store}
	t.Cleanup(p.close)
	return p
}

func (p *pipeline) close() {
	p.stopGateway()
	p.stopIngest()
	if err := p.store.Close(); err != nil {
		p.t.Errorf("close store: %v", err)
	}
}

// startIngest starts the ingest service as the ingest identity, in the
// default shared subscription group; edit may change its options.
func (p *pipeline) startIngest(edit ...func(*ingest.Options)) {
	p.t.Helper()
	o := &ingest.Options{
		Broker:       p.b.URL(),
		Username:     Ingest,
		Password:     p.b.Password(Ingest),
		TopicPrefix:  p.b.Prefix,
		MaxReconnect: time.Second,
		Logger:       testLogger(p.t),
	}
	for _, e := range edit {
		e(o)
	}
	p.ing = ingest.New(p.store, o)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := p.ing.Start(ctx); err != nil {
		p.ing = nil
		p.t.Fatalf("start ingest: %v", err)
	}
}

func (p *pipeline) startGateway() {
	p.t.Helper()
	gw, err := gateway.New(p.cfg, &gateway.Options{Logger: testLogger(p.t)})
	if err != nil {
		p.t.Fatalf("new gateway: %v", err)
	}
	p.gw = gw // closed by close even if Start fails
	if err := gw.Start(context.Background()); err != nil {
		p.t.Fatalf("start gateway: %v", err)
	}
}

// waitAcked waits until a batch made the round trip: gateway, broker,
// ingest, database, ack.
func (p *pipeline) waitAcked() {
	p.t.Helper()
	waitFor(p.t, "a first ack", func() bool { return p.gw.Stats().Uplink.Acked > 0 })
}

// flowing starts ingest and the gateway and waits for the first round
// trip: the pipeline every attack begins against.
func (p *pipeline) flowing() {
	p.t.Helper()
	p.startIngest()
	p.startGateway()
	p.waitAcked()
}

// drain stops the sensors and waits until every batch stored is acked
// (by whoever acks it) and deleted.
func (p *pipeline) drain() gateway.Stats {
	p.t.Helper()
	p.gw.StopSensors()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := p.gw.WaitDrained(ctx); err != nil {
		p.t.Fatalf("outbox not drained: %v\ngateway %+v", err, p.gw.Stats().Uplink)
	}
	return p.gw.Stats()
}

// stopGateway closes the gateway: it publishes its offline status.
func (p *pipeline) stopGateway() {
	if p.gw == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.gw.Close(ctx); err != nil {
		p.t.Errorf("close gateway: %v", err)
	}
	p.gw = nil
}

// stopIngest closes the ingest service, which finishes every message it
// was handed: the store holds all it will hold.
func (p *pipeline) stopIngest() {
	if p.ing == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.ing.Close(ctx); err != nil {
		p.t.Errorf("close ingest: %v", err)
	}
	p.ing = nil
}

func (p *pipeline) counts() ingest.Counts {
	p.t.Helper()
	c, err := p.store.Counts(context.Background())
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// readings counts the stored readings of one series.
func (p *pipeline) readings(gw, sensor, metric string) int64 {
	p.t.Helper()
	var n int64
	for _, err := range p.store.Range(context.Background(), ingest.RangeQuery{
		Gateway: gw, Sensor: sensor, Metric: metric, From: 0, To: math.MaxInt64, Limit: 1 << 20,
	}) {
		if err != nil {
			p.t.Fatal(err)
		}
		n++
	}
	return n
}

// gatewayState is the state the store holds for gw, "" if none.
func (p *pipeline) gatewayState(gw string) string {
	p.t.Helper()
	for s, err := range p.store.Gateways(context.Background()) {
		if err != nil {
			p.t.Fatal(err)
		}
		if s.Gateway == gw {
			return s.State
		}
	}
	return ""
}

// complete checks that the store holds every reading the gateway
// emitted, exactly once, besides forged ones, and nothing dead-lettered.
func (p *pipeline) complete(st gateway.Stats, c ingest.Counts, forged int64) {
	p.t.Helper()
	p.t.Logf("gateway emitted %d readings in %d batches (published %d, resent %d, acked %d); the store holds %d readings (%d forged), %d batches, %d dead letters",
		st.ReadingsEmitted, st.BatchesStored, st.Uplink.Published, st.Uplink.Resent, st.Uplink.Acked,
		c.Readings, forged, c.Batches, c.DeadLetters)
	if st.ReadingsEmitted == 0 || st.ReadingsStored != st.ReadingsEmitted || st.ReadingsLost != 0 {
		p.t.Errorf("gateway: %d readings emitted, %d stored in the outbox, %d lost before it",
			st.ReadingsEmitted, st.ReadingsStored, st.ReadingsLost)
	}
	if real := c.Readings - forged; real != st.ReadingsEmitted {
		p.t.Errorf("the store holds %d of the gateway's readings, it emitted %d", real, st.ReadingsEmitted)
	}
	if c.DistinctReadings != c.Readings {
		p.t.Errorf("%d duplicate readings", c.Readings-c.DistinctReadings)
	}
	if c.DeadLetters != 0 {
		p.t.Errorf("%d dead letters", c.DeadLetters)
	}
}

// lost is how many of the gateway's readings the store lacks.
func (p *pipeline) lost(st gateway.Stats, c ingest.Counts, forged int64) int64 {
	return st.ReadingsEmitted - (c.Readings - forged)
}

// forgedTelemetry is a batch of n readings of the sensor "forged" under
// gateway gw.
func forgedTelemetry(t *testing.T, gw string, epoch, seq uint64, n int) []byte {
	t.Helper()
	now := time.Now().UnixNano()
	s := outpost.Series{Sensor: "forged", Metric: "temperature", Unit: "Cel"}
	for i := range n {
		s.TS = append(s.TS, now-int64(n-i)*int64(time.Millisecond))
		s.Values = append(s.Values, 99.5)
	}
	for i := len(s.TS) - 1; i > 0; i-- { // delta-encoded
		s.TS[i] -= s.TS[i-1]
	}
	return encode(t, &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindTelemetry, Gateway: gw,
		Epoch: epoch, Seq: seq, Created: now, Series: []outpost.Series{s}})
}

// forgedAlert is a firing alert that tells people to leave.
func forgedAlert(t *testing.T, gw string, epoch, seq uint64) []byte {
	t.Helper()
	now := time.Now().UnixNano()
	return encode(t, &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindAlert, Gateway: gw,
		Epoch: epoch, Seq: seq, Created: now, Alerts: []outpost.Alert{{
			Rule: "fire", Fingerprint: "fire/forged", State: outpost.StateFiring, Severity: "critical", Value: 1,
			Labels: map[string]string{"sensor": "forged", "metric": "smoke"}, Message: "evacuate the building",
			StartedAt: now, ChangedAt: now, Seq: 1, Annotations: map[string]string{},
		}}})
}

// forgedLoss says the gateway lost a thousand readings it never lost.
func forgedLoss(t *testing.T, gw string, epoch, seq uint64) []byte {
	t.Helper()
	now := time.Now().UnixNano()
	return encode(t, &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindLoss, Gateway: gw,
		Epoch: epoch, Seq: seq, Created: now, Losses: []outpost.Loss{{
			Reason: outpost.LossMaxBytes, Kind: outpost.KindTelemetry, Sensor: "s1", Metric: "temperature",
			From: now - int64(time.Hour), To: now, Count: 1000, Epoch: epoch, FirstSeq: 1, LastSeq: 10, At: now,
		}}})
}

func encode(t *testing.T, b *outpost.Batch) []byte {
	t.Helper()
	p, err := b.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ackPayload is the ingest service's ack of seqs.
func ackPayload(t *testing.T, epoch uint64, seqs ...uint64) []byte {
	t.Helper()
	p, err := ackBytes(epoch, seqs...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ackBytes(epoch uint64, seqs ...uint64) ([]byte, error) {
	a := outpost.Ack{Version: outpost.AckVersion, Epoch: epoch, Seqs: seqs}
	return a.MarshalMsg(nil)
}

// testLogger logs warnings and errors into the test's output.
func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.ConsoleWriter{Out: zerolog.TestWriter{T: t}, NoColor: true}).Level(zerolog.WarnLevel)
}
