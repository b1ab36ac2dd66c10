package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
)

func TestUplinkSecurityAndDelivery(t *testing.T) {
	dir := writeFiles(t, map[string]string{"secret": "s3cret\n"})
	if err := os.Mkdir(filepath.Join(dir, "certs"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTLSFiles(t, filepath.Join(dir, "certs"))
	src := strings.Replace(minimal, "tcp://127.0.0.1:1883", "ssl://broker.example:8883", 1) + `  password_file: secret
  tls: {ca_file: certs/ca.pem, cert_file: certs/client.pem, key_file: certs/client.key, server_name: broker}
  max_message_bytes: 5KB
  backoff: {initial: 200ms, max: 30s}
  backlog_bandwidth: 64KiB
batch: {compression: none}
dashboard: {live: false, live_interval: 5s}
`
	c, err := Parse(filepath.Join(dir, "gw.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	u := c.Uplink
	want := TLSConfig{
		CAFile: filepath.Join(dir, "certs/ca.pem"), CertFile: filepath.Join(dir, "certs/client.pem"),
		KeyFile: filepath.Join(dir, "certs/client.key"), ServerName: "broker",
	}
	switch {
	case u.TLS != want:
		t.Errorf("tls %+v, want %+v", u.TLS, want)
	case u.MaxMessageBytes != 5000, u.BacklogBandwidth != 64<<10:
		t.Errorf("sizes %v %v", u.MaxMessageBytes, u.BacklogBandwidth)
	case u.Backoff != BackoffConfig{Initial: 200 * time.Millisecond, Max: 30 * time.Second}:
		t.Errorf("backoff %+v", u.Backoff)
	case c.Batch.Compression != CompressionNone:
		t.Errorf("compression %q", c.Batch.Compression)
	case c.Dashboard.LiveOn() || !c.Dashboard.AlertsOn() || c.Dashboard.LiveInterval != 5*time.Second:
		t.Errorf("dashboard %+v", c.Dashboard)
	}
	if p, err := u.Password(); err != nil || p != "s3cret" {
		t.Errorf("password %q, %v; want the file's content without its newline", p, err)
	}
}

func TestUplinkErrors(t *testing.T) {
	for _, tc := range []struct {
		name, extra, want string
		ssl               bool
	}{
		{"tls on tcp", "  tls: {ca_file: ca.pem}\n",
			`gw.yaml:10:8: uplink.tls: is set but the broker URL's scheme is tcp; use ssl:// (or wss://) for TLS`, false},
		{"cert without key", "  tls: {cert_file: ca.pem}\n",
			"uplink.tls: cert_file and key_file go together", true},
		{"missing ca", "  tls: {ca_file: nope.pem}\n",
			"uplink.tls.ca_file: stat ", true},
		{"both passwords", "  password_env: PW\n  password_file: ca.pem\n",
			"uplink.password_file: give password_env or password_file, not both", false},
		{"tiny cap", "  max_message_bytes: 100\n",
			"uplink.max_message_bytes: must be between 1KiB and 256MiB, got 100B", false},
		{"backoff", "  backoff: {initial: 2s, max: 1s}\n",
			"uplink.backoff.max: must not be below initial (2s), got 1s", false},
		{"bandwidth", "  backlog_bandwidth: 10\n",
			"uplink.backlog_bandwidth: must be 0 (unlimited) or at least 1KiB per second, got 10B", false},
		{"compression", "batch: {compression: lz4}\n",
			`batch.compression: unknown compression "lz4" (want zstd or none)`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"ca.pem": "x"})
			src := minimal + tc.extra
			if tc.ssl {
				src = strings.Replace(src, "tcp://", "ssl://", 1)
			}
			_, err := Parse(filepath.Join(dir, "gw.yaml"), []byte(src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestPasswordFromEnv(t *testing.T) {
	u := UplinkConfig{PasswordEnv: "OUTPOST_TEST_PASSWORD_X"}
	if _, err := u.Password(); err == nil {
		t.Fatal("unset variable: no error")
	}
	t.Setenv("OUTPOST_TEST_PASSWORD_X", "pw")
	if p, err := u.Password(); err != nil || p != "pw" {
		t.Fatalf("got %q, %v", p, err)
	}
	u = UplinkConfig{PasswordFile: filepath.Join(t.TempDir(), "none")}
	if _, err := u.Password(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// uplink.status_interval: 5m when left out, 0 (only at connect and on a
// change) or at least 10s, with the error at the value.
func TestStatusInterval(t *testing.T) {
	c, err := Parse("gw.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Uplink.StatusEvery(); got != 5*time.Minute || c.Uplink.StatusInterval != nil {
		t.Fatalf("default %v, want 5m", got)
	}
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{{"0", 0}, {"0s", 0}, {"10s", 10 * time.Second}, {"1h", time.Hour}} {
		c, err := Parse("gw.yaml", []byte(minimal+"  status_interval: "+tc.value+"\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.value, err)
		}
		if got := c.Uplink.StatusEvery(); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.value, got, tc.want)
		}
	}
	for _, tc := range []struct{ value, want string }{
		{"9s", "gw.yaml:10:20: uplink.status_interval: must be 0 (only at connect and on a change) or at least 10s, got 9s"},
		{"-1m", "gw.yaml:10:20: uplink.status_interval: must be 0 (only at connect and on a change) or at least 10s, got -1m0s"},
		{"500ms", "uplink.status_interval: must be 0 (only at connect and on a change) or at least 10s, got 500ms"},
		{"soon", "gw.yaml:10:20: "},
	} {
		_, err := Parse("gw.yaml", []byte(minimal+"  status_interval: "+tc.value+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.value, err, tc.want)
		}
	}
	// Set in code, checked by Validate without a position.
	d := 2 * time.Second
	c.Uplink.StatusInterval = &d
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "uplink.status_interval: must be 0") {
		t.Fatalf("Validate = %v", err)
	}
}

// The status document's size check counts its health: every sensor
// failing with every condition. Sensors whose ids and labels fit a
// document without the health can be too many with it.
func TestStatusSizeCountsHealth(t *testing.T) {
	c := &Config{Gateway: GatewayConfig{ID: "gw"}, Uplink: UplinkConfig{Broker: "mqtt://localhost"}}
	for i := range 500 {
		c.Sensors = append(c.Sensors, Sensor{ID: fmt.Sprintf("%060d", i), Driver: "thermo", Metrics: []Metric{{Name: "m"}}})
	}
	c.SetDefaults()
	labelsOnly, err := json.Marshal(outpost.Status{State: "offline", Gateway: "gw", TS: "2006-01-02T15:04:05.999999999Z",
		Sensors: outpost.StatusSensors(c.SensorLabels())})
	if err != nil {
		t.Fatal(err)
	}
	if len(labelsOnly) > outpost.MaxStatusBytes {
		t.Fatalf("the sensors alone make %d bytes: the test needs fewer", len(labelsOnly))
	}
	err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), "sensors: the sensors and their labels make a status document of up to") {
		t.Fatalf("Validate = %v, want the status document too large", err)
	}
	c.Sensors = c.Sensors[:300]
	if err := c.Validate(); err != nil {
		t.Fatalf("300 sensors: %v", err)
	}
}
