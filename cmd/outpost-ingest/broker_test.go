package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/cmd/internal/cli"
)

func TestBrokerFlags(t *testing.T) {
	m := NewMain()
	m.Stderr = new(bytes.Buffer)
	if err := m.ParseFlags([]string{"--broker", "ssl://b:8883", "--username", "outpost-ingest", "--password-file", "/run/secrets/mqtt",
		"--tls-ca", "ca.pem", "--tls-cert", "c.pem", "--tls-key", "c.key"}); err != nil {
		t.Fatal(err)
	}
	if m.Username != "outpost-ingest" || m.PasswordFile != "/run/secrets/mqtt" || m.TLSCA != "ca.pem" || m.TLSCert != "c.pem" || m.TLSKey != "c.key" {
		t.Fatalf("parsed %+v", m)
	}
	const pw = "s3cret-Pa55"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--broker", "tcp://u:" + pw + "@b:1883", "--username", "u"}, "--broker holds credentials"},
		{[]string{"--broker", "tcp://u:" + pw + "@b:1883", "--password-file", "f"}, "--broker holds credentials"},
		{[]string{"--broker", "tcp://u:" + pw + "@[::1"}, "--broker is not scheme://host:port"},
		{[]string{"--broker", "b:1883"}, "--broker is not scheme://host:port"},
		{[]string{"--password-file", "f"}, "--password-file needs --username"},
		{[]string{"--broker", "ssl://b:8883", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--broker", "tcp://b:1883", "--tls-ca", "ca.pem"}, "--tls-* files need a TLS broker URL"},
	} {
		m := NewMain()
		var out bytes.Buffer
		m.Stderr = &out
		err := m.ParseFlags(tc.args)
		if cli.ExitCode(err) != cli.ExitUsage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseFlags(%q) = %v, want a usage error %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error()+out.String(), pw) {
			t.Errorf("ParseFlags(%q): the password in %v / %q", tc.args, err, out.String())
		}
	}
}

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ content, want string }{
		{"pw\n", "pw"},
		{"pw\r\n", "pw"},
		{"pw", "pw"},
		{"pw\n\n", "pw\n"}, // one newline only: the rest is the password's
		{" pw ", " pw "},
	} {
		got, err := readPassword(file("p", tc.content))
		if err != nil || got != tc.want {
			t.Errorf("readPassword(%q) = %q, %v; want %q", tc.content, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ path, want string }{
		{file("empty", "\n"), "empty"},
		{file("big", strings.Repeat("x", maxPasswordFile+1)), "larger than"},
		{filepath.Join(dir, "missing"), "no such file"},
		{dir, "not a regular file"},
	} {
		_, err := readPassword(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "password file "+tc.path+": ") {
			t.Errorf("readPassword(%s) = %v, want %q", tc.path, err, tc.want)
		}
	}
}

func TestRedactBroker(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://u:pw@b:1883": "tcp://b:1883",
		"tcp://pw@b:1883":   "tcp://b:1883",
		"ssl://b:8883":      "ssl://b:8883",
		"wss://u:pw@b/mqtt": "wss://b/mqtt",
		"tcp://u:pw@[::1":   "(a broker URL that does not parse)",
		"tcp://u:p%zzw@b:1": "(a broker URL that does not parse)",
	} {
		if got := redactBroker(in); got != want {
			t.Errorf("redactBroker(%q) = %q, want %q", in, got, want)
		}
	}
}
