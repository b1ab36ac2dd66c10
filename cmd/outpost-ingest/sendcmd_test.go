package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/internal/testenv"
)

// outpost-ingest command against a real gateway over the broker: ping,
// log.level with an argument, rules.set with a file and then rules.get,
// an unknown command, a gateway that is not there, and bad flags.
func TestSendCommand(t *testing.T) {
	broker := testenv.MQTT(t)
	prefix := fmt.Sprintf("outpost-test/sendcmd-%d", time.Now().UnixNano())
	testenv.CleanupRetained(t, broker, prefix)
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte("rules:\n  - {name: hot, select: {metric: temperature}, above: 25}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: "gw-sendcmd"},
		DataDir: filepath.Join(dir, "data"),
		Sensors: []config.Sensor{{ID: "dev1", Driver: config.SimDriver, Interval: 100 * time.Millisecond, Metrics: []config.Metric{
			{Name: "temperature", Unit: "Cel", Signal: config.Signal{Kind: config.SignalConstant, Value: 21}}}}},
		Uplink: config.UplinkConfig{Broker: broker, TopicPrefix: prefix, Commands: true},
		Rules:  config.RulesConfig{Files: []string{rulesFile}},
	}
	startCommandGateway(t, cfg, "9.9.9-sendcmd")

	type reply struct {
		ID, Status, TS string
		Body           map[string]any
	}
	send := func(t *testing.T, args ...string) (reply, int, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append([]string{"command", "--broker", broker, "--topic-prefix", prefix}, args...), &out, &errb)
		var r reply
		if out.Len() > 0 {
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("output %q: %v", out.String(), err)
			}
		}
		return r, code, errb.String()
	}

	t.Run("ping", func(t *testing.T) {
		r, code, stderr := send(t, "--gateway", "gw-sendcmd", "--id", "ping-1", "ping")
		if code != cli.ExitOK || r.ID != "ping-1" || r.Status != "ok" || r.Body["version"] != "9.9.9-sendcmd" {
			t.Fatalf("exit %d, reply %+v, stderr %s", code, r, stderr)
		}
		if _, err := time.Parse(time.RFC3339Nano, r.TS); err != nil {
			t.Fatalf("ts %q: %v", r.TS, err)
		}
	})
	t.Run("argument", func(t *testing.T) {
		prev := zerolog.GlobalLevel()
		defer zerolog.SetGlobalLevel(prev)
		r, code, stderr := send(t, "--gateway", "gw-sendcmd", "--arg", "level=warn", "log.level")
		if code != cli.ExitOK || r.Body["level"] != "warn" {
			t.Fatalf("exit %d, reply %+v, stderr %s", code, r, stderr)
		}
	})
	t.Run("rules.set from a file", func(t *testing.T) {
		next := filepath.Join(dir, "next.yaml")
		text := "rules:\n  - {name: hot, select: {metric: temperature}, above: 25}\n  - {name: cold, select: {metric: temperature}, below: 5}\n"
		if err := os.WriteFile(next, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		r, code, stderr := send(t, "--gateway", "gw-sendcmd", "--file", "content="+next, "rules.set")
		if code != cli.ExitOK || r.Status != "ok" || fmt.Sprint(r.Body["rules"]) != "[hot cold]" {
			t.Fatalf("exit %d, reply %+v, stderr %s", code, r, stderr)
		}
		got, code, _ := send(t, "--gateway", "gw-sendcmd", "rules.get")
		if code != cli.ExitOK || got.Body["hash"] != r.Body["hash"] {
			t.Fatalf("rules.get after rules.set: %+v, want hash %v", got, r.Body["hash"])
		}
		if data, _ := os.ReadFile(rulesFile); string(data) != text {
			t.Fatalf("rules file:\n%s", data)
		}
	})
	t.Run("refused", func(t *testing.T) {
		r, code, stderr := send(t, "--gateway", "gw-sendcmd", "reboot")
		if code != 1 || r.Status != "unknown" || !strings.Contains(stderr, "unknown") {
			t.Fatalf("exit %d, reply %+v, stderr %s", code, r, stderr)
		}
	})
	t.Run("no such gateway", func(t *testing.T) {
		_, code, stderr := send(t, "--gateway", "gw-nobody", "--timeout", "1s", "ping")
		if code != 1 || !strings.Contains(stderr, "no reply from gw-nobody") {
			t.Fatalf("exit %d, stderr %s", code, stderr)
		}
	})
	t.Run("a gateway without a key in --auth-keys", func(t *testing.T) {
		// Its request goes unsigned, and its unsigned reply is taken.
		keys := filepath.Join(dir, "other.keys")
		if err := os.WriteFile(keys, []byte("gw-other "+outpost.NewKey().Hex()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r, code, stderr := send(t, "--auth-keys", keys, "--gateway", "gw-sendcmd", "ping")
		if code != cli.ExitOK || r.Status != "ok" {
			t.Fatalf("exit %d, reply %+v, stderr %s", code, r, stderr)
		}
	})
	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{
			{"ping"},                           // no gateway
			{"--gateway", "gw-sendcmd"},        // no name
			{"--gateway", "gw/x", "ping"},      // bad gateway
			{"--gateway", "gw-sendcmd", "a/b"}, // bad name
			{"--gateway", "gw-sendcmd", "--timeout", "48h", "ping"},
			{"--gateway", "gw-sendcmd", "--id", "a b", "ping"},
			{"--gateway", "gw-sendcmd", "--arg", "novalue", "ping"},
			{"--gateway", "gw-sendcmd", "--arg", "k=1", "--arg", "k=2", "ping"},
			{"--gateway", "gw-sendcmd", "--file", "content=" + filepath.Join(dir, "missing"), "rules.set"},
		} {
			if _, code, stderr := send(t, args...); code != cli.ExitUsage {
				t.Errorf("%v: exit %d, want %d; stderr %s", args, code, cli.ExitUsage, stderr)
			}
		}
	})
}

// outpost-ingest command --auth-keys against a real gateway with a key:
// a signed request runs and its reply verifies; one without --auth-keys
// is refused invalid by the gateway; with a wrong key the gateway
// refuses it and its reply does not verify; and a signed request may
// not live longer than the gateway remembers its id.
func TestSendCommandSigned(t *testing.T) {
	broker := testenv.MQTT(t)
	prefix := fmt.Sprintf("outpost-test/sendcmd-signed-%d", time.Now().UnixNano())
	testenv.CleanupRetained(t, broker, prefix)
	dir := t.TempDir()
	key := outpost.NewKey()
	keyFile := filepath.Join(dir, "gw.key")
	if err := os.WriteFile(keyFile, []byte(key.Hex()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: "gw-signed"},
		DataDir: filepath.Join(dir, "data"),
		Sensors: []config.Sensor{{ID: "dev1", Driver: config.SimDriver, Interval: 100 * time.Millisecond, Metrics: []config.Metric{
			{Name: "temperature", Unit: "Cel", Signal: config.Signal{Kind: config.SignalConstant, Value: 21}}}}},
		Uplink: config.UplinkConfig{Broker: broker, TopicPrefix: prefix, Commands: true, AuthKeyFile: keyFile},
	}
	g := startCommandGateway(t, cfg, "9.9.9-signed")
	keys := filepath.Join(dir, "gateway.keys")
	if err := os.WriteFile(keys, []byte("gw-signed "+key.Hex()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(dir, "wrong.keys")
	if err := os.WriteFile(wrong, []byte("gw-signed "+outpost.NewKey().Hex()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type reply struct {
		ID, Status string
		Body       map[string]any
	}
	send := func(t *testing.T, args ...string) (reply, int, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append([]string{"command", "--broker", broker, "--topic-prefix", prefix, "--gateway", "gw-signed"}, args...), &out, &errb)
		var r reply
		if out.Len() > 0 {
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("output %q: %v", out.String(), err)
			}
		}
		if strings.Contains(out.String()+errb.String(), key.Hex()) {
			t.Fatal("the key in the output")
		}
		return r, code, errb.String()
	}

	t.Run("signed", func(t *testing.T) {
		r, code, stderr := send(t, "--auth-keys", keys, "--timeout", "10m", "ping")
		if code != cli.ExitOK || r.Status != "ok" || r.Body["version"] != "9.9.9-signed" {
			t.Fatalf("exit %d, reply %+v, stderr %s", code, r, stderr)
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		runs := g.CommandStats().Runs
		r, code, stderr := send(t, "ping")
		if code != 1 || r.Status != "invalid" || !strings.Contains(fmt.Sprint(r.Body["error"]), "no MAC") {
			t.Fatalf("exit %d, reply %+v, stderr %s", code, r, stderr)
		}
		if g.CommandStats().Runs != runs {
			t.Fatal("an unsigned request ran")
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		r, code, stderr := send(t, "--auth-keys", wrong, "ping")
		if code != 1 || r.ID != "" || !strings.Contains(stderr, "is not the gateway's") || !strings.Contains(stderr, "authentication failed") {
			t.Fatalf("exit %d, reply %+v, stderr %s", code, r, stderr)
		}
		if st := g.CommandStats(); st.Unauthenticated < 2 {
			t.Fatalf("stats %+v: the wrong key's request was not refused", st)
		}
	})
	t.Run("timeout beyond the id cache", func(t *testing.T) {
		_, code, stderr := send(t, "--auth-keys", keys, "--timeout", "11m", "ping")
		if code != cli.ExitUsage || !strings.Contains(stderr, "at most 10m0s") {
			t.Fatalf("exit %d, stderr %s", code, stderr)
		}
	})
	t.Run("a keys file others may read", func(t *testing.T) {
		open := filepath.Join(dir, "open.keys")
		if err := os.WriteFile(open, []byte("gw-signed "+key.Hex()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(open, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, code, stderr := send(t, "--auth-keys", open, "ping"); code != 1 || !strings.Contains(stderr, "other users may read") {
			t.Fatalf("exit %d, stderr %s", code, stderr)
		}
	})
}

// startCommandGateway starts a gateway of cfg (defaults set here) with
// version, stops it at the end of the test, and waits for its uplink.
func startCommandGateway(t *testing.T, cfg *config.Config, version string) *gateway.Gateway {
	t.Helper()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, &gateway.Options{Logger: zerolog.Nop(), Version: version})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	for !g.Stats().Uplink.Connected {
		time.Sleep(20 * time.Millisecond)
	}
	return g
}
