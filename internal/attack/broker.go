// Package attack runs, against a real gateway and a real ingest service,
// the attacks that a broker on Mosquitto's defaults lets any client make
// on Outpost's topics: forged batches under any gateway id, squatted
// seqs, spoofed acks, a hijacked shared subscription, a pinned status.
// Each runs on a Mosquitto secured with deploy/mosquitto's settings,
// where it must fail, and on one with Mosquitto's defaults, where it
// succeeds, so the tests show that the settings are what stop it. The
// MAC tests (mac_test.go) run them on Mosquitto's defaults, with the
// gateway's key and without: the MACs stop them even with no ACL.
//
// Its non-test part is that broker (StartBroker), for other tests too.
package attack

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/testenv"
)

// The service identities of deploy/mosquitto/acl.
const (
	Ingest    = "outpost-ingest"
	Dashboard = "outpost-dashboard"
)

// deployDir is the shipped broker settings' directory in the module.
const deployDir = "deploy/mosquitto"

// Broker is a Mosquitto of a test's own. Secured, it runs
// deploy/mosquitto's outpost.conf (its TLS listeners on free ports) and
// acl (for the broker's own topic prefix), with a password file of the
// identities it was given and a CA for client certificates; otherwise it
// runs on Mosquitto's defaults: anonymous clients welcome, no ACL. Both
// have a plain TCP listener on loopback.
type Broker struct {
	Secured bool
	// Prefix is the topic prefix the gateways and the ingest service of
	// the test must use: the ACL's outpost/v1, replaced.
	Prefix string

	t         testing.TB
	m         *testenv.Mosquitto
	dir       string
	passwords map[string]string
	tlsPort   int  // the listener with passwords (secured)
	mtlsPort  int  // the listener with client certificates (secured)
	pki       *pki // secured
}

// StartBroker starts a broker for the test, with passwords for the
// service identities and for the gateways named, and stops it at the
// test's end. It skips the test where Mosquitto is not installed, like
// testenv.StartMosquitto.
func StartBroker(t testing.TB, secured bool, gateways ...string) *Broker {
	t.Helper()
	b := &Broker{
		Secured:   secured,
		Prefix:    "outpost-attack-" + randomHex(t, 4) + "/v1",
		t:         t,
		dir:       t.TempDir(),
		passwords: map[string]string{},
	}
	for _, u := range append([]string{Ingest, Dashboard}, gateways...) {
		b.passwords[u] = "pw-" + randomHex(t, 12)
	}
	var global string
	if secured {
		global = b.secure()
	}
	if os.Geteuid() == 0 {
		// As root, mosquitto drops to its own user, which cannot read
		// the test's files.
		global = "user root\n" + global
	}
	b.m = testenv.StartMosquitto(t, &testenv.MosquittoOptions{Global: global})
	return b
}

// secure writes the password file, the ACL, the certificates and the
// shipped config for this broker, and returns the config's lines.
func (b *Broker) secure() string {
	t := b.t
	t.Helper()
	b.writePasswords()
	acl := b.readDeploy("acl")
	if !strings.Contains(acl, "outpost/v1/") {
		t.Fatalf("%s/acl has no rule for outpost/v1/", deployDir)
	}
	b.write("acl", strings.ReplaceAll(acl, "outpost/v1/", b.Prefix+"/"))
	b.pki = newPKI(t, b.dir)
	b.tlsPort, b.mtlsPort = freePort(t), freePort(t)
	conf := b.readDeploy("outpost.conf")
	for _, r := range []struct {
		old, new string
		n        int
	}{
		{"/etc/mosquitto/outpost/", b.dir + string(filepath.Separator), -1},
		{"\nlistener 8883\n", fmt.Sprintf("\nlistener %d 127.0.0.1\n", b.tlsPort), 1},
		{"\nlistener 8884\n", fmt.Sprintf("\nlistener %d 127.0.0.1\n", b.mtlsPort), 1},
	} {
		if n := strings.Count(conf, r.old); n == 0 || r.n > 0 && n != r.n {
			t.Fatalf("%s/outpost.conf: %q found %d times", deployDir, r.old, n)
		}
		conf = strings.ReplaceAll(conf, r.old, r.new)
	}
	return conf + "\n"
}

// writePasswords makes the password file with mosquitto_passwd, as
// deploy/mosquitto/README.md says.
func (b *Broker) writePasswords() {
	t := b.t
	t.Helper()
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		bin = "/usr/bin/mosquitto_passwd"
		if _, serr := os.Stat(bin); serr != nil {
			if testenv.ExternalMQTT() {
				t.Fatalf("attack: %s is set but mosquitto_passwd is not installed", testenv.EnvMQTT)
			}
			t.Skip("attack: no mosquitto_passwd; scripts/dev-services installs it")
		}
	}
	file := filepath.Join(b.dir, "passwd")
	first := true
	for u, pw := range b.passwords {
		args := []string{"-b", file, u, pw}
		if first {
			args = append([]string{"-c"}, args...)
			first = false
		}
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd %s: %v\n%s", u, err, out)
		}
	}
}

// readDeploy reads a file of deploy/mosquitto, found from the test's
// directory up to the module root.
func (b *Broker) readDeploy(name string) string {
	b.t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		b.t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(dir)
		if up == dir {
			b.t.Fatal("attack: no go.mod above the test's directory")
		}
		dir = up
	}
	s, err := os.ReadFile(filepath.Join(dir, deployDir, name))
	if err != nil {
		b.t.Fatalf("attack: the shipped broker settings: %v", err)
	}
	return string(s)
}

func (b *Broker) write(name, content string) string {
	b.t.Helper()
	path := filepath.Join(b.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		b.t.Fatal(err)
	}
	return path
}

// URL is the plain TCP listener's URL.
func (b *Broker) URL() string { return b.m.URL("tcp") }

// TLSURL is the URL of the shipped TLS listener for identities with
// passwords; secured brokers only.
func (b *Broker) TLSURL() string {
	b.mustBeSecured()
	return "ssl://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(b.tlsPort))
}

// MTLSURL is the URL of the shipped listener for identities with client
// certificates; secured brokers only.
func (b *Broker) MTLSURL() string {
	b.mustBeSecured()
	return "ssl://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(b.mtlsPort))
}

// Password is the identity's password (also on a broker on the
// defaults, which checks none).
func (b *Broker) Password(user string) string {
	pw, ok := b.passwords[user]
	if !ok {
		b.t.Fatalf("attack: no identity %q", user)
	}
	return pw
}

// PasswordFile writes the identity's password to a file, with a
// trailing newline as an editor leaves it, and returns its path.
func (b *Broker) PasswordFile(user string) string {
	return b.write(user+".password", b.Password(user)+"\n")
}

// CA is the PEM file of the CA that signed the broker's certificate and
// the client certificates; secured brokers only.
func (b *Broker) CA() string {
	b.mustBeSecured()
	return b.pki.caFile
}

// ClientCert issues a client certificate whose CN is cn and returns the
// PEM files of the certificate and its key; secured brokers only.
func (b *Broker) ClientCert(cn string) (cert, key string) {
	b.mustBeSecured()
	return b.pki.client(b.t, cn)
}

// Topic is the topic of a gateway: Topic("gw-1", "batch").
func (b *Broker) Topic(gateway, rest string) string { return b.Prefix + "/" + gateway + "/" + rest }

// Log is what the broker logged (errors and warnings).
func (b *Broker) Log() string { return b.m.Log() }

func (b *Broker) mustBeSecured() {
	b.t.Helper()
	if !b.Secured {
		b.t.Fatal("attack: a broker on the defaults has no TLS listener")
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	p := make([]byte, n)
	if _, err := rand.Read(p); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(p)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
