package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/rules"
)

const twoRules = `rules:
  - name: hot
    select: {metric: temperature}
    above: 30
  - name: slow
    select: {metric: temperature}
    above: 30
    for: 1h
`

// alertLog collects the alerts a gateway emits, and its log.
type alertLog struct {
	mu     sync.Mutex
	alerts []outpost.Alert
	logs   bytes.Buffer
}

func (l *alertLog) add(a outpost.Alert) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.alerts = append(l.alerts, a)
}

func (l *alertLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.logs.Write(p)
}

// take returns the alerts so far and forgets them.
func (l *alertLog) take() []outpost.Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	as := l.alerts
	l.alerts = nil
	return as
}

func (l *alertLog) has(rule string, state outpost.AlertState) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.alerts {
		if a.Rule == rule && a.State == state {
			return true
		}
	}
	return false
}

func (l *alertLog) log() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.logs.String()
}

// rulesConfig is a gateway with one simulated sensor reading value, the
// rules file dir/rules.yaml, and no reachable broker.
func rulesConfig(t *testing.T, dir string, value float64) *config.Config {
	t.Helper()
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: "gw-rules"},
		DataDir: filepath.Join(dir, "data"),
		Sensors: []config.Sensor{{ID: "dev1", Driver: SimDriver, Interval: 5 * time.Millisecond, Samples: 2,
			Metrics: []config.Metric{{Name: "temperature", Unit: "Cel", Signal: config.Signal{Kind: "constant", Value: value}}}}},
		Batch:  config.BatchConfig{MaxReadings: 100, Interval: 50 * time.Millisecond},
		Uplink: config.UplinkConfig{Broker: "tcp://127.0.0.1:1"},
		Rules:  config.RulesConfig{Files: []string{filepath.Join(dir, "rules.yaml")}},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func writeRules(t *testing.T, dir, body string) {
	t.Helper()
	// As an editor saves: a new file renamed over the old one.
	tmp := filepath.Join(dir, ".rules.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "rules.yaml")); err != nil {
		t.Fatal(err)
	}
}

func startGateway(t *testing.T, cfg *config.Config, l *alertLog) *Gateway {
	t.Helper()
	g, err := New(cfg, &Options{OnAlert: l.add, Logger: zerolog.New(l)})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return g
}

func closeGateway(t *testing.T, g *Gateway) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitUntil polls cond until it holds or a generous deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// savedState reads the rule state a closed gateway left in its file.
func savedState(t *testing.T, cfg *config.Config) rules.EngineState {
	t.Helper()
	ob, err := buffer.Open(filepath.Join(cfg.DataDir, OutboxFile), &buffer.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	data, err := ob.State(RulesStateKey)
	if err != nil {
		t.Fatal(err)
	}
	var st rules.EngineState
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatalf("saved state %q: %v", data, err)
	}
	return st
}

func instance(st rules.EngineState, rule string) *rules.InstanceState {
	for i := range st.Instances {
		if st.Instances[i].Rule == rule {
			return &st.Instances[i]
		}
	}
	return nil
}

func find(as []outpost.Alert, rule string, state outpost.AlertState) []outpost.Alert {
	var out []outpost.Alert
	for _, a := range as {
		if a.Rule == rule && a.State == state {
			out = append(out, a)
		}
	}
	return out
}

// A firing instance and a pending `for` timer survive a restart: nothing
// is emitted again, and the firing instance resolves later as usual.
func TestRuleStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, twoRules)

	// Run 1: hot fires, slow goes pending.
	l := &alertLog{}
	g := startGateway(t, rulesConfig(t, dir, 40), l)
	waitUntil(t, "hot firing and slow pending", func() bool {
		return l.has("hot", outpost.StateFiring) && l.has("slow", outpost.StatePending)
	})
	closeGateway(t, g)
	run1 := l.take()
	if len(run1) != 2 {
		t.Fatalf("run 1 alerts %+v", run1)
	}
	firing := find(run1, "hot", outpost.StateFiring)[0]
	pending := find(run1, "slow", outpost.StatePending)[0]
	if st := savedState(t, rulesConfig(t, dir, 40)); len(st.Instances) != 2 || st.Seq < 2 {
		t.Fatalf("saved state %+v", st)
	}

	// Run 2: the same condition, after a restart: no alert at all.
	l = &alertLog{}
	g = startGateway(t, rulesConfig(t, dir, 40), l)
	waitUntil(t, "readings", func() bool { return g.Stats().ReadingsEmitted >= 40 })
	closeGateway(t, g) // drains every emitted reading through the rules
	if as := l.take(); len(as) != 0 {
		t.Fatalf("run 2 emitted %+v: restored instances must not alert again", as)
	}
	if !strings.Contains(l.log(), `"restored":2`) {
		t.Errorf("no restore log line with 2 instances:\n%s", l.log())
	}

	// Run 3: the value drops: hot resolves with its original start, slow's
	// timer is cancelled.
	l = &alertLog{}
	g = startGateway(t, rulesConfig(t, dir, 20), l)
	waitUntil(t, "hot resolved", func() bool { return l.has("hot", outpost.StateResolved) })
	closeGateway(t, g)
	run3 := l.take()
	res := find(run3, "hot", outpost.StateResolved)
	inact := find(run3, "slow", outpost.StateInactive)
	if len(run3) != 2 || len(res) != 1 || len(inact) != 1 {
		t.Fatalf("run 3 alerts %+v", run3)
	}
	if res[0].StartedAt != firing.StartedAt || inact[0].StartedAt != pending.StartedAt {
		t.Errorf("started at %d and %d, want %d and %d", res[0].StartedAt, inact[0].StartedAt, firing.StartedAt, pending.StartedAt)
	}
	for _, a := range run3 {
		if a.Seq <= max(firing.Seq, pending.Seq) {
			t.Errorf("seq %d after a restart: must continue after %d", a.Seq, max(firing.Seq, pending.Seq))
		}
	}
	// What is saved now is inactive: instances that went inactive since
	// the last tick, kept for their place in Tick's order.
	for _, in := range savedState(t, rulesConfig(t, dir, 20)).Instances {
		if in.State != outpost.StateInactive {
			t.Errorf("state after resolving has %+v", in)
		}
	}
}

// A reload keeps the state of unchanged rules, resets changed ones
// (ending their instances), ends those of removed ones, and a bad file
// keeps the running rules. The outbox's batches are untouched.
func TestReloadRules(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, twoRules)
	l := &alertLog{}
	cfg := rulesConfig(t, dir, 40)
	g := startGateway(t, cfg, l)
	defer closeGateway(t, g)
	waitUntil(t, "hot firing and slow pending", func() bool {
		return l.has("hot", outpost.StateFiring) && l.has("slow", outpost.StatePending)
	})
	start := l.take()
	firing := find(start, "hot", outpost.StateFiring)[0]
	pending := find(start, "slow", outpost.StatePending)[0]

	t.Run("unchanged", func(t *testing.T) {
		writeRules(t, dir, twoRules+"  - name: cold\n    select: {metric: temperature}\n    below: 0\n")
		if err := g.ReloadRules(); err != nil {
			t.Fatal(err)
		}
		if as := l.take(); len(as) != 0 {
			t.Fatalf("reload of unchanged rules emitted %+v", as)
		}
	})
	t.Run("bad file", func(t *testing.T) {
		writeRules(t, dir, "rules:\n  - name: hot\n    select: {metric: temperature}\n    above: warm\n")
		err := g.ReloadRules()
		if err == nil || !strings.Contains(err.Error(), "rules.yaml:4:") {
			t.Fatalf("bad file: %v, want a file:line:col error", err)
		}
		if g.Stats().RuleReloadFails == 0 || !strings.Contains(l.log(), "rules reload failed") {
			t.Errorf("failure not counted or logged:\n%s", l.log())
		}
		if as := l.take(); len(as) != 0 {
			t.Fatalf("bad reload emitted %+v", as)
		}
	})
	t.Run("changed", func(t *testing.T) {
		writeRules(t, dir, strings.Replace(twoRules, "above: 30\n  - name: slow", "above: 35\n  - name: slow", 1))
		before := g.Stats().Outbox
		if err := g.ReloadRules(); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "hot firing again", func() bool { return l.has("hot", outpost.StateFiring) })
		as := l.take()
		res := find(as, "hot", outpost.StateResolved)
		again := find(as, "hot", outpost.StateFiring)
		if len(res) != 1 || res[0].Message != msgRuleChanged || res[0].StartedAt != firing.StartedAt {
			t.Fatalf("changed rule: resolved %+v", res)
		}
		if len(again) != 1 || again[0].StartedAt <= firing.StartedAt || again[0].Seq <= res[0].Seq {
			t.Fatalf("changed rule: firing again %+v after %+v", again, res)
		}
		if len(find(as, "slow", outpost.StateInactive))+len(find(as, "slow", outpost.StatePending)) != 0 {
			t.Fatalf("unchanged rule slow alerted: %+v", as)
		}
		if after := g.Stats().Outbox; after.Epoch != before.Epoch || after.NextSeq < before.NextSeq {
			t.Fatalf("outbox changed by a reload: %+v then %+v", before, after)
		}
	})
	t.Run("removed", func(t *testing.T) {
		writeRules(t, dir, strings.Replace(twoRules, "above: 30\n  - name: slow", "above: 35\n  - name: gone", 1))
		if err := g.ReloadRules(); err != nil {
			t.Fatal(err)
		}
		as := l.take()
		ended := find(as, "slow", outpost.StateInactive)
		if len(ended) != 1 || ended[0].Message != msgRuleRemoved || ended[0].StartedAt != pending.StartedAt ||
			ended[0].Labels[rules.LabelGateway] != "gw-rules" {
			t.Fatalf("removed rule: %+v", as)
		}
	})
	closeGateway(t, g)
	st := savedState(t, cfg)
	if hot := instance(st, "hot"); hot == nil || hot.State != outpost.StateFiring || instance(st, "slow") != nil {
		t.Fatalf("saved state %+v", st)
	}
}

// The watcher reloads when a rules file is replaced or rewritten in place.
func TestRulesWatcherReloads(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, twoRules)
	l := &alertLog{}
	g := startGateway(t, rulesConfig(t, dir, 40), l)
	defer closeGateway(t, g)
	writeRules(t, dir, twoRules+"  - name: cold\n    select: {metric: temperature}\n    below: 0\n")
	waitUntil(t, "a reload after a rename", func() bool { return g.Stats().RuleReloads >= 1 })
	n := g.Stats().RuleReloads
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(twoRules), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a reload after a write", func() bool { return g.Stats().RuleReloads > n })
	// Another file in the directory does not reload.
	if err := os.WriteFile(filepath.Join(dir, "other.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}
