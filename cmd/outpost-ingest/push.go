package main

// `outpost-ingest rules push`: a rules file to a fleet, in waves
// (docs/commands.md, "Rules to a fleet"). Each gateway gets a rules.set
// command; every command and its reply go in the commands table, and
// those for gateways offline stay queued there for the ingest service's
// courier (ingest/commands.go) to send when the gateway comes back.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/cmd/internal/cli"
	gwcmd "github.com/outposthq/outpost/gateway/command"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/rules"
	"github.com/outposthq/outpost/rules/ruletest"
)

var rulesPushCommand = cli.Command{
	Name: "outpost-ingest rules push",
	Args: "--db DSN --rules FILE (--gateway ID... | --label KEY=VALUE... | --all) [flags]",
	Summary: `Pushes a rules file to gateways with the rules.set command, in waves: the
canary wave first (--canary gateways, online ones), then waves of --wave
gateways, each wave sent when the one before it is answered. The first
gateway that rejects the file (its errors as FILE:LINE:COL) stops the push:
later waves are not sent. The file is checked here first, with the gateway's
checker, and a file with a problem is sent nowhere.

The gateways are those named with --gateway, or those whose status carries
every --label, or --all: the gateways the database has a status of. A
gateway whose status is offline, or that does not answer within --timeout,
is offline: its command stays queued in the commands table, and the ingest
service (outpost-ingest, with commands on) sends it when the gateway comes
back, until --expiry. Every command and its reply are stored there (GET
/api/v1/commands?push=ID shows them).

With --backtest DURATION the rules are first run over each gateway's stored
readings of that last stretch (as 'outpost-ingest rules replay --summary'),
and each gateway's summary printed; with --max-episodes N, a rule that would
have fired more than N episodes on any gateway stops the push before it
starts.

It prints a line per gateway: applied (with the hash now running), rejected
(with the errors), offline (queued until), or skipped (the push stopped).
Exit status 0 when no gateway rejected the file, 1 when the push stopped, 2
for bad flags or a bad rules file.`,
	Examples: []string{
		"outpost-ingest rules push --db sqlite:ingest.db --rules rules.yaml --gateway gw-01 --gateway gw-02",
		"outpost-ingest rules push --db 'postgres://outpost@db/outpost' --rules rules.yaml --label site=plant-3 --canary 2 --wave 20 --auth-keys /etc/outpost-ingest/keys",
		"outpost-ingest rules push --db sqlite:ingest.db --rules co2.yaml --all --backtest 720h --max-episodes 30",
	},
}

// Bounds of a push.
const (
	// maxPushTargets bounds the gateways of one push.
	maxPushTargets = 100_000
	// maxPushTimeout bounds --timeout: a signed request's deadline is
	// at most 10 minutes ahead of the gateway's clock.
	maxPushTimeout = 10 * time.Minute
	// maxPushExpiry bounds --expiry.
	maxPushExpiry = 30 * 24 * time.Hour
	// maxPushLabels bounds --label.
	maxPushLabels = 16
	// maxInFlight bounds a wave's size.
	maxWave = 1000
)

// Outcomes of one gateway's push.
const (
	outcomeApplied  = "applied"
	outcomeRejected = "rejected"
	outcomeOffline  = "offline"
	outcomeSkipped  = "skipped"
)

// push is the command line of `outpost-ingest rules push`, checked.
type push struct {
	m           *Main
	db          string
	rulesFile   string
	gateways    []string
	labels      kvList
	all         bool
	canary      int
	wave        int
	timeout     time.Duration
	expiry      time.Duration
	backtest    time.Duration
	maxEpisodes int
	sender      string
	authKeys    string
	ifHash      string
	dryRun      bool
	json        bool
	log         cli.LogFlags

	content []byte     // the rules file
	set     *rules.Set // as the gateway's checker compiled it
	reqBody []byte     // the rules.set command's body, of content and ifHash
}

// pushResult is one gateway's outcome, a line of the output.
type pushResult struct {
	Gateway string   `json:"gateway"`
	Wave    int      `json:"wave"` // 0: the canary wave
	Outcome string   `json:"outcome"`
	ID      string   `json:"id,omitempty"`     // the command's id
	Status  string   `json:"status,omitempty"` // the reply's status
	Hash    string   `json:"hash,omitempty"`   // the rules running, when applied
	Until   string   `json:"queued_until,omitempty"`
	Errors  []string `json:"errors,omitempty"`
}

func parsePush(args []string, stdout, stderr io.Writer) (*push, error) {
	p := &push{m: NewMain(), canary: 1, wave: 10, timeout: time.Minute, expiry: 24 * time.Hour, maxEpisodes: -1}
	fs := rulesPushCommand.FlagSet()
	registerBrokerFlags(fs, p.m)
	fs.StringVar(&p.db, "db", "", "the ingest database, `DSN`: postgres://… or sqlite:PATH (required): the gateways, and the commands table")
	fs.StringVar(&p.rulesFile, "rules", "", "the rules `file` to push (required)")
	fs.Func("gateway", "a gateway `id` to push to (repeatable)", func(s string) error {
		if err := ingest.CheckID(s); err != nil || s == "" {
			return fmt.Errorf("%q is not a gateway id", s)
		}
		if len(p.gateways) == maxPushTargets {
			return fmt.Errorf("more than %d gateways", maxPushTargets)
		}
		p.gateways = append(p.gateways, s)
		return nil
	})
	fs.Var(&p.labels, "label", "push to the gateways whose status carries this label, `KEY=VALUE` (repeatable: all of them)")
	fs.BoolVar(&p.all, "all", false, "push to every gateway the database has a status of")
	fs.IntVar(&p.canary, "canary", p.canary, "gateways of the first wave, the canary: online ones")
	fs.IntVar(&p.wave, "wave", p.wave, "gateways of each later wave")
	fs.DurationVar(&p.timeout, "timeout", p.timeout, "how long to wait for a wave's replies, and each request's deadline (at most 10m)")
	fs.DurationVar(&p.expiry, "expiry", p.expiry, "how long a command for a gateway offline stays queued")
	fs.DurationVar(&p.backtest, "backtest", 0, "first run the rules over each gateway's readings of this last `duration` and print the summaries")
	fs.IntVar(&p.maxEpisodes, "max-episodes", p.maxEpisodes, "with --backtest: stop before pushing if a rule would have fired more than `N` episodes on a gateway (-1: no limit)")
	fs.StringVar(&p.sender, "sender", "", "who pushes, for the commands table (default: user@host)")
	fs.StringVar(&p.authKeys, "auth-keys", "", "the gateways' keys `file` (as outpost-ingest's): requests are signed with the gateway's key, and its replies must verify")
	fs.StringVar(&p.ifHash, "if-hash", "", "push only to gateways running the rules of this `hash` (rules.get's): any other gateway rejects")
	fs.BoolVar(&p.dryRun, "dry-run", false, "print the waves, run the backtest, send nothing")
	fs.BoolVar(&p.json, "json", false, "print one JSON object per gateway instead of the table")
	p.log.Register(fs, "warn", cli.FormatAuto)
	if err := cli.Parse(fs, args, 0, stdout, stderr); err != nil {
		return nil, err
	}
	selectors := 0
	for _, b := range []bool{len(p.gateways) > 0, len(p.labels) > 0, p.all} {
		if b {
			selectors++
		}
	}
	switch {
	case p.db == "":
		return nil, cli.Usagef("outpost-ingest rules push: --db is required")
	case p.rulesFile == "":
		return nil, cli.Usagef("outpost-ingest rules push: --rules is required")
	case selectors != 1:
		return nil, cli.Usagef("outpost-ingest rules push: give one of --gateway, --label or --all")
	case len(p.labels) > maxPushLabels:
		return nil, cli.Usagef("outpost-ingest rules push: more than %d --label", maxPushLabels)
	case p.canary < 1 || p.canary > maxWave || p.wave < 1 || p.wave > maxWave:
		return nil, cli.Usagef("outpost-ingest rules push: --canary and --wave must be 1 to %d", maxWave)
	case p.timeout <= 0 || p.timeout > maxPushTimeout:
		return nil, cli.Usagef("outpost-ingest rules push: --timeout must be above 0 and at most %s (a signed request's deadline is at most 10 minutes ahead)", maxPushTimeout)
	case p.expiry < p.timeout || p.expiry > maxPushExpiry:
		return nil, cli.Usagef("outpost-ingest rules push: --expiry must be at least --timeout and at most %s", maxPushExpiry)
	case p.backtest < 0:
		return nil, cli.Usagef("outpost-ingest rules push: --backtest must not be negative")
	case p.maxEpisodes < -1 || p.maxEpisodes >= 0 && p.backtest == 0:
		return nil, cli.Usagef("outpost-ingest rules push: --max-episodes is -1 or a count, with --backtest")
	case len(p.sender) > ingest.MaxCommandSenderLen:
		return nil, cli.Usagef("outpost-ingest rules push: --sender is longer than %d bytes", ingest.MaxCommandSenderLen)
	case len(p.ifHash) > 128:
		return nil, cli.Usagef("outpost-ingest rules push: --if-hash is longer than 128 bytes")
	}
	for _, kv := range p.labels {
		if err := outpost.CheckSensorLabels(map[string]string{kv[0]: kv[1]}); err != nil {
			return nil, cli.Usagef("outpost-ingest rules push: --label %s: %v", kv[0], err)
		}
	}
	if err := p.m.checkBroker(); err != nil {
		return nil, err
	}
	if err := p.log.Check(); err != nil {
		return nil, err
	}
	if p.sender == "" {
		p.sender = defaultSender()
	}
	// The request of the largest id with two MACs must fit a request.
	content, err := readSmallFile(p.rulesFile, gwcmd.MaxRequestBytes)
	if err != nil {
		return nil, cli.UsageError{Err: fmt.Errorf("--rules: %w", err)}
	}
	p.content = content
	// The gateway compiles the file under its own file's base name; the
	// positions printed here use this file's.
	if p.set, err = rules.Parse(filepath.Base(p.rulesFile), content); err != nil {
		return nil, cli.UsageError{Err: err}
	}
	p.reqBody = p.body()
	body := p.reqBody
	probe := gwcmd.Request{ID: strings.Repeat("x", gwcmd.MaxIDLen), Deadline: 1, Body: body,
		MACs: [][]byte{make([]byte, outpost.MACSize), make([]byte, outpost.MACSize)}}
	if n := len(gwcmd.AppendRequest(nil, probe)); n > gwcmd.MaxRequestBytes || len(body) > ingest.MaxCommandBodyBytes {
		return nil, cli.Usagef("outpost-ingest rules push: %s makes a request of %d bytes, more than a gateway takes (%d)", p.rulesFile, n, gwcmd.MaxRequestBytes)
	}
	return p, nil
}

// body is the rules.set command's body.
func (p *push) body() []byte {
	n := uint32(1)
	if p.ifHash != "" {
		n++
	}
	b := msgp.AppendMapHeader(nil, n)
	b = msgp.AppendString(b, "content")
	b = msgp.AppendBytes(b, p.content)
	if p.ifHash != "" {
		b = msgp.AppendString(b, "if_hash")
		b = msgp.AppendString(b, p.ifHash)
	}
	return b
}

// defaultSender is user@host, as well as they can be told.
func defaultSender() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + h
	}
	if len(name) > ingest.MaxCommandSenderLen {
		name = name[:ingest.MaxCommandSenderLen]
	}
	return name
}

// cloudClient is an MQTT client (not connected) that logs in with the
// broker flags as the cloud's identity, with a clean session and no
// reconnect: what the commands that send commands use.
func (m *Main) cloudClient(clientID string, connectTimeout time.Duration) (mqtt.Client, error) {
	password, tc, err := m.brokerLogin()
	if err != nil {
		return nil, err
	}
	opts := mqtt.NewClientOptions().AddBroker(m.Broker).SetClientID(clientID).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(connectTimeout).SetOrderMatters(false)
	if m.Username != "" {
		opts.SetUsername(m.Username).SetPassword(password)
	}
	if tc != nil {
		opts.SetTLSConfig(tc)
	}
	return mqtt.NewClient(opts), nil
}

// registerBrokerFlags registers the broker login flags of the commands
// that talk to the broker as the cloud's identity.
func registerBrokerFlags(fs *flag.FlagSet, m *Main) {
	fs.StringVar(&m.Broker, "broker", m.Broker, "MQTT broker `URL` (tcp://, ssl://, ws://)")
	fs.StringVar(&m.Username, "username", m.Username, "broker username (the cloud's identity in the broker's ACL)")
	fs.StringVar(&m.PasswordFile, "password-file", m.PasswordFile, "`file` holding the broker password; never logged")
	fs.StringVar(&m.TLSCA, "tls-ca", m.TLSCA, "PEM `file` of the CAs to trust for an ssl:// broker (default: the system's)")
	fs.StringVar(&m.TLSCert, "tls-cert", m.TLSCert, "PEM client certificate `file` for mutual TLS (with --tls-key)")
	fs.StringVar(&m.TLSKey, "tls-key", m.TLSKey, "PEM client key `file` for mutual TLS (with --tls-cert)")
	fs.StringVar(&m.TopicPrefix, "topic-prefix", m.TopicPrefix, "topic prefix")
}

// rulesPush is `outpost-ingest rules push`.
func rulesPush(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	p, err := parsePush(args, stdout, stderr)
	if err != nil {
		return err
	}
	logger, err := cli.NewLogger(stderr, p.log.Level, p.log.Format)
	if err != nil {
		return err
	}
	var keys *ingest.Keys
	if p.authKeys != "" {
		if keys, err = loadKeys(p.authKeys); err != nil {
			return err
		}
	}
	store, err := openExisting(ctx, p.db, logger)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close database %s: %w", redactDSN(p.db), cerr)
		}
	}()
	cs, ok := store.(ingest.CommandStore)
	if !ok {
		return fmt.Errorf("the database %s keeps no commands table", redactDSN(p.db))
	}
	targets, err := p.targets(ctx, store)
	if err != nil {
		return err
	}
	if p.backtest > 0 {
		if err := p.runBacktest(ctx, store, targets, stdout); err != nil {
			return err
		}
	}
	waves := planWaves(targets, p.canary, p.wave)
	if p.dryRun {
		return p.printPlan(stdout, waves)
	}
	sender, err := p.connect(ctx, logger)
	if err != nil {
		return err
	}
	defer sender.close()
	pr := &pusher{p: p, cs: cs, keys: keys, send: sender, id: newPushID(), log: logger}
	results, stopped := pr.run(ctx, waves)
	if err := p.printResults(stdout, pr.id, results); err != nil {
		return err
	}
	if stopped != "" {
		return fmt.Errorf("push stopped: %s", stopped)
	}
	return ctx.Err()
}

// target is a gateway to push to, with its last recorded state.
type target struct {
	gateway string
	online  bool
}

// targets are the gateways the flags select, by id, from the statuses
// the database holds.
func (p *push) targets(ctx context.Context, store ingest.Store) ([]target, error) {
	var all []ingest.GatewayStatus
	for g, err := range store.Gateways(ctx) {
		if err != nil {
			return nil, fmt.Errorf("read the gateways: %w", err)
		}
		if len(all) == maxPushTargets {
			return nil, fmt.Errorf("more than %d gateways in the database: select fewer with --label", maxPushTargets)
		}
		all = append(all, g)
	}
	byID := make(map[string]*ingest.GatewayStatus, len(all))
	for i := range all {
		byID[all[i].Gateway] = &all[i]
	}
	var out []target
	switch {
	case len(p.gateways) > 0:
		var unknown []string
		seen := map[string]bool{}
		for _, gw := range p.gateways {
			if seen[gw] {
				continue
			}
			seen[gw] = true
			g, ok := byID[gw]
			if !ok {
				unknown = append(unknown, gw)
				continue
			}
			out = append(out, target{gw, g.State == "online"})
		}
		if len(unknown) > 0 {
			return nil, fmt.Errorf("no status of %s in %s: ingest has never heard of them (check the ids with GET /api/v1/gateways)",
				strings.Join(unknown, ", "), redactDSN(p.db))
		}
	default:
		for i := range all {
			g := &all[i]
			if p.all || matchLabels(g.Payload, p.labels) {
				out = append(out, target{g.Gateway, g.State == "online"})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no gateway in %s matches the selection", redactDSN(p.db))
	}
	slices.SortFunc(out, func(a, b target) int { return strings.Compare(a.gateway, b.gateway) })
	return out, nil
}

// matchLabels reports whether a status document carries every label.
func matchLabels(payload []byte, want kvList) bool {
	var st struct {
		Labels map[string]string `json:"labels"`
	}
	if json.Unmarshal(payload, &st) != nil {
		return false
	}
	for _, kv := range want {
		if v, ok := st.Labels[kv[0]]; !ok || v != kv[1] {
			return false
		}
	}
	return true
}

// planWaves orders the targets into waves: the canary wave of the first
// canary online gateways (by id), then the rest by id, wave at a time.
func planWaves(targets []target, canary, wave int) [][]target {
	var first, rest []target
	for _, t := range targets {
		if t.online && len(first) < canary {
			first = append(first, t)
		} else {
			rest = append(rest, t)
		}
	}
	var waves [][]target
	if len(first) > 0 {
		waves = append(waves, first)
	}
	for len(rest) > 0 {
		n := min(wave, len(rest))
		waves = append(waves, rest[:n])
		rest = rest[n:]
	}
	return waves
}

// runBacktest runs the rules over each target's readings of the last
// p.backtest, prints each summary, and refuses the push when a rule
// fired more than p.maxEpisodes episodes on a gateway.
func (p *push) runBacktest(ctx context.Context, store ingest.Store, targets []target, stdout io.Writer) error {
	to := time.Now()
	from := to.Add(-p.backtest)
	w := bufio.NewWriter(stdout)
	if p.json {
		w = bufio.NewWriter(io.Discard)
	}
	var over []string
	for _, t := range targets {
		bt, err := backtestSummary(ctx, store, p.set, t.gateway, from.UnixNano(), to.UnixNano())
		if errors.Is(err, errNoSeries) {
			// A gateway without history (new, or not measuring what
			// the rules select) cannot have fired: it does not stop the
			// push.
			fmt.Fprintf(w, "# backtest of %s: no series the rules select stored\n", t.gateway)
			continue
		}
		if err != nil {
			return fmt.Errorf("backtest of %s: %w", t.gateway, err)
		}
		fmt.Fprintf(w, "# backtest of %s, %s to %s: %d readings\n", t.gateway, fmtNS(from.UnixNano()), fmtNS(to.UnixNano()), bt.readings)
		if err := ruletest.WriteSummary(w, bt.rules); err != nil {
			return err
		}
		for _, r := range bt.rules {
			if p.maxEpisodes >= 0 && r.Episodes > p.maxEpisodes {
				over = append(over, fmt.Sprintf("%s on %s: %d episodes", r.Rule, t.gateway, r.Episodes))
			}
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(over) > 0 {
		return fmt.Errorf("backtest: more than --max-episodes %d in the last %s, nothing pushed: %s",
			p.maxEpisodes, p.backtest, strings.Join(over, "; "))
	}
	return nil
}

func (p *push) printPlan(stdout io.Writer, waves [][]target) error {
	w := bufio.NewWriter(stdout)
	for i, wv := range waves {
		for _, t := range wv {
			state := "online"
			if !t.online {
				state = "offline"
			}
			if p.json {
				line, _ := json.Marshal(struct {
					Gateway string `json:"gateway"`
					Wave    int    `json:"wave"`
					State   string `json:"state"`
				}{t.gateway, i, state})
				w.Write(append(line, '\n'))
			} else {
				fmt.Fprintf(w, "wave %d  %s  %s\n", i, t.gateway, state)
			}
		}
	}
	if !p.json {
		fmt.Fprintf(w, "# dry run: %d gateways in %d waves, nothing sent; rules hash %s\n", countTargets(waves), len(waves), p.set.Hash())
	}
	return w.Flush()
}

func countTargets(waves [][]target) int {
	n := 0
	for _, w := range waves {
		n += len(w)
	}
	return n
}

func (p *push) printResults(stdout io.Writer, id string, results []pushResult) error {
	w := bufio.NewWriter(stdout)
	if p.json {
		for _, r := range results {
			line, err := json.Marshal(r)
			if err != nil {
				return err
			}
			w.Write(append(line, '\n'))
		}
		return w.Flush()
	}
	count := map[string]int{}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GATEWAY\tWAVE\tOUTCOME\tDETAIL")
	for _, r := range results {
		count[r.Outcome]++
		detail := ""
		switch r.Outcome {
		case outcomeApplied:
			detail = "hash " + r.Hash
		case outcomeOffline:
			detail = "queued until " + r.Until
		}
		if len(r.Errors) > 0 {
			detail = strings.Join(r.Errors, "; ")
			if r.Status != "" {
				detail = r.Status + ": " + detail
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", r.Gateway, r.Wave, r.Outcome, detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "# push %s: %d applied, %d rejected, %d offline, %d skipped; rules hash %s (GET /api/v1/commands?push=%s)\n",
		id, count[outcomeApplied], count[outcomeRejected], count[outcomeOffline], count[outcomeSkipped], p.set.Hash(), id)
	return w.Flush()
}

// newPushID names a push: the time and a random part, so that its
// commands' ids (ID.N) are unique.
func newPushID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails (Go 1.24+)
	return "push-" + time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// replySender publishes requests and routes the replies on
// {prefix}/+/reply/+ to their waiters.
type replySender struct {
	client  mqtt.Client
	prefix  string
	timeout time.Duration

	mu      sync.Mutex
	waiting map[string]chan []byte // by command id
}

// connect logs in to the broker as the cloud's identity and subscribes
// to the replies.
func (p *push) connect(ctx context.Context, log zerolog.Logger) (*replySender, error) {
	client, err := p.m.cloudClient(newPushID(), 30*time.Second)
	if err != nil {
		return nil, err
	}
	s := &replySender{client: client, prefix: p.m.TopicPrefix, timeout: p.timeout, waiting: map[string]chan []byte{}}
	wait := func(t mqtt.Token, what string) error {
		select {
		case <-t.Done():
		case <-time.After(30 * time.Second):
			return fmt.Errorf("%s: no answer from the broker %s within 30s", what, redactBroker(p.m.Broker))
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := t.Error(); err != nil {
			return fmt.Errorf("%s (broker %s): %w", what, redactBroker(p.m.Broker), err)
		}
		return nil
	}
	if err := wait(s.client.Connect(), "connect"); err != nil {
		s.client.Disconnect(0)
		return nil, err
	}
	if err := wait(s.client.Subscribe(s.prefix+"/+/reply/+", 1, s.onReply), "subscribe to the replies"); err != nil {
		s.close()
		return nil, err
	}
	log.Debug().Str("broker", redactBroker(p.m.Broker)).Msg("connected")
	return s, nil
}

func (s *replySender) onReply(_ mqtt.Client, msg mqtt.Message) {
	i := strings.LastIndexByte(msg.Topic(), '/')
	id := msg.Topic()[i+1:]
	s.mu.Lock()
	ch := s.waiting[id]
	s.mu.Unlock()
	if ch != nil {
		select {
		case ch <- msg.Payload():
		default: // a redelivery: the first reply is the one
		}
	}
}

// expect registers a waiter for id's reply.
func (s *replySender) expect(id string) chan []byte {
	ch := make(chan []byte, 1)
	s.mu.Lock()
	s.waiting[id] = ch
	s.mu.Unlock()
	return ch
}

func (s *replySender) publish(ctx context.Context, topic string, payload []byte) error {
	t := s.client.Publish(topic, 1, false, payload)
	select {
	case <-t.Done():
		return t.Error()
	case <-time.After(s.timeout):
		return errors.New("no PUBACK from the broker")
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *replySender) close() { s.client.Disconnect(250) }

// pusher runs one push's waves.
type pusher struct {
	p    *push
	cs   ingest.CommandStore
	keys *ingest.Keys
	send *replySender
	id   string
	log  zerolog.Logger
	n    int // commands made
}

// run sends the waves in turn and returns every target's result, and
// why it stopped ("" when it went through).
func (pr *pusher) run(ctx context.Context, waves [][]target) (results []pushResult, stopped string) {
	for i, wave := range waves {
		if stopped != "" || ctx.Err() != nil {
			for _, t := range wave {
				results = append(results, pushResult{Gateway: t.gateway, Wave: i, Outcome: outcomeSkipped})
			}
			continue
		}
		res, err := pr.runWave(ctx, i, wave)
		if err != nil {
			stopped = err.Error()
		}
		applied := 0
		for _, r := range res {
			switch r.Outcome {
			case outcomeRejected:
				if stopped == "" {
					stopped = r.Gateway + " rejected the rules"
				}
			case outcomeApplied:
				applied++
			}
		}
		if stopped == "" && i == 0 && waves[0][0].online && applied == 0 && len(waves) > 1 {
			stopped = "no gateway of the canary wave applied the rules within --timeout"
		}
		results = append(results, res...)
	}
	if stopped == "" && ctx.Err() != nil {
		stopped = ctx.Err().Error()
	}
	return results, stopped
}

// runWave sends a wave's commands, those to offline gateways only
// stored, and waits for the replies until the timeout. A command the
// store refuses stops the push: nothing goes out unrecorded.
func (pr *pusher) runWave(ctx context.Context, wave int, targets []target) ([]pushResult, error) {
	now := time.Now()
	deadline := now.Add(pr.p.timeout)
	expires := now.Add(pr.p.expiry)
	results := make([]pushResult, len(targets))
	waits := make([]chan []byte, len(targets))
	// stop skips targets[from:] and waits for the replies of the rest.
	stop := func(from int, err error) ([]pushResult, error) {
		for j := from; j < len(targets); j++ {
			results[j] = pushResult{Gateway: targets[j].gateway, Wave: wave, Outcome: outcomeSkipped}
		}
		pr.await(ctx, results[:from], waits[:from], deadline)
		return results, err
	}
	for i, t := range targets {
		pr.n++
		c := &ingest.Command{ID: fmt.Sprintf("%s.%d", pr.id, pr.n), Gateway: t.gateway, Name: "rules.set",
			Sender: pr.p.sender, Push: pr.id, Body: pr.p.reqBody, CreatedAt: now, ExpiresAt: expires, State: ingest.CommandQueued}
		r := &results[i]
		*r = pushResult{Gateway: t.gateway, Wave: wave, ID: c.ID, Outcome: outcomeOffline, Until: fmtTime(expires)}
		sctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
		err := pr.cs.AddCommand(sctx, c)
		cancel()
		if err != nil {
			return stop(i, fmt.Errorf("store the command for %s: %w", t.gateway, err))
		}
		if !t.online {
			continue
		}
		payload, err := ingest.SignedRequest(c, deadline, pr.keys.Lookup(t.gateway))
		if err != nil {
			r.Outcome, r.Errors = outcomeRejected, []string{err.Error()}
			continue
		}
		// Recorded sent first: the ingest service may record the
		// reply before the PUBACK comes.
		sctx, cancel = context.WithTimeout(ctx, storeCallTimeout)
		_, err = pr.cs.CommandSent(sctx, c.ID, now, now)
		cancel()
		if err != nil { // stored, queued: the ingest service sends it
			return stop(i+1, fmt.Errorf("record the command for %s sent: %w", t.gateway, err))
		}
		waits[i] = pr.send.expect(c.ID)
		if err := pr.send.publish(ctx, pr.p.m.TopicPrefix+"/"+t.gateway+"/cmd/rules.set", payload); err != nil {
			pr.log.Warn().Err(err).Str("gateway", t.gateway).Msg("publish failed; the ingest service sends it when the gateway is back")
			waits[i] = nil
		}
	}
	pr.await(ctx, results, waits, deadline)
	return results, nil
}

// await waits until deadline for the replies of the commands sent; one
// without a reply by then stays offline.
func (pr *pusher) await(ctx context.Context, results []pushResult, waits []chan []byte, deadline time.Time) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for i, ch := range waits {
		if ch == nil {
			continue
		}
		select {
		case payload := <-ch:
			pr.reply(ctx, &results[i], payload)
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// reply records a reply and makes the result of it.
func (pr *pusher) reply(ctx context.Context, r *pushResult, payload []byte) {
	rep, text, err := ingest.ParseReply(payload, r.Gateway, r.ID, pr.keys.Lookup(r.Gateway))
	if err != nil {
		r.Outcome, r.Errors, r.Until = outcomeRejected, []string{"the reply is refused: " + err.Error()}, ""
		return
	}
	sctx, cancel := context.WithTimeout(ctx, storeCallTimeout)
	if _, err := pr.cs.CommandReplied(sctx, r.Gateway, r.ID, string(rep.Status), time.Now(), time.Unix(0, rep.TS), rep.Body, text); err != nil {
		pr.log.Warn().Err(err).Str("id", r.ID).Msg("recording the reply failed")
	}
	cancel()
	r.Status, r.Until = string(rep.Status), ""
	if rep.Status != gwcmd.StatusOK {
		r.Outcome = outcomeRejected
		r.Errors = strings.Split(text, "\n")
		return
	}
	r.Outcome = outcomeApplied
	r.Hash = replyHash(rep.Body)
}

// replyHash reads "hash" from rules.set's result.
func replyHash(body []byte) string {
	n, rest, err := msgp.ReadMapHeaderBytes(body)
	if err != nil {
		return ""
	}
	for range min(n, 16) {
		var k []byte
		if k, rest, err = msgp.ReadMapKeyZC(rest); err != nil {
			return ""
		}
		if string(k) == "hash" {
			h, _, _ := msgp.ReadStringBytes(rest)
			return h
		}
		if rest, err = msgp.Skip(rest); err != nil {
			return ""
		}
	}
	return ""
}

// storeCallTimeout bounds one store call of a push.
const storeCallTimeout = 30 * time.Second

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
