package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost/internal/testenv"
)

// retainedTopics subscribes to filter and returns the topics of the
// retained messages that arrive within a second of the subscription.
func retainedTopics(t *testing.T, broker, filter string) []string {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("outpost-test-%d", time.Now().UnixNano())).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	var mu sync.Mutex
	seen := map[string]bool{}
	tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		if m.Retained() && len(m.Payload()) > 0 {
			mu.Lock()
			seen[m.Topic()] = true
			mu.Unlock()
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	time.Sleep(time.Second) // the broker sends retained messages right after the SUBACK
	mu.Lock()
	defer mu.Unlock()
	var ts []string
	for topic := range seen {
		ts = append(ts, topic)
	}
	return ts
}

// A real gateway leaves its status, live and alert topics retained;
// outpost decommission --config refuses while it runs, clears them all
// once it stopped, and a subscriber then sees none.
func TestDecommissionClearsWhatAGatewayLeft(t *testing.T) {
	broker := testenv.MQTT(t)
	dir := t.TempDir()
	prefix := fmt.Sprintf("outpost-test/decommission-%d", time.Now().UnixNano())
	cfg := writeFile(t, dir, "gw.yaml", strings.Replace(validConfig, "  broker: tcp://127.0.0.1:1883",
		"  broker: "+broker+"\n  topic_prefix: "+prefix, 1))
	writeFile(t, dir, "rules.yaml", validRules)
	base := prefix + "/gw-t/"
	want := []string{base + "status", base + "live/s1/temperature", base + "alert/hot", base + "alert/sensor_health"}
	t.Cleanup(func() {
		var out bytes.Buffer
		run([]string{"decommission", "--config", cfg, "--force", "--settle", "200ms"}, &out, &out)
	})

	m := &Main{}
	if err := m.ParseFlags([]string{"--config", cfg, "--data-dir", filepath.Join(dir, "data")}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			m.Close()
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for len(retainedTopics(t, broker, base+"#")) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway left %v, want %v", retainedTopics(t, broker, base+"#"), want)
		}
	}

	var out, errOut bytes.Buffer
	code := run([]string{"decommission", "--config", cfg, "--settle", "300ms"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "gateway gw-t still appears online") || out.Len() != 0 {
		t.Fatalf("while running: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	stopped = true

	out.Reset()
	errOut.Reset()
	code = run([]string{"decommission", "--config", cfg, "--settle", "300ms"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut.String())
	}
	for _, topic := range want {
		if !strings.Contains(out.String(), "cleared "+topic+"\n") {
			t.Errorf("stdout does not say %s was cleared:\n%s", topic, out.String())
		}
	}
	if !strings.Contains(out.String(), "(status was offline)") {
		t.Errorf("stdout:\n%s", out.String())
	}
	if left := retainedTopics(t, broker, base+"#"); len(left) != 0 {
		t.Errorf("retained after decommission: %v", left)
	}
}

func TestDecommissionUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "usage: outpost decommission"},
		{nil, 2, "--gateway-id (or --config) is required"},
		{[]string{"--gateway-id", "gw"}, 2, "--broker (or --config) is required"},
		{[]string{"--gateway-id", "gw", "--broker", "tcp://u:s3cret@"}, 2, "not scheme://host:port"},
		{[]string{"--gateway-id", "gw", "--broker", "tcp://127.0.0.1:1", "--settle", "0s"}, 2, "--settle"},
		{[]string{"--gateway-id", "gw", "--broker", "tcp://127.0.0.1:1", "--max-topics", "0"}, 2, "--max-topics"},
		{[]string{"--gateway-id", "gw", "--broker", "tcp://127.0.0.1:1", "--password-file", "x"}, 2, "--password-file needs --username"},
		{[]string{"--gateway-id", "gw", "--broker", "tcp://127.0.0.1:1", "--tls-cert", "x"}, 2, "go together"},
		{[]string{"--gateway-id", "gw/+", "--broker", "tcp://127.0.0.1:1"}, 1, "not a gateway id"},
		{[]string{"--gateway-id", "gw", "--broker", "tcp://u:s3cret@127.0.0.1:1"}, 1, "connect to tcp://u:xxxxx@127.0.0.1:1"},
		{[]string{"--config", "/nonexistent/gw.yaml"}, 2, "gw.yaml"},
	} {
		var out, errOut bytes.Buffer
		code := run(append([]string{"decommission"}, c.args...), &out, &errOut)
		text := out.String() + errOut.String()
		if code != c.code || !strings.Contains(text, c.want) || strings.Contains(text, "s3cret") {
			t.Errorf("%q: exit %d, output %q; want exit %d and %q", c.args, code, text, c.code, c.want)
		}
		if c.code == 0 && errOut.Len() != 0 {
			t.Errorf("%q: help on stderr", c.args)
		}
	}
}
