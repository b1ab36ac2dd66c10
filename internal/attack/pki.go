package attack

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// pki is a test CA and the certificates it issues, as PEM files named as
// deploy/mosquitto/outpost.conf expects: ca.pem, broker.pem, broker.key.
type pki struct {
	dir    string
	caFile string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey

	mu     sync.Mutex
	serial int64
}

func newPKI(t testing.TB, dir string) *pki {
	t.Helper()
	p := &pki{dir: dir}
	key := genKey(t)
	tmpl := p.template("outpost attack test CA")
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	p.ca, p.caKey = p.sign(t, tmpl, key, tmpl, key), key
	p.caFile = writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", p.ca.Raw)
	p.issue(t, "broker", "broker.pem", "broker.key", x509.ExtKeyUsageServerAuth)
	return p
}

// client issues a client certificate for cn and returns its files.
func (p *pki) client(t testing.TB, cn string) (cert, key string) {
	t.Helper()
	return p.issue(t, cn, "client-"+cn+".pem", "client-"+cn+".key", x509.ExtKeyUsageClientAuth)
}

// issue makes a certificate for cn signed by the CA, valid for
// 127.0.0.1 and localhost, and writes it and its key.
func (p *pki) issue(t testing.TB, cn, certName, keyName string, usage x509.ExtKeyUsage) (cert, key string) {
	t.Helper()
	k := genKey(t)
	tmpl := p.template(cn)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	tmpl.DNSNames = []string{"localhost"}
	c := p.sign(t, tmpl, k, p.ca, p.caKey)
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, filepath.Join(p.dir, certName), "CERTIFICATE", c.Raw),
		writePEM(t, filepath.Join(p.dir, keyName), "EC PRIVATE KEY", der)
}

func (p *pki) template(cn string) *x509.Certificate {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serial++
	return &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

func (p *pki) sign(t testing.TB, tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writePEM(t testing.TB, path, typ string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func genKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
