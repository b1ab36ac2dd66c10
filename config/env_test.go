package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// envOpts is LoadOptions looking variables up in env.
func envOpts(env map[string]string) *LoadOptions {
	return &LoadOptions{LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}
}

// fleet is a config a fleet shares: what differs between gateways comes
// from the environment.
const fleet = `gateway:
  id: ${GW_ID}
data_dir: ${DATA_DIR:-state}
sensors:
  - id: s1
    driver: thermo
    interval: ${POLL:-1s}
    labels: {site: "${SITE:-hq}", note: "${NOTE:-}"}
    metrics: [{name: t}]
uplink:
  broker: tcp://${HOST:-127.0.0.1}:${PORT:-1883}
  client_id: gw-$$-${GW_ID}
  window: ${WINDOW:-16}
  max_message_bytes: ${MSG:-5KB}
dashboard: {live: "${LIVE:-false}"}
`

func TestLoadEnv(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "gw.yaml")
	for _, tc := range []struct {
		name  string
		env   map[string]string
		check func(*Config) bool
	}{
		{"defaults", map[string]string{"GW_ID": "gw-7"}, func(c *Config) bool {
			return c.Gateway.ID == "gw-7" && c.DataDir == filepath.Join(dir, "state") &&
				c.Sensors[0].Interval == time.Second && c.Sensors[0].Labels["site"] == "hq" &&
				c.Uplink.Broker == "tcp://127.0.0.1:1883" && c.Uplink.ClientID == "gw-$-gw-7" &&
				c.Uplink.Window == 16 && c.Uplink.MaxMessageBytes == 5000 && !c.Dashboard.LiveOn()
		}},
		{"values", map[string]string{
			"GW_ID": "gw-8", "DATA_DIR": "/var/lib/outpost", "POLL": "250ms", "SITE": "plant 2",
			"HOST": "broker", "PORT": "8883", "WINDOW": "32", "MSG": "1MiB", "LIVE": "true",
		}, func(c *Config) bool {
			return c.Gateway.ID == "gw-8" && c.DataDir == "/var/lib/outpost" &&
				c.Sensors[0].Interval == 250*time.Millisecond && c.Sensors[0].Labels["site"] == "plant 2" &&
				c.Uplink.Broker == "tcp://broker:8883" && c.Uplink.Window == 32 &&
				c.Uplink.MaxMessageBytes == 1<<20 && c.Dashboard.LiveOn()
		}},
		{"empty means default", map[string]string{"GW_ID": "gw-9", "WINDOW": "", "SITE": ""}, func(c *Config) bool {
			return c.Uplink.Window == 16 && c.Sensors[0].Labels["site"] == "hq"
		}},
		{"no injection", map[string]string{"GW_ID": "gw-1", "NOTE": "x\nfoo: bar\n  - id: s2"}, func(c *Config) bool {
			l := c.Sensors[0].Labels
			return len(c.Sensors) == 1 && len(l) == 2 && l["note"] == "x\nfoo: bar\n  - id: s2"
		}},
		{"no second expansion", map[string]string{"GW_ID": "gw-1", "SITE": "${GW_ID}"}, func(c *Config) bool {
			return c.Sensors[0].Labels["site"] == "${GW_ID}"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(name, []byte(fleet), envOpts(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("got %+v", c)
			}
		})
	}
}

func TestLoadEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		env       map[string]string
		want      []string
	}{
		{"unset", fleet, nil, []string{
			"gw.yaml:2:7: gateway.id: environment variable GW_ID is not set and ${GW_ID} has no default",
			"gw.yaml:12:20: uplink.client_id: environment variable GW_ID is not set and ${GW_ID} has no default",
		}},
		{"malformed", strings.Replace(minimal, "tcp://127.0.0.1:1883", "tcp://${HOST:1883", 1) +
			"  username: ${}\n  client_id: ${1X}\n  topic_prefix: $PREFIX/x\n", nil, []string{
			`gw.yaml:9:17: uplink.broker: "${HOST:1883": no closing "}" (write $$ for a literal $)`,
			`gw.yaml:10:13: uplink.username: "${}": no variable name`,
			`gw.yaml:11:14: uplink.client_id: "${1X}": not a variable name (letters, digits and _, not starting with a digit)`,
			`gw.yaml:12:17: uplink.topic_prefix: "$PREFIX": write ${PREFIX} for a variable, or $$PREFIX for a literal $`,
		}},
		{"bad value", strings.Replace(minimal, "gw-01", "${GW_ID}", 1) + "  window: ${WINDOW}\n",
			map[string]string{"GW_ID": "a/b", "WINDOW": "many"}, []string{
				`gw.yaml:2:7: gateway.id: "a/b" is not a valid id (use 1 to 64 of A-Z a-z 0-9 _ . -)`,
				`gw.yaml:10:11: uplink.window: expected an integer, got "many"`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := parse(filepath.Join(dir, "gw.yaml"), []byte(tc.src), envOpts(tc.env))
			if err == nil {
				t.Fatal("no error")
			}
			got := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
			if want := strings.Join(tc.want, "\n"); got != want {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// Load reads the process's environment by default.
func TestLoadEnvProcess(t *testing.T) {
	t.Setenv("OUTPOST_TEST_GATEWAY_ID", "gw-from-env")
	src := strings.Replace(minimal, "gw-01", "${OUTPOST_TEST_GATEWAY_ID}", 1)
	dir := writeFiles(t, map[string]string{"gw.yaml": src})
	c, err := Load(filepath.Join(dir, "gw.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.ID != "gw-from-env" {
		t.Fatalf("gateway id %q", c.Gateway.ID)
	}
	if err := os.Unsetenv("OUTPOST_TEST_GATEWAY_ID"); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(dir, "gw.yaml")); err == nil || !strings.Contains(err.Error(), "OUTPOST_TEST_GATEWAY_ID is not set") {
		t.Fatalf("unset: got %v", err)
	}
}
