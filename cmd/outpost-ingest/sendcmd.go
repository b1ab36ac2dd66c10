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
	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/cmd/internal/cli"
	gwcmd "github.com/outposthq/outpost/gateway/command"
)

// maxCommandTimeout bounds --timeout: the gateway refuses a deadline
// further ahead than a day.
const maxCommandTimeout = 24 * time.Hour

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
{prefix}/+/reply/#.`,
	Examples: []string{
		"outpost-ingest command --gateway gw-01 ping",
		"outpost-ingest command --gateway gw-01 --arg level=debug log.level",
		"outpost-ingest command --gateway gw-01 --file content=rules.yaml rules.set",
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
	fs.StringVar(&m.Broker, "broker", m.Broker, "MQTT broker `URL` (tcp://, ssl://, ws://)")
	fs.StringVar(&m.Username, "username", m.Username, "broker username (the cloud's identity in the broker's ACL)")
	fs.StringVar(&m.PasswordFile, "password-file", m.PasswordFile, "`file` holding the broker password; never logged")
	fs.StringVar(&m.TLSCA, "tls-ca", m.TLSCA, "PEM `file` of the CAs to trust for an ssl:// broker (default: the system's)")
	fs.StringVar(&m.TLSCert, "tls-cert", m.TLSCert, "PEM client certificate `file` for mutual TLS (with --tls-key)")
	fs.StringVar(&m.TLSKey, "tls-key", m.TLSKey, "PEM client key `file` for mutual TLS (with --tls-cert)")
	fs.StringVar(&m.TopicPrefix, "topic-prefix", m.TopicPrefix, "topic prefix")
	gw := fs.String("gateway", "", "the gateway's id (required)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long the request lives: the gateway answers a later one expired, and this waits no longer")
	id := fs.String("id", "", "the request's id (default: random); sending the same id again gets the first reply, never a second run")
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
	deadline := time.Now().Add(*timeout)
	req := gwcmd.AppendRequest(nil, gwcmd.Request{ID: *id, Deadline: deadline.UnixNano(), Body: body})
	if len(req) > gwcmd.MaxRequestBytes {
		return cli.Usagef("outpost-ingest command: the request is %d bytes, more than the gateway takes (%d)", len(req), gwcmd.MaxRequestBytes)
	}
	password, tc, err := m.brokerLogin()
	if err != nil {
		return err
	}

	base := m.TopicPrefix + "/" + *gw
	opts := mqtt.NewClientOptions().AddBroker(m.Broker).SetClientID("outpost-command-" + *id).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(*timeout).SetOrderMatters(false)
	if m.Username != "" {
		opts.SetUsername(m.Username).SetPassword(password)
	}
	if tc != nil {
		opts.SetTLSConfig(tc)
	}
	replies := make(chan []byte, 1)
	client := mqtt.NewClient(opts)
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
	if err := wait(client.Publish(base+"/cmd/"+name, 1, false, req), "publish the command"); err != nil {
		return err
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case p := <-replies:
		r, err := gwcmd.DecodeReply(p)
		if err != nil {
			return fmt.Errorf("the reply on %s/reply/%s does not decode: %w", base, *id, err)
		}
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
		return fmt.Errorf("no reply from %s within %s: the gateway is offline, does not take commands (uplink.commands), or the broker's ACL refuses its reply", *gw, *timeout)
	case <-ctx.Done():
		return ctx.Err()
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
