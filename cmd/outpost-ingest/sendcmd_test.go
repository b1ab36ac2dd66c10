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
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, &gateway.Options{Logger: zerolog.Nop(), Version: "9.9.9-sendcmd"})
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
