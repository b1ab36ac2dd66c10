package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"github.com/tinylib/msgp/msgp"

	gwcmd "github.com/outposthq/outpost/gateway/command"
	"github.com/outposthq/outpost/internal/testenv"
)

// lockedBuffer is the gateway's stderr, written from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The log.level command lowers the level of a gateway run as the
// binary runs it (Main.GlobalLevel) below its log_level: after
// "log.level debug", a gateway at log_level info writes debug lines.
func TestLogLevelCommandLowers(t *testing.T) {
	broker := testenv.MQTT(t)
	prev := zerolog.GlobalLevel()
	t.Cleanup(func() { zerolog.SetGlobalLevel(prev) })
	dir := t.TempDir()
	prefix := fmt.Sprintf("outpost-test/loglevel-%d", time.Now().UnixNano())
	testenv.CleanupRetained(t, broker, prefix)
	cfg := writeFile(t, dir, "gw.yaml", strings.Replace(validConfig, "uplink:\n",
		"uplink:\n  topic_prefix: "+prefix+"\n  commands: true\n", 1)+"log_level: info\nlog_format: json\n")
	writeFile(t, dir, "rules.yaml", validRules)

	var stderr lockedBuffer
	m := &Main{GlobalLevel: true}
	if err := m.ParseFlags([]string{"--config", cfg, "--broker", broker, "--gateway-id", "gw-level",
		"--data-dir", filepath.Join(dir, "data")}, &stderr, &stderr); err != nil {
		t.Fatal(err)
	}
	if zerolog.GlobalLevel() != zerolog.InfoLevel {
		t.Fatalf("global level %s after ParseFlags, want the config's info", zerolog.GlobalLevel())
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Log.Debug().Msg("probe before")
	if strings.Contains(stderr.String(), "probe before") || !strings.Contains(stderr.String(), "outpost starting") {
		t.Fatalf("at log_level info:\n%s", stderr.String())
	}

	base := prefix + "/gw-level"
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("loglevel-test").SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	replies := make(chan []byte, 4)
	if tok := c.Subscribe(base+"/reply/+", 1, func(_ mqtt.Client, msg mqtt.Message) { replies <- msg.Payload() }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	body := msgp.AppendString(msgp.AppendString(msgp.AppendMapHeader(nil, 1), "level"), "debug")
	req := gwcmd.AppendRequest(nil, gwcmd.Request{ID: "lvl-debug", Deadline: time.Now().Add(time.Minute).UnixNano(), Body: body})
	// The gateway subscribes to its commands once connected: send until
	// it answers.
	var r gwcmd.Reply
	for deadline := time.Now().Add(20 * time.Second); r.ID == ""; {
		if time.Now().After(deadline) {
			t.Fatal("no reply to log.level")
		}
		c.Publish(base+"/cmd/log.level", 1, false, req).WaitTimeout(5 * time.Second)
		select {
		case p := <-replies:
			var err error
			if r, err = gwcmd.DecodeReply(p); err != nil {
				t.Fatal(err)
			}
		case <-time.After(500 * time.Millisecond):
		}
	}
	args, _, err := msgp.ReadMapStrIntfBytes(r.Body, nil)
	if r.Status != gwcmd.StatusOK || err != nil || args["previous"] != "info" || args["level"] != "debug" {
		t.Fatalf("log.level: %+v %v %v", r, args, err)
	}
	m.Log.Debug().Msg("probe after")
	if !strings.Contains(stderr.String(), `"level":"debug"`) || !strings.Contains(stderr.String(), "probe after") {
		t.Fatalf("no debug line after log.level debug:\n%s", stderr.String())
	}
}
