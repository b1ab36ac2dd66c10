package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/examples"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/embedbroker"
	"github.com/outposthq/outpost/uplink"
)

// Demo is the whole pipeline in one process. End-to-end tests drive it too.
type Demo struct {
	// Flags.
	Duration    time.Duration
	SummaryPath string
	DataDir     string
	ConfigPath  string
	Broker      string
	DB          string
	HTTP        string
	Every       time.Duration
	Baseline    bool

	log        zerolog.Logger
	out        io.Writer  // live output; default io.Discard
	outMu      sync.Mutex // alerts come from the rule engine and from pollers
	tmpDir     string
	started    time.Time
	configPath string // the config the gateway runs
	dsn        string // the ingest database
	httpURL    string // the HTTP API's base URL; "" without --http

	broker  *embedbroker.Broker
	counter *wireCounter // for an external broker
	store   ingest.Store
	ingest  *ingest.Service
	server  *http.Server
	Gateway *gateway.Gateway
	Config  *config.Config
}

// Summary is what --summary writes: counted from the database and from what
// crossed the broker, not from the gateway's own tally.
type Summary struct {
	DurationS       float64 `json:"duration_s"`
	ReadingsEmitted int64   `json:"readings_emitted"`
	ReadingsStored  int64   `json:"readings_stored"`
	Duplicates      int64   `json:"duplicates"`
	AlertsRaised    int64   `json:"alerts_raised"` // rule alerts plus sensor health events
	HealthEvents    int64   `json:"health_events"` // of which sensor health events
	AlertsStored    int64   `json:"alerts_stored"`
	BatchesStored   int64   `json:"batches_stored"`
	DeadLetters     int64   `json:"dead_letters"`
	BytesOnWire     int64   `json:"bytes_on_wire"`
	BytesPerReading float64 `json:"bytes_per_reading"`
	ReadingsPerSec  float64 `json:"readings_per_sec"`
	Resent          int64   `json:"batches_resent"`
	// ReadingsPerBatch is readings stored per batch stored (alert
	// batches count too): what bytes_per_reading depends on most.
	ReadingsPerBatch float64 `json:"readings_per_batch"`
	// Database is the ingest database: a SQLite file's path, or the
	// DSN without its password.
	Database string `json:"database"`
	// Rules are the gateway's per-rule counters (its own tally), in rule
	// order.
	Rules []RuleSummary `json:"rules,omitempty"`
}

// RuleSummary is one rule's counters in Summary.
type RuleSummary struct {
	Rule        string  `json:"rule"`
	Evaluations uint64  `json:"evaluations"`
	Errors      uint64  `json:"errors"`
	Transitions uint64  `json:"transitions"`
	TimeMS      float64 `json:"time_ms"` // estimated from sampled evaluations
}

// BrokerURL is the broker the pipeline uses.
func (d *Demo) BrokerURL() string {
	if d.broker != nil {
		return d.broker.URL()
	}
	return d.Broker
}

// Start brings up broker, database, ingest and gateway. Components live
// until Close, not until ctx ends: Finish drains them first.
func (d *Demo) Start(ctx context.Context) error {
	if d.out == nil {
		d.out = io.Discard
	}
	if d.DataDir == "" {
		dir, err := os.MkdirTemp("", "outpost-demo-")
		if err != nil {
			return err
		}
		d.tmpDir, d.DataDir = dir, dir
	}
	if err := os.MkdirAll(d.DataDir, 0o755); err != nil {
		return err
	}
	bg := context.WithoutCancel(ctx)
	if d.Broker == "" {
		b, err := embedbroker.Start()
		if err != nil {
			return err
		}
		d.broker = b
	}
	cfg, err := d.loadConfig()
	if err != nil {
		return err
	}
	d.Config = cfg
	if d.broker == nil {
		d.counter, err = startWireCounter(d.Broker, cfg.Uplink.TopicPrefix)
		if err != nil {
			return err
		}
	}

	d.dsn = d.DB
	if d.dsn == "" {
		d.dsn = "sqlite:" + filepath.Join(d.DataDir, "ingest.db")
	}
	if d.store, err = stores.Open(bg, d.dsn, d.log); err != nil {
		return err
	}
	keys, err := d.gatewayKeys(cfg)
	if err != nil {
		return err
	}
	d.ingest = ingest.New(d.store, &ingest.Options{Broker: d.BrokerURL(), TopicPrefix: cfg.Uplink.TopicPrefix, Logger: d.log, Keys: keys})
	if err := d.ingest.Start(bg); err != nil {
		return err
	}
	if d.HTTP != "" {
		ln, err := net.Listen("tcp", d.HTTP)
		if err != nil {
			return err
		}
		d.httpURL = "http://" + dialAddr(ln.Addr())
		d.server = &http.Server{Handler: d.ingest.Handler(), ReadHeaderTimeout: 5 * time.Second}
		d.server.RegisterOnShutdown(d.ingest.EndStreams) // an open console's live streams end with the server
		go func() {
			if err := d.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error().Err(err).Msg("http server")
			}
		}()
	}

	// Rule alerts and sensor health events (rule sensor_health) alike.
	onAlert := func(a outpost.Alert) {
		d.outMu.Lock()
		defer d.outMu.Unlock()
		fmt.Fprintf(d.out, "  alert %-8s %s: %s\n", a.State, a.Fingerprint, a.Message)
	}
	if d.Gateway, err = gateway.New(cfg, &gateway.Options{Logger: d.log, OnAlert: onAlert}); err != nil {
		return err
	}
	d.printHeader(d.out)
	d.started = time.Now()
	return d.Gateway.Start(bg)
}

// loadConfig reads --config, or the built-in example written into the data
// dir, and points it at this demo's broker and data dir.
func (d *Demo) loadConfig() (*config.Config, error) {
	path := d.ConfigPath
	if path == "" {
		dir := filepath.Join(d.DataDir, "config")
		if err := examples.WriteTo(dir); err != nil {
			return nil, err
		}
		path = filepath.Join(dir, "gateway.yaml")
	}
	d.configPath = path
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	cfg.Uplink.Broker = d.BrokerURL()
	cfg.DataDir = filepath.Join(d.DataDir, "gateway")
	return cfg, cfg.Validate()
}

// gatewayKeys gives the demo's ingest service the gateway's key, made
// now if the gateway has none yet, so that the batches are checked and
// the acks signed as in a deployment; nil when the gateway signs nothing.
func (d *Demo) gatewayKeys(cfg *config.Config) (*ingest.Keys, error) {
	if cfg.Uplink.AuthMode() == config.AuthOff {
		return nil, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	k, _, _, err := uplink.LoadOrCreateKey(cfg.AuthKeyPath())
	if err != nil {
		return nil, err
	}
	return ingest.NewKeys(map[string][]outpost.Key{cfg.Gateway.ID: {k}})
}

// Live prints a status line every d.Every until ctx ends.
func (d *Demo) Live(ctx context.Context, w io.Writer) {
	every := d.Every
	if every <= 0 {
		every = 3 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last int64
	lastT := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			st := d.Gateway.Stats()
			is := d.ingest.Stats()
			rate := float64(st.ReadingsEmitted-last) / now.Sub(lastT).Seconds()
			last, lastT = st.ReadingsEmitted, now
			// Open: emitted and not yet in a sealed batch, which at low
			// rates waits for batch.max_delay (kept in the outbox meanwhile).
			open := max(0, st.ReadingsEmitted-st.ReadingsStored-st.ReadingsLost)
			fmt.Fprintf(w, "%6.0fs  %9.0f readings/s  emitted %d  open %d  in outbox %d batches  in flight %d  alerts %d  ingested %d readings\n",
				now.Sub(d.started).Seconds(), rate, st.ReadingsEmitted, open,
				st.Outbox.Batches[0]+st.Outbox.Batches[1], st.Uplink.InFlight, st.AlertsRaised+st.HealthEvents, is.Readings)
		}
	}
}

// Finish stops the sensors, waits until the outbox is drained into the
// database, and counts what arrived.
func (d *Demo) Finish(w io.Writer) (*Summary, error) {
	d.Gateway.StopSensors()
	elapsed := time.Since(d.started)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fmt.Fprintln(w, "stopping sensors; draining the outbox into the database…")
	if err := d.Gateway.WaitDrained(ctx); err != nil {
		return nil, err
	}
	drained := time.Since(d.started)
	c, err := d.store.Counts(ctx)
	if err != nil {
		return nil, err
	}
	st := d.Gateway.Stats()
	s := &Summary{
		DurationS:       elapsed.Seconds(),
		ReadingsEmitted: st.ReadingsEmitted,
		ReadingsStored:  c.Readings,
		Duplicates:      c.Readings - c.DistinctReadings,
		AlertsRaised:    st.AlertsRaised + st.HealthEvents,
		HealthEvents:    st.HealthEvents,
		AlertsStored:    c.Alerts,
		BatchesStored:   c.Batches,
		DeadLetters:     c.DeadLetters,
		BytesOnWire:     d.wireBytes(),
		Resent:          st.Uplink.Resent,
	}
	for _, r := range st.Rules {
		s.Rules = append(s.Rules, RuleSummary{Rule: r.Rule, Evaluations: r.Evaluations, Errors: r.Errors,
			Transitions: r.Transitions, TimeMS: float64(r.Time) / float64(time.Millisecond)})
	}
	if s.ReadingsStored > 0 {
		s.BytesPerReading = float64(s.BytesOnWire) / float64(s.ReadingsStored)
		s.ReadingsPerSec = float64(s.ReadingsStored) / drained.Seconds()
	}
	if s.BatchesStored > 0 {
		s.ReadingsPerBatch = float64(s.ReadingsStored) / float64(s.BatchesStored)
	}
	s.Database = d.database()
	fmt.Fprintf(w, "emitted %d, stored %d, duplicates %d, alerts raised %d (%d sensor health), stored %d, %.1f B/reading on the wire, %.0f readings/s end to end\n",
		s.ReadingsEmitted, s.ReadingsStored, s.Duplicates, s.AlertsRaised, s.HealthEvents, s.AlertsStored, s.BytesPerReading, s.ReadingsPerSec)
	if note := bytesNote(s, &d.Config.Batch); note != "" {
		fmt.Fprintln(w, note)
	}
	for _, ss := range st.Sensors {
		if ss.Failures > 0 || ss.Uncertain > 0 || ss.Bad > 0 {
			fmt.Fprintf(w, "sensor %s: %d readings (%d uncertain, %d bad), %d of %d polls failed, last error: %s\n",
				ss.Sensor, ss.Readings, ss.Uncertain, ss.Bad, ss.Failures, ss.Polls, orNone(ss.LastError))
		}
	}
	d.printDatabase(w)
	return s, nil
}

func (d *Demo) wireBytes() int64 {
	if d.broker != nil {
		return d.broker.Stats().BatchBytes
	}
	if d.counter != nil {
		return d.counter.bytes.Load()
	}
	return 0
}

// Close stops everything in reverse order. Safe after a failed Start.
func (d *Demo) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if d.Gateway != nil {
		if err := d.Gateway.Close(ctx); err != nil {
			d.log.Error().Err(err).Msg("close gateway")
		}
	}
	if d.server != nil {
		if err := d.server.Shutdown(ctx); err != nil {
			d.log.Error().Err(err).Msg("close http")
		}
	}
	if d.ingest != nil {
		if err := d.ingest.Close(ctx); err != nil {
			d.log.Error().Err(err).Msg("close ingest")
		}
	}
	if d.store != nil {
		if err := d.store.Close(); err != nil {
			d.log.Error().Err(err).Msg("close store")
		}
	}
	if d.counter != nil {
		d.counter.close()
	}
	if d.broker != nil {
		if err := d.broker.Close(); err != nil {
			d.log.Error().Err(err).Msg("close broker")
		}
	}
	if d.tmpDir != "" {
		if err := os.RemoveAll(d.tmpDir); err != nil {
			d.log.Error().Err(err).Msg("remove temp dir")
		}
	}
}

// wireCounter counts batch payload bytes crossing an external broker by
// subscribing to the batch topics itself.
type wireCounter struct {
	c     mqtt.Client
	bytes atomic.Int64
}

func startWireCounter(broker, prefix string) (*wireCounter, error) {
	w := &wireCounter{}
	o := mqtt.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("outpost-demo-counter-%d", time.Now().UnixNano())).
		SetCleanSession(true).SetConnectTimeout(10 * time.Second)
	w.c = mqtt.NewClient(o)
	if t := w.c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("wire counter: connect %s: %v", broker, t.Error())
	}
	t := w.c.Subscribe(prefix+"/+/batch", 1, func(_ mqtt.Client, m mqtt.Message) {
		w.bytes.Add(int64(len(m.Payload())))
	})
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		w.c.Disconnect(0)
		return nil, fmt.Errorf("wire counter: subscribe: %v", t.Error())
	}
	return w, nil
}

func (w *wireCounter) close() { w.c.Disconnect(250) }

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// printHeader says what runs where, and which faults the config injects
// on purpose, so that the warnings they cause read as expected.
func (d *Demo) printHeader(w io.Writer) {
	cfg := d.Config
	broker := d.BrokerURL()
	if d.broker != nil {
		broker += " (embedded)"
	}
	fmt.Fprintln(w, "outpost-demo: a gateway, the ingest service, a broker and a database in one process")
	fmt.Fprintf(w, "  broker    %s\n", broker)
	kind := "SQLite"
	if _, ok := sqlitePath(d.dsn); !ok {
		kind = "PostgreSQL"
	}
	fmt.Fprintf(w, "  database  %s (%s)\n", d.database(), kind)
	which := "--config"
	if d.ConfigPath == "" {
		which = "written from the built-in example"
	}
	fmt.Fprintf(w, "  config    %s (%s)\n", d.configPath, which)
	if len(cfg.Rules.Files) > 0 {
		fmt.Fprintf(w, "  rules     %s\n", strings.Join(cfg.Rules.Files, ", "))
	}
	if d.httpURL != "" {
		fmt.Fprintf(w, "  HTTP API  while the demo runs: curl -s %s/api/v1/latest\n", d.httpURL)
		fmt.Fprintf(w, "  console   open %s/ in a browser: the fleet, charts, alerts and gaps, live\n", d.httpURL)
	}
	fmt.Fprintf(w, "  gateway   %s with %d sensors; its alerts and sensor health events print as they happen\n", cfg.Gateway.ID, len(cfg.Sensors))
	if faults := injectedFaults(cfg); faults != "" {
		which := "This config"
		if d.ConfigPath == "" {
			which = "The example config"
		}
		fmt.Fprintf(w, "%s injects faults into simulated chips on purpose; the warnings they cause are expected:\n  %s\n", which, faults)
	}
}

// injectedFaults lists the simulated chips' faults, e.g. "lab-env: nack
// 2% of bus transactions; cold-room: dropout 20s–35s"; "" when none.
func injectedFaults(cfg *config.Config) string {
	var sensors []string
	for _, s := range cfg.Sensors {
		if s.Sim == nil || len(s.Sim.Faults) == 0 {
			continue
		}
		fs := make([]string, len(s.Sim.Faults))
		for i, f := range s.Sim.Faults {
			fs[i] = describeFault(f)
		}
		sensors = append(sensors, s.ID+": "+strings.Join(fs, ", "))
	}
	return strings.Join(sensors, "; ")
}

// describeFault says what a fault does and when, in a few words.
func describeFault(f config.Fault) string {
	// share is the fault's probability as "2% of <per>", or "every <one>".
	share := func(per, one string) string {
		if f.Probability == 0 || f.Probability == 1 {
			return "every " + one
		}
		return strconv.FormatFloat(f.Probability*100, 'g', 3, 64) + "% of " + per
	}
	var what string
	switch f.Kind {
	case config.FaultNACK:
		what = "nack " + share("bus transactions", "bus transaction")
	case config.FaultCRC:
		what = "CRC errors in " + share("reads", "read")
	case config.FaultSpikes:
		what = "spikes of ±" + strconv.FormatFloat(f.Magnitude, 'g', -1, 64) + " on " + share("measurements", "measurement")
	case config.FaultSlow:
		what = "slow by " + f.Delay.String() + " per transaction"
	case config.FaultStuck:
		what = "values stuck"
	case config.FaultDropout:
		what = "dropout"
	default:
		what = f.Kind
	}
	switch {
	case f.For > 0:
		what += " " + f.From.String() + "–" + (f.From + f.For).String()
	case f.From > 0:
		what += " from " + f.From.String()
	}
	return what
}

// bytesNote explains the bytes per reading of a run whose batches were
// small: "" when they were mostly full.
func bytesNote(s *Summary, b *config.BatchConfig) string {
	if s.ReadingsPerBatch == 0 || s.ReadingsPerBatch >= float64(b.MaxReadings)/2 {
		return ""
	}
	note := fmt.Sprintf("  (%.0f B/reading: batches sealed every %v held %.1f readings on average, and each carries its header and per-series headers",
		s.BytesPerReading, max(b.Interval, b.MaxDelay), s.ReadingsPerBatch)
	if b.Compression == "zstd" {
		note += fmt.Sprintf("; full batches of %d readings take ~0.1–3 B/reading", b.MaxReadings)
	}
	return note + ")"
}

// database names the ingest database: a SQLite file's path, or the DSN
// without its password.
func (d *Demo) database() string {
	if path, ok := sqlitePath(d.dsn); ok {
		return path
	}
	u, err := url.Parse(d.dsn)
	if err != nil {
		return "(the --db DSN)" // it may hold a password
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// sqlitePath is the file of a SQLite DSN (sqlite:PATH or a bare path).
func sqlitePath(dsn string) (string, bool) {
	if p, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		return p, true
	}
	if strings.Contains(dsn, "://") {
		return "", false
	}
	return dsn, true
}

// printDatabase says where the database is and how to look into it.
func (d *Demo) printDatabase(w io.Writer) {
	db := d.database()
	path, isSQLite := sqlitePath(d.dsn)
	if !isSQLite {
		fmt.Fprintf(w, "the database: %s (PostgreSQL); to look at it:\n", db)
		fmt.Fprintf(w, "  psql %s -c \"select sensor, metric, count(*), min(value), max(value) from readings group by sensor, metric\"\n", shellQuote(db))
		fmt.Fprintf(w, "  psql %s -c \"select to_timestamp(ts / 1e9), state, fingerprint, message from alerts order by ts\"\n", shellQuote(db))
		return
	}
	fmt.Fprintf(w, "the database: %s (SQLite; tables series, chunks, recent, rollup_1m, rollup_1h, alerts, batches, gaps, dead_letters, gateways and more; views latest and readings, the latter not readable by the sqlite3 shell)\n", path)
	if d.tmpDir != "" && within(d.tmpDir, path) {
		fmt.Fprintf(w, "  it is removed at exit with its temp dir: run with --data-dir DIR to keep it, and look at it with\n")
	} else {
		fmt.Fprintf(w, "  to look at it:\n")
	}
	q := shellQuote(path)
	// The readings view needs outpost_chunk_unpack, which the sqlite3
	// shell lacks: count the readings and show the newest of each series.
	fmt.Fprintf(w, "  sqlite3 %s \"select sensor, metric, (select coalesce(sum(n), 0) from chunks where series_id = id) + "+
		"(select count(*) from recent where series_id = id) as readings, datetime(last_ts / 1000000000, 'unixepoch'), last_value "+
		"from series order by sensor, metric\"\n", q)
	fmt.Fprintf(w, "  sqlite3 %s \"select datetime(ts / 1000000000, 'unixepoch'), state, fingerprint, message from alerts order by ts\"\n", q)
}

// within reports whether path is inside dir.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@,=", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// dialAddr is a listener's address as a client dials it: an unspecified
// host (":8080", "[::]:8080") becomes the loopback.
func dialAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
