// Package deploy holds no Go code: these tests check the files the .deb
// packages install (deploy/etc, deploy/systemd, deploy/nfpm) against the
// code that reads them, so a packaged config that `outpost check` would
// refuse, or a unit that names a file no package ships, fails `go test`.
// scripts/package-check then builds and installs the packages.
package deploy

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/internal/yamlpos"
)

const (
	gatewayYAML = "etc/outpost/gateway.yaml"
	gatewayEnv  = "etc/default/outpost"
)

// envFile reads a systemd EnvironmentFile of NAME=value lines, as the
// packaged ones are written (no quotes, no continuation lines).
func envFile(t *testing.T, name string) map[string]string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not NAME=value", name, line)
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return env
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// The packaged config, as installed, refuses to run until the operator
// sets the gateway id in /etc/default/outpost: the postinst starts the
// service only when it passes check, and the unit does not restart on
// its exit status 2.
func TestGatewayConfigNeedsAnID(t *testing.T) {
	env := envFile(t, gatewayEnv)
	if v, ok := env["OUTPOST_GATEWAY_ID"]; !ok || v != "" {
		t.Fatalf("%s: OUTPOST_GATEWAY_ID = %q (set: %v), want it present and empty", gatewayEnv, v, ok)
	}
	_, err := config.LoadWith(gatewayYAML, &config.LoadOptions{LookupEnv: lookup(env)})
	var list yamlpos.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("load with the packaged environment: %v, want a positioned error", err)
	}
	if !strings.Contains(err.Error(), "gateway.id") {
		t.Errorf("error does not name gateway.id: %v", err)
	}

	// outpost check, as the postinst runs it, with nothing set.
	t.Setenv("OUTPOST_GATEWAY_ID", "")
	os.Unsetenv("OUTPOST_GATEWAY_ID")
	if err := gateway.Check(gatewayYAML, nil); err == nil || !strings.Contains(err.Error(), "OUTPOST_GATEWAY_ID") {
		t.Errorf("check without OUTPOST_GATEWAY_ID: %v, want an error naming it", err)
	}
}

// With an id set, the packaged config and rules pass outpost check, and
// say what docs/deploy.md says they do: data in /var/lib/outpost, batches
// signed with a key made there, required MACs, the rules beside it.
func TestGatewayConfigPassesCheck(t *testing.T) {
	t.Setenv("OUTPOST_GATEWAY_ID", "gw-pi-1")
	if err := gateway.Check(gatewayYAML, nil); err != nil {
		t.Fatalf("outpost check: %v", err)
	}
	t.Setenv("OUTPOST_BROKER", "ssl://broker.example.com:8883")
	if err := gateway.Check(gatewayYAML, nil); err != nil {
		t.Fatalf("outpost check with OUTPOST_BROKER: %v", err)
	}

	cfg, err := config.LoadWith(gatewayYAML, &config.LoadOptions{
		LookupEnv: lookup(map[string]string{"OUTPOST_GATEWAY_ID": "gw-pi-1"}),
		Drivers:   gateway.DefaultRegistry().Names(),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ what, got, want string }{
		{"gateway.id", cfg.Gateway.ID, "gw-pi-1"},
		{"data_dir", cfg.DataDir, "/var/lib/outpost"},
		{"auth key", cfg.AuthKeyPath(), "/var/lib/outpost/gateway.key"},
		{"uplink.auth", cfg.Uplink.AuthMode(), "required"},
		{"uplink.broker", cfg.Uplink.Broker, "tcp://127.0.0.1:1883"},
		{"log_format", cfg.LogFormat, "json"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	// rules.yaml resolves beside the config: /etc/outpost/rules.yaml once
	// installed.
	if want := []string{filepath.Join(filepath.Dir(gatewayYAML), "rules.yaml")}; !slices.Equal(cfg.Rules.Files, want) {
		t.Errorf("rules.files = %q, want %q", cfg.Rules.Files, want)
	}
}

// nfpmConfig is the part of an nfpm config these tests read.
type nfpmConfig struct {
	Name     string `yaml:"name"`
	Contents []struct {
		Src  string `yaml:"src"`
		Dst  string `yaml:"dst"`
		Type string `yaml:"type"`
	} `yaml:"contents"`
	Scripts map[string]string `yaml:"scripts"`
}

// unitService returns the [Service] settings of a unit file, each key
// with its values in order.
func unitService(t *testing.T, name string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	section := ""
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not Key=value", name, line)
			}
			m[k] = append(m[k], v)
		}
	}
	return m
}

// Each package ships its binary, its unit, its maintainer scripts and, as
// conffiles, every file its unit and config read from /etc; every source
// it names is in the repository.
func TestPackagesShipWhatTheUnitsUse(t *testing.T) {
	for _, p := range []struct {
		pkg, bin, user, stateDir string
		conffiles                []string
	}{
		{"outpost", "/usr/bin/outpost", "outpost", "/var/lib/outpost",
			[]string{"/etc/outpost/gateway.yaml", "/etc/outpost/rules.yaml", "/etc/default/outpost"}},
		{"outpost-ingest", "/usr/bin/outpost-ingest", "outpost-ingest", "/var/lib/outpost-ingest",
			[]string{"/etc/outpost-ingest/ingest.env", "/etc/outpost-ingest/gateway.keys"}},
	} {
		t.Run(p.pkg, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("nfpm", p.pkg+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var nc nfpmConfig
			if err := yaml.Unmarshal(b, &nc); err != nil {
				t.Fatal(err)
			}
			if nc.Name != p.pkg {
				t.Errorf("name = %q, want %q", nc.Name, p.pkg)
			}
			dst := map[string]string{} // dst -> type
			for _, c := range nc.Contents {
				dst[c.Dst] = c.Type
				if !strings.Contains(c.Src, "${") {
					if _, err := os.Stat(filepath.Join("..", c.Src)); err != nil {
						t.Errorf("source of %s: %v", c.Dst, err)
					}
				}
			}
			unit := "/lib/systemd/system/" + p.pkg + ".service"
			for _, f := range []string{p.bin, unit} {
				if _, ok := dst[f]; !ok {
					t.Errorf("%s is not in the package", f)
				}
			}
			for _, f := range p.conffiles {
				if dst[f] != "config|noreplace" {
					t.Errorf("%s: type %q, want config|noreplace", f, dst[f])
				}
			}
			for _, s := range []string{"postinstall", "preremove", "postremove"} {
				if fi, err := os.Stat(filepath.Join("..", nc.Scripts[s])); err != nil || fi.Mode()&0o111 == 0 {
					t.Errorf("%s script %q: missing or not executable (%v)", s, nc.Scripts[s], err)
				}
			}

			svc := unitService(t, filepath.Join("systemd", p.pkg+".service"))
			want := map[string]string{
				"Type": "notify", "NotifyAccess": "main", "Restart": "always",
				"User": p.user, "ReadWritePaths": p.stateDir,
				"StateDirectory":   strings.TrimPrefix(p.stateDir, "/var/lib/"),
				"WorkingDirectory": p.stateDir, "WatchdogSec": "30s",
				"ProtectSystem": "strict", "NoNewPrivileges": "yes",
				"RestartPreventExitStatus": "2",
			}
			for k, v := range want {
				if got := svc[k]; !slices.Equal(got, []string{v}) {
					t.Errorf("%s.service: %s = %q, want %q", p.pkg, k, got, v)
				}
			}
			exec := svc["ExecStart"]
			if len(exec) != 1 || strings.Fields(exec[0])[0] != p.bin {
				t.Errorf("ExecStart = %q, want %s ...", exec, p.bin)
			}
			for _, ef := range svc["EnvironmentFile"] {
				if _, ok := dst[strings.TrimPrefix(ef, "-")]; !ok {
					t.Errorf("EnvironmentFile %s is not in the package", ef)
				}
			}
			for _, da := range svc["DeviceAllow"] {
				// systemd takes a /dev path (no glob) or a char-/block- class.
				if strings.ContainsAny(da, "*?[") {
					t.Errorf("DeviceAllow=%s: systemd does not expand globs", da)
				}
			}
		})
	}
}
