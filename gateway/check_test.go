package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Check reports the config's problems and its rules files' problems
// together, not only the first file's.
func TestCheckReportsConfigAndRulesErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("gw.yaml", `gateway: {id: gw-1}
sensors:
  - {id: s1, driver: nosuch, metrics: [{name: t}]}
uplink: {broker: "tcp://127.0.0.1:1883"}
rules: {files: [bad.yaml, missing.yaml]}
`)
	write("bad.yaml", `rules:
  - name: r1
    select: {metric: t}
    above: hot
`)
	err := Check(filepath.Join(dir, "gw.yaml"))
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
