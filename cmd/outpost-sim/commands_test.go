package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost/config"
	gwcmd "github.com/outposthq/outpost/gateway/command"
	"github.com/outposthq/outpost/ingest"
)

// --commands: every simulated gateway takes rules.set, and the embedded
// ingest records each reply in its commands table.
func TestRunEmbeddedCommands(t *testing.T) {
	s := &Sim{out: t.Output()}
	if err := s.ParseFlags([]string{"--embedded", "--gateways", "5", "--sensors", "1", "--commands", "--every", "1s"}, t.Output(), t.Output()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Run(ctx)
		done <- err
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		gws, _ := s.fleet()
		connected := 0
		for _, g := range gws {
			if g.Stats().Uplink.Connected {
				connected++
			}
		}
		if connected == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 5 gateways connected", connected)
		}
		time.Sleep(20 * time.Millisecond)
	}

	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(s.Broker).SetClientID("sim-commands-test").SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(250)
	cs := s.store.(ingest.CommandStore)
	content := "rules:\n  - {name: hot, select: {metric: temperature}, above: 30}\n"
	body := msgp.AppendBytes(msgp.AppendString(msgp.AppendMapHeader(nil, 1), "content"), []byte(content))
	_, ids := s.fleet()
	for _, id := range ids {
		now := time.Now()
		cmd := &ingest.Command{ID: "set-" + id, Gateway: id, Name: "rules.set", Sender: "test", Body: body,
			CreatedAt: now, ExpiresAt: now.Add(time.Hour), State: ingest.CommandSent, SentAt: now, Attempts: 1}
		if err := cs.AddCommand(ctx, cmd); err != nil {
			t.Fatal(err)
		}
		req := gwcmd.AppendRequest(nil, gwcmd.Request{ID: cmd.ID, Deadline: now.Add(time.Minute).UnixNano(), Body: body})
		if tok := c.Publish(config.DefaultTopicPrefix+"/"+id+"/cmd/rules.set", 1, false, req); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	for _, id := range ids {
		var got ingest.Command
		for {
			for cmd, err := range cs.Commands(ctx, ingest.CommandQuery{ID: "set-" + id, Limit: 1}) {
				if err != nil {
					t.Fatal(err)
				}
				got = cmd
			}
			if got.Final() || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got.State != "ok" {
			t.Fatalf("%s: %+v", id, got)
		}
		data, err := os.ReadFile(filepath.Join(s.DataDir, id, "rules.yaml"))
		if err != nil || string(data) != content {
			t.Fatalf("%s's rules file: %q, %v", id, data, err)
		}
	}
	if st := s.ingest.Stats(); st.CommandReplies != 5 {
		t.Errorf("ingest recorded %d replies, want 5", st.CommandReplies)
	}

}
