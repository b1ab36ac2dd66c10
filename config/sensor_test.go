package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/yamlpos"
)

// drivers is a config with every built-in driver on simulated buses.
const drivers = `gateway: {id: gw-01}
uplink: {broker: tcp://127.0.0.1:1883}
sensors:
  - id: office-env
    driver: bme280
    bus: sim-i2c0
    address: "0x76"
    interval: 10s
    labels: {room: office}
    options: {oversampling: 8, filter: 4}
    supervision: {retries: 0, fail_after: 5, timeout: 2s, stuck_after: 30, max_step: {temperature: 5}}
    sim:
      seed: 7
      signals:
        temperature: {kind: sine, base: 21, amplitude: 2, period: 1h, min: 18}
        humidity: {kind: replay, file: data/occ.csv, column: Humidity}
      faults:
        - {kind: nack, probability: 0.05}
        - {kind: dropout, from: 10m, for: 1m}
  - id: tank-pressure
    driver: ads1115
    bus: sim-i2c0
    address: 0x48
    metrics: [{name: pressure, unit: Pa}]
    options:
      channel: 1
      scale: {in_min: 0.4, in_max: 2.0, out_min: 0, out_max: 1000000, fault_below: 0.36}
    sim: {signals: {input: {kind: ramp, base: 0.8, slope: 0.001}}}
  - id: tank-level
    driver: ads1115
    bus: sim-i2c0
    address: "72"
    options: {channel: 2}
  - id: freezer
    driver: ds18b20
    bus: sim-w1-0
    address: 28-00000abcdef0
    options: {resolution_bits: 9}
  - id: door
    driver: gpio
    bus: sim-gpio0
    address: GPIO17
    metrics: [{name: door_open}]
    options: {pull: up, debounce: 50ms, edges: false}
    sim: {signals: {level: {kind: step, base: 0, value: 1, period: 30s}}}
`

func TestDriverSensors(t *testing.T) {
	dir := writeFiles(t, map[string]string{"gw.yaml": drivers, "data/occ.csv": "date,Humidity\n2015-02-04 17:51:00,27.2\n"})
	c, err := Load(filepath.Join(dir, "gw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	env := c.Sensors[0]
	if env.Bus != "sim-i2c0" || env.Address != "0x76" || env.Options.Oversampling != 8 || env.Options.Filter != 4 {
		t.Errorf("bme280 sensor = %+v", env)
	}
	if sv := env.Supervision; sv.Retries == nil || *sv.Retries != 0 || sv.FailAfter != 5 || sv.Timeout != 2*time.Second || sv.StuckAfter != 30 || sv.MaxStep["temperature"] != 5 {
		t.Errorf("supervision = %+v", sv)
	}
	temp := env.Sim.Signals["temperature"]
	if env.Sim.Seed != 7 || temp.Kind != "sine" || !temp.HasMin || temp.HasMax || len(env.Sim.Faults) != 2 || env.Sim.Faults[1].From != 10*time.Minute {
		t.Errorf("sim = %+v", env.Sim)
	}
	if hum := env.Sim.Signals["humidity"]; hum.File != filepath.Join(dir, "data", "occ.csv") || hum.Column != "Humidity" {
		t.Errorf("replay signal = %+v, want its file resolved against the config's directory", hum)
	}
	sc := c.Sensors[1].Options.Scale
	if sc == nil || sc.InMax != 2 || sc.OutMax != 1e6 || sc.FaultBelow == nil || *sc.FaultBelow != 0.36 || sc.FaultAbove != nil {
		t.Errorf("scale = %+v", sc)
	}
	if c.Sensors[1].Address != "0x48" || c.Sensors[1].Options.Channel != 1 {
		t.Errorf("ads1115 = %+v", c.Sensors[1])
	}
	if door := c.Sensors[4]; door.Options.Edges == nil || *door.Options.Edges || door.Options.Debounce != 50*time.Millisecond {
		t.Errorf("gpio options = %+v", door.Options)
	}
}

func TestDriverSensorErrors(t *testing.T) {
	src := `gateway: {id: gw-01}
uplink: {broker: tcp://127.0.0.1:1883}
sensors:
  - id: a
    driver: bme280
    metrics: [{name: temp}, {name: pressure, unit: hPa}]
    options: {resolution_bits: 12, oversampling: 3}
    sim: {signals: {co2: {kind: constant}}}
  - id: b
    driver: ds18b20
    bus: sim-w1-0
    address: 28-xyz
    sim: {faults: [{kind: melt}, {kind: crc, probability: 2}, {kind: slow}]}
  - id: c
    driver: ads1115
    bus: "1"
    address: "0x90"
    metrics: [{name: a}, {name: b}]
    options: {channel: 4, full_scale: 5, scale: {in_min: 1, in_max: 1, out_max: 1}}
    sim: {signals: {input: {kind: constant, value: 1}}}
  - id: d
    driver: gpio
    bus: sim-w1-0
    address: GPIO4
    supervision: {retries: 11, fail_after: -1, max_step: {state: 0, door: 1}}
  - id: e
    driver: sim
    bus: sim-i2c0
    metrics: [{name: t, signal: {kind: replay}}]
  - id: f
    driver: bmp280
    bus: sim-i2c1
    address: "0x77"
  - id: g
    driver: bme280
    bus: sim-i2c1
    address: "119"
  - id: h
    driver: ads1115
    bus: sim-i2c1
    address: "0x50"
`
	want := []string{
		`gw.yaml:4:5: sensors[0].bus: is required for the bme280 driver (a i2c bus, e.g. "sim-i2c0" or "1")`,
		`gw.yaml:6:22: sensors[0].metrics[0].name: the bme280 driver has no metric "temp" (it has: temperature (Cel), pressure (Pa), humidity (%RH))`,
		`gw.yaml:6:52: sensors[0].metrics[1].unit: the bme280 driver's pressure is in Pa, not "hPa"`,
		`gw.yaml:7:32: sensors[0].options.resolution_bits: is not an option of the bme280 driver (it takes: oversampling, filter)`,
		`gw.yaml:7:50: sensors[0].options.oversampling: must be 1, 2, 4, 8 or 16, got 3`,
		`gw.yaml:8:26: sensors[0].sim.signals.co2: the simulated bme280 has no quantity "co2" (it has: temperature, pressure, humidity)`,
		`gw.yaml:12:14: sensors[1].address: "28-xyz" is not a 1-Wire ROM id (write it 28-00000abcdef0, as /sys/bus/w1/devices lists it, or as 16 hex digits)`,
		`gw.yaml:13:27: sensors[1].sim.faults[0].kind: unknown fault "melt" for a simulated ds18b20 (want stuck, spikes, dropout, nack, crc, slow)`,
		`gw.yaml:13:59: sensors[1].sim.faults[1].probability: must be between 0 and 1 (0 means always), got 2`,
		`gw.yaml:13:63: sensors[1].sim.faults[2].delay: is required for a slow fault`,
		`gw.yaml:17:14: sensors[2].address: "0x90" is not a 7-bit I2C address (0x03 to 0x77, e.g. "0x76")`,
		`gw.yaml:18:14: sensors[2].metrics: the ads1115 driver has one output: give at most one metric to name it`,
		`gw.yaml:19:24: sensors[2].options.channel: must be between 0 and 3, got 4`,
		`gw.yaml:19:39: sensors[2].options.full_scale: must be one of the PGA ranges 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256 (volts), got 5`,
		`gw.yaml:19:69: sensors[2].options.scale.in_max: must differ from in_min (1)`,
		`gw.yaml:20:10: sensors[2].sim: is only for simulated buses (named sim-…), not bus "1"`,
		`gw.yaml:23:10: sensors[3].bus: bus "sim-w1-0" is a onewire bus (sensors[1] is a ds18b20 on it), not a gpio bus`,
		`gw.yaml:25:28: sensors[3].supervision.retries: must be between 0 and 10, got 11`,
		`gw.yaml:25:44: sensors[3].supervision.fail_after: must be between 1 and 1000, got -1`,
		`gw.yaml:25:66: sensors[3].supervision.max_step.state: must be a positive number, got 0`,
		`gw.yaml:25:75: sensors[3].supervision.max_step.door: sensor has no metric "door" (it has: state)`,
		`gw.yaml:28:10: sensors[4].bus: the sim driver takes no bus (its metrics' signals say what it yields)`,
		`gw.yaml:29:25: sensors[4].metrics[0].signal.column: is required for a replay signal (the CSV column to play)`,
		`gw.yaml:29:25: sensors[4].metrics[0].signal.file: is required for a replay signal (a CSV recording)`,
		`gw.yaml:37:14: sensors[6].address: sim-i2c1 0x77 is taken by sensors[5] (a bmp280)`,
		`gw.yaml:41:14: sensors[7].address: the ads1115 answers at 0x48 to 0x4b, not 0x50`,
	}
	_, err := Parse(filepath.Join(t.TempDir(), "gw.yaml"), []byte(src))
	var list yamlpos.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v is not a yamlpos.ErrorList", err)
	}
	got := strings.Split(err.Error(), "\n")
	for i := range got {
		got[i] = filepath.Base(got[i][:strings.Index(got[i], ":")]) + got[i][strings.Index(got[i], ":"):]
	}
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Fatalf("got\n%s\nwant\n%s", g, w)
	}
}
