// Command outpost-ingest consumes gateway batches from an MQTT broker into
// PostgreSQL or SQLite and serves them over HTTP.
//
//	outpost-ingest --broker tcp://127.0.0.1:1883 --db postgres://user@host/db --http 127.0.0.1:8080
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
)

func main() {
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2) // flag has printed the problem and the usage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "outpost-ingest:", err)
		if cerr := m.Close(); cerr != nil {
			fmt.Fprintln(os.Stderr, "outpost-ingest:", cerr)
		}
		os.Exit(1)
	}
	var failed error
	select {
	case <-ctx.Done():
		m.Logger.Info().Msg("signal received; shutting down")
	case failed = <-m.Failed():
		m.Logger.Error().Err(failed).Msg("http server failed; shutting down")
	}
	stop() // a second signal kills the process the default way
	if err := m.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "outpost-ingest:", err)
		os.Exit(1)
	}
	if failed != nil {
		os.Exit(1)
	}
}

// Timeouts of the binary.
const (
	startTimeout    = 30 * time.Second // store open, broker connect and subscribe
	shutdownTimeout = 30 * time.Second // HTTP drain and service close, together
)

// Main is the program: flags, wiring, and orderly shutdown. Tests run it
// in process.
type Main struct {
	Broker      string
	DB          string
	HTTP        string
	Group       string
	TopicPrefix string
	Workers     int
	LogLevel    string
	// MaxReconnect is the longest wait between reconnects to the broker.
	MaxReconnect time.Duration

	Stderr io.Writer      // logs; default os.Stderr
	Logger zerolog.Logger // set by Run

	store  ingest.Store
	svc    *ingest.Service
	srv    *http.Server
	addr   net.Addr
	failed chan error // the HTTP server's unexpected end
	served chan struct{}
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
		LogLevel:     "info",
		Stderr:       os.Stderr,
		failed:       make(chan error, 1),
	}
}

// ParseFlags reads the command line into m.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("outpost-ingest", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.StringVar(&m.Broker, "broker", m.Broker, "MQTT broker `URL` (tcp://, ssl://, ws://)")
	fs.StringVar(&m.DB, "db", m.DB, "database: postgres://… or sqlite:PATH (or a plain file path)")
	fs.StringVar(&m.HTTP, "http", m.HTTP, "HTTP API listen `address`; empty disables the API")
	fs.StringVar(&m.Group, "group", m.Group, "shared subscription group")
	fs.StringVar(&m.TopicPrefix, "topic-prefix", m.TopicPrefix, "topic prefix")
	fs.IntVar(&m.Workers, "workers", m.Workers, "concurrent batch commits")
	fs.DurationVar(&m.MaxReconnect, "max-reconnect", m.MaxReconnect, "longest wait between reconnects to the broker")
	fs.StringVar(&m.LogLevel, "log-level", m.LogLevel, "trace, debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: outpost-ingest [flags]\n\nConsumes Outpost gateway batches from MQTT into a database and serves them over HTTP.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected arguments %q", fs.Args())
		fmt.Fprintln(fs.Output(), err)
		return err
	}
	if m.Workers < 1 {
		err := fmt.Errorf("--workers must be at least 1")
		fmt.Fprintln(fs.Output(), err)
		return err
	}
	if _, err := zerolog.ParseLevel(m.LogLevel); err != nil || m.LogLevel == "" {
		err := fmt.Errorf("--log-level %q: want trace, debug, info, warn or error", m.LogLevel)
		fmt.Fprintln(fs.Output(), err)
		return err
	}
	return nil
}

// Run opens the store, binds the HTTP address, starts the service and
// returns once all are running. Close stops them (also after a failed Run).
func (m *Main) Run(ctx context.Context) error {
	level, err := zerolog.ParseLevel(m.LogLevel)
	if err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	m.Logger = zerolog.New(zerolog.ConsoleWriter{Out: m.Stderr, TimeFormat: time.RFC3339}).
		Level(level).With().Timestamp().Logger()

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if m.store, err = stores.Open(ctx, m.DB, m.Logger); err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	m.svc = ingest.New(m.store, &ingest.Options{
		Broker:       m.Broker,
		Group:        m.Group,
		TopicPrefix:  m.TopicPrefix,
		Workers:      m.Workers,
		MaxReconnect: m.MaxReconnect,
		Logger:       m.Logger,
	})
	var ln net.Listener
	if m.HTTP != "" {
		// Bind before connecting, so a taken port fails at once.
		if ln, err = net.Listen("tcp", m.HTTP); err != nil {
			return fmt.Errorf("http: %w", err)
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
			WriteTimeout:      60 * time.Second, // a 100000-point range takes a while
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
		}
		m.served = make(chan struct{})
		go func() {
			defer close(m.served)
			if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.failed <- err
			}
		}()
		m.Logger.Info().Str("addr", m.addr.String()).Msg("http api listening")
	}
	return nil
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
