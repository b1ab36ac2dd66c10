package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/internal/testenv"
)

// `outpost run` hands the gateway its version: the status document says
// what `outpost version` prints, with the health.
func TestStatusCarriesVersion(t *testing.T) {
	broker := testenv.MQTT(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "gw.yaml", validConfig)
	writeFile(t, dir, "rules.yaml", validRules)
	id := fmt.Sprintf("gw-version-%d", time.Now().UnixNano())
	topic := "outpost/v1/" + id + "/status"

	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID(id + "-sub").SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	got := make(chan []byte, 16)
	if tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Payload() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	defer func() { c.Publish(topic, 1, true, []byte{}).WaitTimeout(5 * time.Second) }() // clear the retained status

	m := &Main{}
	if err := m.ParseFlags([]string{"--config", cfg, "--broker", broker, "--gateway-id", id,
		"--data-dir", filepath.Join(dir, "data"), "--log-level", "warn"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var st outpost.Status
	select {
	case p := <-got:
		if err := json.Unmarshal(p, &st); err != nil {
			t.Fatalf("status %q: %v", p, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no status")
	}
	want := "outpost " + cli.Version().String()
	if st.State != "online" || st.Version != want || st.Health == nil {
		t.Fatalf("status %+v: want online with version %q and the health", st, want)
	}
	if err := st.CheckProcess(); err != nil {
		t.Errorf("the ingest service would refuse it: %v", err)
	}
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, io.Discard); code != 0 || strings.TrimSpace(out.String()) != want {
		t.Errorf("outpost version prints %q (exit %d), the status says %q", out.String(), code, want)
	}
}

// `outpost check` reports a status interval out of bounds at its place.
func TestCheckStatusInterval(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "gw.yaml", strings.Replace(validConfig, "  broker: tcp://127.0.0.1:1883\n",
		"  broker: tcp://127.0.0.1:1883\n  status_interval: 5s\n", 1))
	writeFile(t, dir, "rules.yaml", validRules)
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "--config", cfg}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2; stderr %s", code, errOut.String())
	}
	if want := "gw.yaml:10:20: uplink.status_interval: must be 0 (only at connect and on a change) or at least 10s, got 5s"; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr %q, want %q", errOut.String(), want)
	}
}
