package gateway

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/config"
)

// driversConfig runs every periph driver against simulated chips, with
// scenarios that make each health condition begin (and most of them end).
// Slow reads are judged on the real clock: a slow fault's sleep makes a
// read take at least its delay, so the outcome does not depend on the
// machine's speed. Fault windows start when the gateway builds the chips
// and last a second or more, so that a slow start still sees them.
const driversConfig = `gateway: {id: gw-drv}
data_dir: data
uplink: {broker: "tcp://127.0.0.1:1"}
batch: {interval: 50ms}
sensors:
  - id: env
    driver: bme280
    bus: sim-i2c0
    interval: 20ms
    labels: {room: lab}
    supervision: {timeout: 10s}
    sim: {signals: {temperature: {kind: constant, value: 22.5}, pressure: {kind: constant, value: 100000}, humidity: {kind: constant, value: 40}}}
  - id: baro
    driver: bmp280
    bus: sim-i2c0
    address: "0x77"
    interval: 20ms
    supervision: {timeout: 10s}
    sim: {signals: {pressure: {kind: constant, value: 95000}}}
  - id: fridge
    driver: ds18b20
    bus: sim-w1-0
    address: 28-000000000001
    interval: 20ms
    options: {resolution_bits: 9}
    supervision: {timeout: 10s}
    sim: {signals: {temperature: {kind: constant, value: 4.5}}}
  - id: freezer
    driver: ds18b20
    bus: sim-w1-0
    address: 28-000000000002
    interval: 20ms
    options: {resolution_bits: 9}
    supervision: {timeout: 10s}
    sim: {signals: {temperature: {kind: constant, value: -18}}}
  - id: tank
    driver: ads1115
    bus: sim-i2c0
    address: "0x48"
    interval: 20ms
    metrics: [{name: pressure, unit: Pa}]
    options: {channel: 0, scale: {in_min: 0.4, in_max: 2.0, out_min: 0, out_max: 1000000, fault_below: 0.36}}
    supervision: {timeout: 10s}
    sim: {signals: {input: {kind: constant, value: 1.2}}}
  - id: broken-loop
    driver: ads1115
    bus: sim-i2c0
    address: "0x48"
    interval: 20ms
    metrics: [{name: pressure, unit: Pa}]
    options: {channel: 1, scale: {in_min: 0.4, in_max: 2.0, out_min: 0, out_max: 1000000, fault_below: 0.36}}
    supervision: {fail_after: 2, timeout: 10s}
  - id: door
    driver: gpio
    bus: sim-gpio0
    address: GPIO17
    interval: 20ms
    metrics: [{name: door_open}]
    supervision: {timeout: 10s}
    sim: {signals: {level: {kind: sine, base: 0.5, amplitude: 1, period: 600ms}}}
  - id: unplugged
    driver: bme280
    bus: sim-i2c1
    interval: 20ms
    supervision: {fail_after: 2, timeout: 10s}
    sim: {faults: [{kind: dropout, for: 1s}]}
  - id: flaky
    driver: ds18b20
    bus: sim-w1-1
    address: 28-000000000003
    interval: 20ms
    options: {resolution_bits: 9}
    supervision: {fail_after: 2, timeout: 10s}
    sim: {faults: [{kind: crc, from: 300ms, for: 1s}]}
  - id: slowpoke
    driver: bmp280
    bus: sim-i2c2
    interval: 20ms
    options: {oversampling: 1}
    supervision: {fail_after: 2, timeout: 40ms}
    sim: {faults: [{kind: slow, delay: 50ms, for: 1500ms}]}
  - id: frozen
    driver: bme280
    bus: sim-i2c3
    interval: 20ms
    supervision: {stuck_after: 3, timeout: 10s}
    sim:
      signals:
        temperature: {kind: ramp, base: 10, slope: 5}
        pressure: {kind: ramp, base: 90000, slope: 500}
        humidity: {kind: ramp, base: 10, slope: 5}
      faults: [{kind: stuck, from: 300ms, for: 1s}]
  - id: office
    driver: bme280
    bus: sim-i2c4
    interval: 20ms
    supervision: {timeout: 10s}
    sim:
      signals:
        temperature: {kind: replay, file: OCCUPANCY, column: Temperature}
        humidity: {kind: replay, file: OCCUPANCY, column: Humidity}
  - id: spiky
    driver: ds18b20
    bus: sim-w1-1
    address: 28-000000000004
    interval: 20ms
    options: {resolution_bits: 9}
    supervision: {timeout: 10s, fail_after: 10, max_step: {temperature: 5}}
    sim:
      seed: 3
      signals: {temperature: {kind: constant, value: 10}}
      faults: [{kind: spikes, magnitude: 40, probability: 0.3}]
`

// healthSeen is the health alerts in order, per sensor and condition.
func healthSeen(alerts []outpost.Alert) map[[2]string][]outpost.AlertState {
	seen := map[[2]string][]outpost.AlertState{}
	for _, a := range alerts {
		if a.Rule == HealthRule {
			k := [2]string{a.Labels["sensor"], a.Labels["condition"]}
			seen[k] = append(seen[k], a.State)
		}
	}
	return seen
}

func TestDriversOnSimulatedBuses(t *testing.T) {
	dir := t.TempDir()
	// A real recording (testdata/occupancy/README.md), replayed into a
	// simulated BME280: its first row is 23.18 °C, 27.272 %RH.
	occupancy, err := filepath.Abs("../testdata/occupancy/datatraining.txt")
	if err != nil {
		t.Fatal(err)
	}
	src := strings.ReplaceAll(driversConfig, "OCCUPANCY", occupancy)
	cfg, err := config.Parse(filepath.Join(dir, "gw.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, &Options{Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Wait (bounded only against a hang) until every scenario has played:
	// the unplugged and flaky sensors failed and recovered, the slow one
	// was slow and sped up, the broken loop went bad, the door opened.
	deadline := time.Now().Add(60 * time.Second)
	for g.Stats().HealthEvents < 9 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := g.Stats()

	ob, err := buffer.Open(filepath.Join(dir, "data", OutboxFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	var rs []outpost.Reading
	var alerts []outpost.Alert
	for _, lane := range []buffer.Lane{buffer.LaneTelemetry, buffer.LaneAlert} {
		es, err := ob.Read(lane, 0, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			b, err := outpost.DecodeBatch(e.Data)
			if err != nil {
				t.Fatal(err)
			}
			rs = b.AppendReadings(rs)
			alerts = append(alerts, b.Alerts...)
		}
	}

	// Values: the real periph drivers recover what the scenarios set,
	// within each sensor's resolution.
	type key struct{ sensor, metric string }
	last := map[key]outpost.Reading{}
	levels := map[float64]bool{}
	spikes := 0
	for _, r := range rs {
		last[key{r.Sensor, r.Metric}] = r
		switch r.Sensor {
		case "door":
			levels[r.Value] = true
		case "spiky":
			// A spike is 40 °C off; MaxStep 5 must mark each one.
			if math.Abs(r.Value-10) > 5 {
				spikes++
				if r.Quality != outpost.QualityUncertain {
					t.Errorf("spike %g has quality %s, want uncertain", r.Value, r.Quality)
				}
			} else if r.Quality != outpost.QualityGood {
				t.Errorf("spiky: %g has quality %s, want good", r.Value, r.Quality)
			}
		}
	}
	if spikes == 0 {
		t.Errorf("the spikes fault gave no spike")
	}
	for _, c := range []struct {
		sensor, metric, unit string
		want, tol            float64
		q                    outpost.Quality
	}{
		{"env", "temperature", "Cel", 22.5, 0.01, outpost.QualityGood},
		{"env", "pressure", "Pa", 100000, 1, outpost.QualityGood},
		{"env", "humidity", "%RH", 40, 0.01, outpost.QualityGood},
		{"baro", "pressure", "Pa", 95000, 1, outpost.QualityGood},
		{"fridge", "temperature", "Cel", 4.5, 0.5, outpost.QualityGood},
		{"freezer", "temperature", "Cel", -18, 0.5, outpost.QualityGood},
		{"tank", "pressure", "Pa", 500000, 100, outpost.QualityGood}, // 1.2 V of 0.4–2.0 V; one LSB is 125 µV = 78 Pa
		{"broken-loop", "pressure", "Pa", -250000, 100, outpost.QualityBad},
		{"unplugged", "temperature", "Cel", 20, 0.01, outpost.QualityGood}, // the chip's default, once it is back
		{"office", "temperature", "Cel", 23.18, 0.01, outpost.QualityGood},
		{"office", "humidity", "%RH", 27.272, 0.01, outpost.QualityGood},
	} {
		r, ok := last[key{c.sensor, c.metric}]
		switch {
		case !ok:
			t.Errorf("%s/%s: no reading", c.sensor, c.metric)
		case math.Abs(r.Value-c.want) > c.tol || r.Unit != c.unit || r.Quality != c.q:
			t.Errorf("%s/%s = %g %s (%s), want %g ± %g %s (%s)", c.sensor, c.metric, r.Value, r.Unit, r.Quality, c.want, c.tol, c.unit, c.q)
		}
	}
	if _, ok := last[key{"baro", "humidity"}]; ok {
		t.Errorf("a bmp280 reported humidity")
	}
	if !levels[0] || !levels[1] || len(levels) != 2 {
		t.Errorf("door levels seen %v, want 0 and 1", levels)
	}

	// Health: each fault scenario gave its events, in order, and they went
	// into the outbox's alert lane.
	seen := healthSeen(alerts)
	firingResolved := []outpost.AlertState{outpost.StateFiring, outpost.StateResolved}
	for _, c := range []struct {
		sensor, condition string
		want              []outpost.AlertState
	}{
		{"unplugged", "failing", firingResolved},
		{"flaky", "failing", firingResolved},
		{"slowpoke", "slow", firingResolved},
		{"broken-loop", "bad", []outpost.AlertState{outpost.StateFiring}},
		{"frozen", "stuck", firingResolved},
	} {
		if got := seen[[2]string{c.sensor, c.condition}]; !slices.Equal(got, c.want) {
			t.Errorf("%s %s: health alerts %v, want %v", c.sensor, c.condition, got, c.want)
		}
	}
	for k, states := range seen {
		switch k[0] {
		case "unplugged", "flaky", "slowpoke", "broken-loop", "frozen":
		default:
			t.Errorf("unexpected health alerts for %s %s: %v", k[0], k[1], states)
		}
	}
	if int64(len(alerts)) != st.HealthEvents {
		t.Errorf("outbox holds %d health alerts, gateway raised %d", len(alerts), st.HealthEvents)
	}
	for _, a := range alerts {
		if a.Labels["sensor"] == "env" && a.Labels["room"] != "lab" {
			t.Errorf("health alert lost the sensor's labels: %v", a.Labels)
		}
	}
	if st.ReadingsStored != st.ReadingsEmitted || int64(len(rs)) != st.ReadingsEmitted {
		t.Errorf("emitted %d readings, stored %d, outbox holds %d", st.ReadingsEmitted, st.ReadingsStored, len(rs))
	}
	for _, s := range st.Sensors {
		if s.Sensor == "unplugged" && (s.Failures == 0 || s.LastError == "") {
			t.Errorf("unplugged sensor status %+v: want failures and the last error", s)
		}
	}
}
