package drainbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/discardstore"
	"github.com/outposthq/outpost/internal/testenv"
	"github.com/outposthq/outpost/uplink"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Environment of the benchmark.
const (
	// envPG names the PostgreSQL server of the postgres variants;
	// OUTPOST_TEST_PG is used when it is unset.
	envPG = "OUTPOST_BENCH_PG"
	// envReadings overrides every variant's number of readings.
	envReadings = "OUTPOST_DRAIN_READINGS"
)

// occupancyDir holds the office recordings, from this package's directory.
var occupancyDir = filepath.Join("..", "..", "testdata", "occupancy")

// A store variant: which database, how many ingest workers, and how many
// readings to prefill (a slow store gets fewer, so a run stays ~10-30 s).
type storeVariant struct {
	name     string
	workers  int
	readings int
}

// BenchmarkDrain prefills a gateway's outbox, then starts the gateway and
// the ingest service against the broker (OUTPOST_TEST_MQTT, else the
// embedded one) and times the drain: from gateway Start until every batch
// is acked, i.e. committed by ingest. It reports readings/s, batch payload
// bytes per reading on the wire, and the cores each process kept busy.
// Every run checks that the store holds every reading exactly once.
//
//	go test -run='^$' -bench=Drain -benchtime=1x ./internal/drainbench/
func BenchmarkDrain(b *testing.B) {
	broker := testenv.MQTT(b)
	pg := os.Getenv(envPG)
	if pg == "" {
		pg = os.Getenv(testenv.EnvPG)
	}
	variants := []storeVariant{
		{"discard", 4, 20_000_000},
		{"postgres-w4", 4, 4_000_000},
		{"postgres-w8", 8, 4_000_000},
		{"sqlite", 4, 1_000_000},
	}
	if s := os.Getenv(envReadings); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive number", envReadings, s)
		}
		for i := range variants {
			variants[i].readings = n
		}
	}
	data := []struct {
		name   string
		source func(testing.TB) Source
	}{
		// scripts/bench.yaml's load: 6 devices × 3 metrics, 10 ms, 277
		// samples of each series per batch (4986 readings).
		{"sim", func(tb testing.TB) Source {
			s, err := NewSignals(6, 10*time.Millisecond, 277)
			if err != nil {
				tb.Fatal(err)
			}
			return s
		}},
		// The same sensors sampled once a second, 100 devices, 16 samples
		// of each series per batch (4800 readings): more series headers.
		{"sim1s", func(tb testing.TB) Source {
			s, err := NewSignals(100, time.Second, 16)
			if err != nil {
				tb.Fatal(err)
			}
			return s
		}},
		// The office recordings, 1000 rows (5000 readings) per batch.
		{"occupancy", func(tb testing.TB) Source {
			o, err := LoadOccupancy(occupancyDir, 1000)
			if errors.Is(err, fs.ErrNotExist) {
				tb.Skipf("recordings not found: %v", err)
			}
			if err != nil {
				tb.Fatal(err)
			}
			return o
		}},
	}
	for _, d := range data {
		for _, v := range variants {
			for _, comp := range []string{config.CompressionNone, config.CompressionZstd} {
				for _, auth := range []string{authOff, authMAC} {
					if auth == authMAC && v.name != "discard" && v.name != "postgres-w4" {
						continue // the MAC's cost shows where our side is the limit
					}
					b.Run(fmt.Sprintf("data=%s/store=%s/comp=%s/auth=%s", d.name, v.name, comp, auth), func(b *testing.B) {
						dsn := func(b *testing.B) string { return "sqlite:" + filepath.Join(b.TempDir(), "ingest.db") }
						switch v.name {
						case "discard":
							dsn = nil
						case "postgres-w4", "postgres-w8":
							if pg == "" {
								b.Skipf("set %s or %s to a PostgreSQL server", envPG, testenv.EnvPG)
							}
							dsn = func(b *testing.B) string { return testenv.PostgresSchema(b, pg) }
						}
						benchDrain(b, drainSetup{
							broker: broker, dsn: dsn, postgres: v.name != "discard" && v.name != "sqlite",
							workers: v.workers, readings: v.readings, compression: comp, source: d.source,
							mac: auth == authMAC,
						})
					})
				}
			}
		}
	}
}

// The auth variants: batches as stored, or signed by the gateway with
// its key and verified by ingest (uplink.auth required, --auth required).
const (
	authOff = "off"
	authMAC = "mac"
)

// drainSetup is one variant of the benchmark.
type drainSetup struct {
	broker      string
	dsn         func(*testing.B) string // nil: the discard store
	postgres    bool                    // dsn names PostgreSQL
	workers     int                     // ingest workers
	readings    int                     // prefilled, at least
	compression string
	source      func(testing.TB) Source
	mac         bool // the gateway signs, ingest requires its key
}

func benchDrain(b *testing.B, s drainSetup) {
	var readings, bytes, resent, batches int64
	var drain time.Duration
	var busy, self, mosq, pgCores float64
	for range b.N {
		b.StopTimer()
		r := runDrain(b, s)
		readings += r.readings
		bytes += r.bytes
		resent += r.resent
		batches += r.batches
		drain += r.elapsed
		cb, cs, cm, cp := r.cpuBefore.Cores(r.cpuAfter)
		busy, self, mosq, pgCores = busy+cb, self+cs, mosq+cm, pgCores+cp
	}
	n := float64(b.N)
	b.ReportMetric(float64(readings)/drain.Seconds(), "readings/s")
	b.ReportMetric(float64(bytes)/float64(readings), "B/reading")
	b.ReportMetric(float64(readings)/float64(batches), "readings/batch")
	b.ReportMetric(float64(resent), "resent")
	// Cores kept busy during the drain (of nproc): in all, by this
	// process (gateway and ingest), by the broker, by PostgreSQL, and by
	// anything else on the machine, which makes a run less trustworthy.
	if !s.postgres {
		pgCores = 0 // its background processes come and go
	}
	b.ReportMetric(busy/n, "cores-busy")
	b.ReportMetric(self/n, "cores-gw+ingest")
	b.ReportMetric(mosq/n, "cores-mosquitto")
	if s.postgres {
		b.ReportMetric(pgCores/n, "cores-postgres")
	}
	b.ReportMetric(max(0, busy-self-mosq-pgCores)/n, "cores-other")
}

// drainResult is one drain's numbers.
type drainResult struct {
	readings, batches, bytes, resent int64
	elapsed                          time.Duration
	cpuBefore, cpuAfter              CPU
}

// runDrain prefills an outbox, drains it into a fresh store with the
// timer running, and checks that the store got every reading once.
func runDrain(b *testing.B, s drainSetup) drainResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	cfg := gatewayConfig(b, s)
	batches, prefilled := prefill(b, cfg, s.source(b), s.readings)
	var keys *ingest.Keys
	if s.mac {
		// The gateway creates its key at start; ingest needs it first.
		k, err := uplink.CreateKey(cfg.AuthKeyPath())
		if err != nil {
			b.Fatal(err)
		}
		if keys, err = ingest.NewKeys(map[string][]outpost.Key{cfg.Gateway.ID: {k}}); err != nil {
			b.Fatal(err)
		}
	}

	// The store and the ingest service, on a topic prefix and shared
	// subscription group of this run's own: nothing else on the broker
	// takes its batches.
	var store ingest.Store
	if s.dsn == nil {
		store = discardstore.New()
	} else {
		var err error
		if store, err = stores.Open(ctx, s.dsn(b), zerolog.Nop()); err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		if err := store.Close(); err != nil {
			b.Error(err)
		}
	}()
	o := &ingest.Options{
		Broker: s.broker, TopicPrefix: cfg.Uplink.TopicPrefix,
		Group: "drainbench-" + cfg.Gateway.ID, Workers: s.workers,
	}
	if keys != nil {
		o.Keys, o.Auth = keys, ingest.AuthRequired
	}
	svc := ingest.New(store, o)
	if err := svc.Start(ctx); err != nil {
		b.Fatal(err)
	}
	svcClosed := false
	defer func() {
		if !svcClosed {
			closeIngest(b, svc)
		}
	}()

	g, err := gateway.New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	gwClosed := false
	defer func() {
		if !gwClosed {
			closeGateway(b, g)
		}
	}()

	res := drainResult{cpuBefore: ReadCPU()}
	b.StartTimer()
	start := time.Now()
	if err := g.Start(ctx); err != nil {
		b.Fatal(err)
	}
	// The idle sensor polled at most once: flush that into the outbox
	// too, so that an empty outbox means everything was acked.
	g.StopSensors()
	if err := waitEmpty(ctx, g); err != nil {
		b.Fatalf("%v (ingest: %+v, gateway: %+v)", err, svc.Stats(), g.Stats().Uplink)
	}
	res.elapsed = time.Since(start)
	b.StopTimer()
	res.cpuAfter = ReadCPU()

	st := g.Stats()
	closeGateway(b, g)
	gwClosed = true
	closeIngest(b, svc)
	svcClosed = true

	// Every reading exactly once: what was prefilled plus the idle
	// sensor's few, no more, no less, and no batch dead-lettered.
	want := prefilled + st.ReadingsStored
	is := svc.Stats()
	if is.DeadLetters != 0 || is.Readings != want {
		b.Fatalf("ingest committed %d readings, want %d; %d dead letters", is.Readings, want, is.DeadLetters)
	}
	if s.mac && (is.Unverified != 0 || st.Uplink.ForgedAcks+st.Uplink.UnsignedAcks != 0) {
		b.Fatalf("%d batches unverified, %d acks refused", is.Unverified, st.Uplink.ForgedAcks+st.Uplink.UnsignedAcks)
	}
	c, err := store.Counts(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if got, distinct := c.Readings, c.DistinctReadings; got != want || distinct != want {
		b.Fatalf("store holds %d readings (%d distinct), want %d once each", got, distinct, want)
	}
	res.readings = want
	res.batches = batches + st.BatchesStored
	res.bytes = st.Uplink.BytesSent
	res.resent = st.Uplink.Resent
	return res
}

// gatewayConfig is the gateway under test, built in code: one idle sim
// sensor (it polls once an hour), the uplink at the broker with a window
// of 64 and application acks from ingest, and the compression asked for.
func gatewayConfig(b *testing.B, s drainSetup) *config.Config {
	b.Helper()
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		b.Fatal(err)
	}
	id := "drainbench-" + hex.EncodeToString(rnd[:])
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: id},
		DataDir: b.TempDir(),
		Sensors: []config.Sensor{{ID: "idle", Driver: config.SimDriver, Interval: time.Hour, Metrics: []config.Metric{
			{Name: "heartbeat", Signal: config.Signal{Kind: config.SignalConstant, Value: 1}},
		}}},
		Batch: config.BatchConfig{MaxReadings: 5000, Compression: s.compression},
		Uplink: config.UplinkConfig{
			Broker:      s.broker,
			TopicPrefix: "drainbench/" + id,
			Window:      64,
			Ack:         config.AckIngest,
			// A slow store holds a whole window for seconds; resends
			// would only measure the timeout.
			AckTimeout: time.Minute,
		},
	}
	if s.mac {
		cfg.Uplink.AuthKeyFile = "gateway.key" // in the data dir
		cfg.Uplink.Auth = config.AuthRequired
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	return cfg
}

// prefill appends batches from src to the gateway's outbox until it holds
// at least n readings, with the encoder the gateway builds from cfg, 16
// batches per transaction. It returns the stored batches and readings.
func prefill(b *testing.B, cfg *config.Config, src Source, n int) (batches, readings int64) {
	b.Helper()
	enc := gatewayEncoder(b, cfg)
	ob, err := buffer.Open(filepath.Join(cfg.DataDir, gateway.OutboxFile), &buffer.Options{Encoder: enc, Gateway: cfg.Gateway.ID})
	if err != nil {
		b.Fatal(err)
	}
	group := make([]*outpost.Batch, 0, 16)
	for readings < int64(n) {
		bt := src.Next(cfg.Gateway.ID)
		readings += int64(bt.Len())
		group = append(group, bt)
		if len(group) == cap(group) || readings >= int64(n) {
			if err := ob.Append(group); err != nil {
				b.Fatal(err)
			}
			group = group[:0]
		}
	}
	st := ob.Stats()
	if err := ob.Close(); err != nil {
		b.Fatal(err)
	}
	if st.Evicted != 0 {
		b.Fatalf("outbox evicted %d batches while prefilling", st.Evicted)
	}
	return int64(st.Batches[buffer.LaneTelemetry]), readings
}

// gatewayEncoder is the encoder the gateway builds from cfg.
func gatewayEncoder(tb testing.TB, cfg *config.Config) *outpost.Encoder {
	tb.Helper()
	comp, err := outpost.ParseCompression(cfg.Batch.Compression)
	if err != nil {
		tb.Fatal(err)
	}
	enc, err := outpost.NewEncoder(&outpost.EncoderOptions{Compression: comp, MaxMessageBytes: int(cfg.Uplink.MaxMessageBytes),
		Signed: cfg.Uplink.AuthMode() != config.AuthOff})
	if err != nil {
		tb.Fatal(err)
	}
	return enc
}

// waitEmpty waits until the outbox holds no batch. It polls more often
// than gateway.WaitDrained, whose 50 ms would be a few % of a short drain.
func waitEmpty(ctx context.Context, g *gateway.Gateway) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		st := g.Stats().Outbox
		if st.Batches[buffer.LaneAlert]+st.Batches[buffer.LaneTelemetry] == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain: %w with %d batches in the outbox", ctx.Err(), st.Batches[buffer.LaneTelemetry])
		case <-t.C:
		}
	}
}

func closeGateway(tb testing.TB, g *gateway.Gateway) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Close(ctx); err != nil {
		tb.Error(err)
	}
}

func closeIngest(tb testing.TB, svc *ingest.Service) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := svc.Close(ctx); err != nil {
		tb.Error(err)
	}
}
