package main

import (
	"bytes"
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
	err := m.ParseFlags([]string{"--config", cfg, "--broker", "tcp://127.0.0.1:1999", "--data-dir", "/tmp/x", "--gateway-id", "gw-flag"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if c.Uplink.Broker != "tcp://127.0.0.1:1999" || c.DataDir != "/tmp/x" || c.Gateway.ID != "gw-flag" || c.ClientID() != "outpost-gw-flag" {
		t.Fatalf("overrides not applied: broker %s dir %s id %s client %s", c.Uplink.Broker, c.DataDir, c.Gateway.ID, c.ClientID())
	}
	err = (&Main{}).ParseFlags([]string{"--config", cfg, "--gateway-id", "bad/id"}, &bytes.Buffer{})
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
