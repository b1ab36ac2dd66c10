package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/yamlpos"
)

// minimal is the smallest valid config: everything else is defaulted.
const minimal = `gateway:
  id: gw-01
sensors:
  - id: s1
    driver: thermo
    metrics:
      - name: temperature
uplink:
  broker: tcp://127.0.0.1:1883
`

// writeFiles writes name → content into a temp dir and returns the dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDefaults(t *testing.T) {
	dir := writeFiles(t, map[string]string{"gw.yaml": minimal})
	c, err := Load(filepath.Join(dir, "gw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path:     filepath.Join(dir, "gw.yaml"),
		Gateway:  GatewayConfig{ID: "gw-01"},
		DataDir:  filepath.Join(dir, "data"),
		LogLevel: "info", LogFormat: "auto",
		Sensors: []Sensor{{
			ID: "s1", Driver: "thermo", Interval: time.Second, Samples: 1,
			Metrics: []Metric{{Name: "temperature"}},
		}},
		Bus:    BusConfig{Queue: 256, Policy: "block"},
		Batch:  BatchConfig{MaxReadings: 1000, Interval: time.Second, MaxDelay: 30 * time.Second, Compression: "zstd"},
		Buffer: BufferConfig{MaxBatches: 1_000_000, MaxBytes: 1 << 30, MaxAge: 7 * 24 * time.Hour},
		Uplink: UplinkConfig{
			Broker: "tcp://127.0.0.1:1883", TopicPrefix: "outpost/v1", Window: 16,
			AckTimeout: 10 * time.Second, Ack: "ingest", KeepAlive: 30 * time.Second,
			ConnectTimeout: 10 * time.Second, MaxMessageBytes: 128 << 10,
			Backoff: BackoffConfig{Initial: time.Second, Max: time.Minute},
		},
		Dashboard: DashboardConfig{LiveInterval: time.Second},
		Clock:     ClockConfig{Trust: "auto", StepThreshold: time.Second},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", c, want)
	}
	if got := c.ClientID(); got != "outpost-gw-01" {
		t.Errorf("ClientID() = %q", got)
	}
}

func TestParseFull(t *testing.T) {
	dir := writeFiles(t, map[string]string{"etc/rules/a.yaml": "rules: []\n"})
	src := `gateway: {id: gw.2}
data_dir: /var/lib/outpost
log_level: debug
sensors:
  - id: env
    driver: thermo
    interval: 250ms
    samples: 16
    labels: {room: lab}
    metrics:
      - name: t
        unit: Cel
        signal: {kind: random_walk, base: 20, step: 0.1, min: -40, max: 85, noise: 0.05, seed: -3, resolution: 0.01}
bus: {queue: 8, policy: drop}
batch: {max_readings: 5, interval: 2m}
buffer: {max_batches: 10, max_bytes: 512MiB}
uplink:
  broker: wss://broker.example.com:443/mqtt
  client_id: me
  topic_prefix: acme/outpost
  window: 1
  ack_timeout: 1m
  ack: broker
  keepalive: 0
  connect_timeout: 3s
  username: gw
  password_env: OUTPOST_PASSWORD
rules:
  files: [rules/a.yaml]
`
	c, err := Parse(filepath.Join(dir, "etc", "gw.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sensors[0]
	sig := s.Metrics[0].Signal
	switch {
	case c.DataDir != "/var/lib/outpost", c.LogLevel != "debug":
		t.Errorf("top: %+v", c)
	case s.Interval != 250*time.Millisecond, s.Samples != 16, s.Labels["room"] != "lab":
		t.Errorf("sensor: %+v", s)
	case sig.Kind != SignalRandomWalk, !sig.HasMin || sig.Min != -40, !sig.HasMax || sig.Max != 85, sig.Seed != -3:
		t.Errorf("signal: %+v", sig)
	case c.Bus != BusConfig{Queue: 8, Policy: "drop"}, c.Batch != BatchConfig{MaxReadings: 5, Interval: 2 * time.Minute, MaxDelay: 30 * time.Second, Compression: "zstd"}:
		t.Errorf("bus/batch: %+v %+v", c.Bus, c.Batch)
	case c.Buffer.MaxBytes != 512<<20:
		t.Errorf("buffer: %+v", c.Buffer)
	case c.Uplink.KeepAlive != 0, c.Uplink.Ack != AckBroker, c.ClientID() != "me":
		t.Errorf("uplink: %+v", c.Uplink)
	case len(c.Rules.Files) != 1 || c.Rules.Files[0] != filepath.Join(dir, "etc", "rules", "a.yaml"):
		t.Errorf("rules: %v", c.Rules.Files)
	}
}

func TestBadFiles(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"unknown field", strings.Replace(minimal, "    driver: thermo\n", "    driver: thermo\n    intervall: 2s\n", 1), []string{
			`gw.yaml:6:5: sensors[0]: unknown field "intervall" (did you mean "interval"?)`,
		}},
		{"wrong type", strings.Replace(minimal, "    driver: thermo\n", "    driver: thermo\n    samples: many\n", 1), []string{
			`gw.yaml:6:14: sensors[0].samples: expected an integer, got "many"`,
		}},
		{"bad duration", strings.Replace(minimal, "    driver: thermo\n", "    driver: thermo\n    interval: 1 second\n", 1), []string{
			`gw.yaml:6:15: sensors[0].interval: invalid duration "1 second" (want a number with a unit, like 500ms, 1s or 10m)`,
		}},
		{"missing gateway id", strings.Replace(minimal, "  id: gw-01\n", "  idd: gw-01\n", 1), []string{
			`gw.yaml:1:1: gateway.id: is required`,
			`gw.yaml:2:3: gateway: unknown field "idd" (did you mean "id"?)`,
		}},
		{"no gateway section", strings.Replace(minimal, "gateway:\n  id: gw-01\n", "", 1), []string{
			`gw.yaml:1:1: gateway.id: is required`,
		}},
		{"bad gateway id", strings.Replace(minimal, "id: gw-01", "id: gw/01", 1), []string{
			`gw.yaml:2:7: gateway.id: "gw/01" is not a valid id (use 1 to 64 of A-Z a-z 0-9 _ . -)`,
		}},
		{"duplicate sensor id", strings.Replace(minimal, "uplink:", "  - id: s1\n    driver: thermo\n    metrics: [{name: t}]\nuplink:", 1), []string{
			`gw.yaml:8:9: sensors[1].id: duplicate sensor id "s1" (sensors[0] has it too)`,
		}},
		{"bad signal kind", strings.Replace(minimal, "      - name: temperature\n", "      - name: temperature\n        signal: {kind: square, period: 1s}\n", 1), []string{
			`gw.yaml:8:24: sensors[0].metrics[0].signal.kind: unknown signal kind "square" (want constant, sine, ramp, random_walk, step or replay)`,
		}},
		{"sim without signal", strings.Replace(minimal, "driver: thermo", "driver: sim", 1), []string{
			`gw.yaml:7:9: sensors[0].metrics[0].signal: is required for the sim driver (kind: constant, sine, ramp, random_walk, step or replay)`,
		}},
		{"bad broker scheme", strings.Replace(minimal, "tcp://", "http://", 1), []string{
			`gw.yaml:9:11: uplink.broker: unsupported scheme "http" (want tcp, mqtt, ssl, tls, mqtts, ws or wss)`,
		}},
		{"missing rules file", minimal + "rules:\n  files:\n    - rules.yaml\n    - nope.yaml\n", []string{
			`gw.yaml:13:7: rules.files[1]: rules file "nope.yaml" does not exist`,
		}},
		{"bad clock", minimal + "clock:\n  trust: ntp\n  step_threshold: 2h\n", []string{
			`gw.yaml:11:10: clock.trust: unknown clock trust "ntp" (want auto, sync or always)`,
			`gw.yaml:12:19: clock.step_threshold: must be between 1ms and 1m0s, got 2h0m0s`,
		}},
		{"syntax error", "gateway:\n  id: [gw\n", []string{
			`gw.yaml:2:7: sequence end token ']' not found`,
		}},
		{"empty file", "", []string{
			`gw.yaml:1:1: gateway.id: is required`,
			`gw.yaml:1:1: sensors: at least one sensor is required`,
			`gw.yaml:1:1: uplink.broker: is required (e.g. tcp://127.0.0.1:1883)`,
		}},
		{"many errors", `gateway:
  id: ""
log_level: loud
sensors:
  - id: a
    driver: sim
    interval: 0
    samples: 0
    metrics:
      - name: t
        signal: {kind: sine, period: 0, noise: -1, min: 2, max: 1}
      - name: t
      - {}
  - id: a
    metrics: []
    colour: red
bus: {queue: 0, policy: maybe}
batch: {max_readings: 2000000, interval: -1s}
buffer: {max_batches: 0, max_bytes: 1 parsec}
uplink:
  broker: 127.0.0.1:1883
  topic_prefix: a/+/b
  window: 2000
  ack: never
  keepalive: 1500ms
  password_env: hunter2!
`, []string{
			`gw.yaml:2:7: gateway.id: is required`,
			`gw.yaml:3:12: log_level: unknown log level "loud" (want debug, info, warn or error)`,
			`gw.yaml:7:15: sensors[0].interval: must be > 0, got 0s`,
			`gw.yaml:8:14: sensors[0].samples: must be between 1 and 100000, got 0`,
			`gw.yaml:11:38: sensors[0].metrics[0].signal.period: must be > 0 for a sine signal, got 0s`,
			`gw.yaml:11:48: sensors[0].metrics[0].signal.noise: must not be negative, got -1`,
			`gw.yaml:11:65: sensors[0].metrics[0].signal.max: must not be below min (2), got 1`,
			`gw.yaml:12:9: sensors[0].metrics[1].signal: is required for the sim driver (kind: constant, sine, ramp, random_walk, step or replay)`,
			`gw.yaml:12:15: sensors[0].metrics[1].name: duplicate metric "t" (metrics[0] has it too)`,
			`gw.yaml:13:9: sensors[0].metrics[2].name: is required`,
			`gw.yaml:13:9: sensors[0].metrics[2].signal: is required for the sim driver (kind: constant, sine, ramp, random_walk, step or replay)`,
			`gw.yaml:14:5: sensors[1].driver: is required`,
			`gw.yaml:14:9: sensors[1].id: duplicate sensor id "a" (sensors[0] has it too)`,
			`gw.yaml:16:5: sensors[1]: unknown field "colour"`,
			`gw.yaml:17:14: bus.queue: must be between 1 and 1000000, got 0`,
			`gw.yaml:17:25: bus.policy: unknown policy "maybe" (want block or drop)`,
			`gw.yaml:18:23: batch.max_readings: must be between 1 and 100000, got 2000000`,
			`gw.yaml:18:42: batch.interval: must be > 0, got -1s`,
			`gw.yaml:19:23: buffer.max_batches: must be at least 1, got 0`,
			`gw.yaml:19:37: buffer.max_bytes: invalid byte size "1 parsec" (want bytes, or a number with a unit like 512MiB or 1GB)`,
			`gw.yaml:21:11: uplink.broker: "127.0.0.1:1883" has no scheme (e.g. tcp://127.0.0.1:1883)`,
			`gw.yaml:22:17: uplink.topic_prefix: "a/+/b" must not contain the MQTT wildcards + or #`,
			`gw.yaml:23:11: uplink.window: must be between 1 and 1024, got 2000`,
			`gw.yaml:24:8: uplink.ack: unknown ack mode "never" (want ingest or broker)`,
			`gw.yaml:25:14: uplink.keepalive: must be a whole number of seconds, got 1.5s`,
			`gw.yaml:26:17: uplink.password_env: is not an environment variable name (it names the variable that holds the password, not the password)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"rules.yaml": "rules: []\n"})
			c, err := Parse(filepath.Join(dir, "gw.yaml"), []byte(tc.src))
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if c != nil {
				t.Errorf("a config came back with the error")
			}
			var list yamlpos.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want yamlpos.ErrorList", err)
			}
			got := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
			if want := strings.Join(tc.want, "\n"); got != want {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
}

// The command line overrides values after Load and calls Validate: errors
// on overridden values have no position and name the field.
func TestValidateAfterOverride(t *testing.T) {
	dir := writeFiles(t, map[string]string{"gw.yaml": minimal})
	c, err := Load(filepath.Join(dir, "gw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("a loaded config must validate: %v", err)
	}

	c.Gateway.ID = "gw-02"
	c.Uplink.Broker = "ssl://broker:8883"
	c.DataDir = "/tmp/x"
	if err := c.Validate(); err != nil {
		t.Fatalf("good overrides: %v", err)
	}
	if got := c.ClientID(); got != "outpost-gw-02" {
		t.Errorf("ClientID() follows the overridden gateway id: got %q", got)
	}

	c.Gateway.ID = "gw 02"
	c.Uplink.Broker = "ftp://x"
	c.DataDir = ""
	want := `gateway.id: "gw 02" is not a valid id (use 1 to 64 of A-Z a-z 0-9 _ . -)
data_dir: must not be empty
uplink.broker: unsupported scheme "ftp" (want tcp, mqtt, ssl, tls, mqtts, ws or wss)`
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}

func TestValidateInCode(t *testing.T) {
	c := &Config{
		Gateway: GatewayConfig{ID: "gw"},
		Sensors: []Sensor{{ID: "s", Driver: "thermo", Metrics: []Metric{{Name: "m"}}}},
		Uplink:  UplinkConfig{Broker: "mqtt://localhost"},
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Sensors[0].Interval != time.Second {
		t.Errorf("SetDefaults must reach sensors: %+v", c.Sensors[0])
	}
}

// Sensor labels are held to the bounds of the status document that
// carries them (outpost.CheckSensorLabels), one sensor at a time and all
// of them together.
func TestSensorLabelBounds(t *testing.T) {
	many := map[string]string{}
	for i := range outpost.MaxSensorLabels + 1 {
		many[fmt.Sprint("l", i)] = "v"
	}
	big := map[string]string{}
	for i := range outpost.MaxSensorLabels {
		big[fmt.Sprint("l", i)] = strings.Repeat("v", outpost.MaxLabelValueLen)
	}
	for _, tc := range []struct {
		name    string
		sensors int
		labels  map[string]string
		want    string // "" valid
	}{
		{"some", 1, map[string]string{"room": "lab", "floor": "2"}, ""},
		{"at the bounds", 1, map[string]string{strings.Repeat("n", outpost.MaxLabelNameLen): strings.Repeat("v", outpost.MaxLabelValueLen)}, ""},
		{"empty name", 1, map[string]string{"": "x"}, "sensors[0].labels: a label with an empty name"},
		{"long name", 1, map[string]string{strings.Repeat("n", outpost.MaxLabelNameLen+1): "x"}, "label name of 129 bytes, longer than 128"},
		{"long value", 1, map[string]string{"room": strings.Repeat("v", outpost.MaxLabelValueLen+1)}, `label "room": value of 1025 bytes, longer than 1024`},
		{"NUL", 1, map[string]string{"room": "a\x00b"}, `label "room": value contains a NUL byte`},
		{"too many", 1, many, "65 labels, more than 64"},
		{"too much together", 2, big, "sensors: the sensors and their labels make a status document of up to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{Gateway: GatewayConfig{ID: "gw"}, Uplink: UplinkConfig{Broker: "mqtt://localhost"}}
			for i := range tc.sensors {
				c.Sensors = append(c.Sensors, Sensor{ID: fmt.Sprint("s", i), Driver: "thermo", Metrics: []Metric{{Name: "m"}}, Labels: tc.labels})
			}
			c.SetDefaults()
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{
		"0": 0, "1024": 1024, "1GiB": 1 << 30, "512 MiB": 512 << 20, "1kb": 1000,
		"1.5GB": 1_500_000_000, "10B": 10, "1e3": 1000, "2TiB": 2 << 40,
	} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1", "1.5B", "0x10", "inf", "nan", "1 parsec", "1e30"} {
		if got, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", in, got)
		}
	}
	for b, want := range map[ByteSize]string{0: "0B", 1 << 30: "1GiB", 1536: "3KiB" /* 1.5KiB */, 1000: "1000B"} {
		if b == 1536 {
			want = "1536B"
		}
		if got := b.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", b, got, want)
		}
	}
}

func TestValidID(t *testing.T) {
	for s, want := range map[string]bool{
		"gw-01": true, "a.b_c": true, strings.Repeat("x", 64): true,
		"": false, ".": false, "..": false, "a/b": false, "a+b": false, "a#": false,
		"a b": false, "é": false, strings.Repeat("x", 65): false,
	} {
		if got := ValidID(s); got != want {
			t.Errorf("ValidID(%q) = %v", s, got)
		}
	}
}

// Gateway labels are held to the bounds of a sensor's, and their errors
// say where in the file; they count against the status document's size.
func TestGatewayLabels(t *testing.T) {
	sensor := "sensors:\n  - {id: s, driver: thermo, metrics: [{name: m}]}\nuplink: {broker: mqtt://localhost}\n"
	c, err := Parse("gw.yaml", []byte("gateway:\n  id: gw\n  labels: {site: plant-3, ring: canary}\n"+sensor))
	if err != nil || len(c.Gateway.Labels) != 2 || c.Gateway.Labels["site"] != "plant-3" || c.Gateway.Labels["ring"] != "canary" {
		t.Fatalf("Parse = %+v, %v", c, err)
	}
	if c, err := Parse("gw.yaml", []byte("gateway: {id: gw}\n"+sensor)); err != nil || c.Gateway.Labels != nil {
		t.Fatalf("without labels: %+v, %v", c, err)
	}
	var many strings.Builder
	for i := range outpost.MaxSensorLabels + 1 {
		fmt.Fprintf(&many, "l%d: v, ", i)
	}
	for _, tc := range []struct{ name, labels, want string }{
		{"empty name", `{"": x}`, "gw.yaml:3:11: gateway.labels: a label with an empty name"},
		{"long name", "{" + strings.Repeat("n", outpost.MaxLabelNameLen+1) + ": x}", "gw.yaml:3:11: gateway.labels: label name of 129 bytes, longer than 128"},
		{"long value", "{site: " + strings.Repeat("v", outpost.MaxLabelValueLen+1) + "}", `gw.yaml:3:11: gateway.labels: label "site": value of 1025 bytes, longer than 1024`},
		{"NUL", `{site: "a\0b"}`, `label "site": value contains a NUL byte`},
		{"too many", "{" + many.String() + "}", "gw.yaml:3:11: gateway.labels: 65 labels, more than 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("gw.yaml", []byte("gateway:\n  id: gw\n  labels: "+tc.labels+"\n"+sensor))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want %q", err, tc.want)
			}
		})
	}
	// Labels that fit one by one may not fit the document together with
	// the sensors'.
	big := map[string]string{}
	for i := range 40 {
		big[fmt.Sprint("l", i)] = strings.Repeat("v", outpost.MaxLabelValueLen)
	}
	c = &Config{Gateway: GatewayConfig{ID: "gw", Labels: big}, Uplink: UplinkConfig{Broker: "mqtt://localhost"},
		Sensors: []Sensor{{ID: "s", Driver: "thermo", Metrics: []Metric{{Name: "m"}}, Labels: big}}}
	c.SetDefaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "sensors: the sensors and their labels, with gateway.labels, make a status document of up to") {
		t.Fatalf("Validate = %v", err)
	}
	c.Gateway.Labels = nil
	if err := c.Validate(); err != nil {
		t.Fatalf("the sensor's labels alone: %v", err)
	}
}
