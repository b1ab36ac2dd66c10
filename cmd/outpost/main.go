// Command outpost is the edge gateway.
//
//	outpost run   --config FILE [--broker URL] [--data-dir DIR] [--gateway-id ID]
//	outpost check --config FILE
//	outpost buffer stats|export --data-dir DIR
//	outpost rules test FILE...
//	outpost rules replay --rules FILE --input CSV
//
// Exit status: 0 success, 1 runtime failure, 2 invalid config or usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
)

const usage = `usage: outpost <command> [flags]

commands:
  run    --config FILE   run the gateway (flags --broker, --data-dir, --gateway-id override the file);
                         SIGHUP reloads the rules files
  check  --config FILE   validate the config and the rules it names; exit 2 with file:line:col on errors
  buffer stats|export --data-dir DIR   inspect the outbox of a stopped gateway
  rules  test FILE...    run unit tests of alert rules (exit 1 on a failed test)
  rules  replay --rules FILE --input CSV   run rules over recorded readings, print alert transitions
`

// errUsage marks errors that exit with status 2.
type errUsage struct{ err error }

func (e errUsage) Error() string { return e.err.Error() }
func (e errUsage) Unwrap() error { return e.err }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stderr)
	case "check":
		err = cmdCheck(args[1:], stdout)
	case "buffer":
		err = cmdBuffer(args[1:], stdout)
	case "rules":
		err = cmdRules(args[1:], stdout)

	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "outpost: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, err)
	var u errUsage
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// Main is the gateway command's state, reused by end-to-end tests.
type Main struct {
	ConfigPath string
	Broker     string
	DataDir    string
	GatewayID  string

	Config  *config.Config
	Gateway *gateway.Gateway
	Log     zerolog.Logger
}

// ParseFlags reads flags, loads the config and applies the overrides.
func (m *Main) ParseFlags(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("outpost run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&m.ConfigPath, "config", "", "config file (required)")
	fs.StringVar(&m.Broker, "broker", "", "MQTT broker URL, overrides uplink.broker")
	fs.StringVar(&m.DataDir, "data-dir", "", "data directory, overrides data_dir")
	fs.StringVar(&m.GatewayID, "gateway-id", "", "gateway id, overrides gateway.id")
	if err := fs.Parse(args); err != nil {
		return errUsage{err}
	}
	if m.ConfigPath == "" {
		return errUsage{errors.New("outpost: --config is required")}
	}
	cfg, err := config.Load(m.ConfigPath)
	if err != nil {
		return errUsage{err}
	}
	if m.Broker != "" {
		cfg.Uplink.Broker = m.Broker
	}
	if m.DataDir != "" {
		cfg.DataDir = m.DataDir
	}
	if m.GatewayID != "" {
		cfg.Gateway.ID = m.GatewayID
	}
	if err := cfg.Validate(); err != nil {
		return errUsage{err}
	}
	m.Config = cfg
	m.Log = newLogger(stderr, cfg.LogLevel)
	return nil
}

// Run builds and starts the gateway.
func (m *Main) Run(ctx context.Context) error {
	g, err := gateway.New(m.Config, &gateway.Options{Logger: m.Log})
	if err != nil {
		return err
	}
	m.Gateway = g
	return g.Start(ctx)
}

// Close stops the gateway, flushing into the outbox, and logs the rules'
// counters.
func (m *Main) Close() error {
	if m.Gateway == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := m.Gateway.Close(ctx)
	m.logRuleStats()
	return err
}

// logRuleStats logs the rules' totals since the start, and at debug level
// one line per rule.
func (m *Main) logRuleStats() {
	rs := m.Gateway.Stats().Rules
	if len(rs) == 0 {
		return
	}
	var evals, errs, trans uint64
	var spent time.Duration
	for _, s := range rs {
		evals, errs, trans, spent = evals+s.Evaluations, errs+s.Errors, trans+s.Transitions, spent+s.Time
		m.Log.Debug().Str("rule", s.Rule).Uint64("evaluations", s.Evaluations).Uint64("errors", s.Errors).
			Uint64("transitions", s.Transitions).Dur("time", s.Time).Msg("rule stats")
	}
	m.Log.Info().Int("rules", len(rs)).Uint64("evaluations", evals).Uint64("errors", errs).
		Uint64("transitions", trans).Dur("time", spent).Msg("rule stats since start")
}

func cmdRun(args []string, stderr io.Writer) error {
	m := &Main{}
	if err := m.ParseFlags(args, stderr); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		return errors.Join(err, m.Close())
	}
	m.Wait(ctx)
	m.Log.Info().Msg("signal received; stopping")
	return m.Close()
}

// Wait serves the running gateway until ctx ends: each SIGHUP reloads the
// rules files (a bad file is logged and the running rules stay).
func (m *Main) Wait(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			m.Log.Info().Msg("SIGHUP: reloading the rules")
			// ReloadRules logs its own errors; the gateway runs on.
			if err := m.Gateway.ReloadRules(); err == nil {
				m.Log.Info().Msg("rules reloaded")
			}
		}
	}
}

func cmdCheck(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("outpost check", flag.ContinueOnError)
	path := fs.String("config", "", "config file (required)")
	if err := fs.Parse(args); err != nil {
		return errUsage{err}
	}
	if *path == "" {
		return errUsage{errors.New("outpost: --config is required")}
	}
	if err := gateway.Check(*path, nil); err != nil {
		return errUsage{err}
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return nil
}

func newLogger(w io.Writer, level string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}).Level(lvl).With().Timestamp().Logger()
}
