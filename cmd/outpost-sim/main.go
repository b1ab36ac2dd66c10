// Command outpost-sim runs a fleet of simulated gateways in one process
// to load-test ingest: N gateways × M sim sensors, each gateway a real
// gateway.Gateway (pollers, batcher, outbox, uplink) with its own id, data
// dir and MQTT client, publishing to one broker. It prints a progress line
// every few seconds and a summary at the end; Ctrl-C or --duration stops
// the sensors, drains the outboxes and closes every gateway.
//
//	outpost-sim --broker tcp://127.0.0.1:1883 --gateways 1000 --ramp 10s
//	outpost-sim --embedded --gateways 5 --duration 30s
//
// With --broker, an ingest service must consume the batches and ack them
// (or use --ack broker); --embedded runs its own broker and ingest on
// SQLite in the data dir.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/config"
)

// Open files each gateway needs: its MQTT socket and its outbox file,
// with room for the runtime's own.
const (
	filesPerGateway = 2
	filesSpare      = 64
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

var command = cli.Command{
	Name: "outpost-sim",
	Args: "(--broker URL | --embedded) [flags]",
	Summary: `Runs a fleet of simulated gateways in one process to load-test ingest: each a
real gateway (pollers, batcher, outbox, uplink) with its own id, data dir and
MQTT client, with sim sensors. Prints a progress line every few seconds and a
summary at the end; Ctrl-C or --duration stops the sensors, drains the
outboxes and closes every gateway. With --broker, an ingest service must ack
the batches (or pass --ack broker). Exit status 3: some outbox did not drain.`,
	Examples: []string{
		"outpost-sim --embedded --gateways 50 --duration 30s",
		"outpost-sim --embedded --gateways 1000 --ramp 20s --http 127.0.0.1:8080   # and open http://127.0.0.1:8080/",
		"outpost-sim --embedded --gateways 50 --commands --data-dir /tmp/fleet   # then outpost-ingest rules push as it says",
		"outpost-sim --broker tcp://127.0.0.1:1883 --gateways 1000 --ramp 10s --duration 2m",
	},
}

func run(args []string, stdout, stderr io.Writer) int {
	s := &Sim{out: stdout}
	if err := s.ParseFlags(args, stdout, stderr); err != nil {
		if !cli.Printed(err) {
			fmt.Fprintln(stderr, err)
		}
		return cli.ExitCode(err)
	}
	checkFiles(s.Gateways, stdout, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := s.Run(ctx)
	if cerr := s.Close(); cerr != nil {
		fmt.Fprintln(stderr, "outpost-sim: close:", cerr)
	}
	code := 0
	if err != nil {
		fmt.Fprintln(stderr, "outpost-sim:", err)
		code = 1
	}
	if sum != nil && s.SummaryPath != "" {
		if err := writeJSON(s.SummaryPath, sum); err != nil {
			fmt.Fprintln(stderr, "outpost-sim:", err)
			code = 1
		}
	}
	if sum != nil && len(sum.NotDrained) > 0 && code == 0 {
		code = 3
	}
	return code
}

// checkFiles raises the open-files limit and says whether it fits the fleet.
func checkFiles(gateways int, stdout, stderr io.Writer) {
	lim, err := raiseNoFile()
	if err != nil {
		fmt.Fprintln(stderr, "outpost-sim: open files limit:", err)
	}
	if lim == 0 {
		return
	}
	need := uint64(gateways*filesPerGateway + filesSpare)
	if lim < need {
		fmt.Fprintf(stderr, "outpost-sim: open files limit %d is below the %d that %d gateways need: raise it (ulimit -Hn)\n", lim, need, gateways)
		return
	}
	fmt.Fprintf(stdout, "open files limit %d (need about %d)\n", lim, need)
}

// ParseFlags reads the flags into s: -h prints the help to stdout and
// returns flag.ErrHelp; a bad flag prints the problem and the usage to
// stderr and returns a cli.UsageError.
func (s *Sim) ParseFlags(args []string, stdout, stderr io.Writer) error {
	fs := command.FlagSet()
	fs.IntVar(&s.Gateways, "gateways", 10, "number of simulated gateways")
	fs.IntVar(&s.Sensors, "sensors", 3, "sim sensors per gateway")
	metrics := fs.String("metrics", "temperature,humidity,pressure", "comma-separated metrics of every sensor")
	fs.DurationVar(&s.Interval, "interval", time.Second, "sensor poll interval")
	fs.IntVar(&s.Samples, "samples", 1, "readings per metric per poll")
	fs.StringVar(&s.Driver, "driver", config.SimDriver, "sensor driver: sim (values from signals) or bme280 (the periph driver against a simulated chip per sensor; --samples is 1)")
	fs.StringVar(&s.Broker, "broker", "", "MQTT broker URL (required unless --embedded)")
	fs.BoolVar(&s.Embedded, "embedded", false, "run an embedded broker and an ingest on SQLite in the data dir")
	fs.StringVar(&s.DataDir, "data-dir", "", "each gateway's outbox goes in DIR/<gateway-id> (default: a temp dir, removed at exit unless --keep)")
	fs.BoolVar(&s.Keep, "keep", false, "keep the temp data dir")
	fs.StringVar(&s.IDPrefix, "id-prefix", "sim-", "gateway id prefix; ids are PREFIX0001…")
	fs.DurationVar(&s.Duration, "duration", 0, "stop after this long (default: until Ctrl-C)")
	fs.DurationVar(&s.Every, "every", 5*time.Second, "interval of the progress line")
	fs.Int64Var(&s.Seed, "seed", 1, "seed of the simulated signals")
	fs.DurationVar(&s.Ramp, "ramp", 0, "start the gateways spread over this long")
	fs.DurationVar(&s.DrainTimeout, "drain-timeout", 30*time.Second, "at the end, how long to wait for the outboxes to drain")
	s.BufferMaxBytes = 64 << 20
	fs.Func("buffer-max-bytes", "cap of each gateway's outbox file, e.g. 64MiB (default 64MiB)", func(v string) error {
		b, err := config.ParseByteSize(v)
		s.BufferMaxBytes = b
		return err
	})
	fs.StringVar(&s.Ack, "ack", config.AckIngest, "delete batches on the ingest ack (ingest) or the broker's PUBACK (broker)")
	fs.BoolVar(&s.Live, "live", false, "publish the dashboard's retained live topics too")
	fs.StringVar(&s.SummaryPath, "summary", "", "write a JSON summary to this file at the end")
	fs.BoolVar(&s.Commands, "commands", false, "turn on the gateways' remote commands, each with a rules file of its own, and with --embedded the ingest's command courier: a fleet for outpost-ingest rules push (docs/commands.md)")
	fs.StringVar(&s.HTTP, "http", "", "with --embedded: serve the ingest's HTTP API and web console on this address, e.g. 127.0.0.1:8080")
	var lf cli.LogFlags
	lf.Register(fs, "warn", cli.FormatAuto)
	version := cli.VersionFlag(fs)
	if err := cli.Parse(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if err := cli.ShowVersion(version, "outpost-sim", stdout); err != nil {
		return err
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("outpost-sim: "+format, a...)) }
	if s.Gateways < 1 {
		bad("--gateways %d: want at least 1", s.Gateways)
	}
	if s.Sensors < 1 {
		bad("--sensors %d: want at least 1", s.Sensors)
	}
	if s.Driver != config.SimDriver && s.Driver != config.DriverBME280 {
		bad("--driver %q: want sim or bme280", s.Driver)
	}
	if s.Interval <= 0 {
		bad("--interval %s: want > 0", s.Interval)
	}
	if s.Every <= 0 {
		bad("--every %s: want > 0", s.Every)
	}
	if s.Duration < 0 || s.Ramp < 0 || s.DrainTimeout <= 0 {
		bad("--duration and --ramp want >= 0, --drain-timeout > 0")
	}
	switch {
	case s.Broker != "" && s.Embedded:
		bad("--broker and --embedded: give one")
	case s.Broker == "" && !s.Embedded:
		bad("--broker URL is required unless --embedded")
	}
	if s.HTTP != "" && !s.Embedded {
		bad("--http serves the embedded ingest: it needs --embedded")
	}
	if s.Ack != config.AckIngest && s.Ack != config.AckBroker {
		bad("--ack %q: want ingest or broker", s.Ack)
	}
	if s.BufferMaxBytes < 1 {
		bad("--buffer-max-bytes: want > 0")
	}
	s.Metrics = nil
	seen := map[string]bool{}
	for m := range strings.SplitSeq(*metrics, ",") {
		m = strings.TrimSpace(m)
		if m == "" || seen[m] {
			bad("--metrics %q: empty or repeated name", *metrics)
			break
		}
		seen[m] = true
		s.Metrics = append(s.Metrics, m)
	}
	if err := lf.Check(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return cli.UsageError{Err: err}
	}
	var err error
	s.log, err = cli.NewLogger(stderr, lf.Level, lf.Format)
	return err
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
