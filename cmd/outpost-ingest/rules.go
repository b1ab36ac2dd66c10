package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/rules"
	"github.com/outposthq/outpost/rules/ruletest"
)

// The backtest lives here, not in the gateway binary `outpost` next to
// `outpost rules replay`: reading the database means linking the
// PostgreSQL and SQLite drivers, megabytes that `outpost`, which runs on
// Raspberry Pis within a 15 MB budget (docs/benchmarks.md, "Binary
// sizes"), must not carry (ARCHITECTURE.md: cmd/outpost never links pgx
// or SQLite). outpost-ingest links them already. Both commands run the
// same code (ruletest.ReplayFrom, ruletest.JSONWriter).

const rulesUsage = `usage: outpost-ingest rules replay|push [flags]

Backtests alert rules on the history stored in an ingest database
(docs/rules.md, "Backtest on stored history"), and pushes a rules file to a
fleet of gateways (docs/commands.md, "Rules to a fleet").

commands:
  replay  run rules over a gateway's stored readings and print the alert transitions
  push    send a rules file to gateways in waves, canary first, and show each outcome

Run 'outpost-ingest rules replay --help' or 'outpost-ingest rules push --help' for flags.

examples:
  outpost-ingest rules replay --db sqlite:ingest.db --rules rules.yaml --gateway office-gw --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z --summary
  outpost-ingest rules push --db sqlite:ingest.db --rules rules.yaml --label site=plant-3 --backtest 720h --max-episodes 30
`

var rulesReplayCommand = cli.Command{
	Name: "outpost-ingest rules replay",
	Args: "--db DSN --rules FILE [--rules FILE...] --gateway ID --from TIME --to TIME [flags]",
	Summary: `Backtests alert rules on a gateway's stored history: runs the rule engine over
the readings the database holds for the gateway with --from <= ts < --to, in
time order, on the readings' own clock, exactly as 'outpost rules replay' runs
it over a CSV, and prints one JSON object per alert transition, the same lines
(docs/rules.md, "Backtest on stored history"). With --summary it prints instead
a table of each rule's episodes, firing time and transitions: how often the
rules would have fired.

Only the series that a rule selects are read (and those --sensor and --metric
name), a page at a time per series, merged in time order: memory stays bounded
whatever the window, and one database connection is used. The engine has the
gateway's id (the gateway label) and its sensors' labels as the newest status
gave them. TIME is RFC 3339 or unix milliseconds, as the HTTP API's from and
to. The database is only read, but opening it upgrades an older schema as
outpost-ingest does.`,
	Examples: []string{
		"outpost-ingest rules replay --db sqlite:/var/lib/outpost-ingest/ingest.db --rules rules.yaml --gateway office-gw --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z",
		"outpost-ingest rules replay --db 'postgres://outpost@db/outpost' --rules co2.yaml --gateway office-gw --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z --summary",
		"outpost-ingest rules replay --db sqlite:ingest.db --rules rules.yaml --gateway office-gw --metric co2 --from 1764547200000 --to 1767225600000 | jq -r 'select(.state == \"firing\") | .ts'",
	},
}

// maxRuleFiles bounds --rules.
const maxRuleFiles = 100

// runRules is `outpost-ingest rules`.
func runRules(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 0:
		fmt.Fprint(stderr, rulesUsage)
		return cli.ExitUsage
	case args[0] == "push":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := rulesPush(ctx, args[1:], stdout, stderr)
		code := cli.ExitCode(err)
		switch {
		case err == nil || cli.Printed(err):
		case code == cli.ExitUsage:
			fmt.Fprintln(stderr, err)
		default:
			fmt.Fprintln(stderr, "outpost-ingest rules push:", cli.OneLine(err))
		}
		return code
	case args[0] == "replay":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := rulesReplay(ctx, args[1:], stdout, stderr)
		code := cli.ExitCode(err)
		switch {
		case err == nil || cli.Printed(err):
		case code == cli.ExitUsage:
			fmt.Fprintln(stderr, err) // a rules file's problems: one file:line:col per line
		default:
			fmt.Fprintln(stderr, "outpost-ingest rules replay:", cli.OneLine(err))
		}
		return code
	case cli.IsHelp(args[0]):
		fmt.Fprint(stdout, rulesUsage)
		return cli.ExitOK
	}
	fmt.Fprintf(stderr, "outpost-ingest rules: unknown command %q\n\n%s", args[0], rulesUsage)
	return cli.ExitUsage
}

// backtest is the command line of `outpost-ingest rules replay`, checked.
type backtest struct {
	db                      string
	ruleFiles               []string
	gateway, sensor, metric string
	from, to                int64 // unix ns
	reorder, tick           time.Duration
	summary                 bool
	log                     cli.LogFlags
}

// parseBacktest reads and checks the command line. Every problem is a
// usage error (exit 2), the rules files' with their positions.
func parseBacktest(args []string, stdout, stderr io.Writer) (*backtest, *rules.Set, error) {
	b := &backtest{}
	var from, to timeFlag
	fset := rulesReplayCommand.FlagSet()
	fset.StringVar(&b.db, "db", "", "the database to read, `DSN`: postgres://… or sqlite:PATH (required)")
	fset.Func("rules", "rules `file` (required; repeat for more)", func(s string) error {
		if len(b.ruleFiles) == maxRuleFiles {
			return fmt.Errorf("more than %d rules files", maxRuleFiles)
		}
		b.ruleFiles = append(b.ruleFiles, s)
		return nil
	})
	fset.StringVar(&b.gateway, "gateway", "", "the gateway `id` whose history is replayed (required); also the alerts' gateway label")
	fset.Var(&from, "from", "start of the window, included: `TIME`, RFC 3339 or unix milliseconds (required)")
	fset.Var(&to, "to", "end of the window, excluded: `TIME`, RFC 3339 or unix milliseconds (required)")
	fset.StringVar(&b.sensor, "sensor", "", "read only the series of this `sensor` (exact id)")
	fset.StringVar(&b.metric, "metric", "", "read only the series of this `metric` (exact name)")
	fset.DurationVar(&b.reorder, "reorder", 0, "as outpost rules replay's; stored readings come in time order, so 0 (none) gives the same output with the least memory")
	fset.DurationVar(&b.tick, "tick", ruletest.DefaultTick, "engine tick between readings, as the gateway's (0: none)")
	fset.BoolVar(&b.summary, "summary", false, "print a table of each rule's episodes, firing time and transitions instead of the transitions")
	b.log.Register(fset, "warn", cli.FormatAuto)
	if err := cli.Parse(fset, args, 0, stdout, stderr); err != nil {
		return nil, nil, err
	}
	b.from, b.to = from.ns, to.ns
	switch {
	case b.db == "":
		return nil, nil, cli.Usagef("outpost-ingest rules replay: --db is required (see outpost-ingest rules replay --help)")
	case len(b.ruleFiles) == 0:
		return nil, nil, cli.Usagef("outpost-ingest rules replay: --rules is required")
	case b.gateway == "":
		return nil, nil, cli.Usagef("outpost-ingest rules replay: --gateway is required")
	case !from.set:
		return nil, nil, cli.Usagef("outpost-ingest rules replay: --from is required")
	case !to.set:
		return nil, nil, cli.Usagef("outpost-ingest rules replay: --to is required")
	case b.from >= b.to:
		return nil, nil, cli.Usagef("outpost-ingest rules replay: --from %s must be before --to %s", fmtNS(b.from), fmtNS(b.to))
	case b.reorder < 0:
		return nil, nil, cli.Usagef("outpost-ingest rules replay: --reorder must not be negative, got %v", b.reorder)
	case b.tick < 0:
		return nil, nil, cli.Usagef("outpost-ingest rules replay: --tick must not be negative, got %v", b.tick)
	}
	for _, n := range []struct{ flag, v string }{{"gateway", b.gateway}, {"sensor", b.sensor}, {"metric", b.metric}} {
		if err := ingest.CheckID(n.v); err != nil {
			return nil, nil, cli.Usagef("outpost-ingest rules replay: --%s %w", n.flag, err)
		}
	}
	if err := b.log.Check(); err != nil {
		return nil, nil, err
	}
	set, err := rules.LoadFiles(b.ruleFiles...)
	if err != nil {
		return nil, nil, cli.UsageError{Err: err}
	}
	return b, set, nil
}

// rulesReplay is `outpost-ingest rules replay`.
func rulesReplay(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	b, set, err := parseBacktest(args, stdout, stderr)
	if err != nil {
		return err
	}
	logger, err := cli.NewLogger(stderr, b.log.Level, b.log.Format)
	if err != nil {
		return err
	}
	store, err := openExisting(ctx, b.db, logger)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close database %s: %w", redactDSN(b.db), cerr)
		}
	}()

	h, series, total, err := openHistory(ctx, store, set, b.gateway, b.sensor, b.metric, b.from, b.to)
	if err != nil {
		return err
	}
	opts := replayOptions(set, b.gateway, series, b.reorder, b.tick)
	if b.summary {
		sum := ruletest.NewSummary(set)
		if err := ruletest.ReplayFrom(ctx, set, h, sum.Add, opts); err != nil {
			return err
		}
		w := bufio.NewWriter(stdout)
		fmt.Fprintf(w, "# gateway %s, %s to %s: %d readings of %d of its %d series (those the rules select, with readings in the window)",
			b.gateway, fmtNS(b.from), fmtNS(b.to), h.readings, len(series), total)
		if h.readings > 0 {
			fmt.Fprintf(w, ", the last at %s", fmtNS(h.last))
		}
		fmt.Fprintln(w)
		if err := ruletest.WriteSummary(w, sum.Finish(h.last)); err != nil {
			return err
		}
		return w.Flush()
	}
	w := ruletest.NewJSONWriter(stdout)
	err = ruletest.ReplayFrom(ctx, set, h, w.Write, opts)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if h.readings == 0 {
		fmt.Fprintf(stderr, "outpost-ingest rules replay: no readings in the window: gateway %q has %d series, %d of them selected by the rules and with readings from %s to %s\n",
			b.gateway, total, len(series), fmtNS(b.from), fmtNS(b.to))
	}
	return nil
}

// openHistory selects the series of gateway that the rules (and sensor
// and metric, when not "") select, and opens their readings from from
// to to for a replay. A gateway without such series is an error.
func openHistory(ctx context.Context, store ingest.Store, set *rules.Set, gateway, sensor, metric string, from, to int64) (h *history, series []ingest.SeriesInfo, total int, err error) {
	series, total, err = historySeries(ctx, store, set, gateway, sensor, metric, from, to)
	if err != nil {
		return nil, nil, 0, err
	}
	if total == 0 {
		what := ""
		if sensor != "" {
			what += " of sensor " + strconv.Quote(sensor)
		}
		if metric != "" {
			what += " of metric " + strconv.Quote(metric)
		}
		return nil, nil, 0, fmt.Errorf("gateway %q has no series%s stored (check the gateway id against /api/v1/series or the console): %w", gateway, what, errNoSeries)
	}
	h, err = newHistory(ctx, store, gateway, series, from, to)
	if err != nil {
		return nil, nil, 0, err
	}
	return h, series, total, nil
}

// errNoSeries is wrapped by openHistory's error for a gateway without
// series to replay.
var errNoSeries = errors.New("nothing to replay")

// replayOptions are a backtest's: the engine has the gateway's id and
// its sensors' labels; a zero reorder or tick means none.
func replayOptions(set *rules.Set, gateway string, series []ingest.SeriesInfo, reorder, tick time.Duration) *ruletest.ReplayOptions {
	labels := map[string]map[string]string{}
	for _, si := range series {
		if len(si.Labels) > 0 && labels[si.Sensor] == nil {
			labels[si.Sensor] = si.Labels
		}
	}
	opts := &ruletest.ReplayOptions{Reorder: reorder, Tick: tick, Engine: &rules.Options{Gateway: gateway, SensorLabels: labels}}
	if reorder == 0 {
		opts.Reorder = -1 // the flag's 0 means none; the option's 0 means the default
	}
	if tick == 0 {
		opts.Tick = -1
	}
	return opts
}

// backtestResult is a backtest's summary.
type backtestResult struct {
	rules    []ruletest.RuleSummary
	readings int64
}

// backtestSummary backtests set on gateway's readings from from to to,
// as `rules replay --summary` does, for a push's --backtest.
func backtestSummary(ctx context.Context, store ingest.Store, set *rules.Set, gateway string, from, to int64) (backtestResult, error) {
	h, series, _, err := openHistory(ctx, store, set, gateway, "", "", from, to)
	if err != nil {
		return backtestResult{}, err
	}
	sum := ruletest.NewSummary(set)
	if err := ruletest.ReplayFrom(ctx, set, h, sum.Add, replayOptions(set, gateway, series, 0, ruletest.DefaultTick)); err != nil {
		return backtestResult{}, err
	}
	return backtestResult{rules: sum.Finish(h.last), readings: h.readings}, nil
}

// openExisting opens the database of a tool that reads what an
// ingest service stored (a backtest, a push, an audited command): a
// SQLite file must exist, and errors carry the DSN without its password.
func openExisting(ctx context.Context, dsn string, logger zerolog.Logger) (ingest.Store, error) {
	if err := checkSQLiteExists(dsn); err != nil {
		return nil, err
	}
	octx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	store, err := stores.Open(octx, dsn, logger)
	if err != nil {
		if h := dbHint(dsn, err); h != "" {
			return nil, fmt.Errorf("open database %s: %w (%s)", redactDSN(dsn), err, h)
		}
		return nil, fmt.Errorf("open database %s: %w", redactDSN(dsn), err)
	}
	return store, nil
}

// checkSQLiteExists refuses a SQLite file that is not there: opening one
// creates it, and a backtest of a misspelt path would then report an
// empty history, and leave an empty database behind.
func checkSQLiteExists(dsn string) error {
	path, ok := strings.CutPrefix(dsn, "sqlite:")
	if !ok {
		if strings.ContainsAny(dsn, ":=") {
			return nil // postgres://…, or what stores.Open refuses
		}
		path = dsn
	}
	if path == "" {
		return nil // stores.Open says what is wrong
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("open database %s: no such file (a backtest reads an existing database)", dsn)
	}
	return nil
}

// timeFlag is --from or --to: RFC 3339 or unix milliseconds, within the
// years unix nanoseconds hold — the rules of the HTTP API's from and to
// (ingest's parseTime).
type timeFlag struct {
	ns  int64
	set bool
}

// maxTimeFlag bounds a time's text, so that an error quoting it stays short.
const maxTimeFlag = 64

func (t *timeFlag) String() string {
	if !t.set {
		return ""
	}
	return fmtNS(t.ns)
}

func (t *timeFlag) Set(s string) error {
	if len(s) > maxTimeFlag {
		return fmt.Errorf("longer than %d bytes", maxTimeFlag)
	}
	var v time.Time
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		v = time.UnixMilli(ms)
	} else if v, err = time.Parse(time.RFC3339Nano, s); err != nil {
		return fmt.Errorf("want RFC 3339 (2026-11-01T00:00:00Z) or unix milliseconds, got %q", s)
	}
	if y := v.Year(); y < 1678 || y > 2261 {
		return fmt.Errorf("%q is out of range (years 1678 to 2261)", s)
	}
	t.ns, t.set = v.UnixNano(), true
	return nil
}

// fmtNS is unix ns as RFC 3339 with nanoseconds, UTC.
func fmtNS(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// history is what ReplayFrom reads.
var _ ruletest.ReadingSource = (*history)(nil)
