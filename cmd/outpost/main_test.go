package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const validConfig = `gateway:
  id: gw-t
sensors:
  - id: s1
    driver: sim
    metrics:
      - {name: temperature, unit: Cel, signal: {kind: constant, value: 20}}
uplink:
  broker: tcp://127.0.0.1:1883
rules:
  files: [rules.yaml]
`

const validRules = `rules:
  - name: hot
    select: {metric: temperature}
    above: 30
`

func TestCheckValid(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "gw.yaml", validConfig)
	writeFile(t, dir, "rules.yaml", validRules)
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "--config", cfg}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "ok") {
		t.Errorf("stdout %q", out.String())
	}
}

func TestCheckExamples(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "--config", "../../examples/gateway.yaml"}, &out, &errOut); code != 0 {
		t.Fatalf("examples/gateway.yaml: exit %d, stderr %s", code, errOut.String())
	}
}

func TestCheckInvalid(t *testing.T) {
	cases := []struct {
		name, config, rules string
		want                []string // each must appear as a line of stderr
	}{
		{
			name:   "unknown driver and bad interval",
			config: strings.Replace(strings.Replace(validConfig, "driver: sim", "driver: nope", 1), "    metrics:", "    interval: -1s\n    metrics:", 1),
			rules:  validRules,
			want:   []string{`gw.yaml:5:13: sensors[0].driver: unknown driver "nope"`, `gw.yaml:6:15: sensors[0].interval: `},
		},
		{
			name:   "bad rule",
			config: validConfig,
			rules:  strings.Replace(validRules, "above: 30", "above: hot", 1),
			want:   []string{"rules.yaml:4:12: "},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeFile(t, dir, "gw.yaml", c.config)
			writeFile(t, dir, "rules.yaml", c.rules)
			var out, errOut bytes.Buffer
			if code := run([]string{"check", "--config", cfg}, &out, &errOut); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errOut.String())
			}
			for _, w := range c.want {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
				}
			}
			pos := regexp.MustCompile(`(?m)^\S+\.yaml:\d+:\d+: `)
			if !pos.MatchString(errOut.String()) {
				t.Errorf("no file:line:col error in:\n%s", errOut.String())
			}
		})
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "gw.yaml", validConfig)
	writeFile(t, dir, "rules.yaml", validRules)
	m := &Main{}
	err := m.ParseFlags([]string{"--config", cfg, "--broker", "tcp://127.0.0.1:1999", "--data-dir", "/tmp/x", "--gateway-id", "gw-flag"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if c.Uplink.Broker != "tcp://127.0.0.1:1999" || c.DataDir != "/tmp/x" || c.Gateway.ID != "gw-flag" || c.ClientID() != "outpost-gw-flag" {
		t.Fatalf("overrides not applied: broker %s dir %s id %s client %s", c.Uplink.Broker, c.DataDir, c.Gateway.ID, c.ClientID())
	}
	err = (&Main{}).ParseFlags([]string{"--config", cfg, "--gateway-id", "bad/id"}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("invalid --gateway-id accepted")
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"run", "--config", cfg, "--gateway-id", "bad/id"}, &out, &errOut); code != 2 {
		t.Fatalf("run with bad flag: exit %d, want 2", code)
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != 2 {
		t.Fatalf("no args: exit %d", code)
	}
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
}

// One file for a fleet: no gateway.id in it, the broker from the
// environment; run and check both take the id from the flag, and check
// says what run would refuse.
func TestFleetConfig(t *testing.T) {
	dir := t.TempDir()
	fleet := strings.Replace(validConfig, "gateway:\n  id: gw-t\n", "", 1)
	fleet = strings.Replace(fleet, "tcp://127.0.0.1:1883", "${OUTPOST_TEST_FLEET_BROKER:-tcp://127.0.0.1:1883}", 1)
	cfg := writeFile(t, dir, "fleet.yaml", fleet)
	writeFile(t, dir, "rules.yaml", validRules)
	t.Setenv("OUTPOST_TEST_FLEET_BROKER", "tcp://broker.example:1883")

	m := &Main{}
	if err := m.ParseFlags([]string{"--config", cfg, "--gateway-id", "gw-17"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if m.Config.Gateway.ID != "gw-17" || m.Config.Uplink.Broker != "tcp://broker.example:1883" {
		t.Fatalf("id %q broker %q", m.Config.Gateway.ID, m.Config.Uplink.Broker)
	}

	var out, errOut bytes.Buffer
	if code := run([]string{"check", "--config", cfg, "--gateway-id", "gw-17"}, &out, &errOut); code != 0 {
		t.Fatalf("check with --gateway-id: exit %d\n%s", code, errOut.String())
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "fleet.yaml:1:1: gateway.id: is required"},
		{[]string{"--gateway-id", "a/b"}, `--gateway-id: "a/b" is not a valid id`},
		{[]string{"--gateway-id", "gw-17", "--broker", "localhost"}, `--broker: "localhost" has no scheme`},
	} {
		for _, sub := range []string{"check", "run"} {
			errOut.Reset()
			args := append([]string{sub, "--config", cfg}, c.args...)
			if code := run(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), c.want) {
				t.Errorf("%v: exit %d, want 2 and %q in:\n%s", args, code, c.want, errOut.String())
			}
		}
	}

	// An unset variable without a default is an error at its position.
	t.Setenv("OUTPOST_TEST_FLEET_BROKER", "")
	os.Unsetenv("OUTPOST_TEST_FLEET_BROKER")
	bad := writeFile(t, dir, "bad.yaml", strings.Replace(fleet, ":-tcp://127.0.0.1:1883", "", 1))
	errOut.Reset()
	if code := run([]string{"check", "--config", bad, "--gateway-id", "gw-17"}, &out, &errOut); code != 2 ||
		!regexp.MustCompile(`bad\.yaml:\d+:\d+: .*OUTPOST_TEST_FLEET_BROKER`).MatchString(errOut.String()) {
		t.Fatalf("unset variable: exit %d\n%s", code, errOut.String())
	}
}
