package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuthKeyFile: the key file, relative to data_dir (here the
// config's directory), and the modes.
func TestAuthKeyFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{"keys/gw.key": "whatever", "gw.yaml": ""})
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	var checked []string
	check := func(name string) error {
		checked = append(checked, name)
		return errors.New("not 32 bytes of hex or base64")
	}
	for _, c := range []struct {
		name, extra string
		mode        string // the AuthMode, when it loads
		want        string // the error, when it does not
	}{
		{"no key", "", AuthOff, ""},
		{"a key file to create", "  auth_key_file: empty/gw.key\n", AuthRequired, ""},
		{"optional", "  auth_key_file: empty/gw.key\n  auth: optional\n", AuthOptional, ""},
		{"off ignores a key file", "  auth_key_file: nowhere/gw.key\n  auth: off\n", AuthOff, ""},
		{"in the data dir, created at start", "  auth_key_file: gw.key\ndata_dir: state\n", AuthRequired, ""},
		{"absolute", "  auth_key_file: " + filepath.Join(dir, "empty", "gw.key") + "\n", AuthRequired, ""},
		{"an existing key file", "  auth_key_file: keys/gw.key\n", "",
			"gw.yaml:10:18: uplink.auth_key_file: not 32 bytes of hex or base64"},
		{"required without a key", "  auth: required\n", "", "gw.yaml:10:9: uplink.auth: required needs auth_key_file, the gateway's key"},
		{"optional without a key", "  auth: optional\n", "", "uplink.auth: optional needs auth_key_file"},
		{"unknown mode", "  auth_key_file: empty/gw.key\n  auth: sometimes\n", "", `uplink.auth: unknown auth mode "sometimes"`},
		{"no directory", "  auth_key_file: nowhere/gw.key\n", "",
			"uplink.auth_key_file: <dir>/nowhere/gw.key does not exist, and its directory <dir>/nowhere is not one the key can be created in"},
		{"a directory", "  auth_key_file: keys\n", "", `uplink.auth_key_file: "<dir>/keys" is a directory`},
	} {
		t.Run(c.name, func(t *testing.T) {
			checked = nil
			path := filepath.Join(dir, "gw.yaml")
			src := minimal + c.extra
			if !strings.Contains(c.extra, "data_dir") {
				src += "data_dir: .\n"
			}
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadWith(path, &LoadOptions{Drivers: []string{"thermo"}, CheckKeyFile: check})
			if c.want != "" {
				msg := ""
				if err != nil {
					msg = strings.ReplaceAll(err.Error(), dir, "<dir>")
				}
				if !strings.Contains(msg, c.want) {
					t.Fatalf("error %q, want %q", msg, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Uplink.AuthMode(); got != c.mode {
				t.Errorf("auth mode %q, want %q", got, c.mode)
			}
			if f := cfg.AuthKeyPath(); f != "" && filepath.Dir(f) != filepath.Join(dir, "empty") && filepath.Dir(f) != filepath.Join(dir, "state") &&
				filepath.Dir(f) != filepath.Join(dir, "nowhere") {
				t.Errorf("key file %q not resolved against the data dir", f)
			}
		})
	}
	if len(checked) != 0 {
		t.Errorf("checked %q", checked)
	}
	// The checker sees the resolved path of a file that exists.
	path := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(path, []byte(minimal+"  auth_key_file: keys/gw.key\ndata_dir: .\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	checked = nil
	if _, err := LoadWith(path, &LoadOptions{CheckKeyFile: check}); err == nil || len(checked) != 1 || checked[0] != filepath.Join(dir, "keys/gw.key") {
		t.Fatalf("checked %q, %v", checked, err)
	}
	// Without a checker the file is taken as it is (the gateway reads it
	// at start).
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
}
