package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
)

var replayCommand = cli.Command{
	Name: "outpost-ingest replay",
	Args: "--nats URL --db DSN [--from SEQ|TIME] [--to SEQ|TIME] [--follow] [flags]",
	Summary: `Rebuilds or back-fills a database from the JetStream stream of batches
(docs/nats.md): reads the stream from --from to --to with a consumer of its
own, in stream order, and stores every batch and gateway status in --db as
the live service does, deduplicated, acking no gateway. Against an empty
database it gives the rows the live ingest wrote. The live consumer is not
touched. SEQ is a stream sequence; TIME is RFC 3339, the time the stream
stored a message. Without --from it starts at the stream's first message;
without --to it ends at the last one the stream held when it started.
With --follow it goes on as messages come, until SIGINT or SIGTERM (or
--to): a second, independent consumer that keeps another database current.`,
	Examples: []string{
		"outpost-ingest replay --nats nats://127.0.0.1:4222 --db postgres://postgres@db/rebuilt",
		"outpost-ingest replay --nats nats://127.0.0.1:4222 --db sqlite:backfill.db --from 2026-12-01T00:00:00Z --to 2026-12-02T00:00:00Z",
		"outpost-ingest replay --nats nats://127.0.0.1:4222 --db postgres://postgres@analytics/outpost --follow",
	},
}

// position is a --from or --to: a stream sequence or a time.
type position struct {
	seq uint64
	t   time.Time
}

func (p *position) String() string {
	switch {
	case p.seq > 0:
		return strconv.FormatUint(p.seq, 10)
	case !p.t.IsZero():
		return p.t.Format(time.RFC3339Nano)
	}
	return ""
}

func (p *position) Set(s string) error {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n == 0 {
			return fmt.Errorf("stream sequences start at 1")
		}
		p.seq, p.t = n, time.Time{}
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("%q is neither a stream sequence nor an RFC 3339 time", s)
	}
	p.seq, p.t = 0, t
	return nil
}

// runReplay is `outpost-ingest replay`.
func runReplay(args []string, stdout, stderr io.Writer) int {
	m := NewMain()
	m.Stdout, m.Stderr = stdout, stderr
	m.DB, m.Broker = "", ""
	var from, to position
	var follow bool
	fs := replayCommand.FlagSet()
	fs.StringVar(&m.NATS, "nats", "", "NATS server `URL` (nats://host:4222)")
	fs.StringVar(&m.DB, "db", "", "the database to write: postgres://… or sqlite:PATH")
	fs.StringVar(&m.Stream.Name, "stream", m.Stream.Name, "the stream's name")
	fs.StringVar(&m.TopicPrefix, "topic-prefix", m.TopicPrefix, "the gateways' topic prefix")
	fs.Var(&from, "from", "first stream sequence, or RFC 3339 time, to replay")
	fs.Var(&to, "to", "last stream sequence, or RFC 3339 time, to replay (included)")
	fs.BoolVar(&follow, "follow", false, "go on as messages come, until SIGINT or SIGTERM (or --to)")
	fs.StringVar(&m.Username, "username", "", "NATS username")
	fs.StringVar(&m.PasswordFile, "password-file", "", "`file` holding the NATS password (one trailing newline removed); never logged")
	fs.StringVar(&m.TLSCA, "tls-ca", "", "PEM `file` of the CAs to trust (default: the system's)")
	fs.StringVar(&m.TLSCert, "tls-cert", "", "PEM client certificate `file` for mutual TLS (with --tls-key)")
	fs.StringVar(&m.TLSKey, "tls-key", "", "PEM client key `file` for mutual TLS (with --tls-cert)")
	fs.StringVar(&m.AuthKeys, "auth-keys", "", "`file` of the gateways' keys, checked as the live service does")
	fs.StringVar(&m.Auth, "auth", m.Auth, "optional or required, as for the live service")
	m.Log.Register(fs, "info", cli.FormatAuto)
	err := cli.Parse(fs, args, 0, stdout, stderr)
	switch {
	case err == nil && m.NATS == "":
		err = cli.Usagef("replay needs --nats")
	case err == nil && m.DB == "":
		err = cli.Usagef("replay needs --db")
	case err == nil && !from.t.IsZero() && !to.t.IsZero() && to.t.Before(from.t),
		err == nil && from.seq > 0 && to.seq > 0 && to.seq < from.seq:
		err = cli.Usagef("--to %s is before --from %s", &to, &from)
	}
	if err == nil {
		err = m.checkBroker()
	}
	if err != nil {
		if !cli.Printed(err) {
			fmt.Fprintln(stderr, "outpost-ingest replay:", err)
		}
		return cli.ExitCode(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.replay(ctx, from, to, follow); err != nil {
		fmt.Fprintln(stderr, "outpost-ingest replay:", cli.OneLine(err))
		return cli.ExitFailure
	}
	return cli.ExitOK
}

func (m *Main) replay(ctx context.Context, from, to position, follow bool) error {
	var err error
	if m.Logger, err = cli.NewLogger(m.Stderr, m.Log.Level, m.Log.Format); err != nil {
		return err
	}
	password, tlsConf, err := m.brokerLogin()
	if err != nil {
		return err
	}
	var keys *ingest.Keys
	if m.AuthKeys != "" {
		if keys, err = loadKeys(m.AuthKeys); err != nil {
			return err
		}
	}
	octx, cancel := context.WithTimeout(ctx, startTimeout)
	store, err := stores.Open(octx, m.DB, m.Logger)
	cancel()
	if err != nil {
		return fmt.Errorf("open database %s: %w", redactDSN(m.DB), err)
	}
	defer store.Close()
	start := time.Now()
	st, err := ingest.Replay(ctx, store, &ingest.ReplayOptions{
		NATS: m.NATS, Username: m.Username, Password: password, TLS: tlsConf,
		Stream: m.Stream.Name, TopicPrefix: m.TopicPrefix,
		FromSeq: from.seq, FromTime: from.t, ToSeq: to.seq, ToTime: to.t, Follow: follow,
		Auth: ingest.AuthMode(m.Auth), Keys: keys, Logger: m.Logger,
	})
	if err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Fprintf(m.Stdout, "replayed %d messages (stream sequence %d to %d) in %v: %d batches stored, %d already there, %d readings, %d statuses, %d dead letters\n",
		st.Messages, st.FirstSeq, st.LastSeq, took.Round(time.Millisecond), st.Batches, st.Duplicates, st.Readings, st.Statuses, st.DeadLetters)
	return nil
}
