package config

import (
	"net"
	"net/netip"
	"strconv"
)

// MetricsConfig configures the gateway's HTTP listener for Prometheus
// (/metrics) and health checks (/healthz), docs/metrics.md.
type MetricsConfig struct {
	// Listen is the host:port to serve on, e.g. "127.0.0.1:9464"; empty
	// (the default) serves nothing. The host must be an IP address or
	// "localhost"; the endpoint has no authentication, so anything
	// but a loopback address is logged as a warning at start.
	Listen string `yaml:"listen"`
}

// On reports whether the listener is configured.
func (m *MetricsConfig) On() bool { return m.Listen != "" }

// Loopback reports whether Listen is on a loopback address (or
// "localhost"); false when it is empty or invalid.
func (m *MetricsConfig) Loopback() bool {
	host, _, err := net.SplitHostPort(m.Listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func (m *MetricsConfig) validate(k *checker) {
	const p = "$.metrics.listen"
	if m.Listen == "" {
		return
	}
	host, port, err := net.SplitHostPort(m.Listen)
	if err != nil {
		k.errorf(p, "must be host:port, e.g. 127.0.0.1:9464, got %q", m.Listen)
		return
	}
	if host == "" {
		k.errorf(p, "needs a host: 127.0.0.1:%s for this machine only, 0.0.0.0:%s for every interface", port, port)
		return
	}
	if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
		k.errorf(p, "host must be an IP address or localhost, got %q", host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		k.errorf(p, "port must be a number from 0 to 65535, got %q", port)
	}
}
