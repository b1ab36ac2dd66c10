package attack

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/ingest"
)

// TestCertificateIdentity runs the shipped TLS listeners: a gateway and
// the ingest service log in with client certificates (the CN is the
// identity the ACL sees), a dashboard with a password over server-only
// TLS. A client holding another gateway's certificate cannot publish as
// the victim, not even when it sends the victim's username and password:
// on that listener the broker ignores them. A client without a
// certificate is refused.
func TestCertificateIdentity(t *testing.T) {
	t.Parallel()
	b := startBroker(t, true)
	cert, key := b.ClientCert(victim)
	p := newPipeline(t, b, func(u *config.UplinkConfig) {
		u.Broker, u.Username, u.PasswordFile = b.MTLSURL(), "", ""
		u.TLS = config.TLSConfig{CAFile: b.CA(), CertFile: cert, KeyFile: key}
	})
	p.startIngest(func(o *ingest.Options) {
		o.Broker, o.Username, o.Password = b.MTLSURL(), "", ""
		o.TLS = clientTLS(t, b, Ingest)
	})
	p.startGateway()
	p.waitAcked()

	dash, code, err := b.dial(t, Dashboard, func(o *mqtt.ClientOptions) {
		o.Servers = nil
		o.AddBroker(b.TLSURL()).SetTLSConfig(clientTLS(t, b, ""))
	})
	if err != nil {
		t.Fatalf("dashboard over TLS with a password: %v (CONNACK %d)", err, code)
	}
	dash.close()

	if _, _, err := b.dial(t, "", func(o *mqtt.ClientOptions) {
		o.Servers = nil
		o.AddBroker(b.MTLSURL()).SetTLSConfig(clientTLS(t, b, ""))
	}); err == nil {
		t.Error("a client without a certificate connected to the certificate listener")
	}

	atk, code, err := b.dial(t, victim, func(o *mqtt.ClientOptions) {
		o.Servers = nil
		o.AddBroker(b.MTLSURL()).SetTLSConfig(clientTLS(t, b, mallory))
	})
	if err != nil {
		t.Fatalf("%s's certificate: %v (CONNACK %d)", mallory, err, code)
	}
	atk.publish(t, b.Topic(victim, "batch"), forgedTelemetry(t, victim, 0x5eed, 1, 5), false)
	// Its identity is its certificate's: it reads its own acks, not the
	// victim's.
	atk.marker = b.Topic(mallory, "ack")
	atk.subscribe(t, atk.marker)
	ing := b.mustDial(t, Ingest)
	ing.publish(t, b.Topic(mallory, "ack"), []byte("for "+mallory), false)
	ing.publish(t, b.Topic(victim, "ack"), []byte("for "+victim), false)
	got := atk.sync(t)
	if !delivered(got, "for "+mallory) || delivered(got, "for "+victim) {
		t.Errorf("%s's certificate with %s's username reads %s; want %s's acks only", mallory, victim, topics(got), mallory)
	}

	st := p.drain()
	p.stopIngest()
	c := p.counts()
	forged := p.readings(victim, "forged", "temperature")
	if forged != 0 {
		t.Errorf("%d forged readings stored", forged)
	}
	p.complete(st, c, forged)
}

// clientTLS trusts the broker's CA and, for a cn, presents a client
// certificate issued to it.
func clientTLS(t *testing.T, b *Broker, cn string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(b.CA())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate")
	}
	c := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cn != "" {
		cert, key := b.ClientCert(cn)
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c
}
