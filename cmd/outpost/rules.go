package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/rules"
	"github.com/outposthq/outpost/rules/ruletest"
)

const rulesUsage = `usage: outpost rules <test|replay> [flags]

Tests alert rules before they reach a gateway (docs/rules.md).

commands:
  test    run the unit tests of rules in test files
  replay  run rules over recorded readings and print the alert transitions

Run 'outpost rules <command> --help' for flags.

example:
  outpost rules test rules.test.yaml
`

var rulesTestCmd = cli.Command{
	Name: "outpost rules test",
	Args: "FILE...",
	Summary: `Runs the unit tests in rules test files: input series, and the alerts expected
at given times (docs/rules.md). Prints one line per test and a diff for each
failure. Exit status 1 if a test fails, 2 if a file is invalid.`,
	Examples: []string{"outpost rules test examples/cookbook/rules.test.yaml"},
}

var rulesReplayCmd = cli.Command{
	Name: "outpost rules replay",
	Args: "--rules FILE [--rules FILE...] --input CSV|- [flags]",
	Summary: `Runs rules over recorded readings (CSV ts,sensor,metric,value, as
'outpost buffer export --format csv' writes) on the readings' own clock, and
prints one JSON object per alert transition.`,
	Examples: []string{"outpost rules replay --rules rules.yaml --input office.csv"},
}

// stdin is replay's --input -; a variable so that tests can set it.
var stdin io.Reader = os.Stdin

func cmdRules(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, rulesUsage)
		return cli.ErrUsageShown
	}
	switch {
	case args[0] == "test":
		return rulesTest(args[1:], stdout, stderr)
	case args[0] == "replay":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return rulesReplay(ctx, args[1:], stdout, stderr)
	case cli.IsHelp(args[0]):
		_, err := fmt.Fprint(stdout, rulesUsage)
		return err
	}
	return cli.Usagef("outpost rules: unknown command %q\n\n%s", args[0], rulesUsage)
}

// rulesTest runs every test of every file, printing one line per test and
// a diff for each failure. Invalid test or rules files are reported with
// their positions, after the tests of the valid files have run.
func rulesTest(args []string, stdout, stderr io.Writer) error {
	fs := rulesTestCmd.FlagSet()
	if err := cli.Parse(fs, args, -1, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return cli.Usagef("outpost rules test: no test files (see outpost rules test --help)")
	}
	var invalid []error
	tests, failed := 0, 0
	for _, path := range fs.Args() {
		f, err := ruletest.Load(path)
		if err != nil {
			invalid = append(invalid, err)
			continue
		}
		set, err := f.LoadRules()
		if err != nil {
			invalid = append(invalid, fmt.Errorf("%s: rule_files:\n%w", path, err))
			continue
		}
		for _, t := range f.Tests {
			tests++
			r := t.Run(set)
			if r.Passed {
				fmt.Fprintf(stdout, "ok    %s: %s\n", path, t.Name)
				continue
			}
			failed++
			fmt.Fprintf(stdout, "FAIL  %s:%d:%d: %s\n%s", path, t.Pos.Line, t.Pos.Col, t.Name, r.Report())
		}
	}
	if len(invalid) > 0 {
		return cli.UsageError{Err: errors.Join(invalid...)}
	}
	if failed > 0 {
		return fmt.Errorf("outpost rules test: %d of %d tests failed", failed, tests)
	}
	fmt.Fprintf(stdout, "%d tests passed\n", tests)
	return nil
}

func rulesReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := rulesReplayCmd.FlagSet()
	var ruleFiles stringList
	fs.Var(&ruleFiles, "rules", "rules file (required; repeat for more)")
	input := fs.String("input", "", "CSV of readings, - for stdin (required)")
	reorder := fs.Duration("reorder", ruletest.DefaultReorder, "how far out of time order readings may come")
	tick := fs.Duration("tick", ruletest.DefaultTick, "engine tick between readings, as the gateway's (0: none)")
	gw := fs.String("gateway", "", "gateway id: adds the gateway label")
	if err := cli.Parse(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	switch {
	case len(ruleFiles) == 0:
		return cli.Usagef("outpost rules replay: --rules is required (see outpost rules replay --help)")
	case *input == "":
		return cli.Usagef("outpost rules replay: --input is required (a CSV file, or - for stdin)")
	}
	set, err := rules.LoadFiles(ruleFiles...)
	if err != nil {
		return cli.UsageError{Err: err}
	}
	in, name := stdin, "stdin"
	if *input != "-" {
		f, err := os.Open(*input)
		if err != nil {
			return fmt.Errorf("outpost rules replay: %w", err)
		}
		defer f.Close()
		in, name = f, *input
	}
	opts := &ruletest.ReplayOptions{Reorder: *reorder, Tick: *tick, Engine: &rules.Options{Gateway: *gw}}
	if *reorder == 0 {
		opts.Reorder = -1 // the flag's 0 means none; the option's 0 means the default
	}
	if *tick == 0 {
		opts.Tick = -1
	}
	// The lines are ruletest.JSONWriter's, as `outpost-ingest rules
	// replay` writes them: the two compare byte for byte.
	w := ruletest.NewJSONWriter(stdout)
	err = ruletest.Replay(ctx, set, bufio.NewReaderSize(in, 1<<16), w.Write, opts)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	var le *ruletest.LineError
	if errors.As(err, &le) {
		return cli.UsageError{Err: fmt.Errorf("outpost rules replay: %s:%d: %w", name, le.Line, le.Err)}
	}
	if err != nil {
		return fmt.Errorf("outpost rules replay: %w", err)
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }
