package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/examples"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/natstest"
	"github.com/outposthq/outpost/internal/testenv"
)

// The end-to-end suite: a real gateway and a real ingest service exchange
// at least 100 000 readings through the broker and database that testenv
// gives (Mosquitto and PostgreSQL in CI, embedded parts otherwise), and
// again through a NATS server (the gateway over MQTT to its listener,
// ingest on its JetStream stream; docs/nats.md). The database must end
// with exactly the readings emitted, none twice.

const e2eReadings = 100_000

// The transports every test of the suite runs on.
const (
	viaMQTT = "mqtt"
	viaNATS = "nats"
)

// eachTransport runs f once per transport, as subtests.
func eachTransport(t *testing.T, f func(t *testing.T, via string)) {
	for _, via := range []string{viaMQTT, viaNATS} {
		t.Run(via, func(t *testing.T) { f(t, via) })
	}
}

func TestEndToEnd(t *testing.T) {
	eachTransport(t, func(t *testing.T, via string) {
		p := newPipeline(t, via)
		p.startIngest()
		p.startGateway()
		p.runUntil(e2eReadings)
		p.finish()
	})
}

func TestEndToEndGatewayRestart(t *testing.T) { eachTransport(t, testGatewayRestart) }

func testGatewayRestart(t *testing.T, via string) {
	p := newPipeline(t, via)
	p.startIngest()
	p.startGateway()
	p.runUntil(e2eReadings / 2)
	p.stopGateway() // flushes into the outbox; unacked batches stay stored
	p.startGateway()
	p.runUntil(e2eReadings)
	p.finish()
}

// With ingest away and a small outbox, the gateway evicts its oldest
// telemetry; once ingest is back, every reading the sensors emitted is
// either in the readings table or counted in a gaps row: nothing vanishes
// silently.
func TestEndToEndEvictionReportsGaps(t *testing.T) { eachTransport(t, testEvictionReportsGaps) }

func testEvictionReportsGaps(t *testing.T, via string) {
	p := newPipeline(t, via, "buffer: {max_batches: 40}\n")
	p.startGateway()
	p.waitFor("evictions", func() bool { return p.gw.Stats().Outbox.Evicted > 0 })
	p.startIngest()
	p.runUntil(e2eReadings / 4)
	p.gw.StopSensors()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.gw.WaitDrained(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.gw.Stats()
	c, err := p.store.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("emitted %d, stored %d, lost %d in %d gaps (outbox evicted %d readings)",
		st.ReadingsEmitted, c.Readings, c.LostReadings, c.Gaps, st.Outbox.EvictedReadings)
	if c.Gaps == 0 || c.LostReadings == 0 {
		t.Fatalf("no gaps recorded although the outbox evicted %d readings", st.Outbox.EvictedReadings)
	}
	if c.Readings+c.LostReadings != st.ReadingsEmitted {
		t.Errorf("stored %d + lost %d = %d, emitted %d", c.Readings, c.LostReadings, c.Readings+c.LostReadings, st.ReadingsEmitted)
	}
	if c.LostReadings != st.Outbox.EvictedReadings {
		t.Errorf("gaps count %d lost readings, the outbox evicted %d", c.LostReadings, st.Outbox.EvictedReadings)
	}
	if c.DistinctReadings != c.Readings {
		t.Errorf("%d duplicate rows", c.Readings-c.DistinctReadings)
	}
}

func TestEndToEndIngestRestart(t *testing.T) { eachTransport(t, testIngestRestart) }

func testIngestRestart(t *testing.T, via string) {
	p := newPipeline(t, via)
	p.startIngest()
	p.startGateway()
	p.runUntil(e2eReadings / 2)
	p.stopIngest()
	// Keep ingest down while the gateway publishes: on MQTT into the
	// void (the broker has no subscriber for those batches, so only the
	// gateway's resend after the ack timeout can bring them in); on NATS
	// into the stream, which the restarted ingest reads, while the
	// gateway resends what stays unacked past its ack timeout too.
	published := p.gw.Stats().Uplink.Published
	p.waitFor("batches published while ingest is down", func() bool { return p.gw.Stats().Uplink.Published > published })
	p.startIngest()
	p.runUntil(e2eReadings)
	p.finish()
	// On NATS the stream kept what was published meanwhile: no resend is
	// needed, though one may come after a slow restart.
	if st := p.gw.Stats(); via == viaMQTT && st.Uplink.Resent == 0 {
		p.t.Errorf("no batch was resent after the ingest restart: %+v", st.Uplink)
	}
}

// A newcomer's run: the demo on the example config (embedded broker,
// SQLite in a temp dir) says what runs where and which faults it injects,
// prints the sensor health alert of the cold room's dropout, explains its
// bytes per reading, and ends with where the database is and commands
// that work on it. The dropout starts at once here instead of at 20 s.
func TestDemoExplainsItself(t *testing.T) {
	dir := t.TempDir()
	if err := examples.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gateway.yaml")
	yml, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	src := string(yml)
	for _, r := range [][2]string{
		{"{kind: dropout, from: 20s, for: 15s}", "{kind: dropout, from: 0s, for: 15s}"},
		{"interval: 2s", "interval: 200ms"}, // the cold room's: fail_after polls sooner
	} {
		if strings.Count(src, r[0]) != 1 {
			t.Fatalf("examples/gateway.yaml has %d of %q, want 1", strings.Count(src, r[0]), r[0])
		}
		src = strings.Replace(src, r[0], r[1], 1)
	}
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}

	out := &testenv.Buffer{}
	d := &Demo{ConfigPath: path, log: testLogger(t), out: out}
	t.Cleanup(d.Close)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	const healthLine = "  alert firing   sensor_health/cold-room/failing: sensor cold-room is failing"
	waitOutput(t, out, healthLine)
	for d.Gateway.Stats().ReadingsEmitted == 0 { // for a bytes/reading figure
		time.Sleep(10 * time.Millisecond)
	}
	sum, err := d.Finish(out)
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(d.DataDir, "ingest.db")
	if sum.Database != db {
		t.Errorf("summary database %q, want %q", sum.Database, db)
	}
	if sum.HealthEvents == 0 || sum.ReadingsPerBatch <= 0 {
		t.Errorf("summary %+v", sum)
	}
	// The example signs with the gateway's key (in the data dir), and
	// the demo's ingest service holds it: every batch verified, every
	// ack signed.
	if st, up := d.ingest.Stats(), d.Gateway.Stats().Uplink; st.Batches == 0 || st.Unverified != 0 || st.AuthRefused != 0 ||
		up.ForgedAcks+up.UnsignedAcks != 0 || up.Acked == 0 {
		t.Errorf("ingest %+v, uplink %+v: want every batch verified and every ack signed", st, up)
	}
	if _, err := os.Stat(filepath.Join(d.DataDir, "gateway", "gateway.key")); err != nil {
		t.Errorf("the example's key: %v", err)
	}
	text := out.String()
	t.Logf("demo output:\n%s", text)
	for _, want := range []string{
		"  broker    tcp://127.0.0.1:",
		"  database  " + db + " (SQLite)\n",
		"  config    " + path + " (--config)\n",
		"This config injects faults into simulated chips on purpose; the warnings they cause are expected:\n" +
			"  lab-env: nack 2% of bus transactions; cold-room: dropout 0s–15s\n",
		healthLine,
		"batches sealed every 30s held ",
		" readings on average, and each carries its header and per-series headers; full batches of 1000 readings take ~0.1–3 B/reading)\n",
		"the database: " + db + " (SQLite;",
		"it is removed at exit with its temp dir: run with --data-dir DIR to keep it",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if h, a := strings.Index(text, "injects faults"), strings.Index(text, healthLine); h < 0 || a < h {
		t.Errorf("the fault header is not before the first alert")
	}

	// The commands printed work on the database, as it is before exit.
	rdb, err := sql.Open("sqlite", db+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	shell, _ := exec.LookPath("sqlite3")
	var queries int
	for _, l := range strings.Split(text, "\n") {
		cmd, ok := strings.CutPrefix(l, "  sqlite3 "+db+" ")
		if !ok {
			continue
		}
		queries++
		q := strings.Trim(cmd, `"`)
		rows, err := rdb.Query(q)
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			t.Errorf("%s: %v", q, err)
		}
		rows.Close()
		if n == 0 {
			t.Errorf("%s: no rows", q)
		}
		// The shell a newcomer runs them in, if this machine has it:
		// it lacks what only outpost links (outpost_chunk_unpack).
		if shell != "" {
			if out, err := exec.Command(shell, db, q).CombinedOutput(); err != nil || len(out) == 0 {
				t.Errorf("sqlite3 %s: %v: %s", q, err, out)
			}
		}
	}
	if queries == 0 {
		t.Errorf("no sqlite3 command printed")
	}

	tmp := d.DataDir
	d.Close()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temp data dir %s after Close: %v", tmp, err)
	}
}

// waitOutput waits until out holds s; the deadline only guards a hang.
func waitOutput(t *testing.T, out *testenv.Buffer, s string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in a minute; output:\n%s", s, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pipeline is one gateway and one ingest service over a test's services.
type pipeline struct {
	t       *testing.T
	broker  string
	nats    string // the NATS server ingest consumes from; "": MQTT
	group   string // ingest's shared subscription group, or NATS consumer
	store   ingest.Store
	cfg     *config.Config
	gw      *gateway.Gateway
	ing     *ingest.Service
	emitted int64 // by gateways already closed
}

// newPipeline sets up a gateway config and a store for transport via;
// extra is appended to the config's YAML.
func newPipeline(t *testing.T, via string, extra ...string) *pipeline {
	t.Helper()
	broker, natsURL := "", ""
	switch via {
	case viaMQTT:
		broker = testenv.MQTT(t)
	case viaNATS:
		ns := natstest.Start(t)
		broker, natsURL = ns.MQTTURL(), ns.URL()
	default:
		t.Fatalf("transport %q", via)
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(rnd[:])
	dir := t.TempDir()
	// Two devices, three metrics each, 50 samples per poll every 10 ms:
	// 30 000 readings/s, so the test moves 100 000 readings in seconds.
	// A unique topic prefix keeps parallel tests on a shared broker apart.
	yml := fmt.Sprintf(`
gateway:
  id: gw-e2e-%[1]s
data_dir: %[2]s
sensors:
  - id: dev1-env
    driver: sim
    interval: 10ms
    samples: 50
    metrics:
      - {name: temperature, unit: Cel, signal: {kind: sine, base: 21, amplitude: 2, period: 1m, resolution: 0.01}}
      - {name: humidity, unit: "%%RH", signal: {kind: random_walk, base: 45, step: 0.2, min: 0, max: 100, seed: 1, resolution: 0.1}}
      - {name: pressure, unit: Pa, signal: {kind: random_walk, base: 101325, step: 5, seed: 2, resolution: 1}}
  - id: dev2-env
    driver: sim
    interval: 10ms
    samples: 50
    metrics:
      - {name: temperature, unit: Cel, signal: {kind: sine, base: 24, amplitude: 3, period: 30s, resolution: 0.01}}
      - {name: humidity, unit: "%%RH", signal: {kind: random_walk, base: 50, step: 0.2, min: 0, max: 100, seed: 3, resolution: 0.1}}
      - {name: pressure, unit: Pa, signal: {kind: constant, value: 100900}}
batch:
  max_readings: 1000
  interval: 200ms
uplink:
  broker: %[3]s
  topic_prefix: outpost-test/%[1]s
  window: 16
  ack_timeout: 2s
`, id, filepath.Join(dir, "gw"), broker) + strings.Join(extra, "")
	path := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	store, err := stores.Open(context.Background(), testenv.DB(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{t: t, broker: cfg.Uplink.Broker, nats: natsURL, group: "e2e-" + id, store: store, cfg: cfg}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if p.gw != nil {
			if err := p.gw.Close(ctx); err != nil {
				t.Errorf("close gateway: %v", err)
			}
		}
		if p.ing != nil {
			if err := p.ing.Close(ctx); err != nil {
				t.Errorf("close ingest: %v", err)
			}
		}
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return p
}

func (p *pipeline) startIngest() {
	p.t.Helper()
	o := &ingest.Options{
		Broker:      p.broker,
		Group:       p.group,
		TopicPrefix: p.cfg.Uplink.TopicPrefix,
		Logger:      testLogger(p.t),
	}
	if p.nats != "" {
		o.Broker, o.NATS = "", p.nats
	}
	p.ing = ingest.New(p.store, o)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.ing.Start(ctx); err != nil {
		p.t.Fatalf("start ingest: %v", err)
	}
}

func (p *pipeline) stopIngest() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.ing.Close(ctx); err != nil {
		p.t.Fatalf("close ingest: %v", err)
	}
	p.ing = nil
}

func (p *pipeline) startGateway() {
	p.t.Helper()
	gw, err := gateway.New(p.cfg, &gateway.Options{Logger: testLogger(p.t)})
	if err != nil {
		p.t.Fatalf("new gateway: %v", err)
	}
	if err := gw.Start(context.Background()); err != nil {
		p.t.Fatalf("start gateway: %v", err)
	}
	p.gw = gw
}

func (p *pipeline) stopGateway() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.gw.Close(ctx); err != nil {
		p.t.Fatalf("close gateway: %v", err)
	}
	p.emitted += p.gw.Stats().ReadingsEmitted
	p.gw = nil
}

// runUntil lets the sensors run until the gateways together emitted n readings.
func (p *pipeline) runUntil(n int64) {
	p.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for p.emitted+p.gw.Stats().ReadingsEmitted < n {
		if time.Now().After(deadline) {
			p.t.Fatalf("only %d readings emitted after 2 minutes", p.emitted+p.gw.Stats().ReadingsEmitted)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *pipeline) waitFor(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// finish stops the sensors, waits until every batch is acked, and checks the
// database holds exactly what was emitted.
func (p *pipeline) finish() {
	p.t.Helper()
	p.gw.StopSensors()
	st := p.gw.Stats()
	emitted := p.emitted + st.ReadingsEmitted
	if st.ReadingsLost != 0 {
		p.t.Fatalf("gateway lost %d readings before the outbox", st.ReadingsLost)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.gw.WaitDrained(ctx); err != nil {
		p.t.Fatalf("outbox not drained: %v (stats %+v)", err, p.gw.Stats())
	}
	c, err := p.store.Counts(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("emitted %d, stored %d, distinct %d, batches %d, resent %d", emitted, c.Readings, c.DistinctReadings, c.Batches, p.gw.Stats().Uplink.Resent)
	if emitted < e2eReadings {
		p.t.Fatalf("emitted %d readings, want at least %d", emitted, e2eReadings)
	}
	if c.Readings != emitted {
		p.t.Errorf("database holds %d readings, gateway emitted %d", c.Readings, emitted)
	}
	if c.DistinctReadings != c.Readings {
		p.t.Errorf("%d duplicate (gateway, sensor, metric, ts) rows", c.Readings-c.DistinctReadings)
	}
	if c.DeadLetters != 0 {
		p.t.Errorf("%d dead letters", c.DeadLetters)
	}
}
