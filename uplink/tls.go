package uplink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles name the PEM files and settings of a broker connection's TLS,
// as the gateway's config gives them.
type TLSFiles struct {
	// CAFile holds the CA certificates to trust for the broker; "" means
	// the system's roots.
	CAFile string
	// CertFile and KeyFile are the gateway's client certificate and key
	// (mutual TLS); both or neither.
	CertFile, KeyFile string
	// ServerName is the name checked in the broker's certificate; ""
	// means the broker URL's host.
	ServerName string
	// InsecureSkipVerify turns off the broker certificate's checks. For
	// tests only.
	InsecureSkipVerify bool
}

// TLSConfig builds Options.TLS from files. It requires TLS 1.2 or later.
func TLSConfig(f TLSFiles) (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         f.ServerName,
		InsecureSkipVerify: f.InsecureSkipVerify, //nolint:gosec // asked for by the config, for tests
	}
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("uplink: tls: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("uplink: tls: ca_file %s: no certificates found", f.CAFile)
		}
		c.RootCAs = pool
	}
	switch {
	case f.CertFile != "" && f.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("uplink: tls: client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	case f.CertFile != "" || f.KeyFile != "":
		return nil, errors.New("uplink: tls: client certificate: cert_file and key_file go together")
	}
	return c, nil
}
