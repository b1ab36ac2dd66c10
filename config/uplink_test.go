package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
