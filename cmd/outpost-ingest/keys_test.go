package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/internal/testenv"
)

func TestAuthFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--auth", "required"}, "--auth required needs --auth-keys"},
		{[]string{"--auth", "sometimes", "--auth-keys", "k"}, `--auth must be optional or required, got "sometimes"`},
	} {
		m := NewMain()
		var out bytes.Buffer
		m.Stderr = &out
		err := m.ParseFlags(c.args)
		if cli.ExitCode(err) != cli.ExitUsage || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseFlags(%q) = %v, want a usage error saying %q", c.args, err, c.want)
		}
	}
	m := NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags(nil); err != nil || m.Auth != "optional" || m.AuthKeys != "" {
		t.Fatalf("defaults: auth %q, keys %q, %v", m.Auth, m.AuthKeys, err)
	}
}

// TestAuthKeysFile: the keys file is loaded at start and on ReloadKeys;
// one other users may read is refused; no key reaches the log.
func TestAuthKeysFile(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := outpost.NewKey(), outpost.NewKey()
	file := filepath.Join(dir, "gateway.keys")
	if err := os.WriteFile(file, []byte("# fleet\ngw-01 "+k1.Hex()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, logs := runMain(t, "--http", "", "--auth", "required", "--auth-keys", file)
	if g, n := m.keys.Len(); g != 1 || n != 1 {
		t.Fatalf("keys %d, %d", g, n)
	}
	if err := os.WriteFile(file, []byte("gw-01 "+k1.Hex()+"\ngw-02 "+k2.Hex()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.ReloadKeys()
	if g, _ := m.keys.Len(); g != 2 {
		t.Fatalf("after a reload: %d gateways", g)
	}
	// A broken file, or one others may read, keeps the keys.
	if err := os.WriteFile(file, []byte("gw-03 short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.ReloadKeys()
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	m.ReloadKeys()
	if g, _ := m.keys.Len(); g != 2 {
		t.Fatalf("after failed reloads: %d gateways", g)
	}
	out := logs.String()
	for _, want := range []string{`"auth":"required"`, "auth keys loaded", "SIGHUP: auth keys reloaded", "line 1", "other users may read or write it"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	for _, k := range []outpost.Key{k1, k2} {
		if strings.Contains(out, k.Hex()[:16]) {
			t.Error("a key is in the log")
		}
	}

	// Refused at start when others may read it.
	m2 := NewMain()
	m2.Stderr = io.Discard
	if err := m2.ParseFlags([]string{"--broker", testenv.MQTT(t), "--db", testenv.DB(t), "--http", "", "--auth-keys", file}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := m2.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "other users may read or write it (mode 0644)") {
		t.Fatalf("Run with a world-readable keys file: %v", err)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
}
