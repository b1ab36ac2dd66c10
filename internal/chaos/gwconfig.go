package chaos

import (
	"fmt"
	"os"
	"strings"

	"github.com/outposthq/outpost/config"
	firmwaresim "github.com/outposthq/outpost/firmware-sim"
)

// Signal shape of the simulated series: run r's values are r's center plus
// uniform noise in ±noise, so rounding a value names its run (see oracle).
const (
	noise       = 0.25
	drainSensor = "drain"
)

// sensorID and metricName name the simulated series.
func sensorID(i int) string   { return fmt.Sprintf("s%d", i+1) }
func metricName(j int) string { return fmt.Sprintf("m%d", j+1) }

// runCenter is the constant the signals of run n are centered on.
func runCenter(n int) float64 { return float64(n + 1) }

// runSeed derives run n's noise seed from the loop's seed (splitmix64).
func runSeed(seed int64, n int) int64 {
	z := uint64(seed) + uint64(n+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return int64((z ^ (z >> 31)) >> 1)
}

// gwConfig is what differs between the config files of one loop.
type gwConfig struct {
	path    string
	id      string // gateway id
	dataDir string
	broker  string
	prefix  string
	center  float64
	seed    int64
	drain   bool // one slow sensor only: emits once at start, then idles
}

// write writes the file and loads it back with config.Load, so a mistake
// here fails with file:line:col before any gateway runs. It returns the
// signal spec the gateway builds from the file, for the oracle.
func (c *gwConfig) write(o *Options) (firmwaresim.SignalSpec, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "gateway:\n  id: %s\ndata_dir: %s\nlog_level: info\nsensors:\n", c.id, quote(c.dataDir))
	if c.drain {
		fmt.Fprintf(&b, "  - id: %s\n    driver: sim\n    interval: 1h\n    samples: 1\n    metrics:\n", drainSensor)
		fmt.Fprintf(&b, "      - {name: m, signal: {kind: constant, value: -1}}\n")
	} else {
		for i := range o.Sensors {
			fmt.Fprintf(&b, "  - id: %s\n    driver: sim\n    interval: %s\n    samples: %d\n    metrics:\n",
				sensorID(i), o.PollInterval, o.Samples)
			for j := range o.Metrics {
				fmt.Fprintf(&b, "      - {name: %s, signal: {kind: constant, value: %g, noise: %g, seed: %d}}\n",
					metricName(j), c.center, noise, c.seed)
			}
		}
	}
	fmt.Fprintf(&b, "bus: {queue: 256, policy: block}\n")
	fmt.Fprintf(&b, "batch: {max_readings: %d, interval: %s, max_delay: %s}\n", o.MaxReadings, o.BatchInterval, o.MaxDelay)
	fmt.Fprintf(&b, "uplink:\n  broker: %s\n  topic_prefix: %s\n  ack: ingest\n  ack_timeout: %s\n  connect_timeout: 5s\n",
		quote(c.broker), c.prefix, o.AckTimeout)
	if err := os.WriteFile(c.path, []byte(b.String()), 0o644); err != nil {
		return firmwaresim.SignalSpec{}, fmt.Errorf("chaos: %w", err)
	}
	cfg, err := config.Load(c.path)
	if err != nil {
		return firmwaresim.SignalSpec{}, fmt.Errorf("chaos: generated config: %w", err)
	}
	sg := cfg.Sensors[0].Metrics[0].Signal
	return firmwaresim.SignalSpec{
		Kind: sg.Kind, Value: sg.Value, Base: sg.Base, Amplitude: sg.Amplitude, Period: sg.Period,
		Slope: sg.Slope, Step: sg.Step, Min: sg.Min, Max: sg.Max, HasMin: sg.HasMin, HasMax: sg.HasMax,
		Noise: sg.Noise, Resolution: sg.Resolution, Seed: uint64(sg.Seed),
	}, nil
}

// quote makes s a YAML double-quoted scalar.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
