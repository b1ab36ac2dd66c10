package exectest

import (
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// Every command and subcommand answers -h and --help with a real usage on
// stdout (what it does, its flags with defaults, an example) and exit 0.
func TestHelp(t *testing.T) {
	cases := []struct {
		bin  string
		args []string
		want []string // each must appear on stdout
	}{
		{"outpost", []string{"--help"}, []string{"usage: outpost <command>", "run ", "check ", "buffer ", "rules ", "version ", "example:"}},
		{"outpost", []string{"-h"}, []string{"usage: outpost <command>"}},
		{"outpost", []string{"help"}, []string{"usage: outpost <command>"}},
		{"outpost", []string{"run", "--help"}, []string{"usage: outpost run --config FILE", "-config file", "-data-dir directory", "-gateway-id id", "-log-format", "shutdown_grace", "example:"}},
		{"outpost", []string{"help", "run"}, []string{"usage: outpost run --config FILE"}},
		{"outpost", []string{"run", "-h"}, []string{"usage: outpost run"}},
		{"outpost", []string{"check", "--help"}, []string{"usage: outpost check --config FILE", "-broker URL", "-gateway-id", "example:"}},
		{"outpost", []string{"buffer", "--help"}, []string{"usage: outpost buffer <stats|export>", "stats", "export", "example:"}},
		{"outpost", []string{"buffer", "stats", "--help"}, []string{"usage: outpost buffer stats --data-dir DIR", "-json", "example:"}},
		{"outpost", []string{"buffer", "export", "--help"}, []string{"usage: outpost buffer export", "-format string", `(default "batches")`, "example:"}},
		{"outpost", []string{"rules", "--help"}, []string{"usage: outpost rules <test|replay>", "example:"}},
		{"outpost", []string{"rules", "test", "--help"}, []string{"usage: outpost rules test FILE...", "example:"}},
		{"outpost", []string{"rules", "replay", "--help"}, []string{"usage: outpost rules replay --rules FILE", "-reorder duration", "example:"}},
		{"outpost", []string{"version", "--help"}, []string{"usage: outpost version", "-json"}},
		{"outpost", []string{"decommission", "--help"}, []string{"usage: outpost decommission", "-gateway-id id", "-config file", "-force", "-settle duration", "example:"}},
		{"outpost-ingest", []string{"--help"}, []string{"usage: outpost-ingest", "-db string", `(default "sqlite:outpost-ingest.db")`, "-log-format", "example:"}},
		{"outpost-ingest", []string{"-h"}, []string{"usage: outpost-ingest"}},
		{"outpost-demo", []string{"--help"}, []string{"usage: outpost-demo", "-duration", "-log-level", "example:"}},
		{"outpost-sim", []string{"--help"}, []string{"usage: outpost-sim", "-gateways int", "(default 10)", "example:"}},
	}
	for _, c := range cases {
		t.Run(c.bin+" "+strings.Join(c.args, " "), func(t *testing.T) {
			r := runBin(t, c.bin, c.args...)
			if r.code != 0 {
				t.Fatalf("want exit 0\n%s", r)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q\n%s", w, r)
				}
			}
			if r.stderr != "" {
				t.Errorf("help wrote to stderr\n%s", r)
			}
		})
	}
}

// Unknown commands and flags, and missing required ones, exit 2 with the
// problem and the usage on stderr.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		bin  string
		args []string
		want []string // each must appear on stderr
	}{
		{"outpost", nil, []string{"usage: outpost <command>"}},
		{"outpost", []string{"frobnicate"}, []string{`unknown command "frobnicate"`, "usage: outpost <command>"}},
		{"outpost", []string{"run", "--nope"}, []string{"flag provided but not defined: -nope", "usage: outpost run"}},
		{"outpost", []string{"run"}, []string{"--config is required"}},
		{"outpost", []string{"run", "--config", "x.yaml", "extra"}, []string{"unexpected arguments"}},
		{"outpost", []string{"check", "--nope"}, []string{"usage: outpost check"}},
		{"outpost", []string{"buffer"}, []string{"usage: outpost buffer"}},
		{"outpost", []string{"buffer", "nope"}, []string{`unknown command "nope"`}},
		{"outpost", []string{"buffer", "stats"}, []string{"--data-dir is required"}},
		{"outpost", []string{"rules"}, []string{"usage: outpost rules"}},
		{"outpost", []string{"rules", "test"}, []string{"no test files"}},
		{"outpost", []string{"version", "extra"}, []string{"unexpected arguments"}},
		{"outpost", []string{"run", "--config", "x.yaml", "--log-format", "xml"}, []string{"--log-format"}},
		{"outpost-ingest", []string{"--nope"}, []string{"flag provided but not defined: -nope", "usage: outpost-ingest"}},
		{"outpost-ingest", []string{"--log-level", "loud"}, []string{"--log-level"}},
		{"outpost-demo", []string{"--nope"}, []string{"usage: outpost-demo"}},
		{"outpost-sim", []string{"--nope"}, []string{"usage: outpost-sim"}},
		{"outpost-sim", nil, []string{"--broker URL is required"}},
	}
	for _, c := range cases {
		t.Run(c.bin+" "+strings.Join(c.args, " "), func(t *testing.T) {
			r := runBin(t, c.bin, c.args...)
			if r.code != 2 {
				t.Fatalf("want exit 2\n%s", r)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q\n%s", w, r)
				}
			}
		})
	}
}

// --version on every binary, and `outpost version`, print the version,
// the Go version and the platform, and exit 0.
func TestVersion(t *testing.T) {
	platform := regexp.QuoteMeta(runtime.GOOS + "/" + runtime.GOARCH)
	for _, c := range []struct {
		bin  string
		args []string
	}{
		{"outpost", []string{"version"}},
		{"outpost", []string{"--version"}},
		{"outpost-ingest", []string{"--version"}},
		{"outpost-demo", []string{"--version"}},
		{"outpost-sim", []string{"--version"}},
	} {
		t.Run(c.bin+" "+strings.Join(c.args, " "), func(t *testing.T) {
			r := runBin(t, c.bin, c.args...)
			want := regexp.MustCompile(`^` + regexp.QuoteMeta(c.bin) + ` \S+ .*go1\.\d+.* ` + platform + `\b`)
			if r.code != 0 || !want.MatchString(r.stdout) {
				t.Fatalf("want one line matching %s\n%s", want, r)
			}
		})
	}
	r := runBin(t, "outpost", "version", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"go":"go1.`) || !strings.Contains(r.stdout, `"os":"`+runtime.GOOS+`"`) {
		t.Fatalf("version --json\n%s", r)
	}
}
