package main

// `outpost-ingest command`: send one command to a gateway and print its
// reply (docs/commands.md). It logs in as the cloud's identity, which
// the broker's ACL lets alone publish to {prefix}/+/cmd/# and read
// {prefix}/+/reply/# (deploy/mosquitto/acl).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/cmd/internal/cli"
	gwcmd "github.com/outposthq/outpost/gateway/command"
	"github.com/outposthq/outpost/ingest"
)

// maxCommandTimeout bounds --timeout: the gateway refuses a deadline
// further ahead than a day, and that of a signed request further ahead
// than maxSignedTimeout.
const (
	maxCommandTimeout = gwcmd.MaxAhead
	maxSignedTimeout  = gwcmd.MaxSignedAhead
)

var commandCmd = cli.Command{
	Name: "outpost-ingest command",
	Args: "--gateway ID [flags] NAME",
	Summary: `Sends the command NAME to a gateway over the broker and prints its reply as a
JSON line: {"id","status","ts","body"}, body the command's result (or error)
as JSON. Arguments go in the request's body map: --arg KEY=VALUE a string,
--file KEY=PATH a file's bytes. The request expires after --timeout, and the
gateway never runs an expired one. Exit status 0 for "ok", 1 for any other
reply or none (the gateway offline, or its uplink.commands off), 2 for bad
flags. It logs in with --username and --password-file as the cloud's
identity, which the broker's ACL must let publish to {prefix}/+/cmd/# and read
{prefix}/+/reply/#.

With --auth-keys, the keys file outpost-ingest takes, a request to a gateway
listed there is signed with its keys, and its reply must carry the gateway's
MAC, or the command fails; a gateway with a key runs no unsigned request. A
gateway not in the file gets an unsigned request. A signed request lives at
most 10m (--timeout), so that a copy of it replayed after the gateway has
forgotten its id has expired.`,
	Examples: []string{
		"outpost-ingest command --gateway gw-01 ping",
		"outpost-ingest command --gateway gw-01 --arg level=debug log.level",
		"outpost-ingest command --gateway gw-01 --file content=rules.yaml rules.set",
		"outpost-ingest command --auth-keys /etc/outpost-ingest/gateway.keys --gateway gw-01 ping",
	},
}

// kvList is a repeatable KEY=VALUE flag.
type kvList [][2]string

func (l *kvList) String() string { return fmt.Sprint(*l) }

func (l *kvList) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return errors.New("want KEY=VALUE")
	}
	*l = append(*l, [2]string{k, v})
	return nil
}

func runCommand(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := sendCommand(ctx, args, stdout, stderr)
	if err != nil && !cli.Printed(err) {
		fmt.Fprintln(stderr, "outpost-ingest command:", err)
	}
	return cli.ExitCode(err)
}

func sendCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	m := NewMain()
	fs := commandCmd.FlagSet()
	registerBrokerFlags(fs, m)
	gw := fs.String("gateway", "", "the gateway's id (required)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long the request lives: the gateway answers a later one expired, and this waits no longer")
	id := fs.String("id", "", "the request's id (default: random); sending the same id again gets the first reply, never a second run")
	db := fs.String("db", "", "the ingest database, `DSN`: the command and its reply go in its commands table, and one unanswered stays queued there for the ingest service to send when the gateway is back")
	expiry := fs.Duration("expiry", 0, "with --db: how long an unanswered command stays queued (default --timeout: not queued)")
	sender := fs.String("sender", "", "with --db: who sends it, for the commands table (default: user@host)")
	keysFile := fs.String("auth-keys", "", "`file` of the gateways' keys, as outpost-ingest --auth-keys takes: the request to a gateway listed is signed, and its reply must verify")
	var strs, files kvList
	fs.Var(&strs, "arg", "a string argument, as `KEY=VALUE` (repeatable)")
	fs.Var(&files, "file", "a file's content as a binary argument, as `KEY=PATH` (repeatable)")
	if err := cli.Parse(fs, args, 1, stdout, stderr); err != nil {
		return err
	}
	name := fs.Arg(0)
	switch {
	case name == "":
		return cli.Usagef("outpost-ingest command: the command's NAME is required (e.g. ping)")
	case !outpost.ValidName(name):
		return cli.Usagef("outpost-ingest command: %q is not a command name", name)
	case !outpost.ValidName(*gw):
		return cli.Usagef("outpost-ingest command: --gateway is required: a gateway id")
	case *timeout <= 0 || *timeout > maxCommandTimeout:
		return cli.Usagef("outpost-ingest command: --timeout must be above 0 and at most %s", maxCommandTimeout)
	case *db == "" && (*expiry != 0 || *sender != ""):
		return cli.Usagef("outpost-ingest command: --expiry and --sender go with --db")
	case *expiry != 0 && (*expiry < *timeout || *expiry > maxPushExpiry):
		return cli.Usagef("outpost-ingest command: --expiry must be at least --timeout and at most %s", maxPushExpiry)
	case len(*sender) > ingest.MaxCommandSenderLen:
		return cli.Usagef("outpost-ingest command: --sender is longer than %d bytes", ingest.MaxCommandSenderLen)
	case *keysFile != "" && *timeout > maxSignedTimeout:
		return cli.Usagef("outpost-ingest command: with --auth-keys, --timeout must be at most %s: a gateway refuses a signed request that expires later, since it remembers a request's id that long, and a copy replayed after it forgot the id must have expired", maxSignedTimeout)
	}
	if *id == "" {
		var b [8]byte
		_, _ = rand.Read(b[:]) // never fails (Go 1.24+)
		*id = hex.EncodeToString(b[:])
	}
	if !gwcmd.ValidID(*id) {
		return cli.Usagef("outpost-ingest command: --id %q: 1 to %d of A-Z a-z 0-9 _ . -", *id, gwcmd.MaxIDLen)
	}
	if err := m.checkBroker(); err != nil {
		return err
	}
	body, err := commandBody(strs, files)
	if err != nil {
		return cli.UsageError{Err: err}
	}
	var keys []outpost.Key // the gateway's: none leaves the request unsigned
	if *keysFile != "" {
		reg, err := loadKeys(*keysFile)
		if err != nil {
			return err
		}
		keys = reg.Lookup(*gw)
	}
	deadline := time.Now().Add(*timeout)
	r := gwcmd.Request{ID: *id, Deadline: deadline.UnixNano(), Body: body}
	gwcmd.SignRequest(&r, *gw, name, keys)
	req := gwcmd.AppendRequest(nil, r)
	if len(req) > gwcmd.MaxRequestBytes {
		return cli.Usagef("outpost-ingest command: the request is %d bytes, more than the gateway takes (%d)", len(req), gwcmd.MaxRequestBytes)
	}
	client, err := m.cloudClient("outpost-command-"+*id, *timeout)
	if err != nil {
		return err
	}
	var audit *commandAudit // nil without --db
	if *db != "" {
		if *expiry == 0 {
			*expiry = *timeout
		}
		if *sender == "" {
			*sender = defaultSender()
		}
		now := time.Now()
		audit, err = openAudit(ctx, *db, &ingest.Command{ID: *id, Gateway: *gw, Name: name, Sender: *sender, Body: body,
			CreatedAt: now, ExpiresAt: now.Add(*expiry), State: ingest.CommandQueued}, stderr)
		if err != nil {
			return err
		}
		defer audit.close()
	}

	base := m.TopicPrefix + "/" + *gw
	replies := make(chan []byte, 1)
	wait := func(t mqtt.Token, what string) error {
		if !t.WaitTimeout(time.Until(deadline)) {
			return fmt.Errorf("%s: no answer from the broker %s within --timeout", what, redactBroker(m.Broker))
		}
		if err := t.Error(); err != nil {
			return fmt.Errorf("%s (broker %s): %w", what, redactBroker(m.Broker), err)
		}
		return nil
	}
	if err := wait(client.Connect(), "connect"); err != nil {
		return err
	}
	defer client.Disconnect(250)
	if err := wait(client.Subscribe(base+"/reply/"+*id, 1, func(_ mqtt.Client, msg mqtt.Message) {
		select {
		case replies <- msg.Payload():
		default: // a redelivery: the first reply is the one
		}
	}), "subscribe to the reply"); err != nil {
		return err
	}
	audit.sent(ctx) // first: the ingest service may record the reply before the PUBACK
	if err := wait(client.Publish(base+"/cmd/"+name, 1, false, req), "publish the command"); err != nil {
		return err
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case p := <-replies:
		r, text, err := ingest.ParseReply(p, *gw, *id, keys)
		switch {
		case errors.Is(err, outpost.ErrBadMAC):
			return fmt.Errorf("the reply on %s/reply/%s is not the gateway's (nothing it says is to be trusted): %w", base, *id, err)
		case err != nil:
			return fmt.Errorf("the reply on %s/reply/%s does not decode: %w", base, *id, err)
		}
		audit.replied(ctx, r, text)
		line, err := replyJSON(r)
		if err != nil {
			return err
		}
		if _, err := stdout.Write(line); err != nil {
			return err
		}
		if r.Status != gwcmd.StatusOK {
			return fmt.Errorf("the gateway answered %s", r.Status)
		}
		return nil
	case <-timer.C:
		err := fmt.Errorf("no reply from %s within %s: the gateway is offline, does not take commands (uplink.commands), or the broker's ACL refuses its reply", *gw, *timeout)
		if audit != nil && *expiry > *timeout {
			err = fmt.Errorf("%w; the command stays queued in the commands table until %s: the ingest service sends it when the gateway comes back", err, fmtTime(audit.cmd.ExpiresAt))
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commandAudit records one command and its reply in the commands table
// of the ingest database (--db). Its methods do nothing on nil.
type commandAudit struct {
	store  ingest.Store
	cs     ingest.CommandStore
	cmd    *ingest.Command
	stderr io.Writer // where a failure to record is said
}

// openAudit opens the database and stores cmd, queued: before anything
// is published, so that nothing goes out unrecorded.
func openAudit(ctx context.Context, dsn string, cmd *ingest.Command, stderr io.Writer) (*commandAudit, error) {
	store, err := openExisting(ctx, dsn, zerolog.Nop())
	if err != nil {
		return nil, err
	}
	cs, ok := store.(ingest.CommandStore)
	if !ok {
		store.Close()
		return nil, fmt.Errorf("the database %s keeps no commands table", redactDSN(dsn))
	}
	sctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	defer cancel()
	if err := cs.AddCommand(sctx, cmd); err != nil {
		store.Close()
		return nil, fmt.Errorf("store the command: %w", err)
	}
	return &commandAudit{store: store, cs: cs, cmd: cmd, stderr: stderr}, nil
}

// sent records the command published.
func (a *commandAudit) sent(ctx context.Context) {
	if a == nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	defer cancel()
	if _, err := a.cs.CommandSent(sctx, a.cmd.ID, time.Now(), a.cmd.CreatedAt); err != nil {
		fmt.Fprintf(a.stderr, "outpost-ingest command: recording the command sent: %v\n", err)
	}
}

// replied records the reply (the ingest service may have done so first).
func (a *commandAudit) replied(ctx context.Context, r gwcmd.Reply, text string) {
	if a == nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	defer cancel()
	if _, err := a.cs.CommandReplied(sctx, a.cmd.Gateway, a.cmd.ID, string(r.Status), time.Now(), time.Unix(0, r.TS), r.Body, text); err != nil {
		fmt.Fprintf(a.stderr, "outpost-ingest command: recording the reply: %v\n", err)
	}
}

func (a *commandAudit) close() {
	if a != nil {
		a.store.Close()
	}
}

// commandBody is the request's body: a map of the string and file
// arguments, or empty without any.
func commandBody(strs, files kvList) ([]byte, error) {
	n := len(strs) + len(files)
	if n == 0 {
		return nil, nil
	}
	seen := map[string]bool{}
	b := msgp.AppendMapHeader(nil, uint32(n))
	for _, kv := range strs {
		if seen[kv[0]] {
			return nil, fmt.Errorf("argument %q given twice", kv[0])
		}
		seen[kv[0]] = true
		b = msgp.AppendString(b, kv[0])
		b = msgp.AppendString(b, kv[1])
	}
	for _, kv := range files {
		if seen[kv[0]] {
			return nil, fmt.Errorf("argument %q given twice", kv[0])
		}
		seen[kv[0]] = true
		data, err := readSmallFile(kv[1], gwcmd.MaxRequestBytes)
		if err != nil {
			return nil, fmt.Errorf("--file %s: %w", kv[0], err)
		}
		b = msgp.AppendString(b, kv[0])
		b = msgp.AppendBytes(b, data)
	}
	return b, nil
}

// readSmallFile reads a file of at most limit bytes, refusing a larger
// one before reading it all.
func readSmallFile(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, pathCause(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, pathCause(err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s: more than %d bytes, more than a request holds", path, limit)
	}
	return data, nil
}

// replyJSON is a reply as one JSON line; its MessagePack body becomes
// JSON (binary values as base64, as msgp writes them).
func replyJSON(r gwcmd.Reply) ([]byte, error) {
	var body json.RawMessage = []byte("null")
	if len(r.Body) > 0 {
		var buf bytes.Buffer
		if _, err := msgp.UnmarshalAsJSON(&buf, r.Body); err != nil {
			return nil, fmt.Errorf("the reply's body does not decode: %w", err)
		}
		body = buf.Bytes()
	}
	line, err := json.Marshal(struct {
		ID     string          `json:"id"`
		Status string          `json:"status"`
		TS     string          `json:"ts"`
		Body   json.RawMessage `json:"body"`
	}{r.ID, string(r.Status), time.Unix(0, r.TS).UTC().Format(time.RFC3339Nano), body})
	return append(line, '\n'), err
}
