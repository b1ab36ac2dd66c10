// Command outpost-demo runs the whole Outpost pipeline in one process on
// embedded parts: an MQTT broker (mochi-mqtt) on a free loopback port, the
// ingest service writing to SQLite, and a gateway running the example
// sensors and rules. It prints a live line every few seconds and, with
// --summary, writes what the database holds and what crossed the broker.
//
//	outpost-demo [--duration 30s] [--summary FILE] [--data-dir DIR]
//	             [--config FILE] [--broker URL] [--db DSN] [--http ADDR]
//	             [--baseline]
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/internal/baseline"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

var command = cli.Command{
	Name: "outpost-demo",
	Args: "[flags]",
	Summary: `Runs the whole Outpost pipeline in one process on embedded parts: an MQTT
broker on a free loopback port, the ingest service writing to SQLite, and a
gateway with the example sensors and rules (examples/gateway.yaml). It prints
a live line every few seconds and alerts as they happen; at the end it counts
what reached the database.`,
	Examples: []string{
		"outpost-demo --duration 60s",
		"outpost-demo --data-dir demo --http 127.0.0.1:8080   # keep the database, serve the API",
	},
}

func run(args []string, stdout, stderr io.Writer) int {
	d := &Demo{out: stdout}
	if err := d.ParseFlags(args, stdout, stderr); err != nil {
		if !cli.Printed(err) {
			fmt.Fprintln(stderr, err)
		}
		return cli.ExitCode(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if d.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Duration)
		defer cancel()
	}
	if err := d.Start(ctx); err != nil {
		fmt.Fprintln(stderr, "outpost-demo: cannot start:", cli.OneLine(err))
		d.Close()
		return 1
	}
	d.Live(ctx, stdout)
	sum, err := d.Finish(stdout)
	d.Close()
	if err != nil {
		fmt.Fprintln(stderr, "outpost-demo:", err)
		return 1
	}
	if d.SummaryPath != "" {
		if err := writeJSON(d.SummaryPath, sum); err != nil {
			fmt.Fprintln(stderr, "outpost-demo:", err)
			return 1
		}
	}
	if d.Baseline {
		res, err := baseline.Run(context.Background(), d.BrokerURL(), d.Duration, d.log)
		if err != nil {
			fmt.Fprintln(stderr, "outpost-demo: baseline:", err)
			return 1
		}
		fmt.Fprintf(stdout, "baseline (one JSON message per reading, QoS 1): %.0f readings/s, %.1f B/reading on the wire\n",
			res.ReadingsPerSec, res.BytesPerReading)
	}
	return 0
}

// ParseFlags reads the demo's flags: -h prints the help to stdout and
// returns flag.ErrHelp; a bad flag prints the problem and the usage to
// stderr and returns a cli.UsageError.
func (d *Demo) ParseFlags(args []string, stdout, stderr io.Writer) error {
	fs := command.FlagSet()
	fs.DurationVar(&d.Duration, "duration", 0, "stop after this long (default: until Ctrl-C)")
	fs.StringVar(&d.SummaryPath, "summary", "", "write a JSON summary to this file at the end")
	fs.StringVar(&d.DataDir, "data-dir", "", "directory for the outbox and the SQLite database (default: a temp dir, removed at exit)")
	fs.StringVar(&d.ConfigPath, "config", "", "gateway config (default: the built-in examples/gateway.yaml)")
	fs.StringVar(&d.Broker, "broker", "", "use this MQTT broker instead of the embedded one")
	fs.StringVar(&d.DB, "db", "", "ingest database DSN instead of SQLite in the data dir (postgres://… or sqlite:PATH)")
	fs.StringVar(&d.HTTP, "http", "", "serve the ingest HTTP API on this address (e.g. 127.0.0.1:8080)")
	fs.DurationVar(&d.Every, "every", 3*time.Second, "interval of the live line")
	fs.BoolVar(&d.Baseline, "baseline", false, "afterwards, run the naive baseline (one JSON message per reading, QoS 1) for the same duration")
	var lf cli.LogFlags
	// People read the demo, through a pipe too: console unless asked.
	lf.Register(fs, "warn", cli.FormatConsole)
	version := cli.VersionFlag(fs)
	if err := cli.Parse(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if err := cli.ShowVersion(version, "outpost-demo", stdout); err != nil {
		return err
	}
	if d.Baseline && d.Duration <= 0 {
		return cli.Usagef("outpost-demo: --baseline needs --duration")
	}
	if err := lf.Check(); err != nil {
		return err
	}
	var err error
	d.log, err = cli.NewLogger(stderr, lf.Level, lf.Format)
	return err
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
