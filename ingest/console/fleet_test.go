package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// rulesYAML is gw-a's rules: the cold room's temperature, a constant
// 21 Cel, is always above 20, so too-warm fires at once.
const rulesYAML = `rules:
  - name: too-warm
    select: {metric: temperature, sensor: env}
    above: 20
    severity: critical
    message: "{{ .Sensor }} at {{ .Value }} Cel"
    annotations: {summary: "cold room above 20 Cel"}
    labels: {room: cold}
`

// fleet is an ingest service fed by real gateways over the broker:
//   - gw-a, running: env (temperature, a constant 21 Cel, stuck after 5
//     polls: its readings uncertain, the sensor failing) and air
//     (humidity, a sine); its rule too-warm fires;
//   - gw-lossy, running, whose outbox of 3 batches overflowed before
//     ingest started: its loss records are gaps in ingest;
//   - gw-b, started and stopped: offline now;
//   - gw-c, an old gateway's retained status, offline for two hours.
type fleet struct {
	t      *testing.T
	url    string
	token  string
	broker string
	prefix string
	store  ingest.Store
	rules  string // gw-a's rules file
	gws    map[string]*gateway.Gateway
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// startGateway starts a gateway of sim sensors on the fleet's broker; it
// runs until the test ends, then is closed. ctx bounds the start.
func (f *fleet) startGateway(ctx context.Context, id string, edit func(*config.Config)) *gateway.Gateway {
	t := f.t
	t.Helper()
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: id},
		DataDir: filepath.Join(t.TempDir(), "data"),
		Sensors: []config.Sensor{{ID: "env", Driver: config.SimDriver, Interval: 200 * time.Millisecond, Metrics: []config.Metric{
			{Name: "temperature", Unit: "Cel", Signal: config.Signal{Kind: config.SignalSine, Base: 21, Amplitude: 2, Period: 30 * time.Second}}}}},
		Uplink: config.UplinkConfig{Broker: f.broker, TopicPrefix: f.prefix},
	}
	cfg.Batch.MaxDelay = 500 * time.Millisecond
	if edit != nil {
		edit(cfg)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, &gateway.Options{Logger: zerolog.Nop(), Version: "outpost v9.9.9-test"})
	if err != nil {
		t.Fatal(err)
	}
	// The gateway runs until the test ends, not until ctx does.
	if err := g.Start(context.WithoutCancel(ctx)); err != nil {
		t.Fatal(err)
	}
	f.gws[id] = g
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.Close(cctx); err != nil {
			t.Error(err)
		}
	})
	return g
}

func newFleet(t *testing.T, token string) *fleet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := &fleet{t: t, token: token, broker: testenv.MQTT(t), prefix: fmt.Sprintf("outpost-console/%d", time.Now().UnixNano()),
		gws: map[string]*gateway.Gateway{}}
	testenv.CleanupRetained(t, f.broker, f.prefix)
	store, err := stores.Open(ctx, testenv.DB(t), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f.store = store

	// gw-lossy publishes into the void until its outbox overflows.
	lossy := f.startGateway(ctx, "gw-lossy", func(c *config.Config) {
		c.Buffer.MaxBatches = 3
		c.Batch.MaxDelay = 50 * time.Millisecond
		c.Sensors[0].Interval = 20 * time.Millisecond
	})
	waitFor(t, ctx, "gw-lossy's outbox to overflow", func() bool { return lossy.Stats().Outbox.LossRecords > 0 })

	svc := ingest.New(store, &ingest.Options{Broker: f.broker, TopicPrefix: f.prefix, Group: "console-test", HTTPToken: token})
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := svc.Close(cctx); err != nil {
			t.Error(err)
		}
	})

	f.rules = filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(f.rules, []byte(rulesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	f.startGateway(ctx, "gw-a", func(c *config.Config) {
		c.Sensors[0].Metrics[0].Signal = config.Signal{Kind: config.SignalConstant, Value: 21}
		c.Sensors[0].Supervision.StuckAfter = 5
		c.Sensors = append(c.Sensors, config.Sensor{ID: "air", Driver: config.SimDriver, Interval: 200 * time.Millisecond,
			Metrics: []config.Metric{{Name: "humidity", Unit: "%RH",
				Signal: config.Signal{Kind: config.SignalSine, Base: 50, Amplitude: 10, Period: 20 * time.Second}}}})
		c.Rules = config.RulesConfig{Files: []string{f.rules}}
	})
	b := f.startGateway(ctx, "gw-b", nil)
	waitFor(t, ctx, "gw-b to connect", func() bool { return b.Stats().Uplink.Connected }) // its online status sent
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// gw-c: an old gateway's retained status, as its broker kept it.
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(f.broker).SetClientID(fmt.Sprintf("console-test-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	old := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339Nano)
	doc := `{"state":"offline","gateway":"gw-c","ts":"` + old + `","sensors":{"s1":{"labels":{}},"s2":{"labels":{}}}}`
	if tok := c.Publish(f.prefix+"/gw-c/status", 1, true, []byte(doc)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c.Disconnect(250)

	waitFor(t, ctx, "every gateway's state in ingest", func() bool {
		states := map[string]string{}
		for gs, err := range store.Gateways(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			states[gs.Gateway] = gs.State
		}
		return states["gw-a"] == "online" && states["gw-lossy"] == "online" && states["gw-b"] == "offline" && states["gw-c"] == "offline"
	})
	waitFor(t, ctx, "gw-lossy's gaps in ingest", func() bool {
		for _, err := range store.Gaps(ctx, ingest.GapQuery{Gateway: "gw-lossy", To: time.Now().Add(time.Hour).UnixNano(), Limit: 1}) {
			return err == nil
		}
		return false
	})
	waitFor(t, ctx, "too-warm firing in ingest", func() bool {
		for a, err := range store.Alerts(ctx, ingest.AlertQuery{Gateway: "gw-a", Rule: "too-warm", State: "firing",
			To: time.Now().Add(time.Hour).UnixNano(), Limit: 1}) {
			return err == nil && a.Rule == "too-warm"
		}
		return false
	})
	// gw-a's status says so, once its 10 s hold-off after the birth lets
	// it.
	waitFor(t, ctx, "gw-a's status with its alerts and failing sensor", func() bool {
		for gs, err := range store.Gateways(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			var st outpost.Status
			if gs.Gateway == "gw-a" && json.Unmarshal(gs.Payload, &st) == nil && st.Health != nil {
				return st.Health.AlertsFiring == 2 && len(st.Health.SensorsFailing["env"]) > 0
			}
		}
		return false
	})
	// A few seconds of gw-a's readings: enough for a sparkline, and its
	// stuck temperature's uncertain readings among them.
	waitFor(t, ctx, "gw-a's readings in ingest", func() bool {
		n, uncertain := 0, false
		for p, err := range store.Range(ctx, ingest.RangeQuery{Gateway: "gw-a", Sensor: "env", Metric: "temperature",
			To: time.Now().Add(time.Hour).UnixNano(), Limit: 1000}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			uncertain = uncertain || p.Quality == outpost.QualityUncertain
		}
		return n >= 20 && uncertain
	})
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(func() {
		svc.EndStreams() // the pages' live streams; Close waits for every open request
		srv.Close()
	})
	f.url = srv.URL
	return f
}
