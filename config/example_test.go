package config_test

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/rules"
)

// The shipped example and its rules must load, and its rule must fire
// within a minute of start.
func TestExample(t *testing.T) {
	c, err := config.Load("../examples/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.ID != "gw-01" || c.Uplink.Broker != "tcp://127.0.0.1:1883" || c.ClientID() != "outpost-gw-01" {
		t.Errorf("gateway/uplink: %+v %+v", c.Gateway, c.Uplink)
	}
	if c.Uplink.StatusInterval == nil || c.Uplink.StatusEvery() != config.DefaultStatusInterval {
		t.Errorf("uplink.status_interval %v: the example shows the default", c.Uplink.StatusInterval)
	}
	if want := filepath.Join("..", "examples", "data"); c.DataDir != want {
		t.Errorf("data dir %q, want %q", c.DataDir, want)
	}
	var ids []string
	for _, s := range c.Sensors {
		ids = append(ids, s.ID+":"+s.Driver)
	}
	if got, want := strings.Join(ids, " "), "dev1-env:sim dev2-env:sim lab-env:bme280 cold-room:ds18b20 tank:ads1115 door:gpio"; got != want {
		t.Fatalf("sensors %s, want %s", got, want)
	}
	units := map[string]string{"temperature": "Cel", "humidity": "%RH", "pressure": "Pa"}
	for _, s := range c.Sensors[:2] {
		if s.Driver != "sim" || s.Interval != time.Second || len(s.Metrics) != 3 {
			t.Errorf("sensor %s: %+v", s.ID, s)
		}
		for _, m := range s.Metrics {
			if units[m.Name] != m.Unit || m.Signal.Resolution <= 0 {
				t.Errorf("sensor %s metric %s: %+v", s.ID, m.Name, m)
			}
		}
	}
	if len(c.Rules.Files) != 1 {
		t.Fatalf("rules files: %v", c.Rules.Files)
	}
	set, err := rules.LoadFile(c.Rules.Files[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) == 0 {
		t.Fatal("no rules")
	}

	// Simulate dev1's temperature from its config, pessimistically (noise
	// and quantization against the rule), at every start phase, and check
	// that the rule fires within 60 s.
	r := set.Rules[0]
	var sig config.Signal
	var interval time.Duration
	for _, s := range c.Sensors {
		for _, m := range s.Metrics {
			if r.Select.Matches(s.ID, m.Name) {
				sig, interval = m.Signal, s.Interval
			}
		}
	}
	if sig.Kind != config.SignalSine {
		t.Fatalf("the example rule should watch a sine, got %+v", sig)
	}
	worst := time.Duration(0)
	for phase := time.Duration(0); phase < sig.Period; phase += 250 * time.Millisecond {
		e := rules.NewEngine(set, nil)
		fired := time.Duration(-1)
		for t0 := time.Duration(0); t0 <= time.Minute && fired < 0; t0 += interval {
			x := 2 * math.Pi * float64(t0+phase) / float64(sig.Period)
			v := sig.Base + sig.Amplitude*math.Sin(x) - sig.Noise - sig.Resolution/2
			rd := outpost.Reading{Sensor: "dev1-env", Metric: r.Select.Metric, TS: int64(t0), Value: v}
			for _, a := range e.Eval([]outpost.Reading{rd}, nil) {
				if a.State == outpost.StateFiring {
					fired = t0
				}
			}
		}
		if fired < 0 {
			t.Fatalf("phase %v: the example rule did not fire within a minute", phase)
		}
		if phase == 0 && fired > 15*time.Second {
			t.Errorf("from phase 0 (how the signal is documented to start) the rule fires at %v, want ~11s", fired)
		}
		worst = max(worst, fired)
	}
	t.Logf("example rule fires within %v of start at worst", worst)
}
