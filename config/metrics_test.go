package config

import (
	"strings"
	"testing"
)

func TestMetricsListen(t *testing.T) {
	for _, tc := range []struct {
		listen   string
		err      string // "" if valid
		loopback bool
	}{
		{"", "", false},
		{"127.0.0.1:9464", "", true},
		{"[::1]:9464", "", true},
		{"localhost:0", "", true},
		{"0.0.0.0:9464", "", false},
		{"192.0.2.7:9464", "", false},
		{"9464", `gw.yaml:11:11: metrics.listen: must be host:port, e.g. 127.0.0.1:9464, got "9464"`, false},
		{":9464", "gw.yaml:11:11: metrics.listen: needs a host: 127.0.0.1:9464 for this machine only, 0.0.0.0:9464 for every interface", false},
		{"gw.example:9464", `gw.yaml:11:11: metrics.listen: host must be an IP address or localhost, got "gw.example"`, false},
		{"127.0.0.1:http", `gw.yaml:11:11: metrics.listen: port must be a number from 0 to 65535, got "http"`, true},
		{"127.0.0.1:70000", `port must be a number from 0 to 65535, got "70000"`, true},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			c, err := Parse("gw.yaml", []byte(minimal+"metrics:\n  listen: \""+tc.listen+"\"\n"))
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Metrics.Listen != tc.listen || c.Metrics.On() != (tc.listen != "") || c.Metrics.Loopback() != tc.loopback {
					t.Fatalf("metrics %+v: on %v loopback %v", c.Metrics, c.Metrics.On(), c.Metrics.Loopback())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if m := (MetricsConfig{Listen: tc.listen}); m.Loopback() != tc.loopback {
				t.Fatalf("Loopback() = %v", m.Loopback())
			}
		})
	}
}
