package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/testenv"
	"github.com/outposthq/outpost/metrics/metricstest"
	"github.com/outposthq/outpost/sensors"
)

// client keeps no connection open after a request: nothing outlives a
// test (goleak).
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

// get GETs url and returns the status and the body.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// scrapeURL GETs url (a /metrics), and parses and lints the answer.
func scrapeURL(t *testing.T, url string) metricstest.Scrape {
	t.Helper()
	code, body := get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	s, err := metricstest.Parse(body)
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if p := metricstest.Lint(s); len(p) > 0 {
		t.Fatalf("lint:\n%s", strings.Join(p, "\n"))
	}
	return s
}

func metricsURL(g *Gateway, path string) string { return "http://" + g.MetricsAddr().String() + path }

// startIngestService is startIngest that also returns the service.
func startIngestService(t testing.TB, broker, prefix string) (*ingest.Service, ingest.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := stores.Open(ctx, testenv.DB(t), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	svc := ingest.New(store, &ingest.Options{Broker: broker, TopicPrefix: prefix, Group: fmt.Sprintf("metrics-%d", time.Now().UnixNano())})
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
	return svc, store
}

// metricsConfig is shutdownConfig with a rule and the metrics listener
// on a free loopback port.
func metricsConfig(t *testing.T, broker string) *config.Config {
	t.Helper()
	cfg := shutdownConfig(t, broker, 2, 10, 100)
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte("rules:\n  - {name: warm, select: {metric: temperature}, above: 21, severity: warning}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Rules.Files = []string{rulesFile}
	cfg.Metrics.Listen = "127.0.0.1:0"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A running gateway's /metrics moves as its pipeline moves: what the
// sensors emitted is what was stored and what the database holds, the
// outbox empties as acks come, the latencies are observed; every name
// follows the conventions, and the Grafana dashboard uses no name that
// the gateway and ingest do not serve.
func TestMetricsEndpoint(t *testing.T) {
	broker := testenv.MQTT(t)
	cfg := metricsConfig(t, broker)
	svc, db := startIngestService(t, broker, cfg.Uplink.TopicPrefix)
	clearStatus(t, broker, cfg)
	g, _ := startLogged(t, cfg)
	t.Cleanup(func() {
		if err := g.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	// Rule counters are published once a second, at the engine's tick.
	waitFor(t, func() bool {
		st := g.Stats()
		return st.Uplink.Acked >= 3 && st.ReadingsEmitted >= 300 && len(st.Rules) == 1 && st.Rules[0].Evaluations > 0
	})

	s := scrapeURL(t, metricsURL(g, "/metrics"))
	for _, x := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"outpost_uplink_connected", nil, 1},
		{"outpost_uplink_connects_total", nil, 1},
		{"outpost_uplink_acked_batches_total", nil, 3},
		{"outpost_sensor_readings_total", []string{"sensor", "dev0"}, 1},
		{"outpost_sensor_readings_total", []string{"sensor", "dev1"}, 1},
		{"outpost_sensor_healthy", []string{"sensor", "dev1"}, 1},
		{"outpost_readings_stored_total", nil, 100},
		{"outpost_rule_evaluations_total", []string{"rule", "warm"}, 1},
		{"outpost_bus_queue_capacity", []string{"receiver", "batcher"}, 1},
		{"outpost_outbox_file_bytes", nil, 1},
		{"outpost_commands_received_total", nil, 0}, // there, with commands off
		{"process_resident_memory_bytes", nil, 1},
	} {
		if v, ok := s.Value(x.name, x.labels...); !ok || v < x.min {
			t.Errorf("%s%v = %v (present %v), want at least %v", x.name, x.labels, v, ok, x.min)
		}
	}
	for _, lane := range []string{"alert", "telemetry"} {
		if _, ok := s.Value("outpost_outbox_batches", "lane", lane); !ok {
			t.Errorf("no outbox depth for lane %s", lane)
		}
	}
	if v, _ := s.Value("outpost_sensor_condition", "sensor", "dev0", "condition", "failing"); v != 0 {
		t.Errorf("dev0 failing = %v", v)
	}
	for _, h := range []string{"outpost_outbox_commit_duration_seconds", "outpost_uplink_ack_duration_seconds"} {
		if n := s.Sum(h); n < 1 {
			t.Errorf("%s: %v observations", h, n)
		}
	}
	if n := s.Sum("outpost_sensor_read_duration_seconds", "sensor", "dev1"); n < 1 {
		t.Errorf("read latency of dev1: %v observations", n)
	}
	if code, body := get(t, metricsURL(g, "/healthz")); code != http.StatusOK || string(body) != "{\"status\":\"ok\"}\n" {
		t.Errorf("healthz: %d %s", code, body)
	}
	if code, _ := get(t, metricsURL(g, "/nothing")); code != http.StatusNotFound {
		t.Errorf("an unknown path: %d", code)
	}

	// Everything emitted is stored once the sensors stop, and in the
	// database once the outbox is empty.
	g.StopSensors()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.WaitDrained(ctx); err != nil {
		t.Fatal(err)
	}
	s = scrapeURL(t, metricsURL(g, "/metrics"))
	emitted := s.Sum("outpost_sensor_readings_total")
	storedN, _ := s.Value("outpost_readings_stored_total")
	c, err := db.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if emitted == 0 || emitted != storedN || float64(c.Readings) != emitted || emitted != float64(g.Stats().ReadingsEmitted) {
		t.Fatalf("emitted %v, stored %v, in the database %d, Stats %d", emitted, storedN, c.Readings, g.Stats().ReadingsEmitted)
	}
	for _, lane := range []string{"alert", "telemetry"} {
		if v, _ := s.Value("outpost_outbox_batches", "lane", lane); v != 0 {
			t.Errorf("lane %s holds %v batches after the drain", lane, v)
		}
		if v, _ := s.Value("outpost_outbox_oldest_age_seconds", "lane", lane); v != 0 {
			t.Errorf("lane %s: oldest age %v when empty", lane, v)
		}
	}

	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	is := scrapeURL(t, srv.URL+"/metrics")
	if v, _ := is.Value("outpost_ingest_readings_total"); v != float64(c.Readings) {
		t.Errorf("ingest counted %v readings, the database holds %d", v, c.Readings)
	}
	checkDashboard(t, "../deploy/grafana/outpost.json", s, is)
}

// metricRef finds the metric names in a dashboard's queries.
var metricRef = regexp.MustCompile(`\b(?:outpost|go|process)_[a-z0-9_]*[a-z0-9]`)

// checkDashboard fails for each metric name the dashboard's queries use
// that no scrape serves (a histogram's _bucket, _sum and _count count as
// its family's).
func checkDashboard(t *testing.T, path string, scrapes ...metricstest.Scrape) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	served := func(name string) bool {
		for _, s := range scrapes {
			if s[name] != nil {
				return true
			}
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if f := s[strings.TrimSuffix(name, suf)]; f != nil && f.Type == "histogram" && strings.HasSuffix(name, suf) {
					return true
				}
			}
		}
		return false
	}
	refs := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range metricRef.FindAllString(tg.Expr, -1) {
				refs++
				if !served(name) {
					t.Errorf("%s: panel %q uses %s, which no scrape serves", path, p.Title, name)
				}
			}
		}
	}
	if refs < 20 {
		t.Fatalf("%s: only %d metric references found; is the dashboard's layout what the test expects?", path, refs)
	}
}

// A taken port is a StartError naming the metrics listener, and New
// leaves nothing open: the outbox opens again at once.
func TestMetricsListenerTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := metricsConfig(t, "tcp://127.0.0.1:1")
	cfg.Metrics.Listen = ln.Addr().String()
	g, err := New(cfg, nil)
	var se *StartError
	if !errors.As(err, &se) || se.Part != PartMetrics || se.Name != ln.Addr().String() || g != nil {
		t.Fatalf("New = %v, %v; want a StartError for the metrics listener", g, err)
	}
	cfg.Metrics.Listen = "127.0.0.1:0"
	g, err = New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// /healthz says why the gateway is not healthy, and the listener closes
// with the gateway.
func TestHealthzUnavailable(t *testing.T) {
	cfg := metricsConfig(t, "tcp://127.0.0.1:1") // nothing listens: the uplink stays offline
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := g.Healthz(); ok || why != "starting" {
		t.Errorf("before Start: %v %q", ok, why)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, metricsURL(g, "/healthz"))
	var h struct{ Status, Reason string }
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable || h.Status != "unavailable" || h.Reason != "uplink not connected to the broker" {
		t.Errorf("healthz: %d %s", code, body)
	}
	s := scrapeURL(t, metricsURL(g, "/metrics"))
	if v, ok := s.Value("outpost_uplink_connected"); !ok || v != 0 {
		t.Errorf("connected = %v, %v", v, ok)
	}
	// Scrapes beyond maxScrapes at once are refused.
	for range maxScrapes {
		g.met.scrapes <- struct{}{}
	}
	if code, body := get(t, metricsURL(g, "/metrics")); code != http.StatusServiceUnavailable {
		t.Errorf("a scrape beyond the limit: %d %s", code, body)
	}
	for range maxScrapes {
		<-g.met.scrapes
	}
	addr := metricsURL(g, "/healthz")
	if err := g.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ok, why := g.Healthz(); ok || !strings.HasPrefix(why, "stopping") {
		t.Errorf("after Close: %v %q", ok, why)
	}
	if resp, err := client.Get(addr); err == nil {
		resp.Body.Close()
		t.Fatal("the listener still answers after Close")
	}
}

// deadSensor fails every read, as an unplugged device does.
type deadSensor struct{}

func (deadSensor) Read(_ context.Context, _ time.Time, dst []outpost.Reading) ([]outpost.Reading, error) {
	return dst, errors.New("i2c: no ACK")
}

func (deadSensor) Close() error { return nil }

// A failing sensor makes /healthz 503 and names it, and its health shows
// in /metrics, while the other sensors deliver.
func TestHealthzFailingSensor(t *testing.T) {
	broker := testenv.MQTT(t)
	cfg := metricsConfig(t, broker)
	cfg.Sensors = append(cfg.Sensors, config.Sensor{ID: "dead", Driver: "dead", Interval: 5 * time.Millisecond})
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	reg := DefaultRegistry()
	if err := reg.Register("dead", func(sensors.Spec) (sensors.Sensor, error) { return deadSensor{}, nil }); err != nil {
		t.Fatal(err)
	}
	startIngestService(t, broker, cfg.Uplink.TopicPrefix)
	clearStatus(t, broker, cfg)
	g, err := New(cfg, &Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	waitFor(t, func() bool {
		ok, why := g.Healthz()
		return !ok && why == "sensors failing: dead" && g.Stats().Uplink.Connected
	})
	code, body := get(t, metricsURL(g, "/healthz"))
	if code != http.StatusServiceUnavailable || string(body) != `{"reason":"sensors failing: dead","status":"unavailable"}`+"\n" {
		t.Errorf("healthz: %d %s", code, body)
	}
	s := scrapeURL(t, metricsURL(g, "/metrics"))
	for _, x := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"outpost_sensor_condition", []string{"sensor", "dead", "condition", "failing"}, 1},
		{"outpost_sensor_condition", []string{"sensor", "dead", "condition", "slow"}, 0},
		{"outpost_sensor_healthy", []string{"sensor", "dead"}, 0},
		{"outpost_sensor_healthy", []string{"sensor", "dev0"}, 1},
		{"outpost_sensor_readings_total", []string{"sensor", "dead"}, 0},
		{"outpost_uplink_connected", nil, 1},
	} {
		if v, ok := s.Value(x.name, x.labels...); !ok || v != x.want {
			t.Errorf("%s%v = %v (present %v), want %v", x.name, x.labels, v, ok, x.want)
		}
	}
	if v, _ := s.Value("outpost_sensor_poll_failures_total", "sensor", "dead"); v < 3 {
		t.Errorf("dead sensor's failed polls: %v", v)
	}
	if v, _ := s.Value("outpost_sensor_health_events_total"); v < 1 {
		t.Errorf("health events: %v", v)
	}
	if n := s.Sum("outpost_sensor_read_duration_seconds", "sensor", "dead"); n != 0 {
		t.Errorf("failed reads observed as latencies: %v", n)
	}
}
