package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/config"
)

// writeCheckFiles writes name → content into a temp dir and returns the dir.
func writeCheckFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Check reports the config's problems and its rules files' problems
// together, not only the first file's.
func TestCheckReportsConfigAndRulesErrors(t *testing.T) {
	dir := writeCheckFiles(t, map[string]string{
		"gw.yaml": `gateway: {id: gw-1}
sensors:
  - {id: s1, driver: nosuch, metrics: [{name: t}]}
uplink: {broker: "tcp://127.0.0.1:1883"}
rules: {files: [bad.yaml, missing.yaml]}
`,
		"bad.yaml": `rules:
  - name: r1
    select: {metric: t}
    above: hot
`,
	})
	err := Check(filepath.Join(dir, "gw.yaml"), nil)
	if err == nil {
		t.Fatal("no error")
	}
	got := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
	for _, want := range []string{
		`gw.yaml:3:22: sensors[0].driver: unknown driver "nosuch"`,
		`gw.yaml:5:27: rules.files[1]: rules file "missing.yaml" does not exist`,
		`bad.yaml:4:12: `,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors\n%s\nlack %q", got, want)
		}
	}
}

// Check takes the overrides run takes: a fleet's file without gateway.id
// checks with --gateway-id, and a bad flag is named.
func TestCheckOverrides(t *testing.T) {
	dir := writeCheckFiles(t, map[string]string{
		"gw.yaml": `sensors:
  - {id: s1, driver: sim, metrics: [{name: t, signal: {kind: constant, value: 1}}]}
uplink: {broker: "${OUTPOST_CHECK_TEST_BROKER:-tcp://127.0.0.1:1883}"}
`,
	})
	path := filepath.Join(dir, "gw.yaml")
	for _, tc := range []struct {
		name string
		o    *config.Overrides
		want string // "" for no error
	}{
		{"no overrides", nil, "gw.yaml:1:1: gateway.id: is required"},
		{"id by flag", &config.Overrides{GatewayID: "gw-7"}, ""},
		{"all flags", &config.Overrides{GatewayID: "gw-7", Broker: "ssl://b:8883", DataDir: "state"}, ""},
		{"bad id by flag", &config.Overrides{GatewayID: "gw/7"}, `--gateway-id: "gw/7" is not a valid id`},
		{"bad broker by flag", &config.Overrides{GatewayID: "gw-7", Broker: "ftp://b"}, `--broker: unsupported scheme "ftp"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(path, tc.o)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want == "":
			case err == nil:
				t.Fatalf("no error, want %q", tc.want)
			case !strings.HasPrefix(strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""), tc.want):
				t.Fatalf("got\n%v\nwant %q", err, tc.want)
			}
		})
	}
}
