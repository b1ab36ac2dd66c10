package uplink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/testenv"
)

// pki is a test CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files in a directory.
type pki struct {
	dir                            string
	ca, serverCert, serverKey      string // file paths
	clientCert, clientKey, otherCA string
	caCert                         *x509.Certificate
	caKey                          *ecdsa.PrivateKey
	serial                         int64
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	p.caCert, p.caKey = p.selfSigned(t, "outpost test CA")
	p.ca = p.writeCert(t, "ca.pem", p.caCert)
	other, _ := p.selfSigned(t, "some other CA")
	p.otherCA = p.writeCert(t, "other-ca.pem", other)
	p.serverCert, p.serverKey = p.issue(t, "server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = p.issue(t, "client", x509.ExtKeyUsageClientAuth)
	return p
}

func (p *pki) template(cn string) *x509.Certificate {
	p.serial++
	return &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

func (p *pki) selfSigned(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := genKey(t)
	tmpl := p.template(cn)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// issue makes a certificate signed by the CA, valid for 127.0.0.1, and
// writes it and its key; it returns their paths.
func (p *pki) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key := genKey(t)
	tmpl := p.template(name)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyFile = filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return p.writeCert(t, name+".pem", c), keyFile
}

func (p *pki) writeCert(t *testing.T, name string, c *x509.Certificate) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	writePEM(t, path, "CERTIFICATE", c.Raw)
	return path
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func genKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startTLSMosquitto starts a broker whose listener speaks TLS with the
// pki's server certificate and requires a client certificate.
func startTLSMosquitto(t *testing.T, p *pki) *testenv.Mosquitto {
	t.Helper()
	return startMosquitto(t, &testenv.MosquittoOptions{Listener: strings.Join([]string{
		"cafile " + p.ca,
		"certfile " + p.serverCert,
		"keyfile " + p.serverKey,
		"require_certificate true",
	}, "\n")})
}

func mustTLS(t *testing.T, f TLSFiles) *tls.Config {
	t.Helper()
	c, err := TLSConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The right CA and a client certificate: the uplink connects over mutual
// TLS and a batch goes through.
func TestTLSClientCertificate(t *testing.T) {
	p := newPKI(t)
	m := startTLSMosquitto(t, p)
	s := newMemStore(1)
	s.put(LaneTelemetry, 1, batchBytes(t, outpost.KindTelemetry, 1, 1))
	u := startUplink(t, s, Options{
		Broker: m.URL("ssl"), Gateway: "gw", TopicPrefix: uniquePrefix(), Ack: AckBroker,
		TLS: mustTLS(t, TLSFiles{CAFile: p.ca, CertFile: p.clientCert, KeyFile: p.clientKey}),
	})
	eventually(t, "batch delivered over TLS", func() bool { return s.left() == 0 })
	if st := u.Stats(); !st.Connected || st.Connects != 1 || st.ConnectFailures != 0 {
		t.Errorf("stats %+v, want connected at the first attempt", st)
	}
}

// A CA that did not sign the broker's certificate: no connection, and the
// error and the log say why.
func TestTLSWrongCA(t *testing.T) {
	p := newPKI(t)
	m := startTLSMosquitto(t, p)
	logs, log := captureLog()
	u := startUplink(t, newMemStore(1), Options{
		Broker: m.URL("ssl"), Gateway: "gw", TopicPrefix: uniquePrefix(), Logger: log,
		BackoffInitial: 10 * time.Millisecond, MaxReconnect: 50 * time.Millisecond,
		TLS: mustTLS(t, TLSFiles{CAFile: p.otherCA, CertFile: p.clientCert, KeyFile: p.clientKey}),
	})
	eventually(t, "failed attempts", func() bool { return u.Stats().ConnectFailures >= 2 })
	const why = "certificate signed by unknown authority"
	if st := u.Stats(); st.Connected || st.Connects != 0 || !strings.Contains(st.LastError, why) {
		t.Errorf("stats %+v, want not connected and %q", st, why)
	}
	if out := logs.String(); !strings.Contains(out, "connect to "+m.URL("ssl")+" failed: tls: ") || !strings.Contains(out, why) {
		t.Errorf("log does not say why:\n%s", out)
	}
}

// The broker requires a client certificate and none is given: refused.
func TestTLSMissingClientCertificate(t *testing.T) {
	p := newPKI(t)
	m := startTLSMosquitto(t, p)
	u := startUplink(t, newMemStore(1), Options{
		Broker: m.URL("ssl"), Gateway: "gw", TopicPrefix: uniquePrefix(),
		BackoffInitial: 10 * time.Millisecond, MaxReconnect: 50 * time.Millisecond,
		TLS: mustTLS(t, TLSFiles{CAFile: p.ca}),
	})
	eventually(t, "failed attempts", func() bool { return u.Stats().ConnectFailures >= 2 })
	if st := u.Stats(); st.Connected || st.Connects != 0 || st.LastError == "" {
		t.Errorf("stats %+v, want not connected and an error", st)
	}
	t.Logf("last error: %s", u.Stats().LastError)
}

func TestTLSConfigFiles(t *testing.T) {
	p := newPKI(t)
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		f    TLSFiles
		want string // error substring; "" for success
	}{
		{"defaults", TLSFiles{}, ""},
		{"ca and client", TLSFiles{CAFile: p.ca, CertFile: p.clientCert, KeyFile: p.clientKey, ServerName: "b"}, ""},
		{"missing ca", TLSFiles{CAFile: filepath.Join(p.dir, "nope.pem")}, "uplink: tls: ca_file: open "},
		{"ca without certificates", TLSFiles{CAFile: junk}, "uplink: tls: ca_file " + junk + ": no certificates found"},
		{"cert without key", TLSFiles{CertFile: p.clientCert}, "uplink: tls: client certificate: cert_file and key_file go together"},
		{"key of another cert", TLSFiles{CertFile: p.clientCert, KeyFile: p.serverKey}, "uplink: tls: client certificate: "},
		{"bad cert file", TLSFiles{CertFile: junk, KeyFile: p.clientKey}, "uplink: tls: client certificate: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := TLSConfig(c.f)
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %v, want %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MinVersion != tls.VersionTLS12 || cfg.ServerName != c.f.ServerName {
				t.Errorf("MinVersion %x ServerName %q", cfg.MinVersion, cfg.ServerName)
			}
			if (c.f.CAFile != "") != (cfg.RootCAs != nil) || (c.f.CertFile != "") != (len(cfg.Certificates) == 1) {
				t.Errorf("RootCAs %v, %d certificates", cfg.RootCAs != nil, len(cfg.Certificates))
			}
		})
	}
}

// The uplink dials websockets too (openConn replaces paho's dialer): an
// in-process mochi broker with a websocket listener.
func TestWebsocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String() // mochi's listener takes no port 0
	ln.Close()
	srv := mochi.New(&mochi.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: addr})); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	s := newMemStore(1)
	s.put(LaneTelemetry, 1, batchBytes(t, outpost.KindTelemetry, 1, 1))
	startUplink(t, s, Options{Broker: "ws://" + addr + "/mqtt", Gateway: "gw", TopicPrefix: uniquePrefix(), Ack: AckBroker,
		BackoffInitial: 10 * time.Millisecond, MaxReconnect: 50 * time.Millisecond})
	eventually(t, "batch delivered over a websocket", func() bool { return s.left() == 0 })
}
