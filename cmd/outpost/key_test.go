package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/uplink"
)

func TestKeyCommands(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "rules.yaml", validRules)
	cfg := writeFile(t, dir, "gw.yaml", strings.Replace(validConfig, "  broker: tcp://127.0.0.1:1883\n",
		"  broker: tcp://127.0.0.1:1883\n  auth_key_file: gw.key\n", 1))
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(args, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	if code, _, errOut := run("key", "show", "--config", cfg); code != 1 || !strings.Contains(errOut, "no key yet") {
		t.Fatalf("show before the key exists: exit %d, %s", code, errOut)
	}
	code, out, errOut := run("key", "create", "--config", cfg)
	if code != 0 {
		t.Fatalf("create: exit %d, %s", code, errOut)
	}
	k, perm, err := uplink.LoadKey(filepath.Join(dir, "data", "gw.key")) // in the data dir, which create made
	if err != nil || perm != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, perm)
	}
	if out != "gw-t "+k.Fingerprint()+"\n" || strings.Contains(out+errOut, k.Hex()) {
		t.Fatalf("create printed %q and %q", out, errOut)
	}
	if code, _, errOut := run("key", "create", "--config", cfg); code != 1 || !strings.Contains(errOut, "exists already") {
		t.Fatalf("create again: exit %d, %s", code, errOut)
	}
	if code, out, _ := run("key", "show", "--config", cfg, "--gateway-id", "gw-17"); code != 0 || out != "gw-17 "+k.Hex()+"\n" {
		t.Fatalf("show: exit %d, %q", code, out)
	}
	if code, out, _ := run("key", "fingerprint", "--config", cfg); code != 0 || out != "gw-t "+k.Fingerprint()+"\n" {
		t.Fatalf("fingerprint: exit %d, %q", code, out)
	}
	if code, _, errOut := run("check", "--config", cfg); code != 0 {
		t.Fatalf("check: exit %d, %s", code, errOut)
	}

	// A key file that others may read is refused by every command, and
	// by check, without showing it.
	if err := os.Chmod(filepath.Join(dir, "data", "gw.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"key", "show"}, {"key", "fingerprint"}, {"check"}} {
		code, out, errOut := run(append(args, "--config", cfg)...)
		if code == 0 || !strings.Contains(errOut, "other users may read or write it") || strings.Contains(out+errOut, k.Hex()) {
			t.Errorf("%v with a world-readable key: exit %d, %q %q", args, code, out, errOut)
		}
	}

	noKey := writeFile(t, dir, "nokey.yaml", validConfig)
	if code, _, errOut := run("key", "show", "--config", noKey); code != 2 || !strings.Contains(errOut, "no uplink.auth_key_file") {
		t.Errorf("show without a key file configured: exit %d, %s", code, errOut)
	}
	if code, _, _ := run("key", "rotate", "--config", cfg); code != 2 {
		t.Errorf("unknown key command: exit %d", code)
	}
	if code, out, _ := run("key", "--help"); code != 0 || !strings.Contains(out, "fingerprint") {
		t.Errorf("key --help: exit %d, %q", code, out)
	}
}
