package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway/command"
	"github.com/outposthq/outpost/internal/testenv"
)

const commandsPrefix = "outpost-test/commands"

// cmdClient is the cloud side of a commands test: it publishes requests
// and collects the replies by id.
type cmdClient struct {
	t      *testing.T
	c      mqtt.Client
	base   string
	mu     sync.Mutex
	cond   *sync.Cond
	got    map[string][]command.Reply
	failed []string
}

func newCmdClient(t *testing.T, broker, base string) *cmdClient {
	cc := &cmdClient{t: t, c: brokerClient(t, broker), base: base, got: map[string][]command.Reply{}}
	cc.cond = sync.NewCond(&cc.mu)
	tok := cc.c.Subscribe(base+"/reply/+", 1, func(_ mqtt.Client, m mqtt.Message) {
		r, err := command.DecodeReply(m.Payload())
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if err != nil || m.Retained() || m.Topic() != base+"/reply/"+r.ID {
			cc.failed = append(cc.failed, fmt.Sprintf("%s retained=%v: %+v %v", m.Topic(), m.Retained(), r, err))
		} else {
			cc.got[r.ID] = append(cc.got[r.ID], r)
		}
		cc.cond.Broadcast()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return cc
}

func (cc *cmdClient) publish(name string, payload []byte) {
	cc.t.Helper()
	if tok := cc.c.Publish(cc.base+"/cmd/"+name, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		cc.t.Fatalf("publish: %v", tok.Error())
	}
}

// wait returns the n-th reply (from 1) for id.
func (cc *cmdClient) wait(id string, n int) command.Reply {
	cc.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	stop := time.AfterFunc(15*time.Second, func() { cc.mu.Lock(); cc.cond.Broadcast(); cc.mu.Unlock() })
	defer stop.Stop()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for len(cc.got[id]) < n {
		if len(cc.failed) > 0 {
			cc.t.Fatalf("bad replies: %v", cc.failed)
		}
		if time.Now().After(deadline) {
			cc.t.Fatalf("no reply %d for %s", n, id)
		}
		cc.cond.Wait()
	}
	return cc.got[id][n-1]
}

// call sends a request for name that expires in a minute and returns its
// reply.
func (cc *cmdClient) call(name, id string, body []byte) command.Reply {
	cc.t.Helper()
	cc.publish(name, command.AppendRequest(nil, command.Request{ID: id, Deadline: time.Now().Add(time.Minute).UnixNano(), Body: body}))
	return cc.wait(id, 1)
}

func bodyMap(t *testing.T, r command.Reply) map[string]any {
	t.Helper()
	m, rest, err := msgp.ReadMapStrIntfBytes(r.Body, nil)
	if err != nil || len(rest) != 0 {
		t.Fatalf("reply %s body %x: %v", r.Status, r.Body, err)
	}
	return m
}

// startCommandsGateway starts a gateway of cfg logging into a sink,
// closed at the end of the test, waits for its uplink, and returns it
// with the sink and a client of its command topics.
func startCommandsGateway(t *testing.T, broker string, cfg *config.Config) (*Gateway, *logSink, *cmdClient) {
	t.Helper()
	sink := &logSink{}
	g, err := New(cfg, &Options{Logger: zerolog.New(sink), Version: "1.2.3-test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeGateway(t, g) })
	waitFor(t, func() bool { return g.Stats().Uplink.Connected })
	return g, sink, newCmdClient(t, broker, commandsPrefix+"/"+cfg.Gateway.ID)
}

func wantStatus(t *testing.T, r command.Reply, st command.Status) map[string]any {
	t.Helper()
	if r.Status != st {
		t.Fatalf("reply %+v, want %s", r, st)
	}
	return bodyMap(t, r)
}

func TestCommandsEndToEnd(t *testing.T) {
	broker := testenv.MQTT(t)
	const secret = "s3cret-broker-pw-9f2"
	t.Setenv("OUTPOST_TEST_COMMANDS_PW", secret)
	cfg := shutdownConfig(t, broker, 1, 1, 10)
	cfg.Gateway.ID = fmt.Sprintf("gw-cmd-%d", time.Now().UnixNano())
	cfg.Uplink.TopicPrefix = commandsPrefix
	cfg.Uplink.Commands = true
	cfg.Uplink.PasswordEnv = "OUTPOST_TEST_COMMANDS_PW" // no username: never sent to the broker
	rulesText := "rules:\n  - {name: hot, select: {metric: temperature}, above: 25, severity: critical}\n"
	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte(rulesText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Rules.Files = []string{rulesFile}
	testenv.CleanupRetained(t, broker, commandsPrefix)
	g, sink, cc := startCommandsGateway(t, broker, cfg)

	t.Run("ping", func(t *testing.T) {
		before := time.Now().UnixNano()
		m := wantStatus(t, cc.call("ping", "ping-1", nil), command.StatusOK)
		clk, _ := m["clock"].(int64)
		up, _ := m["uptime_s"].(int64)
		if m["version"] != "1.2.3-test" || clk < before || clk > time.Now().UnixNano() || up < 0 || up > 600 {
			t.Fatalf("ping %v", m)
		}
		if _, ok := m["outbox_batches"].(int64); !ok {
			t.Fatalf("ping %v: no outbox_batches", m)
		}
	})

	t.Run("duplicate id runs once", func(t *testing.T) {
		runs := g.CommandStats().Runs
		p := command.AppendRequest(nil, command.Request{ID: "dup-1", Deadline: time.Now().Add(time.Minute).UnixNano()})
		cc.publish("ping", p)
		first := cc.wait("dup-1", 1)
		cc.publish("ping", p) // as a broker's redelivery
		second := cc.wait("dup-1", 2)
		if first.Status != command.StatusOK || !bytes.Equal(command.AppendReply(nil, first), command.AppendReply(nil, second)) {
			t.Fatalf("replies differ: %+v %+v", first, second)
		}
		if got := g.CommandStats().Runs - runs; got != 1 {
			t.Fatalf("ran %d times", got)
		}
		if g.CommandStats().Repeats < 1 {
			t.Fatal("repeat not counted")
		}
	})

	t.Run("expired", func(t *testing.T) {
		runs := g.CommandStats().Runs
		cc.publish("ping", command.AppendRequest(nil, command.Request{ID: "old-1", Deadline: time.Now().Add(-time.Second).UnixNano()}))
		wantStatus(t, cc.wait("old-1", 1), command.StatusExpired)
		if g.CommandStats().Runs != runs {
			t.Fatal("an expired request ran")
		}
	})

	t.Run("deadline too far", func(t *testing.T) {
		cc.publish("ping", command.AppendRequest(nil, command.Request{ID: "far-1", Deadline: time.Now().Add(25 * time.Hour).UnixNano()}))
		wantStatus(t, cc.wait("far-1", 1), command.StatusInvalid)
	})

	t.Run("unknown", func(t *testing.T) {
		m := wantStatus(t, cc.call("reboot.now", "unk-1", nil), command.StatusUnknown)
		if !strings.Contains(fmt.Sprint(m["error"]), "reboot.now") {
			t.Fatalf("unknown %v", m)
		}
	})

	t.Run("invalid", func(t *testing.T) {
		// A body that does not decode as the command's arguments.
		wantStatus(t, cc.call("log.level", "inv-1", msgp.AppendString(nil, "debug")), command.StatusInvalid)
		// A body that is not MessagePack.
		bad := msgp.AppendMapHeader(nil, 3)
		bad = msgp.AppendString(bad, "id")
		bad = msgp.AppendString(bad, "inv-2")
		bad = msgp.AppendString(bad, "deadline")
		bad = msgp.AppendInt64(bad, time.Now().Add(time.Minute).UnixNano())
		bad = msgp.AppendString(bad, "body")
		bad = msgp.AppendBytes(bad, []byte{0xc1})
		cc.publish("ping", bad)
		wantStatus(t, cc.wait("inv-2", 1), command.StatusInvalid)
		// Too large: refused, but answered, since its id can be read.
		huge := command.AppendRequest(nil, command.Request{ID: "inv-3", Deadline: time.Now().Add(time.Minute).UnixNano(),
			Body: msgp.AppendBytes(nil, make([]byte, command.MaxRequestBytes))})
		cc.publish("ping", huge)
		m := wantStatus(t, cc.wait("inv-3", 1), command.StatusInvalid)
		if !strings.Contains(fmt.Sprint(m["error"]), "more than") {
			t.Fatalf("too large %v", m)
		}
		// Garbage and a bad id cannot be answered: they are dropped.
		dropped := g.CommandStats().Dropped
		cc.publish("ping", []byte("garbage"))
		cc.publish("ping", command.AppendRequest(nil, command.Request{ID: "a/b", Deadline: time.Now().Add(time.Minute).UnixNano()}))
		waitFor(t, func() bool { return g.CommandStats().Dropped == dropped+2 })
		// The gateway still answers.
		wantStatus(t, cc.call("ping", "inv-4", nil), command.StatusOK)
	})

	t.Run("log.level", func(t *testing.T) {
		prev := zerolog.GlobalLevel()
		defer zerolog.SetGlobalLevel(prev)
		body := msgp.AppendMapHeader(nil, 1)
		body = msgp.AppendString(body, "level")
		body = msgp.AppendString(body, "warn")
		m := wantStatus(t, cc.call("log.level", "lvl-1", body), command.StatusOK)
		if m["previous"] != prev.String() || m["level"] != "warn" || zerolog.GlobalLevel() != zerolog.WarnLevel {
			t.Fatalf("log.level %v, global level %s", m, zerolog.GlobalLevel())
		}
		bad := msgp.AppendMapHeader(nil, 1)
		bad = msgp.AppendString(bad, "level")
		bad = msgp.AppendString(bad, "loud")
		wantStatus(t, cc.call("log.level", "lvl-2", bad), command.StatusInvalid)
		if zerolog.GlobalLevel() != zerolog.WarnLevel {
			t.Fatal("a refused level changed the level")
		}
	})

	t.Run("rules.get", func(t *testing.T) {
		m := wantStatus(t, cc.call("rules.get", "rules-1", nil), command.StatusOK)
		files, _ := m["files"].([]any)
		if len(files) != 1 {
			t.Fatalf("rules.get %v", m)
		}
		f, _ := files[0].(map[string]any)
		if f["path"] != rulesFile || string(f["content"].([]byte)) != rulesText || len(fmt.Sprint(f["sha256"])) != 64 {
			t.Fatalf("rules.get file %v", f)
		}
		waitFor(t, func() bool { return len(g.Stats().Rules) == 1 }) // the engine's first tick
		m = wantStatus(t, cc.call("rules.get", "rules-2", nil), command.StatusOK)
		if names, _ := m["rules"].([]any); len(names) != 1 || names[0] != "hot" {
			t.Fatalf("rules.get rules %v", m["rules"])
		}
	})

	t.Run("rules.set", func(t *testing.T) {
		before := wantStatus(t, cc.call("rules.get", "rset-0", nil), command.StatusOK)
		hash, _ := before["hash"].(string)
		if len(hash) != 64 {
			t.Fatalf("rules.get hash %v", before["hash"])
		}
		args := func(content, ifHash string) []byte {
			n := uint32(1)
			if ifHash != "" {
				n = 2
			}
			b := msgp.AppendMapHeader(nil, n)
			b = msgp.AppendString(b, "content")
			b = msgp.AppendBytes(b, []byte(content))
			if ifHash != "" {
				b = msgp.AppendString(b, "if_hash")
				b = msgp.AppendString(b, ifHash)
			}
			return b
		}
		// A file with problems: refused with their positions, nothing changes.
		m := wantStatus(t, cc.call("rules.set", "rset-1", args("rules:\n  - {name: bad, select: {metric: temperature}, above: x}\n", "")), command.StatusInvalid)
		if errs := fmt.Sprint(m["errors"]); !strings.Contains(errs, "rules.yaml:2:") {
			t.Fatalf("rules.set refused with %v, want rules.yaml:2:…", m)
		}
		// Rules other than those the sender saw: refused.
		wantStatus(t, cc.call("rules.set", "rset-2", args(rulesText, strings.Repeat("0", 64))), command.StatusError)
		if data, _ := os.ReadFile(rulesFile); string(data) != rulesText {
			t.Fatalf("a refused rules.set changed the file:\n%s", data)
		}
		if m := wantStatus(t, cc.call("rules.get", "rset-3", nil), command.StatusOK); m["hash"] != hash {
			t.Fatalf("a refused rules.set changed the running rules: %v, was %s", m["hash"], hash)
		}
		// A good one: written, running, its hash replied.
		next := rulesText + "  - {name: cold, select: {metric: temperature}, below: 5}\n"
		m = wantStatus(t, cc.call("rules.set", "rset-4", args(next, hash)), command.StatusOK)
		newHash, _ := m["hash"].(string)
		if m["previous"] != hash || len(newHash) != 64 || newHash == hash || fmt.Sprint(m["rules"]) != "[hot cold]" {
			t.Fatalf("rules.set %v", m)
		}
		if data, _ := os.ReadFile(rulesFile); string(data) != next {
			t.Fatalf("rules file after rules.set:\n%s", data)
		}
		if m := wantStatus(t, cc.call("rules.get", "rset-5", nil), command.StatusOK); m["hash"] != newHash {
			t.Fatalf("rules.get after rules.set: hash %v, want %s", m["hash"], newHash)
		}
		waitFor(t, func() bool { return len(g.Stats().Rules) == 2 })
		// The same rules again (the watcher's reload does the same) keep the hash.
		if m := wantStatus(t, cc.call("rules.set", "rset-6", args(next, newHash)), command.StatusOK); m["hash"] != newHash {
			t.Fatalf("the same rules set again: %v", m)
		}
	})

	t.Run("sensors.test", func(t *testing.T) {
		body := msgp.AppendMapHeader(nil, 1)
		body = msgp.AppendString(body, "sensor")
		body = msgp.AppendString(body, "dev0")
		m := wantStatus(t, cc.call("sensors.test", "sens-1", body), command.StatusOK)
		rs, _ := m["readings"].([]any)
		if m["sensor"] != "dev0" || len(rs) == 0 {
			t.Fatalf("sensors.test %v", m)
		}
		r, _ := rs[0].(map[string]any)
		if v, ok := r["value"].(float64); !ok || r["metric"] != "temperature" || r["unit"] != "Cel" || r["quality"] != "good" || v < 17 || v > 23 {
			t.Fatalf("sensors.test reading %v", r)
		}
		bad := msgp.AppendMapHeader(nil, 1)
		bad = msgp.AppendString(bad, "sensor")
		bad = msgp.AppendString(bad, "nope")
		if m := wantStatus(t, cc.call("sensors.test", "sens-2", bad), command.StatusError); !strings.Contains(fmt.Sprint(m["error"]), "no sensor") {
			t.Fatalf("sensors.test of an unknown sensor: %v", m)
		}
	})

	t.Run("stats", func(t *testing.T) {
		waitFor(t, func() bool { return g.Stats().ReadingsStored > 0 })
		m := wantStatus(t, cc.call("stats", "stats-1", nil), command.StatusOK)
		if n, _ := m["readings_stored"].(int64); n <= 0 || m["uplink_connected"] != true || m["sensors"] != int64(1) {
			t.Fatalf("stats %v", m)
		}
		if n, _ := m["commands_run"].(int64); n < 2 {
			t.Fatalf("stats %v", m)
		}
	})

	t.Run("buffer.flush", func(t *testing.T) {
		stored := g.Stats().ReadingsStored
		m := wantStatus(t, cc.call("buffer.flush", "flush-1", nil), command.StatusOK)
		n, ok1 := m["sealed_readings"].(int64)
		_, ok2 := m["outbox_batches"].(int64)
		if !ok1 || !ok2 || n < 0 || n >= int64(cfg.Batch.MaxReadings) {
			t.Fatalf("buffer.flush %v", m)
		}
		// What it sealed is stored when it replies.
		if got := g.Stats().ReadingsStored; got < stored+n {
			t.Fatalf("stored %d readings, want at least %d", got, stored+n)
		}
	})

	t.Run("config.get", func(t *testing.T) {
		r := cc.call("config.get", "cfg-1", nil)
		m := wantStatus(t, r, command.StatusOK)
		y, _ := m["yaml"].([]byte)
		if !bytes.Contains(y, []byte(cfg.Gateway.ID)) || !bytes.Contains(y, []byte("OUTPOST_TEST_COMMANDS_PW")) {
			t.Fatalf("config.get:\n%s", y)
		}
		if bytes.Contains(r.Body, []byte(secret)) || bytes.Contains(y, []byte(secret)) {
			t.Fatalf("config.get shows the password:\n%s", y)
		}
	})

	t.Run("no secret in the log", func(t *testing.T) {
		if l := sink.find(secret); l != "" {
			t.Fatalf("log line with the password: %s", l)
		}
	})
}

// The broker URL's password is redacted in config.get's YAML.
func TestRedactedConfig(t *testing.T) {
	cfg := shutdownConfig(t, "tcp://user:hunter2-pw@127.0.0.1:1", 1, 1, 10)
	g := &Gateway{cfg: cfg}
	y, err := g.redactedConfig()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(y, []byte("hunter2-pw")) || !bytes.Contains(y, []byte("user:"+redacted+"@127.0.0.1:1")) {
		t.Fatalf("config:\n%s", y)
	}
}

// A gateway with a key runs only the commands signed with it, and signs
// its replies: through the real broker, a signed ping is answered ok
// with a reply that verifies, an unsigned one (or one signed with
// another key) is answered invalid and does not run.
func TestCommandsSigned(t *testing.T) {
	broker := testenv.MQTT(t)
	cfg := shutdownConfig(t, broker, 1, 1, 10)
	cfg.Gateway.ID = fmt.Sprintf("gw-cmdkey-%d", time.Now().UnixNano())
	cfg.Uplink.TopicPrefix = commandsPrefix
	cfg.Uplink.Commands = true
	key := outpost.NewKey()
	cfg.Uplink.AuthKeyFile = "gw.key"
	if err := os.WriteFile(cfg.AuthKeyPath(), []byte(key.Hex()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.CleanupRetained(t, broker, commandsPrefix+"/"+cfg.Gateway.ID)
	g, sink, cc := startCommandsGateway(t, broker, cfg)
	keys := []outpost.Key{key}

	req := command.Request{ID: "signed-1", Deadline: time.Now().Add(time.Minute).UnixNano()}
	command.SignRequest(&req, cfg.Gateway.ID, "ping", keys)
	cc.publish("ping", command.AppendRequest(nil, req))
	r := cc.wait("signed-1", 1)
	if m := wantStatus(t, r, command.StatusOK); m["version"] != "1.2.3-test" {
		t.Fatalf("ping %v", m)
	}
	if err := command.VerifyReply(&r, cfg.Gateway.ID, keys); err != nil {
		t.Fatalf("the reply does not verify: %v", err)
	}
	if err := command.VerifyReply(&r, cfg.Gateway.ID, []outpost.Key{outpost.NewKey()}); !errors.Is(err, outpost.ErrBadMAC) {
		t.Fatalf("the reply verifies with another key: %v", err)
	}

	runs := g.CommandStats().Runs
	cc.publish("ping", command.AppendRequest(nil, command.Request{ID: "unsigned-1", Deadline: time.Now().Add(time.Minute).UnixNano()}))
	r = cc.wait("unsigned-1", 1)
	if m := wantStatus(t, r, command.StatusInvalid); !strings.Contains(fmt.Sprint(m["error"]), "no MAC") {
		t.Fatalf("unsigned ping: %v", m)
	}
	if err := command.VerifyReply(&r, cfg.Gateway.ID, keys); err != nil {
		t.Fatalf("the refusal is not signed: %v", err)
	}
	forged := command.Request{ID: "forged-1", Deadline: time.Now().Add(time.Minute).UnixNano()}
	command.SignRequest(&forged, cfg.Gateway.ID, "ping", []outpost.Key{outpost.NewKey()})
	cc.publish("ping", command.AppendRequest(nil, forged))
	wantStatus(t, cc.wait("forged-1", 1), command.StatusInvalid)
	if st := g.CommandStats(); st.Runs != runs || st.Unauthenticated != 2 {
		t.Fatalf("stats %+v: want no run and 2 unauthenticated", st)
	}
	if l := sink.find(key.Hex()); l != "" {
		t.Fatalf("the key in the log: %s", l)
	}
}
