package ingest_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/internal/discardstore"
	"github.com/outposthq/outpost/internal/natstest"
	"github.com/outposthq/outpost/internal/testenv"
	"github.com/outposthq/outpost/metrics"
	"github.com/outposthq/outpost/metrics/metricstest"
)

// A gateway over MQTT to a NATS server, ingest consuming the JetStream
// stream: every reading lands once, the acks reach the gateway (its
// outbox empties), and the gateway's status is recorded.
func TestNATSEndToEnd(t *testing.T) {
	ns := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store := openStore(t, testenv.DB(t))
	svc := ingest.New(store, &ingest.Options{NATS: ns.URL(), Group: "ingest-e2e"})
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	svcClosed := false
	defer func() {
		if !svcClosed {
			closeService(t, svc)
		}
	}()

	// The gateway's id has a '.', which NATS carries as "//" in a
	// subject. A NATS server refuses a '.' in an MQTT client id, so the
	// gateway names one without.
	cfg := natsGateway(t, ns, "gw.nats-1", "outpost-gw_nats-1")
	st := runGateway(ctx, t, cfg, 2*time.Second)
	closeService(t, svc)
	svcClosed = true

	if st.ReadingsStored == 0 || st.ReadingsStored != st.ReadingsEmitted {
		t.Fatalf("gateway stored %d of %d readings", st.ReadingsStored, st.ReadingsEmitted)
	}
	c, err := store.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Readings != st.ReadingsStored || c.DistinctReadings != st.ReadingsStored || c.DeadLetters != 0 {
		t.Fatalf("store holds %d readings (%d distinct, %d dead letters), want %d once each",
			c.Readings, c.DistinctReadings, c.DeadLetters, st.ReadingsStored)
	}
	var seen bool
	for gs, err := range store.Gateways(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		seen = seen || gs.Gateway == cfg.Gateway.ID
	}
	if !seen {
		t.Errorf("gateway %s has no status in the store", cfg.Gateway.ID)
	}
	t.Logf("%d readings in %d batches through NATS", c.Readings, st.BatchesStored)
}

func closeService(t *testing.T, svc *ingest.Service) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := svc.Close(ctx); err != nil {
		t.Error(err)
	}
}

// Bad NATS options are refused at Start, with an error that names the
// problem and never the password in the URL.
func TestNATSOptionsRefused(t *testing.T) {
	cases := []struct {
		name string
		o    ingest.Options
		want string
	}{
		{"both transports", ingest.Options{Broker: "tcp://127.0.0.1:1883", NATS: "nats://127.0.0.1:4222"}, "give one of them"},
		{"not a URL", ingest.Options{NATS: "nats//user:s3cret@host"}, "not nats://host:port"},
		{"MQTT scheme", ingest.Options{NATS: "tcp://127.0.0.1:4222"}, `scheme "tcp"`},
		{"credentials twice", ingest.Options{NATS: "nats://u:s3cret@127.0.0.1:4222", Username: "u"}, "give one of them"},
		{"group with a dot", ingest.Options{NATS: "nats://127.0.0.1:4222", Group: "a.b"}, `group "a.b"`},
		{"stream with a space", ingest.Options{NATS: "nats://127.0.0.1:4222", Stream: ingest.StreamOptions{Name: "a b"}}, `stream name "a b"`},
		{"replicas", ingest.Options{NATS: "nats://127.0.0.1:4222", Stream: ingest.StreamOptions{Replicas: 7}}, "replicas 7"},
		{"max bytes", ingest.Options{NATS: "nats://127.0.0.1:4222", Stream: ingest.StreamOptions{MaxBytes: -5}}, "max bytes -5"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			svc := ingest.New(discardstore.New(), &o)
			err := svc.Start(context.Background())
			if err == nil {
				closeService(t, svc)
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error %q: want it to say %q, and no password", err, c.want)
			}
		})
	}
}

// natsGateway is a gateway of one simulated sensor (2 500 readings/s)
// whose uplink is the NATS server's MQTT listener.
func natsGateway(t *testing.T, ns *natstest.Server, id, clientID string) *config.Config {
	t.Helper()
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: id},
		DataDir: filepath.Join(t.TempDir(), "data"),
		Sensors: []config.Sensor{{ID: "dev1", Driver: config.SimDriver, Interval: 20 * time.Millisecond, Samples: 50,
			Metrics: []config.Metric{{Name: "temperature", Unit: "Cel",
				Signal: config.Signal{Kind: config.SignalRandomWalk, Base: 21, Step: 0.1, Resolution: 0.01, Seed: 1}}}}},
		Batch:  config.BatchConfig{MaxReadings: 500},
		Uplink: config.UplinkConfig{Broker: ns.MQTTURL(), ClientID: clientID, AckTimeout: 10 * time.Second},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Ingest processes join and leave the shared consumer while a gateway
// sends: each commits part of the batches, the database ends with every
// reading once, and the stream's metrics show nothing left behind.
func TestNATSElastic(t *testing.T) {
	ns := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store := openStore(t, testenv.DB(t))
	newSvc := func() *ingest.Service {
		svc := ingest.New(store, &ingest.Options{NATS: ns.URL(), Group: "ingest-elastic", Workers: 2})
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return svc
	}
	a := newSvc()
	aClosed := false
	defer func() {
		if !aClosed {
			closeService(t, a)
		}
	}()
	cfg := natsGateway(t, ns, "gw-elastic", "")
	g, err := gateway.New(cfg, &gateway.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	gwClosed := false
	defer func() {
		if !gwClosed {
			if err := g.Close(ctx); err != nil {
				t.Error(err)
			}
		}
	}()
	time.Sleep(time.Second)
	b := newSvc() // joins while the gateway sends
	defer closeService(t, b)
	time.Sleep(time.Second)
	closeService(t, a) // leaves while the gateway sends
	aClosed = true
	time.Sleep(time.Second)
	g.StopSensors()
	if err := g.WaitDrained(ctx); err != nil {
		t.Fatalf("outbox not drained: %v", err)
	}
	st := g.Stats()
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	gwClosed = true

	sa, sb := a.Stats(), b.Stats()
	if sa.Batches == 0 || sb.Batches == 0 {
		t.Errorf("batches committed: %d by the one that left, %d by the one that joined; want both > 0", sa.Batches, sb.Batches)
	}
	c, err := store.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ReadingsStored == 0 || c.Readings != st.ReadingsStored || c.DistinctReadings != st.ReadingsStored {
		t.Fatalf("store holds %d readings (%d distinct), gateway stored %d", c.Readings, c.DistinctReadings, st.ReadingsStored)
	}

	var w metrics.Writer
	b.WriteMetrics(&w)
	sc, err := metricstest.Parse(w.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if problems := metricstest.Lint(sc); len(problems) > 0 {
		t.Errorf("metrics lint: %v", problems)
	}
	for name, want := range map[string]float64{
		"outpost_ingest_nats_info_ok":                1,
		"outpost_ingest_stream_pending_messages":     0,
		"outpost_ingest_stream_ack_pending_messages": 0,
		"outpost_ingest_nats_in_flight_messages":     0,
	} {
		if v, ok := sc.Value(name); !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	taken, _ := sc.Value("outpost_ingest_nats_messages_total")
	acked, _ := sc.Value("outpost_ingest_stream_acked_seq")
	if taken == 0 || acked == 0 {
		t.Errorf("messages taken %v, acked up to seq %v: want both > 0", taken, acked)
	}
	t.Logf("%d readings; batches: %d by the process that left, %d by the one that joined; %d duplicates",
		c.Readings, sa.Batches, sb.Batches, sa.Duplicates+sb.Duplicates)
}

// A replay of the stream into an empty database gives the rows the live
// service wrote; a replay of part of it, then of all of it, into a third
// gives them too (what was there is deduplicated). The live consumer is
// not touched.
func TestNATSReplay(t *testing.T) {
	ns := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	open := func() ingest.Store { return openStore(t, testenv.DB(t)) }
	live := open()
	svc := ingest.New(live, &ingest.Options{NATS: ns.URL(), Group: "ingest-live"})
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := natsGateway(t, ns, "gw-replay", "")
	runGateway(ctx, t, cfg, 1500*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // the offline status's commit
	closeService(t, svc)
	want := dump(t, live, cfg.Gateway.ID)

	whole := open()
	st, err := ingest.Replay(ctx, whole, &ingest.ReplayOptions{NATS: ns.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if st.FirstSeq != 1 || st.LastSeq == 0 || st.Messages != int64(st.LastSeq) || st.Batches == 0 {
		t.Fatalf("replay: %+v", st)
	}
	if got := dump(t, whole, cfg.Gateway.ID); got != want {
		t.Fatalf("replayed database:\n%s\nlive database:\n%s", got, want)
	}

	half := st.LastSeq / 2
	parts := open()
	st1, err := ingest.Replay(ctx, parts, &ingest.ReplayOptions{NATS: ns.URL(), FromSeq: half})
	if err != nil {
		t.Fatal(err)
	}
	if st1.FirstSeq != half || st1.LastSeq != st.LastSeq {
		t.Fatalf("replay from %d: %+v", half, st1)
	}
	if got := dump(t, parts, cfg.Gateway.ID); got == want {
		t.Fatal("half the stream gave the whole database")
	}
	st2, err := ingest.Replay(ctx, parts, &ingest.ReplayOptions{NATS: ns.URL(), ToSeq: half})
	if err != nil {
		t.Fatal(err)
	}
	if st2.FirstSeq != 1 || st2.LastSeq != half || st2.Duplicates == 0 {
		t.Fatalf("replay to %d: %+v (want the batch at %d a duplicate)", half, st2, half)
	}
	if got := dump(t, parts, cfg.Gateway.ID); got != want {
		t.Fatalf("database of two replays:\n%s\nlive database:\n%s", got, want)
	}

	// Nothing in the range: done at once.
	st3, err := ingest.Replay(ctx, open(), &ingest.ReplayOptions{NATS: ns.URL(), FromSeq: st.LastSeq + 100})
	if err != nil || st3.Messages != 0 {
		t.Fatalf("replay past the end: %+v, %v", st3, err)
	}
	t.Logf("replayed %d messages, %d batches, %d readings", st.Messages, st.Batches, st.Readings)
}

// dump is a database's rows of one gateway, as text to compare: counts,
// every reading, the status.
func dump(t *testing.T, st ingest.Store, gw string) string {
	t.Helper()
	ctx := context.Background()
	c, err := st.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%+v\n", c)
	for p, err := range st.Range(ctx, ingest.RangeQuery{Gateway: gw, Sensor: "dev1", Metric: "temperature", From: 0, To: math.MaxInt64, Limit: 1 << 20}) {
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%d %v %v\n", p.TS, p.Value, p.Quality)
	}
	for gs, err := range st.Gateways(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s\n", gs.Gateway, gs.State)
	}
	return b.String()
}

// A follower (Replay with Follow) is a second, independent consumer: it
// keeps a second database as current as the live one while the gateway
// sends, and ends without error when told to.
func TestNATSReplayFollow(t *testing.T) {
	ns := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	live, second := openStore(t, testenv.DB(t)), openStore(t, testenv.DB(t))
	svc := ingest.New(live, &ingest.Options{NATS: ns.URL(), Group: "ingest-live"})
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer closeService(t, svc)

	fctx, stopFollower := context.WithCancel(ctx)
	type result struct {
		st  ingest.ReplayStats
		err error
	}
	followed := make(chan result, 1)
	go func() {
		st, err := ingest.Replay(fctx, second, &ingest.ReplayOptions{NATS: ns.URL(), Follow: true})
		followed <- result{st, err}
	}()

	want := runGateway(ctx, t, natsGateway(t, ns, "gw-follow", ""), 1500*time.Millisecond).ReadingsStored
	for {
		c, err := second.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.Readings == want {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the follower's database holds %d readings, the gateway stored %d", c.Readings, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
	stopFollower()
	r := <-followed
	if r.err != nil || r.st.Batches == 0 || r.st.Readings != want {
		t.Fatalf("follower: %+v, %v", r.st, r.err)
	}
	if lc, _ := live.Counts(ctx); lc.Readings != want {
		t.Fatalf("live database: %d readings, want %d", lc.Readings, want)
	}
}

// runGateway runs a gateway of cfg for d, stops its sensors, waits until
// every batch is acked, closes it and returns its counters.
func runGateway(ctx context.Context, t *testing.T, cfg *config.Config, d time.Duration) gateway.Stats {
	t.Helper()
	g, err := gateway.New(cfg, &gateway.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	g.StopSensors()
	if err := g.WaitDrained(ctx); err != nil {
		t.Fatalf("outbox not drained through NATS: %v (uplink %+v)", err, g.Stats().Uplink)
	}
	if err := g.Close(ctx); err != nil { // its offline status goes into the stream too
		t.Fatal(err)
	}
	return g.Stats()
}
