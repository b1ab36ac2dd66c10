package ingest_test

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
	gwcmd "github.com/outposthq/outpost/gateway/command"
	"github.com/outposthq/outpost/ingest"
)

// commandSpy is a spyStore that keeps the commands table too.
type commandSpy struct {
	*spyStore
	ingest.CommandStore
}

// newCommandEnv starts a service with the command courier, sweeping
// every sweep, and key registered for the gateway gw-keyed; it returns
// the env and its store's commands table.
func newCommandEnv(t *testing.T, key outpost.Key, sweep time.Duration) (*env, ingest.CommandStore) {
	t.Helper()
	e := newEnv(t, nil, func(o *ingest.Options) {
		keys, err := ingest.NewKeys(map[string][]outpost.Key{"gw-keyed": {key}})
		if err != nil {
			t.Fatal(err)
		}
		o.Commands, o.Keys = true, keys
		ingest.SetCourierSweep(o, sweep)
	})
	return e, e.store.Store.(ingest.CommandStore)
}

func addCommand(t *testing.T, cs ingest.CommandStore, c ingest.Command) {
	t.Helper()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now()
	}
	if c.ExpiresAt.IsZero() {
		c.ExpiresAt = c.CreatedAt.Add(time.Hour)
	}
	if c.State == "" {
		c.State = ingest.CommandQueued
	}
	if c.State == ingest.CommandSent {
		c.SentAt, c.Attempts = c.CreatedAt, 1
	}
	if err := cs.AddCommand(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
}

func command(t *testing.T, cs ingest.CommandStore, id string) ingest.Command {
	t.Helper()
	for c, err := range cs.Commands(context.Background(), ingest.CommandQuery{ID: id, Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	t.Fatalf("no command %s", id)
	return ingest.Command{}
}

// reply encodes a reply, signed with key unless it is nil.
func reply(key *outpost.Key, gw, id string, st gwcmd.Status, body []byte) []byte {
	r := gwcmd.Reply{ID: id, Status: st, Body: body, TS: time.Now().UnixNano()}
	if key != nil {
		m := outpost.ReplyMAC(key, gw, id, string(st), r.TS, body)
		r.MAC = m[:]
	}
	return gwcmd.AppendReply(nil, r)
}

// Replies on the reply topics: one whose MAC verifies with the
// gateway's key, or of a gateway without a key, is recorded once; a
// forged, unsigned, unreadable or mismatched one is dead-lettered and
// changes nothing.
func TestCommandReplies(t *testing.T) {
	key, other := outpost.NewKey(), outpost.NewKey()
	e, cs := newCommandEnv(t, key, time.Minute)
	addCommand(t, cs, ingest.Command{ID: "c1", Gateway: "gw-keyed", Name: "ping", State: ingest.CommandSent})
	addCommand(t, cs, ingest.Command{ID: "c2", Gateway: "gw-open", Name: "ping", State: ingest.CommandSent})
	topic := func(gw, id string) string { return e.prefix + "/" + gw + "/reply/" + id }
	ok := []byte{0x80} // {}

	hostile := []struct {
		name, topic string
		payload     []byte
		reason      string
	}{
		{"another key", topic("gw-keyed", "c1"), reply(&other, "gw-keyed", "c1", gwcmd.StatusOK, ok), "authentication"},
		{"unsigned", topic("gw-keyed", "c1"), reply(nil, "gw-keyed", "c1", gwcmd.StatusOK, ok), "authentication"},
		{"another gateway's MAC", topic("gw-keyed", "c1"), reply(&key, "gw-other", "c1", gwcmd.StatusOK, ok), "authentication"},
		{"not MessagePack", topic("gw-keyed", "c1"), []byte("hello"), "command reply"},
		{"another id", topic("gw-open", "c2"), reply(nil, "gw-open", "c3", gwcmd.StatusOK, ok), `id "c3"`},
		{"a state of the table", topic("gw-open", "c2"), reply(nil, "gw-open", "c2", "lapsed", ok), "unknown status"},
		{"an error body that is not a map", topic("gw-open", "c2"), reply(nil, "gw-open", "c2", gwcmd.StatusError, []byte{0x01}), "error body"},
		{"a bad id", e.prefix + "/gw-open/reply/a b", reply(nil, "gw-open", "a b", gwcmd.StatusOK, ok), "bad gateway or id"},
	}
	for i, h := range hostile {
		e.publish(h.topic, h.payload, false)
		eventually(t, h.name+" dead-lettered", func() bool { return len(e.store.deadLetters()) == i+1 })
		if d := e.store.deadLetters()[i]; d.topic != h.topic || !strings.Contains(d.reason, h.reason) {
			t.Errorf("%s: dead letter %+v, want a reason with %q", h.name, d, h.reason)
		}
	}
	for _, id := range []string{"c1", "c2"} {
		if c := command(t, cs, id); c.State != ingest.CommandSent {
			t.Fatalf("%s after hostile replies: %+v", id, c)
		}
	}

	e.publish(topic("gw-keyed", "c1"), reply(&key, "gw-keyed", "c1", gwcmd.StatusOK, []byte{0x81, 0xa1, 'a', 0x01}), false)
	errBody := gwcmd.ErrorBody(gwcmd.Invalid(errors.Join(errors.New("rules.yaml:2:3: unknown key"), errors.New("rules.yaml:4:1: no select"))))
	e.publish(topic("gw-open", "c2"), reply(nil, "gw-open", "c2", gwcmd.StatusInvalid, errBody), false)
	eventually(t, "both replies recorded", func() bool { return e.svc.Stats().CommandReplies == 2 })
	c1, c2 := command(t, cs, "c1"), command(t, cs, "c2")
	if c1.State != "ok" || string(c1.Reply) != "\x81\xa1a\x01" || c1.RepliedAt.IsZero() || c1.ReplyTS.IsZero() || c1.Error != "" {
		t.Errorf("c1: %+v", c1)
	}
	if c2.State != "invalid" || c2.Error != "rules.yaml:2:3: unknown key\nrules.yaml:4:1: no select" {
		t.Errorf("c2: %+v", c2)
	}
	// A second reply changes nothing; one to a command not in the table
	// is acked and dropped.
	e.publish(topic("gw-keyed", "c1"), reply(&key, "gw-keyed", "c1", gwcmd.StatusError, gwcmd.ErrorBody(errors.New("late"))), false)
	e.publish(topic("gw-open", "nobody"), reply(nil, "gw-open", "nobody", gwcmd.StatusOK, ok), false)
	e.publish(topic("gw-keyed", "c1"), reply(&key, "gw-keyed", "c1", gwcmd.StatusOK, ok), false)
	time.Sleep(200 * time.Millisecond) // nothing is to happen: give it the chance
	if c := command(t, cs, "c1"); c.State != "ok" || string(c.Reply) != "\x81\xa1a\x01" {
		t.Errorf("c1 after more replies: %+v", c)
	}
	if n := len(e.store.deadLetters()); n != len(hostile) {
		t.Errorf("%d dead letters, want %d", n, len(hostile))
	}
}

// gatewayClient plays a gateway's command side: it takes the requests
// on its cmd topics.
type gatewayClient struct {
	mu   sync.Mutex
	reqs []gwcmd.Request
	name []string
}

func (g *gatewayClient) subscribe(t *testing.T, e *env, gw string) {
	t.Helper()
	tok := e.client.Subscribe(e.prefix+"/"+gw+"/cmd/+", 1, func(_ mqtt.Client, m mqtt.Message) {
		r, err := gwcmd.DecodeRequest(m.Payload())
		if err != nil {
			t.Errorf("request on %s: %v", m.Topic(), err)
			return
		}
		r.Body = append([]byte(nil), r.Body...)
		macs := make([][]byte, len(r.MACs))
		for i, mac := range r.MACs {
			macs[i] = append([]byte(nil), mac...)
		}
		r.MACs = macs
		g.mu.Lock()
		g.reqs = append(g.reqs, r)
		g.name = append(g.name, m.Topic()[strings.LastIndexByte(m.Topic(), '/')+1:])
		g.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
}

func (g *gatewayClient) requests() ([]gwcmd.Request, []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]gwcmd.Request(nil), g.reqs...), append([]string(nil), g.name...)
}

// The courier: when a gateway comes online it is sent its queued
// commands and those sent without a reply, signed with its key, with a
// deadline at most CommandDeadline ahead; an expired one is not sent,
// and the sweep lapses it.
func TestCommandCourier(t *testing.T) {
	key := outpost.NewKey()
	e, cs := newCommandEnv(t, key, 200*time.Millisecond)
	var gc gatewayClient
	gc.subscribe(t, e, "gw-keyed")
	now := time.Now()
	addCommand(t, cs, ingest.Command{ID: "q1", Gateway: "gw-keyed", Name: "ping", CreatedAt: now.Add(-time.Second)})
	addCommand(t, cs, ingest.Command{ID: "s1", Gateway: "gw-keyed", Name: "log.level", Body: []byte{0x80}, State: ingest.CommandSent, CreatedAt: now})
	addCommand(t, cs, ingest.Command{ID: "old", Gateway: "gw-keyed", Name: "ping", CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)})
	addCommand(t, cs, ingest.Command{ID: "other", Gateway: "gw-else", Name: "ping"})

	e.publish(e.prefix+"/gw-keyed/status", onlineStatus(), false)
	eventually(t, "two requests", func() bool { reqs, _ := gc.requests(); return len(reqs) >= 2 })
	eventually(t, "the expired command lapsed", func() bool { return command(t, cs, "old").State == ingest.CommandLapsed })
	reqs, names := gc.requests() // in either order: the test client's handler runs each on a goroutine
	if len(reqs) == 2 && reqs[0].ID == "s1" {
		reqs[0], reqs[1], names[0], names[1] = reqs[1], reqs[0], names[1], names[0]
	}
	if len(reqs) != 2 || reqs[0].ID != "q1" || names[0] != "ping" || reqs[1].ID != "s1" || names[1] != "log.level" {
		t.Fatalf("requests %+v %v", reqs, names)
	}
	for i, r := range reqs {
		want := outpost.CommandMAC(&key, "gw-keyed", names[i], r.ID, r.Deadline, r.Body)
		if len(r.MACs) != 1 || !hmac.Equal(r.MACs[0], want[:]) {
			t.Errorf("%s: MACs do not verify", r.ID)
		}
		if ahead := time.Until(time.Unix(0, r.Deadline)); ahead <= 0 || ahead > ingest.CommandDeadline {
			t.Errorf("%s: deadline %v ahead", r.ID, ahead)
		}
	}
	if c := command(t, cs, "q1"); c.State != ingest.CommandSent || c.Attempts != 1 || c.SentAt.IsZero() {
		t.Errorf("q1 after it was sent: %+v", c)
	}
	if c := command(t, cs, "s1"); c.State != ingest.CommandSent || c.Attempts != 2 {
		t.Errorf("s1 after it was sent again: %+v", c)
	}
	if c := command(t, cs, "other"); c.State != ingest.CommandQueued {
		t.Errorf("another gateway's command: %+v", c)
	}
	// Another status while online (not a reconnect) sends nothing sent
	// a moment ago again.
	e.publish(e.prefix+"/gw-keyed/status", onlineStatus(), false)
	time.Sleep(500 * time.Millisecond) // nothing is to happen: give it the chance (and two sweeps)
	if reqs, _ := gc.requests(); len(reqs) != 2 {
		t.Fatalf("%d requests after a second status, want 2", len(reqs))
	}
	if st := e.svc.Stats(); st.CommandsSent != 2 {
		t.Errorf("stats %+v", st)
	}
}

// Two ingest processes on one database both see a gateway come online;
// each command is claimed in the store before it is published, so the
// gateway gets it once.
func TestCommandCourierOnce(t *testing.T) {
	key := outpost.NewKey()
	e, cs := newCommandEnv(t, key, time.Minute)
	keys, err := ingest.NewKeys(map[string][]outpost.Key{"gw-keyed": {key}})
	if err != nil {
		t.Fatal(err)
	}
	second := ingest.New(&commandSpy{spyStore: &spyStore{Store: e.store.Store}, CommandStore: cs},
		&ingest.Options{Broker: e.broker, TopicPrefix: e.prefix, Group: "g" + unique(t), Logger: testLogger(t), Commands: true, Keys: keys})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := second.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := second.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	var gc gatewayClient
	gc.subscribe(t, e, "gw-keyed")
	for i := range 6 {
		addCommand(t, cs, ingest.Command{ID: fmt.Sprintf("q%d", i), Gateway: "gw-keyed", Name: "ping"})
	}
	e.publish(e.prefix+"/gw-keyed/status", onlineStatus(), false)
	eventually(t, "six requests", func() bool { reqs, _ := gc.requests(); return len(reqs) >= 6 })
	eventually(t, "both services took the status", func() bool {
		return e.svc.Stats().Statuses == 1 && second.Stats().Statuses == 1
	})
	time.Sleep(500 * time.Millisecond) // no more is to come: give it the chance
	reqs, _ := gc.requests()
	seen := map[string]int{}
	for _, r := range reqs {
		seen[r.ID]++
	}
	if len(reqs) != 6 || len(seen) != 6 {
		t.Fatalf("%d requests of %d commands, want each of the 6 once: %v", len(reqs), len(seen), seen)
	}
	for i := range 6 {
		if c := command(t, cs, fmt.Sprintf("q%d", i)); c.Attempts != 1 {
			t.Errorf("%s: %d attempts", c.ID, c.Attempts)
		}
	}
	if n := e.svc.Stats().CommandsSent + second.Stats().CommandsSent; n != 6 {
		t.Errorf("%d sent by the two, want 6", n)
	}
}

// onlineStatus is a gateway's online status, dated now, as a gateway
// publishes it when it connects.
func onlineStatus() []byte {
	return []byte(`{"state":"online","ts":"` + time.Now().UTC().Format(time.RFC3339Nano) + `"}`)
}
