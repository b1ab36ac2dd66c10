package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/cmd/internal/systemd"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/internal/pageout"
)

var runCmd = cli.Command{
	Name: "outpost run",
	Args: "--config FILE [flags]",
	Summary: `Runs the gateway: polls the sensors, evaluates the rules, stores every
reading and alert in the outbox (DATA_DIR/outbox.db) and forwards them to the
broker, deleting them only once the ingest service has committed them.

SIGHUP reloads the rules files. SIGUSR1 logs one "stats" line: Go heap,
goroutines and the pipeline's counters. SIGTERM or SIGINT stops the sensors, seals
the open batch and keeps delivering for up to shutdown_grace (default 5s);
a second signal stops at once. What is not delivered stays in the outbox for
the next start.

Under systemd (Type=notify) it says READY=1 once the outbox is open and the
sensors are started, and with WatchdogSec= pets the watchdog only while the
pipeline moves (docs/deploy.md, "The watchdog").`,
	Examples: []string{
		"outpost run --config /etc/outpost/gateway.yaml",
		"outpost run --config fleet.yaml --gateway-id gw-17 --data-dir /var/lib/outpost",
	},
}

var checkCmd = cli.Command{
	Name: "outpost check",
	Args: "--config FILE [flags]",
	Summary: `Validates the config with the same overrides as run, and the files it names
(rules, TLS certificates and keys, the password file). Every problem is printed
as file:line:col: message; the exit status is 2 if there is any.`,
	Examples: []string{"outpost check --config /etc/outpost/gateway.yaml --gateway-id gw-17"},
}

// Main is the gateway command's state, reused by end-to-end tests.
type Main struct {
	ConfigPath string
	Overrides  config.Overrides
	LogFlags   cli.LogFlags

	Config  *config.Config
	Gateway *gateway.Gateway
	Log     zerolog.Logger
	// GlobalLevel makes ParseFlags build Log with cli.NewProcessLogger:
	// zerolog's global level is then the process's log level, which the
	// gateway's log.level command may lower below the configured one
	// (to debug) as well as raise. The outpost binary sets it; tests,
	// which run gateways side by side in one process, leave it off and
	// get a logger at the configured level, the global level untouched.
	GlobalLevel bool

	systemd *systemd.Unit // READY, STOPPING, the watchdog (systemd.go); nil: none
}

// flags registers the flags run and check share.
func (m *Main) flags(fs *flag.FlagSet) {
	fs.StringVar(&m.ConfigPath, "config", "", "config `file` (required)")
	fs.StringVar(&m.Overrides.Broker, "broker", "", "MQTT broker `URL`; overrides uplink.broker")
	fs.StringVar(&m.Overrides.DataDir, "data-dir", "", "data `directory` (outbox, rule state); overrides data_dir; relative to the working directory")
	fs.StringVar(&m.Overrides.GatewayID, "gateway-id", "", "gateway `id`; overrides gateway.id (a fleet can ship one file without it)")
}

// ParseFlags reads run's flags, loads the config with the overrides, and
// builds the logger.
func (m *Main) ParseFlags(args []string, stdout, stderr io.Writer) error {
	fs := runCmd.FlagSet()
	m.flags(fs)
	m.LogFlags.Register(fs, "", "")
	if err := cli.Parse(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if err := m.LogFlags.Check(); err != nil {
		return err
	}
	if m.ConfigPath == "" {
		return cli.Usagef("outpost run: --config is required (see outpost run --help)")
	}
	cfg, err := config.LoadWith(m.ConfigPath, &config.LoadOptions{Overrides: m.Overrides})
	if err != nil {
		return cli.UsageError{Err: err}
	}
	m.Config = cfg
	level, format := cfg.LogLevel, cfg.LogFormat
	if m.LogFlags.Level != "" {
		level = m.LogFlags.Level
	}
	if m.LogFlags.Format != "" {
		format = m.LogFlags.Format
	}
	newLogger := cli.NewLogger
	if m.GlobalLevel {
		newLogger = cli.NewProcessLogger
	}
	if m.Log, err = newLogger(stderr, level, format); err != nil {
		return cli.UsageError{Err: err}
	}
	return nil
}

// statusVersion is the version the gateway's status document carries:
// what `outpost version` prints, "outpost v1.2.3 go1.26.8 linux/arm".
func statusVersion() string { return "outpost " + cli.Version().String() }

// Run builds and starts the gateway. A failure is one error that says what
// failed and what to do; nothing is left running or locked.
func (m *Main) Run(ctx context.Context) error {
	m.Log.Info().Str("version", cli.Version().String()).Str("config", m.ConfigPath).
		Str("gateway", m.Config.Gateway.ID).Str("data_dir", m.Config.DataDir).Msg("outpost starting")
	g, err := gateway.New(m.Config, &gateway.Options{Logger: m.Log, Version: statusVersion()})
	if err != nil {
		return startError(err)
	}
	if err := g.Start(ctx); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return errors.Join(startError(err), g.Close(cctx))
	}
	m.Gateway = g
	// Start-up is over: give the kernel back the pages of the binary it
	// mapped for it (internal/pageout).
	if r, err := pageout.Release(); err != nil {
		m.Log.Debug().Err(err).Msg("start-up pages kept")
	} else {
		m.Log.Debug().Int64("file_resident_before", r.FileBefore).Int64("file_resident_after", r.FileAfter).
			Msg("start-up pages given back")
	}
	return nil
}

// Shutdown stops the gateway gracefully: the sensors stop, the open batch
// is sealed, and the uplink delivers for up to shutdown_grace, or until
// ctx ends (a second signal). Then it logs the rules' counters.
func (m *Main) Shutdown(ctx context.Context) error {
	if m.Gateway == nil {
		return nil
	}
	err := m.Gateway.Shutdown(ctx)
	m.logRuleStats()
	return err
}

// Close stops the gateway at once, flushing into the outbox, and logs the
// rules' counters.
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
			Uint64("transitions", s.Transitions).Dur("eval_time", s.Time).Msg("rule stats")
	}
	m.Log.Info().Int("rules", len(rs)).Uint64("evaluations", evals).Uint64("errors", errs).
		Uint64("transitions", trans).Dur("eval_time", spent).Msg("rule stats since start")
}

// defaultGOGC is the gateway's garbage-collection target unless GOGC
// is set: a live heap of 1–3 MiB then grows by half before a collection
// instead of doubling, from 2 MiB rather than 4 MiB. That takes about
// 1.2 MiB off the resident set at 10 000 readings/s for a fraction of a
// percent of a core, and made no difference at 6 M readings/s
// (docs/deploy.md, "Memory over time").
const defaultGOGC = 50

func cmdRun(args []string, stdout, stderr io.Writer) error {
	m := &Main{GlobalLevel: true}
	if err := m.ParseFlags(args, stdout, stderr); err != nil {
		return err
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGOGC)
	}
	// Caught from here on, so that a signal during start-up is not lost.
	sigs := make(chan os.Signal, 4)
	notify := []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}
	if statsSignal != nil {
		notify = append(notify, statsSignal)
	}
	signal.Notify(sigs, notify...)
	defer signal.Stop(sigs)
	if err := m.openSystemd(); err != nil {
		return err
	}
	defer m.closeSystemd() // after Shutdown: a wedged stop stops the petting too
	if err := m.Run(context.Background()); err != nil {
		return err
	}
	m.notifyReady()
	sig := m.Serve(sigs)
	m.notifyStopping()
	m.Log.Info().Str("signal", sig.String()).Dur("grace", m.Config.Grace()).
		Msg("stopping: delivering what is stored (signal again to stop at once)")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGHUP {
					continue
				}
				if statsSignal != nil && s == statsSignal {
					m.logStats()
					continue
				}
				m.Log.Warn().Str("signal", s.String()).Msg("second signal: stopping at once")
				cancel()
				return
			case <-done:
				return
			}
		}
	}()
	err := m.Shutdown(ctx)
	close(done)
	<-waited
	cancel()
	return err
}

// Serve runs until SIGTERM or SIGINT arrives on sigs, which it returns;
// each SIGHUP reloads the rules files (a bad file is logged and the
// running rules stay); each SIGUSR1 logs a line of stats.
func (m *Main) Serve(sigs <-chan os.Signal) os.Signal {
	for s := range sigs {
		if statsSignal != nil && s == statsSignal {
			m.logStats()
			continue
		}
		if s != syscall.SIGHUP {
			return s
		}
		m.Log.Info().Msg("SIGHUP: reloading the rules")
		reloaded := m.notifyReloading()
		// ReloadRules logs its own errors; the gateway runs on.
		if err := m.Gateway.ReloadRules(); err == nil {
			m.Log.Info().Msg("rules reloaded")
		}
		reloaded()
	}
	return nil
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	m := &Main{}
	fs := checkCmd.FlagSet()
	m.flags(fs)
	if err := cli.Parse(fs, args, 0, stdout, stderr); err != nil {
		return err
	}
	if m.ConfigPath == "" {
		return cli.Usagef("outpost check: --config is required (see outpost check --help)")
	}
	if err := gateway.Check(m.ConfigPath, &m.Overrides); err != nil {
		return cli.UsageError{Err: err}
	}
	_, err := fmt.Fprintf(stdout, "%s: ok\n", m.ConfigPath)
	return err
}
