package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// noID is a config a fleet shares, without the gateway's id.
var noID = strings.Replace(minimal, "gateway:\n  id: gw-01\n", "", 1)

func TestOverrides(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		o         Overrides
		want      []string // errors, without the directory; none when empty
		check     func(*Config) bool
	}{
		{"id from the flag", noID, Overrides{GatewayID: "gw-42"}, nil, func(c *Config) bool {
			return c.Gateway.ID == "gw-42" && c.ClientID() == "outpost-gw-42"
		}},
		{"id from nowhere", noID, Overrides{}, []string{"gw.yaml:1:1: gateway.id: is required"}, nil},
		// A packaged config names a variable for the id; the flag gives it
		// when the variable is not set, and an unset one without the flag
		// is still an error.
		{"id from the flag, the file's variable unset", "gateway: {id: \"${OUTPOST_TEST_UNSET_ID}\"}\n" + noID, Overrides{GatewayID: "gw-42"}, nil,
			func(c *Config) bool { return c.Gateway.ID == "gw-42" }},
		{"the file's variable unset, no flag", "gateway: {id: \"${OUTPOST_TEST_UNSET_ID}\"}\n" + noID, Overrides{}, []string{
			"gw.yaml:1:16: gateway.id: environment variable OUTPOST_TEST_UNSET_ID is not set and ${OUTPOST_TEST_UNSET_ID} has no default",
		}, nil},
		{"flag over file", strings.Replace(minimal, "gw-01", "bad/id", 1), Overrides{GatewayID: "gw-2", Broker: "ssl://b:8883"}, nil,
			func(c *Config) bool { return c.Gateway.ID == "gw-2" && c.Uplink.Broker == "ssl://b:8883" }},
		{"bad id", noID, Overrides{GatewayID: "a/b"}, []string{
			`--gateway-id: "a/b" is not a valid id (use 1 to 64 of A-Z a-z 0-9 _ . -)`,
		}, nil},
		{"bad broker", minimal, Overrides{Broker: "localhost"}, []string{
			`--broker: "localhost" has no scheme (e.g. tcp://localhost)`,
		}, nil},
		{"broker against the file's tls", minimal + "  tls: {server_name: b}\n", Overrides{Broker: "tcp://b:1883"}, []string{
			"gw.yaml:10:8: uplink.tls: is set but the --broker URL's scheme is tcp; use ssl:// (or wss://) for TLS",
		}, nil},
		{"flag and file errors together", strings.Replace(noID, "driver: thermo", "driver: \"\"", 1), Overrides{GatewayID: "#"}, []string{
			`--gateway-id: "#" is not a valid id (use 1 to 64 of A-Z a-z 0-9 _ . -)`,
			"gw.yaml:3:13: sensors[0].driver: is required",
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := parse(filepath.Join(dir, "gw.yaml"), []byte(tc.src), &LoadOptions{Overrides: tc.o})
			if len(tc.want) > 0 {
				if err == nil {
					t.Fatal("no error")
				}
				got := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
				if want := strings.Join(tc.want, "\n"); got != want {
					t.Fatalf("got\n%s\nwant\n%s", got, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("got %+v", c)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate after Load: %v", err)
			}
		})
	}
}

// The file's data_dir is relative to the file; --data-dir, from the
// command line, to the working directory.
func TestOverrideDataDir(t *testing.T) {
	dir := writeFiles(t, map[string]string{"etc/gw.yaml": minimal + "data_dir: from-file\n"})
	wd := t.TempDir()
	t.Chdir(wd)
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "etc", "gw.yaml")
	for _, tc := range []struct {
		name, flag, want string
	}{
		{"file", "", filepath.Join(dir, "etc", "from-file")},
		{"relative flag", "state", filepath.Join(cwd, "state")},
		{"relative flag up", "../x/state", filepath.Join(filepath.Dir(cwd), "x", "state")},
		{"absolute flag", "/var/lib/outpost", "/var/lib/outpost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadWith(path, &LoadOptions{Overrides: Overrides{DataDir: tc.flag}})
			if err != nil {
				t.Fatal(err)
			}
			if c.DataDir != tc.want {
				t.Fatalf("data dir %q, want %q", c.DataDir, tc.want)
			}
		})
	}
}

// Validate, for configs built in code, names fields, not flags.
func TestValidateBuiltInCode(t *testing.T) {
	c := &Config{Gateway: GatewayConfig{ID: "a/b"}}
	c.SetDefaults()
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), `gateway.id: "a/b" is not a valid id`) || strings.Contains(err.Error(), "--") {
		t.Fatalf("got %v", err)
	}
}
