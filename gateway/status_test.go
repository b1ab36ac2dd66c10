package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/storetest"
	"github.com/outposthq/outpost/internal/testenv"
	"github.com/outposthq/outpost/sensors"
)

// The gateway's retained status carries the gateway's labels and every
// sensor of its config with the config's labels ({} for a sensor without
// any), and through it the ingest service labels the sensors' series.
func TestStatusCarriesSensorLabels(t *testing.T) {
	broker := testenv.MQTT(t)
	cfg := shutdownConfig(t, broker, 2, 1, 10)
	cfg.Sensors[0].Labels = map[string]string{"room": "lab", "site": "hq"}
	cfg.Gateway.Labels = map[string]string{"site": "plant-3", "ring": "canary"}
	clearStatus(t, broker, cfg)
	store := startIngest(t, broker, cfg.Uplink.TopicPrefix)
	g, _ := startLogged(t, cfg)
	defer closeGateway(t, g)
	waitFor(t, func() bool { return g.Stats().Uplink.Connected })

	got := make(chan []byte, 1)
	c := brokerClient(t, broker)
	tok := c.Subscribe(cfg.Uplink.TopicPrefix+"/"+cfg.Gateway.ID+"/status", 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- m.Payload():
		default:
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	var p []byte
	select {
	case p = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no retained status")
	}
	var st outpost.Status
	if err := json.Unmarshal(p, &st); err != nil {
		t.Fatalf("status %s: %v", p, err)
	}
	want := map[string]outpost.SensorStatus{
		"dev0": {Labels: map[string]string{"room": "lab", "site": "hq"}},
		"dev1": {Labels: map[string]string{}},
	}
	if st.State != "online" || st.Gateway != cfg.Gateway.ID || !reflect.DeepEqual(st.Sensors, want) || !maps.Equal(st.Labels, cfg.Gateway.Labels) {
		t.Fatalf("status %s: want online with labels %v and sensors %v", p, cfg.Gateway.Labels, want)
	}

	var series []ingest.SeriesInfo
	waitFor(t, func() bool {
		var err error
		series, err = storetest.Collect(store.Series(context.Background(), ingest.SeriesQuery{Gateway: cfg.Gateway.ID, Limit: 10}))
		return err == nil && len(series) == 2
	})
	for _, si := range series {
		if w := want[si.Sensor].Labels; si.Metric != "temperature" || si.Unit != "Cel" || !maps.Equal(si.Labels, w) {
			t.Errorf("series %+v, want temperature in Cel with labels %v", si, w)
		}
	}
}

// switchSensor reads its value, or fails while fail is set: a device a
// test unplugs.
type switchSensor struct {
	id    string
	value *atomic.Int64
	fail  *atomic.Bool
}

func (s switchSensor) Read(_ context.Context, now time.Time, dst []outpost.Reading) ([]outpost.Reading, error) {
	if s.fail.Load() {
		return dst, errors.New("unplugged")
	}
	return append(dst, outpost.Reading{Sensor: s.id, Metric: "temperature", Unit: "Cel", TS: now.UnixNano(), Value: float64(s.value.Load())}), nil
}

func (switchSensor) Close() error { return nil }

// statusDocs collects the gateway's status documents in arrival order.
type statusDocs struct {
	mu   sync.Mutex
	docs []outpost.Status
	raw  []string
}

func subscribeStatusDocs(t *testing.T, broker string, cfg *config.Config) *statusDocs {
	t.Helper()
	s := &statusDocs{}
	c := brokerClient(t, broker)
	tok := c.Subscribe(cfg.Uplink.TopicPrefix+"/"+cfg.Gateway.ID+"/status", 1, func(_ mqtt.Client, m mqtt.Message) {
		if len(m.Payload()) == 0 {
			return // clearStatus at the test's end
		}
		var st outpost.Status
		if err := json.Unmarshal(m.Payload(), &st); err != nil {
			t.Errorf("status %s: %v", m.Payload(), err)
			return
		}
		s.mu.Lock()
		s.docs = append(s.docs, st)
		s.raw = append(s.raw, string(m.Payload()))
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	clearStatus(t, broker, cfg)
	return s
}

// wait returns the first document from the from-th on that cond accepts,
// and its index, with a generous deadline (a change waits out the
// holdoff).
func (s *statusDocs) wait(t *testing.T, what string, from int, cond func(*outpost.Status) bool) (outpost.Status, int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.mu.Lock()
		for i := from; i < len(s.docs); i++ {
			if cond(&s.docs[i]) {
				st := s.docs[i]
				s.mu.Unlock()
				return st, i
			}
		}
		raw := strings.Join(s.raw, "\n")
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no status with %s; got:\n%s", what, raw)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The status document carries the gateway's version, start time and
// health, read from the real parts: the bbolt outbox, the pollers, the
// rule engine. A rule that fires and a sensor that fails each make the
// gateway publish a new document (with status_interval 0 nothing else
// does), and the clean stop's offline document keeps the health.
func TestStatusHealth(t *testing.T) {
	broker := testenv.MQTT(t)
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte("rules:\n  - {name: hot, select: {metric: temperature}, above: 25}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	never := time.Duration(0)
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: fmt.Sprintf("gw-status-%d", time.Now().UnixNano())},
		DataDir: filepath.Join(dir, "data"),
		Sensors: []config.Sensor{{ID: "probe", Driver: "switch", Interval: 10 * time.Millisecond,
			Labels: map[string]string{"room": "lab"}, Supervision: config.Supervision{FailAfter: 2, Timeout: 10 * time.Second}}},
		Batch:  config.BatchConfig{MaxReadings: 10, Interval: 50 * time.Millisecond},
		Uplink: config.UplinkConfig{Broker: broker, TopicPrefix: "outpost-status-test", StatusInterval: &never},
		Rules:  config.RulesConfig{Files: []string{rulesFile}},
	}
	cfg.SetDefaults()
	var value atomic.Int64
	var fail atomic.Bool
	value.Store(20)
	reg := DefaultRegistry()
	if err := reg.Register("switch", func(s sensors.Spec) (sensors.Sensor, error) {
		return switchSensor{id: s.ID, value: &value, fail: &fail}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	docs := subscribeStatusDocs(t, broker, cfg)
	const version = "outpost v9.9.9-test go1.26.8 linux/arm"
	g, err := New(cfg, &Options{Registry: reg, Version: version, statusHoldoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer closeGateway(t, g)

	birth, at := docs.wait(t, "the birth", 0, func(st *outpost.Status) bool { return st.State == "online" })
	born := time.Now()
	ts, err := time.Parse(time.RFC3339Nano, birth.TS)
	if err != nil {
		t.Fatal(err)
	}
	started, err := time.Parse(time.RFC3339, birth.StartedAt)
	switch {
	case err != nil:
		t.Errorf("started_at %q: %v", birth.StartedAt, err)
	case started.After(ts):
		t.Errorf("started at %v, after the status's ts %v", started, ts)
	}
	h := birth.Health
	switch {
	case birth.Version != version:
		t.Errorf("version %q, want %q", birth.Version, version)
	case h == nil:
		t.Fatalf("birth without health: %+v", birth)
	case h.AlertsFiring != 0 || h.AlertsPending != 0 || len(h.SensorsFailing) != 0 || h.SensorsFailing == nil:
		t.Errorf("birth's health %+v: want no alerts and sensors_failing {}", h)
	case h.OutboxBatches < 0 || h.OutboxBytes < 0 || h.ReadingsPerS < 0:
		t.Errorf("birth's health %+v", h)
	}
	if birth.Sensors["probe"].Labels["room"] != "lab" {
		t.Errorf("birth's sensors %+v", birth.Sensors)
	}

	// readings_per_s is measured over a second at least: let one pass
	// since the birth, with the probe read every 10 ms.
	time.Sleep(time.Until(born.Add(minRateWindow + 100*time.Millisecond)))
	value.Store(30) // the rule fires at the next reading
	fired, at := docs.wait(t, "the rule firing", at+1, func(st *outpost.Status) bool {
		return st.Health != nil && st.Health.AlertsFiring == 1
	})
	h = fired.Health
	if fired.State != "online" || h.AlertsPending != 0 || len(h.SensorsFailing) != 0 {
		t.Errorf("after the rule fired: %+v %+v", fired, h)
	}
	if h.ReadingsPerS <= 0 {
		t.Errorf("readings_per_s %v after a second of readings", h.ReadingsPerS)
	}
	// The alert's batch at least is stored: nobody acks here.
	if _, err := time.Parse(time.RFC3339, h.OutboxOldest); err != nil || h.OutboxBatches < 1 || h.OutboxBytes < 1 {
		t.Errorf("outbox in the health: %d batches, %d bytes, oldest %q (%v)", h.OutboxBatches, h.OutboxBytes, h.OutboxOldest, err)
	}

	fail.Store(true) // failing after two failed polls
	failed, _ := docs.wait(t, "the failing sensor", at+1, func(st *outpost.Status) bool {
		return st.Health != nil && len(st.Health.SensorsFailing) > 0
	})
	h = failed.Health
	if !reflect.DeepEqual(h.SensorsFailing, map[string][]string{"probe": {"failing"}}) || h.AlertsFiring != 2 || h.AlertsPending != 0 {
		t.Errorf("after the sensor failed: %+v, want probe failing, and 2 alerts firing (the rule, the health condition)", h)
	}

	closeGateway(t, g)
	off, _ := docs.wait(t, "the offline document", 0, func(st *outpost.Status) bool { return st.State == "offline" })
	if off.Health == nil || off.Health.AlertsFiring != 2 || off.Version != version {
		t.Errorf("clean offline %+v: want the health and the version", off)
	}
	docs.mu.Lock()
	t.Logf("status documents:\n%s", strings.Join(docs.raw, "\n"))
	docs.mu.Unlock()
}

// The conditions a status may list for a sensor are those the pollers
// report.
func TestStatusConditionsAreTheSensors(t *testing.T) {
	want := slices.Sorted(slices.Values(healthConditions))
	if got := outpost.SensorConditions(); !slices.Equal(got, want) {
		t.Fatalf("outpost.SensorConditions() = %v, the pollers report %v", got, want)
	}
}

// The rate is measured since the previous document, over a second at
// least, to three significant digits.
func TestStatusRate(t *testing.T) {
	var s statusState
	s.start(10 * time.Second)
	for _, step := range []struct {
		n    int64
		at   time.Duration
		want float64
	}{
		{0, 10 * time.Second, 0},              // no time since the start
		{100, 10500 * time.Millisecond, 0},    // within a second: the previous rate
		{1000, 12 * time.Second, 500},         // since the start
		{1010, 12500 * time.Millisecond, 500}, // within a second of the last document
		{1020, 15 * time.Second, 6.67},        // 20 in 3 s
		{1021, 315 * time.Second, 0.00333},    // one in 5 minutes
		{123_457_021, 316 * time.Second, 1.23e8},
	} {
		if got := s.perSecond(step.n, step.at); got != step.want {
			t.Errorf("%d readings at %v: rate %v, want %v", step.n, step.at, got, step.want)
		}
	}
}
