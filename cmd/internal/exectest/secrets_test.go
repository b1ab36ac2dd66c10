package exectest

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/outposthq/outpost/internal/attack"
	"github.com/outposthq/outpost/internal/testenv"
)

// outpost-ingest logs in to a broker secured as deploy/mosquitto says,
// with --username and --password-file, over plain TCP, TLS (--tls-ca)
// and mutual TLS (--tls-cert, --tls-key), or with the credentials in
// --broker's URL; and whether it connects or fails, nothing it prints
// holds the password.
func TestIngestBrokerLogin(t *testing.T) {
	b := attack.StartBroker(t, true)
	pw := b.Password(attack.Ingest)
	pwFile := b.PasswordFile(attack.Ingest)
	cert, key := b.ClientCert(attack.Ingest)
	inURL := strings.Replace(b.URL(), "tcp://", "tcp://"+attack.Ingest+":"+pw+"@", 1)
	for _, tc := range []struct {
		name string
		args []string
		warn string // a warning it must log
	}{
		{"password file", []string{"--broker", b.URL(), "--username", attack.Ingest, "--password-file", pwFile}, ""},
		{"password in the URL", []string{"--broker", inURL}, "--broker holds credentials"},
		{"tls", []string{"--broker", b.TLSURL(), "--tls-ca", b.CA(), "--username", attack.Ingest, "--password-file", pwFile}, ""},
		{"client certificate", []string{"--broker", b.MTLSURL(), "--tls-ca", b.CA(), "--tls-cert", cert, "--tls-key", key}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--db", testenv.DB(t), "--http", "", "--topic-prefix", b.Prefix,
				"--group", "exectest", "--log-format", "json", "--log-level", "debug"}, tc.args...)
			p := start(t, "outpost-ingest", args...)
			// The broker without user info, whatever --broker holds.
			want := strings.Replace(tc.args[1], attack.Ingest+":"+pw+"@", "", 1)
			if got := p.await(t, "outpost-ingest starting")["broker"]; got != want {
				t.Errorf("start line: broker %q, want %q", got, want)
			}
			// Started (not only subscribed): a SIGTERM while it still
			// starts ends the start, which is a failure to start.
			p.await(t, "ingest started")
			p.signal(t, syscall.SIGTERM)
			if code := p.wait(t); code != 0 {
				t.Fatalf("exit %d:\n%s", code, p.stderr())
			}
			out := p.stderr()
			if strings.Contains(out, pw) {
				t.Errorf("the password appears in the output:\n%s", out)
			}
			if tc.warn != "" && !strings.Contains(out, tc.warn) {
				t.Errorf("no warning %q:\n%s", tc.warn, out)
			}
		})
	}
}

// A refused login, an unreachable broker, a bad flag: outpost-ingest
// says what failed, and never with the password.
func TestIngestLoginFailuresKeepThePassword(t *testing.T) {
	b := attack.StartBroker(t, true)
	const wrong = "wr0ng-Pa55word"
	dir := t.TempDir()
	wrongFile := write(t, filepath.Join(dir, "wrong.pw"), wrong+"\n", 0o600)
	host := strings.TrimPrefix(b.URL(), "tcp://")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"wrong password in the URL", []string{"--broker", "tcp://" + attack.Ingest + ":" + wrong + "@" + host}, 1, "login refused by the broker"},
		{"wrong password file", []string{"--broker", b.URL(), "--username", attack.Ingest, "--password-file", wrongFile}, 1, "login refused by the broker"},
		{"no broker there", []string{"--broker", "tcp://" + attack.Ingest + ":" + wrong + "@127.0.0.1:1"}, 1, "connect tcp://127.0.0.1:1 as outpost-ingest"},
		{"credentials twice", []string{"--broker", "tcp://" + attack.Ingest + ":" + wrong + "@" + host, "--username", attack.Ingest}, 2, "--broker holds credentials"},
		{"url that does not parse", []string{"--broker", "tcp://" + attack.Ingest + ":" + wrong + "@%zz"}, 2, "--broker is not scheme://host:port"},
		{"tls files on tcp", []string{"--broker", b.URL(), "--tls-ca", b.CA()}, 2, "need a TLS broker URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--db", testenv.DB(t), "--http", "", "--topic-prefix", b.Prefix, "--log-level", "debug"}, tc.args...)
			r := runBin(t, "outpost-ingest", args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("want exit %d and %q\n%s", tc.code, tc.want, r)
			}
			if strings.Contains(r.stdout+r.stderr, wrong) {
				t.Errorf("the password appears in the output\n%s", r)
			}
		})
	}
}

// outpost check does not echo what was pasted into password_env.
func TestCheckPasswordEnvNotEchoed(t *testing.T) {
	dir := sharedDir(t)
	const pasted = "s3cret-pw!"
	cfg := strings.Replace(gatewayConfig, "tcp://127.0.0.1:1\n", "tcp://127.0.0.1:1\n  username: gw\n  password_env: '"+pasted+"'\n", 1)
	path := write(t, filepath.Join(dir, "gw.yaml"), cfg, 0o644)
	r := runBin(t, "outpost", "check", "--config", path)
	if r.code != 2 || !strings.Contains(r.stderr, "uplink.password_env: is not an environment variable name") {
		t.Errorf("want exit 2 and the password_env error\n%s", r)
	}
	if strings.Contains(r.stdout+r.stderr, "s3cret") {
		t.Errorf("the value appears in the output\n%s", r)
	}
}
