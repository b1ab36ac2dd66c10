package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/testenv"
	"github.com/outposthq/outpost/rules"
)

// pushFleet is a fleet of real gateways, each with its key, a rules
// file and commands on, and an ingest service with the command courier,
// over the real broker, storing into SQLite.
type pushFleet struct {
	t        *testing.T
	broker   string
	prefix   string
	dir      string
	db       string // DSN
	keysFile string
	store    ingest.Store
	svc      *ingest.Service

	mu   sync.Mutex
	gws  map[string]*gateway.Gateway
	cfgs map[string]*config.Config
}

const firstRules = "rules:\n  - {name: hot, select: {metric: temperature}, above: 25}\n"

func newPushFleet(t *testing.T, n int, labels func(i int) map[string]string, twoFiles map[int]bool) *pushFleet {
	t.Helper()
	f := &pushFleet{t: t, broker: testenv.MQTT(t), prefix: fmt.Sprintf("outpost-test/push-%d", time.Now().UnixNano()),
		dir: t.TempDir(), gws: map[string]*gateway.Gateway{}, cfgs: map[string]*config.Config{}}
	testenv.CleanupRetained(t, f.broker, f.prefix)
	f.db = "sqlite:" + filepath.Join(f.dir, "ingest.db")
	f.keysFile = filepath.Join(f.dir, "keys")

	var keyLines strings.Builder
	for i := range n {
		id := fmt.Sprintf("fleet-%02d", i)
		gdir := filepath.Join(f.dir, id)
		if err := os.MkdirAll(gdir, 0o700); err != nil {
			t.Fatal(err)
		}
		key := outpost.NewKey()
		fmt.Fprintf(&keyLines, "%s %s\n", id, key.Hex())
		keyFile := filepath.Join(gdir, "gateway.key")
		write(t, keyFile, key.Hex()+"\n", 0o600)
		files := []string{filepath.Join(gdir, "rules.yaml")}
		write(t, files[0], firstRules, 0o644)
		if twoFiles[i] {
			files = append(files, filepath.Join(gdir, "more.yaml"))
			write(t, files[1], "rules:\n  - {name: cold, select: {metric: temperature}, below: 5}\n", 0o644)
		}
		cfg := &config.Config{
			Gateway: config.GatewayConfig{ID: id, Labels: labels(i)},
			DataDir: filepath.Join(gdir, "data"),
			Sensors: []config.Sensor{{ID: "dev1", Driver: config.SimDriver, Interval: 200 * time.Millisecond, Metrics: []config.Metric{
				{Name: "temperature", Unit: "Cel", Signal: config.Signal{Kind: config.SignalConstant, Value: 21}}}}},
			Uplink: config.UplinkConfig{Broker: f.broker, TopicPrefix: f.prefix, Commands: true, AuthKeyFile: keyFile},
			Rules:  config.RulesConfig{Files: files},
			// A batch a second: the backtest has readings soon.
			Batch: config.BatchConfig{Interval: time.Second, MaxDelay: time.Second},
		}
		cfg.SetDefaults()
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		f.cfgs[id] = cfg
	}
	write(t, f.keysFile, keyLines.String(), 0o600)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := stores.Open(ctx, f.db, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	f.store = store
	keys, err := ingest.LoadKeys(f.keysFile)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = ingest.New(store, &ingest.Options{Broker: f.broker, TopicPrefix: f.prefix, Group: "push-test-" + fmt.Sprint(time.Now().UnixNano()),
		Commands: true, Keys: keys, Auth: ingest.AuthRequired})
	if err := f.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.close)
	for id := range f.cfgs {
		f.start(id)
	}
	return f
}

func write(t *testing.T, name, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}

func (f *pushFleet) start(id string) {
	f.t.Helper()
	g, err := gateway.New(f.cfgs[id], &gateway.Options{Logger: zerolog.Nop()})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.gws[id] = g
	f.mu.Unlock()
}

func (f *pushFleet) stop(id string) {
	f.t.Helper()
	f.mu.Lock()
	g := f.gws[id]
	delete(f.gws, id)
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Close(ctx); err != nil {
		f.t.Error(err)
	}
}

func (f *pushFleet) close() {
	f.mu.Lock()
	ids := make([]string, 0, len(f.gws))
	for id := range f.gws {
		ids = append(ids, id)
	}
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() { f.stop(id) })
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.svc.Close(ctx); err != nil {
		f.t.Error(err)
	}
	if err := f.store.Close(); err != nil {
		f.t.Error(err)
	}
}

// waitStates waits until the store holds each gateway's status in the
// state given.
func (f *pushFleet) waitStates(want map[string]string) {
	f.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got := map[string]string{}
		for g, err := range f.store.Gateways(context.Background()) {
			if err != nil {
				f.t.Fatal(err)
			}
			got[g.Gateway] = g.State
		}
		ok := true
		for id, st := range want {
			ok = ok && got[id] == st
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("gateway states %v, want %v", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// push runs `outpost-ingest rules push` against the fleet.
func (f *pushFleet) push(args ...string) (results []pushResult, code int, stdout, stderr string) {
	f.t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"rules", "push", "--db", f.db, "--broker", f.broker, "--topic-prefix", f.prefix,
		"--auth-keys", f.keysFile, "--sender", "ops@test"}, args...), &out, &errb)
	for line := range strings.Lines(out.String()) {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r pushResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			f.t.Fatalf("line %q: %v", line, err)
		}
		results = append(results, r)
	}
	return results, code, out.String(), errb.String()
}

func (f *pushFleet) commands(q ingest.CommandQuery) []ingest.Command {
	f.t.Helper()
	var out []ingest.Command
	q.Limit = 1000
	for c, err := range f.store.(ingest.CommandStore).Commands(context.Background(), q) {
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// A push to 50 gateways of a label, in waves of 10 after a canary: one
// gateway offline, one that rejects the rules (its config names two
// rules files), which stops the push. The offline one gets its command
// from the ingest service when it comes back.
func TestRulesPushFleet(t *testing.T) {
	const n = 52
	const offline, rejects = "fleet-10", "fleet-30"
	labels := func(i int) map[string]string {
		if i >= 50 {
			return map[string]string{"ring": "lab"} // not selected
		}
		return map[string]string{"ring": "prod", "site": fmt.Sprintf("s%d", i%3)}
	}
	f := newPushFleet(t, n, labels, map[int]bool{30: true})
	want := map[string]string{}
	for id := range f.cfgs {
		want[id] = "online"
	}
	f.waitStates(want)
	f.stop(offline)
	want[offline] = "offline"
	f.waitStates(want)

	next := filepath.Join(f.dir, "next.yaml")
	nextRules := firstRules + "  - {name: cold, select: {metric: temperature}, below: 5}\n"
	write(t, next, nextRules, 0o644)
	set, err := rules.Parse("next.yaml", []byte(nextRules))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("dry run", func(t *testing.T) {
		_, code, stdout, stderr := f.push("--rules", next, "--label", "ring=prod", "--dry-run")
		if code != cli.ExitOK || strings.Count(stdout, "wave ") != 50 || !strings.Contains(stdout, "wave 0  fleet-00  online") ||
			!strings.Contains(stdout, "wave 1  fleet-10  offline") || !strings.Contains(stdout, "wave 5  fleet-49  online") {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		if cmds := f.commands(ingest.CommandQuery{}); len(cmds) != 0 {
			t.Fatalf("a dry run stored %d commands", len(cmds))
		}
	})

	t.Run("a bad file goes nowhere", func(t *testing.T) {
		bad := filepath.Join(f.dir, "bad.yaml")
		write(t, bad, "rules:\n  - {name: hot, select: {metric: temperature}, above: 25, bogus: 1}\n", 0o644)
		_, code, _, stderr := f.push("--rules", bad, "--all")
		if code != cli.ExitUsage || !strings.Contains(stderr, "bad.yaml:2:") {
			t.Fatalf("exit %d, stderr %s", code, stderr)
		}
		if cmds := f.commands(ingest.CommandQuery{}); len(cmds) != 0 {
			t.Fatalf("a refused file stored %d commands", len(cmds))
		}
	})

	res, code, stdout, stderr := f.push("--rules", next, "--label", "ring=prod", "--canary", "1", "--wave", "10", "--json")
	if code != 1 || !strings.Contains(stderr, "push stopped: "+rejects+" rejected the rules") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if len(res) != 50 {
		t.Fatalf("%d results, want 50:\n%s", len(res), stdout)
	}
	pushID := ""
	for _, r := range res {
		var i int
		fmt.Sscanf(r.Gateway, "fleet-%d", &i)
		wantWave := 0
		if i > 0 {
			wantWave = (i-1)/10 + 1
		}
		if r.Wave != wantWave {
			t.Errorf("%s in wave %d, want %d", r.Gateway, r.Wave, wantWave)
		}
		var wantOutcome string
		switch {
		case r.Gateway == offline:
			wantOutcome = outcomeOffline
		case r.Gateway == rejects:
			wantOutcome = outcomeRejected
		case i > 30:
			wantOutcome = outcomeSkipped
		default:
			wantOutcome = outcomeApplied
		}
		if r.Outcome != wantOutcome {
			t.Errorf("%s: %+v, want %s", r.Gateway, r, wantOutcome)
		}
		switch r.Outcome {
		case outcomeApplied:
			if r.Hash != set.Hash() {
				t.Errorf("%s: hash %s, want %s", r.Gateway, r.Hash, set.Hash())
			}
			pushID, _, _ = strings.Cut(r.ID, ".")
		case outcomeRejected:
			if r.Status != "error" || len(r.Errors) == 0 || !strings.Contains(r.Errors[0], "exactly one rules file") {
				t.Errorf("%s: %+v", r.Gateway, r)
			}
		case outcomeOffline:
			if r.Until == "" {
				t.Errorf("%s: %+v: no queued_until", r.Gateway, r)
			}
		}
		data, err := os.ReadFile(f.cfgs[r.Gateway].Rules.Files[0])
		if err != nil {
			t.Fatal(err)
		}
		if applied := string(data) == nextRules; applied != (r.Outcome == outcomeApplied) {
			t.Errorf("%s (%s): rules file on disk:\n%s", r.Gateway, r.Outcome, data)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The audit: the commands of waves 0 to 3 (31 gateways), none of
	// the skipped waves.
	cmds := f.commands(ingest.CommandQuery{Push: pushID})
	states := map[string]int{}
	for _, c := range cmds {
		states[c.State]++
		if c.Sender != "ops@test" || c.Name != "rules.set" || c.Push != pushID {
			t.Errorf("command %+v", c)
		}
	}
	if len(cmds) != 31 || states["ok"] != 29 || states["error"] != 1 || states[ingest.CommandQueued] != 1 {
		t.Fatalf("%d commands of push %s, states %v", len(cmds), pushID, states)
	}

	// The offline gateway comes back: the ingest service sends it its
	// command, which it applies.
	f.start(offline)
	var c ingest.Command
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got := f.commands(ingest.CommandQuery{Push: pushID, Gateway: offline})
		if len(got) != 1 {
			t.Fatalf("commands of %s: %+v", offline, got)
		}
		if c = got[0]; c.Final() || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c.State != "ok" || c.Attempts != 1 || c.RepliedAt.IsZero() || replyHash(c.Reply) != set.Hash() {
		t.Fatalf("the offline gateway's command: %+v", c)
	}
	if data, _ := os.ReadFile(f.cfgs[offline].Rules.Files[0]); string(data) != nextRules {
		t.Fatalf("%s's rules file after it came back:\n%s", offline, data)
	}
}

// A backtest over the fleet's stored readings stops a push whose rule
// would have fired too often, before anything is sent; under the limit
// it goes on.
func TestRulesPushBacktest(t *testing.T) {
	f := newPushFleet(t, 2, func(int) map[string]string { return nil }, nil)
	f.waitStates(map[string]string{"fleet-00": "online", "fleet-01": "online"})
	// Readings of both stored: the rules below have something to run
	// over.
	deadline := time.Now().Add(time.Minute)
	for _, gw := range []string{"fleet-00", "fleet-01"} {
		for {
			n := 0
			for p, err := range f.store.Latest(context.Background(), ingest.LatestQuery{Gateway: gw, Limit: 10}) {
				if err != nil {
					t.Fatal(err)
				}
				_ = p
				n++
			}
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no readings of %s stored: %+v", gw, f.svc.Stats())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	noisy := filepath.Join(f.dir, "noisy.yaml")
	write(t, noisy, "rules:\n  - {name: warm, select: {metric: temperature}, above: 20}\n", 0o644)

	_, code, stdout, stderr := f.push("--rules", noisy, "--all", "--backtest", "1h", "--max-episodes", "0")
	if code != 1 || !strings.Contains(stderr, "warm on fleet-00: 1 episodes") || !strings.Contains(stdout, "# backtest of fleet-01") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if cmds := f.commands(ingest.CommandQuery{}); len(cmds) != 0 {
		t.Fatalf("a push stopped by its backtest stored %d commands", len(cmds))
	}
	res, code, stdout, stderr := f.push("--rules", noisy, "--all", "--backtest", "1h", "--max-episodes", "1", "--json")
	if code != cli.ExitOK || len(res) != 2 || res[0].Outcome != outcomeApplied || res[1].Outcome != outcomeApplied {
		t.Fatalf("exit %d, %+v\nstdout %s\nstderr %s", code, res, stdout, stderr)
	}
}

// outpost-ingest command --db: the command and its reply go in the
// commands table; one to a gateway offline stays queued there, and the
// ingest service sends it when the gateway comes back.
func TestSendCommandQueued(t *testing.T) {
	f := newPushFleet(t, 1, func(int) map[string]string { return nil }, nil)
	const gw = "fleet-00"
	f.waitStates(map[string]string{gw: "online"})
	send := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"command", "--db", f.db, "--broker", f.broker, "--topic-prefix", f.prefix,
			"--auth-keys", f.keysFile, "--gateway", gw}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	code, stdout, stderr := send("--id", "ping-online", "--sender", "ops@test", "ping")
	if code != cli.ExitOK || !strings.Contains(stdout, `"status":"ok"`) {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	got := f.commands(ingest.CommandQuery{ID: "ping-online"})
	if len(got) != 1 || got[0].State != "ok" || got[0].Sender != "ops@test" || got[0].Attempts != 1 || len(got[0].Reply) == 0 {
		t.Fatalf("the command answered: %+v", got)
	}

	f.stop(gw)
	f.waitStates(map[string]string{gw: "offline"})
	code, _, stderr = send("--id", "ping-later", "--timeout", "1s", "--expiry", "10m", "ping")
	if code != 1 || !strings.Contains(stderr, "stays queued in the commands table until") {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	if got := f.commands(ingest.CommandQuery{ID: "ping-later"}); len(got) != 1 || got[0].State != ingest.CommandSent {
		t.Fatalf("the command unanswered: %+v", got)
	}
	f.start(gw)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got = f.commands(ingest.CommandQuery{ID: "ping-later"})
		if got[0].Final() || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c := got[0]; c.State != "ok" || c.Attempts != 2 || c.ReplyTS.IsZero() {
		t.Fatalf("the command after the gateway came back: %+v", c)
	}
}
