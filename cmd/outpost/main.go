// Command outpost is the edge gateway.
//
//	outpost run     --config FILE [--broker URL] [--data-dir DIR] [--gateway-id ID]
//	outpost check   --config FILE [the same overrides as run]
//	outpost buffer  stats|export --data-dir DIR
//	outpost key     create|show|fingerprint --config FILE
//	outpost decommission --gateway-id ID --broker URL | --config FILE [--force] [--dry-run]
//	outpost rules   test FILE... | replay --rules FILE --input CSV
//	outpost version [--json]
//
// Exit status: 0 success, 1 runtime failure (including one before the
// pipeline runs), 2 invalid config or usage.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/outposthq/outpost/cmd/internal/cli"
)

// command is one of outpost's subcommands.
type command struct {
	name    string
	summary string // one line, for the top-level usage
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"run", "run the gateway", cmdRun},
	{"check", "validate a config and the files it names, as run would load them", cmdCheck},
	{"buffer", "inspect the outbox of a stopped gateway (stats, export)", cmdBuffer},
	{"rules", "test alert rules, or replay them over recorded readings", cmdRules},
	{"key", "the gateway's auth key: create it, show it for the ingest service, its fingerprint", cmdKey},
	{"decommission", "clear the retained topics a retired gateway left on the broker", cmdDecommission},
	{"version", "print the version", cmdVersion},
}

func usage() string {
	var b strings.Builder
	b.WriteString("usage: outpost <command> [flags]\n\n")
	b.WriteString("Outpost is an edge gateway: it polls sensors, raises alerts, stores every\n")
	b.WriteString("reading in an outbox on disk and forwards it to an MQTT broker.\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'outpost <command> --help' for a command's flags.\n\n")
	b.WriteString("example:\n  outpost run --config /etc/outpost/gateway.yaml\n")
	return b.String()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return cli.ExitUsage
	}
	name := args[0]
	switch {
	case name == "help" && len(args) > 1:
		// "outpost help run" is "outpost run --help".
		name, args = args[1], []string{args[1], "--help"}
	case cli.IsHelp(name):
		fmt.Fprint(stdout, usage())
		return cli.ExitOK
	case name == "--version" || name == "-version":
		name = "version"
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		fmt.Fprintf(stderr, "outpost: unknown command %q\n\n%s", name, usage())
		return cli.ExitUsage
	}
	err := commands[i].run(args[1:], stdout, stderr)
	code := cli.ExitCode(err)
	switch {
	case err == nil || cli.Printed(err):
	case code == cli.ExitUsage:
		fmt.Fprintln(stderr, err) // config errors: one file:line:col per line
	default:
		fmt.Fprintln(stderr, cli.OneLine(err))
	}
	return code
}

var versionCmd = cli.Command{
	Name:     "outpost version",
	Args:     "[--json]",
	Summary:  "Prints the version, the commit and time it was built from, the Go version and the platform.",
	Examples: []string{"outpost version --json"},
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := versionCmd.FlagSet()
	asJSON := fs.Bool("json", false, "print JSON")
	if err := cli.Parse(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	v := cli.Version()
	if *asJSON {
		return json.NewEncoder(stdout).Encode(v)
	}
	_, err := fmt.Fprintf(stdout, "outpost %s\n", v)
	return err
}
