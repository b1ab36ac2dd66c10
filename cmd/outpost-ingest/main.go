// Command outpost-ingest consumes gateway batches from an MQTT broker into
// PostgreSQL or SQLite and serves them over HTTP.
//
//	outpost-ingest --broker tcp://127.0.0.1:1883 --db postgres://user@host/db --http 127.0.0.1:8080
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
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/cmd/internal/systemd"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
)

var command = cli.Command{
	Name: "outpost-ingest",
	Args: "[flags] | replay [flags] | rules replay [flags] | command [flags] NAME",
	Summary: `Consumes Outpost gateway batches from an MQTT broker (a shared subscription, so
several ingest processes share the load), or from a NATS JetStream stream
(--nats, a durable consumer they share; docs/nats.md), into PostgreSQL or
SQLite, exactly once, acks each batch to its gateway after the commit, and
serves the data over an HTTP API. "outpost-ingest replay" rebuilds a
database from the stream ("outpost-ingest replay --help"); "outpost-ingest
rules replay" backtests alert rules on a gateway's stored history
("outpost-ingest rules replay --help"); "outpost-ingest command" sends a
gateway a command and prints its reply ("outpost-ingest command --help").

Under systemd (Type=notify) it says READY=1 once the database is open and the
subscription made, and with WatchdogSec= pets the watchdog while its consumer
lives (docs/deploy.md, "The watchdog").`,
	Examples: []string{
		"outpost-ingest --broker tcp://127.0.0.1:1883 --db 'postgres://postgres@127.0.0.1:5432/outpost' --http 127.0.0.1:8080",
		"outpost-ingest --db sqlite:/var/lib/outpost-ingest/ingest.db",
		"outpost-ingest --broker ssl://broker.example.com:8883 --tls-ca ca.pem --username outpost-ingest --password-file /etc/outpost-ingest/mqtt.password --db sqlite:ingest.db",
		"outpost-ingest --auth-keys /etc/outpost-ingest/gateway.keys --auth required --db sqlite:ingest.db",
		"outpost-ingest --nats nats://127.0.0.1:4222 --stream-replicas 3 --db 'postgres://postgres@127.0.0.1:5432/outpost'",
	},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "replay" {
		return runReplay(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "rules" {
		return runRules(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "command" {
		return runCommand(args[1:], stdout, stderr)
	}
	m := NewMain()
	m.Stdout, m.Stderr = stdout, stderr
	if err := m.ParseFlags(args); err != nil {
		if !cli.Printed(err) {
			fmt.Fprintln(stderr, "outpost-ingest:", err)
		}
		return cli.ExitCode(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := m.openSystemd(); err != nil {
		fmt.Fprintln(stderr, "outpost-ingest: cannot start:", err)
		return cli.ExitFailure
	}
	defer m.closeSystemd()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "outpost-ingest: cannot start:", cli.OneLine(err))
		if cerr := m.Close(); cerr != nil {
			fmt.Fprintln(stderr, "outpost-ingest:", cerr)
		}
		return cli.ExitFailure
	}
	m.notifyReady()
	var failed error
wait:
	for {
		select {
		case <-hup:
			reloaded := m.notifyReloading()
			m.ReloadKeys()
			reloaded()
		case <-ctx.Done():
			m.Logger.Info().Msg("signal received; shutting down")
			break wait
		case failed = <-m.Failed():
			m.Logger.Error().Err(failed).Msg("http server failed; shutting down")
			break wait
		}
	}
	stop() // a second signal kills the process the default way
	m.notifyStopping()
	if err := m.Close(); err != nil {
		fmt.Fprintln(stderr, "outpost-ingest:", err)
		return cli.ExitFailure
	}
	if failed != nil {
		return cli.ExitFailure
	}
	return cli.ExitOK
}

// Timeouts of the binary.
const (
	startTimeout    = 30 * time.Second // store open, broker connect and subscribe
	shutdownTimeout = 30 * time.Second // HTTP drain and service close, together
)

// Main is the program: flags, wiring, and orderly shutdown. Tests run it
// in process.
type Main struct {
	Broker string
	// NATS, instead of Broker, is a NATS server URL: batches come from
	// the JetStream stream that Stream configures (docs/nats.md).
	NATS   string
	Stream ingest.StreamOptions
	// Username and PasswordFile log in to the broker (deploy/mosquitto);
	// Run reads the password from the file, once. TLSCA, TLSCert and
	// TLSKey are PEM files for ssl:// and wss:// brokers: the CAs to
	// trust, and the client certificate and key for mutual TLS.
	Username, PasswordFile string
	TLSCA, TLSCert, TLSKey string

	DB          string
	HTTP        string
	Group       string
	TopicPrefix string
	Workers     int
	Log         cli.LogFlags
	// MaxReconnect is the longest wait between reconnects to the broker.
	MaxReconnect time.Duration
	// MaxReadings caps one batch's readings and MaxFutureSkew how far
	// ahead of this clock data may be dated (ingest.Options).
	MaxReadings   int
	MaxFutureSkew time.Duration
	// CompactEvery is how often the store's rows of closed hours are
	// folded into chunks (ingest.Options.CompactEvery); 0: never.
	CompactEvery time.Duration
	// Retention and RetentionMinute are how long the raw data and the
	// minute rollups are kept (ingest.Options); 0: for ever.
	Retention, RetentionMinute time.Duration
	// HTTPTokenFile names the file holding the bearer token the HTTP API
	// requires; empty: the API is open. The token never comes from the
	// command line, where other users could see it.
	HTTPTokenFile string
	// HTTPMaxQueries and HTTPQueryTimeout bound the API's queries
	// (ingest.Options.MaxQueries, QueryTimeout).
	HTTPMaxQueries   int
	HTTPQueryTimeout time.Duration
	// HTTPMaxStreams bounds the live event streams open at once
	// (ingest.Options.MaxStreams).
	HTTPMaxStreams int
	// Auth is optional or required, and AuthKeys the file of the
	// gateways' keys, reloaded by ReloadKeys (SIGHUP) (ingest.Options
	// Auth and Keys).
	Auth     string
	AuthKeys string
	// Commands turns on the command courier (ingest.Options.Commands):
	// replies recorded, queued commands sent. MQTT only.
	Commands bool

	Stdout io.Writer      // help and version; default os.Stdout
	Stderr io.Writer      // logs and usage errors; default os.Stderr
	Logger zerolog.Logger // set by Run

	store  ingest.Store
	keys   *ingest.Keys
	svc    *ingest.Service
	srv    *http.Server
	addr   net.Addr
	failed chan error // the HTTP server's unexpected end
	served chan struct{}

	systemd *systemd.Unit // READY, STOPPING, the watchdog (systemd.go); nil: none
}

// NewMain returns a Main with the defaults.
func NewMain() *Main {
	return &Main{
		Broker:       "tcp://127.0.0.1:1883",
		DB:           "sqlite:outpost-ingest.db",
		HTTP:         "127.0.0.1:8080",
		Group:        ingest.DefaultGroup,
		TopicPrefix:  ingest.DefaultTopicPrefix,
		Workers:      ingest.DefaultWorkers,
		MaxReconnect: ingest.DefaultMaxReconnect,
		Stream:       ingest.StreamOptions{Name: ingest.DefaultStreamName, Replicas: 1, MaxAge: ingest.DefaultStreamMaxAge},
		Stdout:       os.Stdout,
		Stderr:       os.Stderr,
		failed:       make(chan error, 1),

		HTTPMaxQueries:   ingest.DefaultMaxQueries,
		HTTPMaxStreams:   ingest.DefaultMaxStreams,
		MaxReadings:      ingest.DefaultMaxReadings,
		MaxFutureSkew:    ingest.DefaultMaxFutureSkew,
		CompactEvery:     time.Minute,
		HTTPQueryTimeout: ingest.DefaultQueryTimeout,
		Auth:             string(ingest.AuthOptional),
		Commands:         true,
	}
}

// ParseFlags reads the command line into m. -h prints the help to
// m.Stdout and returns flag.ErrHelp; a bad flag prints the problem and the
// usage to m.Stderr and returns a cli.UsageError.
func (m *Main) ParseFlags(args []string) error {
	fs := command.FlagSet()
	fs.StringVar(&m.Broker, "broker", m.Broker, "MQTT broker `URL` (tcp://, ssl://, ws://)")
	fs.StringVar(&m.NATS, "nats", m.NATS, "NATS server `URL` (nats://host:4222): consume the JetStream stream of every gateway's batches instead of --broker (docs/nats.md)")
	fs.StringVar(&m.Stream.Name, "stream", m.Stream.Name, "with --nats: the stream's name")
	fs.IntVar(&m.Stream.Replicas, "stream-replicas", m.Stream.Replicas, "with --nats: copies of the stream in the cluster (1, 3 or 5)")
	fs.DurationVar(&m.Stream.MaxAge, "stream-max-age", m.Stream.MaxAge, "with --nats: how long the stream keeps a batch; negative: for ever")
	fs.Int64Var(&m.Stream.MaxBytes, "stream-max-bytes", m.Stream.MaxBytes, "with --nats: the stream's size cap in bytes, the oldest going first; 0: the server's own limits")
	fs.StringVar(&m.Username, "username", m.Username, "broker username (the ingest identity in the broker's ACL)")
	fs.StringVar(&m.PasswordFile, "password-file", m.PasswordFile, "`file` holding the broker password (one trailing newline removed); never logged")
	fs.StringVar(&m.TLSCA, "tls-ca", m.TLSCA, "PEM `file` of the CAs to trust for an ssl:// broker (default: the system's)")
	fs.StringVar(&m.TLSCert, "tls-cert", m.TLSCert, "PEM client certificate `file` for mutual TLS (with --tls-key)")
	fs.StringVar(&m.TLSKey, "tls-key", m.TLSKey, "PEM client key `file` for mutual TLS (with --tls-cert)")
	fs.StringVar(&m.DB, "db", m.DB, "database: postgres://… or sqlite:PATH (or a plain file path)")
	fs.StringVar(&m.HTTP, "http", m.HTTP, "HTTP API (with /metrics and /healthz) listen `address`; empty disables it")
	fs.StringVar(&m.Group, "group", m.Group, "shared subscription group; on a shared broker, a name of your own that nobody else knows (docs/security.md); with --nats, the name of the durable consumer every ingest process shares")
	fs.StringVar(&m.TopicPrefix, "topic-prefix", m.TopicPrefix, "topic prefix")
	fs.IntVar(&m.Workers, "workers", m.Workers, "concurrent batch commits")
	fs.DurationVar(&m.MaxReconnect, "max-reconnect", m.MaxReconnect, "longest wait between reconnects to the broker")
	fs.IntVar(&m.MaxReadings, "max-readings", m.MaxReadings, "most readings one batch may carry; a bigger one is dead-lettered and kept by its gateway (keep it at or above the fleet's batch.max_readings)")
	fs.DurationVar(&m.MaxFutureSkew, "max-future-skew", m.MaxFutureSkew, "how far ahead of this clock a reading, alert or status may be dated; later ones are dead-lettered")
	fs.DurationVar(&m.CompactEvery, "compact-every", m.CompactEvery, "how often the rows of closed hours are folded into chunks (docs/storage.md); 0: never (only one ingest process of a database compacts at a time)")
	fs.Var((*days)(&m.Retention), "retention", "how long readings, alerts, gaps, dead letters and the dedup ledger are kept, e.g. 90d (whole weeks are dropped, so up to a week more is kept; a batch made before that is acked and not stored); 0: for ever")
	fs.Var((*days)(&m.RetentionMinute), "retention-1m", "how long the minute rollups are kept, e.g. 365d; 0: for ever (the hour rollups are kept for ever)")
	fs.StringVar(&m.HTTPTokenFile, "http-token-file", m.HTTPTokenFile, "`file` holding the bearer token that /api/ and /metrics requests must carry (/healthz stays open); without it the API is open to all who reach it")
	fs.IntVar(&m.HTTPMaxQueries, "http-max-queries", m.HTTPMaxQueries, "HTTP API queries that may run at once; more get 503")
	fs.DurationVar(&m.HTTPQueryTimeout, "http-query-timeout", m.HTTPQueryTimeout, "longest HTTP API query, its streamed answer included")
	fs.IntVar(&m.HTTPMaxStreams, "http-max-streams", m.HTTPMaxStreams, "live event streams (/api/v1/events) that may be open at once; more get 503 (they take no query slot)")
	fs.StringVar(&m.AuthKeys, "auth-keys", m.AuthKeys, "`file` of the gateways' keys, lines \"GATEWAY-ID KEY\" (outpost key show); a gateway listed must sign its batches. Reloaded on SIGHUP, and when it changes")
	fs.BoolVar(&m.Commands, "commands", m.Commands, "record the gateways' replies to commands in the commands table, and send the commands queued for a gateway when it comes online (docs/commands.md); MQTT only")
	fs.StringVar(&m.Auth, "auth", m.Auth, "optional: gateways not in --auth-keys may send unsigned batches; required: their batches are refused")
	m.Log.Register(fs, "info", cli.FormatAuto)
	version := cli.VersionFlag(fs)
	if err := cli.Parse(fs, args, 0, m.Stdout, m.Stderr); err != nil {
		return err
	}
	if err := cli.ShowVersion(version, "outpost-ingest", m.Stdout); err != nil {
		return err
	}
	if m.Workers < 1 {
		return cli.Usagef("--workers must be at least 1, got %d", m.Workers)
	}
	if err := m.checkBroker(); err != nil {
		return err
	}
	if m.MaxReadings < 1 || m.MaxReadings > outpost.MaxBatchReadings {
		return cli.Usagef("--max-readings must be between 1 and %d, got %d", outpost.MaxBatchReadings, m.MaxReadings)
	}
	if m.MaxFutureSkew <= 0 {
		return cli.Usagef("--max-future-skew must be positive, got %v", m.MaxFutureSkew)
	}
	if m.CompactEvery < 0 {
		return cli.Usagef("--compact-every must not be negative, got %v", m.CompactEvery)
	}
	if m.HTTPMaxQueries < 1 {
		return cli.Usagef("--http-max-queries must be at least 1, got %d", m.HTTPMaxQueries)
	}
	if m.HTTPQueryTimeout <= 0 {
		return cli.Usagef("--http-query-timeout must be positive, got %v", m.HTTPQueryTimeout)
	}
	if m.HTTPMaxStreams < 1 {
		return cli.Usagef("--http-max-streams must be at least 1, got %d", m.HTTPMaxStreams)
	}
	switch ingest.AuthMode(m.Auth) {
	case ingest.AuthOptional:
	case ingest.AuthRequired:
		if m.AuthKeys == "" {
			return cli.Usagef("--auth required needs --auth-keys: without keys every batch would be refused")
		}
	default:
		return cli.Usagef("--auth must be optional or required, got %q", m.Auth)
	}
	return m.Log.Check()
}

// Run opens the store, binds the HTTP address, starts the service and
// returns once all are running. Close stops them (also after a failed Run).
func (m *Main) Run(ctx context.Context) error {
	var err error
	if m.Logger, err = cli.NewLogger(m.Stderr, m.Log.Level, m.Log.Format); err != nil {
		return err
	}
	broker, flag := m.Broker, "--broker"
	if m.NATS != "" {
		broker, flag = m.NATS, "--nats"
	}
	m.Logger.Info().Str("version", cli.Version().String()).Str("broker", redactBroker(broker)).Str("db", redactDSN(m.DB)).
		Str("http", m.HTTP).Msg("outpost-ingest starting")
	password, tlsConf, err := m.brokerLogin()
	if err != nil {
		return err
	}
	if u, _ := url.Parse(broker); u != nil && u.User != nil {
		m.Logger.Warn().Msg(flag + " holds credentials, which every user of this machine can see in its process list: use --username and --password-file")
	}

	var token string
	if m.HTTPTokenFile != "" {
		if token, err = readToken(m.HTTPTokenFile, m.Logger); err != nil {
			return err
		}
	}
	if m.AuthKeys != "" {
		if m.keys, err = loadKeys(m.AuthKeys); err != nil {
			return err
		}
		gws, n := m.keys.Len()
		m.Logger.Info().Str("file", m.AuthKeys).Int("gateways", gws).Int("keys", n).Str("auth", m.Auth).Msg("auth keys loaded")
	}

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	store, err := stores.Open(ctx, m.DB, m.Logger)
	if err != nil {
		if h := dbHint(m.DB, err); h != "" {
			return fmt.Errorf("open database %s: %w (%s)", redactDSN(m.DB), err, h)
		}
		return fmt.Errorf("open database %s: %w", redactDSN(m.DB), err)
	}
	m.store = store
	o := &ingest.Options{
		Broker:          m.Broker,
		Username:        m.Username,
		Password:        password,
		TLS:             tlsConf,
		Group:           m.Group,
		TopicPrefix:     m.TopicPrefix,
		Workers:         m.Workers,
		MaxReconnect:    m.MaxReconnect,
		MaxReadings:     m.MaxReadings,
		MaxFutureSkew:   m.MaxFutureSkew,
		CompactEvery:    compactEvery(m.CompactEvery),
		Retention:       m.Retention,
		RetentionMinute: m.RetentionMinute,
		Logger:          m.Logger,
		HTTPToken:       token,
		MaxQueries:      m.HTTPMaxQueries,
		QueryTimeout:    m.HTTPQueryTimeout,
		MaxStreams:      m.HTTPMaxStreams,
		Auth:            ingest.AuthMode(m.Auth),
		Keys:            m.keys,
		Commands:        m.Commands,
	}
	if m.NATS != "" {
		o.Broker, o.NATS, o.Stream, o.Commands = "", m.NATS, m.Stream, false
	}
	m.svc = ingest.New(m.store, o)
	var ln net.Listener
	if m.HTTP != "" {
		// Bind before connecting, so a taken port fails at once.
		if ln, err = net.Listen("tcp", m.HTTP); err != nil {
			return fmt.Errorf("http api: %w (pass another --http address, or --http '' to turn the API off)", err)
		}
		m.addr = ln.Addr()
	}
	if err := m.svc.Start(ctx); err != nil {
		if ln != nil {
			if cerr := ln.Close(); cerr != nil {
				m.Logger.Warn().Err(cerr).Msg("close listener")
			}
		}
		return err
	}
	if ln != nil {
		m.srv = &http.Server{
			Handler:           m.svc.Handler(),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second, // a query's streamed answer and an event stream set their own write deadlines
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		}
		// Shutdown waits for every request to end, and an event stream
		// never ends by itself: end them as Shutdown starts.
		m.srv.RegisterOnShutdown(m.svc.EndStreams)
		m.served = make(chan struct{})
		go func() {
			defer close(m.served)
			if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.failed <- err
			}
		}()
		m.Logger.Info().Str("addr", m.addr.String()).Bool("token", token != "").Msg("http api listening")
		if token == "" && !loopback(m.addr) {
			m.Logger.Warn().Str("addr", m.addr.String()).
				Msg("http api listens beyond loopback without a token: whoever reaches it reads all data; pass --http-token-file, or --http 127.0.0.1:PORT")
		}
	}
	return nil
}

// ReloadKeys reads the --auth-keys file again (SIGHUP) and logs the
// outcome; a file that fails keeps the keys loaded before.
func (m *Main) ReloadKeys() {
	if m.keys == nil {
		m.Logger.Info().Msg("SIGHUP: no --auth-keys file to reload")
		return
	}
	if err := checkKeysMode(m.AuthKeys); err != nil {
		m.Logger.Error().Err(err).Msg("SIGHUP: auth keys not reloaded; the keys loaded before stay")
		return
	}
	if err := m.keys.Reload(); err != nil {
		m.Logger.Error().Err(err).Msg("SIGHUP: auth keys not reloaded; the keys loaded before stay")
		return
	}
	gws, n := m.keys.Len()
	m.Logger.Info().Int("gateways", gws).Int("keys", n).Msg("SIGHUP: auth keys reloaded")
}

// Failed delivers an error if the HTTP server stops by itself.
func (m *Main) Failed() <-chan error { return m.failed }

// HTTPAddr is the bound HTTP address (useful with port 0), or nil.
func (m *Main) HTTPAddr() net.Addr { return m.addr }

// Close stops the HTTP API, then the service (which drains its workers),
// then closes the store. It is safe after a failed Run.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	var errs []error
	if m.srv != nil {
		if err := m.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		<-m.served
		m.srv = nil
	}
	if m.svc != nil {
		if err := m.svc.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if m.store != nil {
		if err := m.store.Close(); err != nil {
			errs = append(errs, err)
		}
		m.store = nil
	}
	return errors.Join(errs...)
}

// redactDSN is dsn fit for a log line or an error: a URL's password, in
// its user info or its query, is replaced.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		if strings.Contains(dsn, "://") {
			return "(a DSN that does not parse as a URL)"
		}
		return dsn
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// compactEvery maps the flag (0: never) to ingest.Options.CompactEvery
// (0: the default, negative: never).
func compactEvery(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// days is a duration flag that also takes whole days ("90d"), and
// refuses a negative one.
type days time.Duration

func (d *days) String() string {
	if *d == 0 {
		return "0"
	}
	if time.Duration(*d)%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(time.Duration(*d)/(24*time.Hour)), 10) + "d"
	}
	return time.Duration(*d).String()
}

func (d *days) Set(s string) error {
	var v time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		k, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return fmt.Errorf("%q: want whole days such as 90d, or a duration such as 36h", s)
		}
		v = time.Duration(k) * 24 * time.Hour
	} else {
		var err error
		if v, err = time.ParseDuration(s); err != nil || v < 0 {
			return fmt.Errorf("%q: want whole days such as 90d, or a duration such as 36h", s)
		}
	}
	*d = days(v)
	return nil
}
