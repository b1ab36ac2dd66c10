package attack

import (
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// aclCase is one question to the broker: does a message that pub
// publishes on topic reach reader, subscribed to filter? "{p}" in both
// stands for the broker's topic prefix.
type aclCase struct {
	name       string
	pub, topic string
	reader     string
	filter     string
	allowed    bool // with deploy/mosquitto's settings
}

// aclCases are what deploy/mosquitto/acl says, asked of the real broker:
// who may publish what (a reader that may read it gets it, or not), and
// who may read what (a message that its owner publishes arrives, or not).
var aclCases = []aclCase{
	// A gateway publishes its own topics, and only those.
	{name: "gateway publishes its batch", pub: victim, topic: "{p}/gw-victim/batch", reader: Ingest, filter: "$share/outpost-ingest/{p}/+/batch", allowed: true},
	{name: "gateway publishes its status", pub: victim, topic: "{p}/gw-victim/status", reader: Dashboard, filter: "{p}/+/status", allowed: true},
	{name: "gateway publishes its live topics", pub: victim, topic: "{p}/gw-victim/live/s1/temperature", reader: Dashboard, filter: "{p}/+/live/#", allowed: true},
	{name: "gateway publishes its alert topics", pub: victim, topic: "{p}/gw-victim/alert/too-warm", reader: Dashboard, filter: "{p}/+/alert/#", allowed: true},
	{name: "gateway forges another's batch", pub: mallory, topic: "{p}/gw-victim/batch", reader: Ingest, filter: "$share/outpost-ingest/{p}/+/batch"},
	{name: "gateway forges a batch of an unknown id", pub: mallory, topic: "{p}/gw-ghost/batch", reader: Ingest, filter: "{p}/+/batch"},
	{name: "gateway forges another's status", pub: mallory, topic: "{p}/gw-victim/status", reader: Ingest, filter: "{p}/+/status"},
	{name: "gateway forges another's live topic", pub: mallory, topic: "{p}/gw-victim/live/s1/temperature", reader: Dashboard, filter: "{p}/+/live/#"},
	{name: "gateway forges another's alert topic", pub: mallory, topic: "{p}/gw-victim/alert/fire", reader: Dashboard, filter: "{p}/+/alert/#"},
	{name: "gateway acks its own batches", pub: victim, topic: "{p}/gw-victim/ack", reader: victim, filter: "{p}/gw-victim/ack"},
	{name: "gateway acks another's batches", pub: mallory, topic: "{p}/gw-victim/ack", reader: victim, filter: "{p}/gw-victim/ack"},
	{name: "gateway publishes a command", pub: mallory, topic: "{p}/gw-victim/cmd/reboot", reader: victim, filter: "{p}/gw-victim/cmd/#"},
	{name: "gateway replies to a command", pub: victim, topic: "{p}/gw-victim/reply/r1", reader: Ingest, filter: "{p}/+/reply/#", allowed: true},
	{name: "gateway forges another's reply", pub: mallory, topic: "{p}/gw-victim/reply/r1", reader: Ingest, filter: "{p}/+/reply/#"},
	{name: "gateway reads another's commands", pub: Ingest, topic: "{p}/gw-victim/cmd/ping", reader: mallory, filter: "{p}/gw-victim/cmd/#"},
	{name: "gateway reads another's replies", pub: victim, topic: "{p}/gw-victim/reply/r1", reader: mallory, filter: "{p}/+/reply/#"},

	// A gateway reads its own acks, and nothing of another gateway.
	{name: "gateway reads its acks", pub: Ingest, topic: "{p}/gw-victim/ack", reader: victim, filter: "{p}/gw-victim/ack", allowed: true},
	{name: "gateway reads its own status back", pub: victim, topic: "{p}/gw-victim/status", reader: victim, filter: "{p}/gw-victim/#", allowed: true},
	{name: "gateway reads its own live topics back", pub: victim, topic: "{p}/gw-victim/live/s1/temperature", reader: victim, filter: "{p}/gw-victim/#", allowed: true},
	{name: "gateway reads its own alert topics back", pub: victim, topic: "{p}/gw-victim/alert/fire", reader: victim, filter: "{p}/gw-victim/#", allowed: true},
	{name: "gateway reads another's acks", pub: Ingest, topic: "{p}/gw-victim/ack", reader: mallory, filter: "{p}/gw-victim/ack"},
	{name: "gateway reads every ack", pub: Ingest, topic: "{p}/gw-victim/ack", reader: mallory, filter: "{p}/+/ack"},
	{name: "gateway reads another's batches", pub: victim, topic: "{p}/gw-victim/batch", reader: mallory, filter: "{p}/+/batch"},
	{name: "gateway joins the ingest service's shared subscription", pub: victim, topic: "{p}/gw-victim/batch", reader: mallory, filter: "$share/outpost-ingest/{p}/+/batch"},
	{name: "gateway reads another's status", pub: victim, topic: "{p}/gw-victim/status", reader: mallory, filter: "{p}/+/status"},
	{name: "gateway reads another's live topics", pub: victim, topic: "{p}/gw-victim/live/s1/temperature", reader: mallory, filter: "{p}/#"},

	// The ingest service reads batches and statuses and publishes acks;
	// the gateway patterns do not apply to it.
	{name: "ingest reads batches", pub: victim, topic: "{p}/gw-victim/batch", reader: Ingest, filter: "{p}/+/batch", allowed: true},
	{name: "ingest reads statuses", pub: victim, topic: "{p}/gw-victim/status", reader: Ingest, filter: "{p}/+/status", allowed: true},
	{name: "ingest forges a batch", pub: Ingest, topic: "{p}/gw-victim/batch", reader: Ingest, filter: "{p}/+/batch"},
	{name: "ingest publishes a batch as gateway outpost-ingest", pub: Ingest, topic: "{p}/outpost-ingest/batch", reader: Ingest, filter: "{p}/+/batch"},
	{name: "ingest forges a status", pub: Ingest, topic: "{p}/gw-victim/status", reader: Dashboard, filter: "{p}/+/status"},
	{name: "ingest reads live topics", pub: victim, topic: "{p}/gw-victim/live/s1/temperature", reader: Ingest, filter: "{p}/+/live/#"},
	{name: "ingest sends a command", pub: Ingest, topic: "{p}/gw-victim/cmd/ping", reader: victim, filter: "{p}/gw-victim/cmd/#", allowed: true},
	{name: "ingest forges a reply", pub: Ingest, topic: "{p}/gw-victim/reply/r1", reader: Ingest, filter: "{p}/+/reply/#"},

	// Dashboards read the JSON topics, publish nothing and read no batch
	// or ack.
	{name: "dashboard reads statuses", pub: victim, topic: "{p}/gw-victim/status", reader: Dashboard, filter: "{p}/gw-victim/status", allowed: true},
	{name: "dashboard reads batches", pub: victim, topic: "{p}/gw-victim/batch", reader: Dashboard, filter: "{p}/#"},
	{name: "dashboard reads acks", pub: Ingest, topic: "{p}/gw-victim/ack", reader: Dashboard, filter: "{p}/#"},
	{name: "dashboard forges a live topic", pub: Dashboard, topic: "{p}/gw-victim/live/s1/temperature", reader: Dashboard, filter: "{p}/+/live/#"},
	{name: "dashboard publishes live as gateway outpost-dashboard", pub: Dashboard, topic: "{p}/outpost-dashboard/live/s1/t", reader: Dashboard, filter: "{p}/+/live/#"},
	{name: "dashboard publishes a batch as gateway outpost-dashboard", pub: Dashboard, topic: "{p}/outpost-dashboard/batch", reader: Ingest, filter: "{p}/+/batch"},
	{name: "dashboard acks", pub: Dashboard, topic: "{p}/gw-victim/ack", reader: victim, filter: "{p}/gw-victim/ack"},
	{name: "dashboard sends a command", pub: Dashboard, topic: "{p}/gw-victim/cmd/ping", reader: victim, filter: "{p}/gw-victim/cmd/#"},
	{name: "dashboard reads replies", pub: victim, topic: "{p}/gw-victim/reply/r1", reader: Dashboard, filter: "{p}/#"},
}

// TestACL asks the real broker every question of aclCases, secured with
// deploy/mosquitto and on Mosquitto's defaults: what the ACL denies, the
// defaults allow, so the ACL is what denies it.
func TestACL(t *testing.T) {
	for _, secured := range []bool{true, false} {
		t.Run(setting(secured), func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, secured)
			for _, c := range aclCases {
				t.Run(c.name, func(t *testing.T) {
					want := c.allowed || !secured
					reader := b.mustDial(t, c.reader)
					filter := strings.ReplaceAll(c.filter, "{p}", b.Prefix)
					granted := reader.subscribe(t, filter)
					// Mosquitto's acl_file grants every subscription,
					// also one it will never deliver to: it checks each
					// message as it delivers it.
					if granted != 1 {
						t.Errorf("SUBACK %#x for %s, want 0x01", granted, filter)
					}
					payload := fmt.Sprintf("acl-%s-%s", c.pub, randomHex(t, 6))
					pub := b.mustDial(t, c.pub)
					pub.publish(t, strings.ReplaceAll(c.topic, "{p}", b.Prefix), []byte(payload), false)
					got := reader.sync(t)
					if delivered(got, payload) != want {
						t.Errorf("%s publishes %s, %s subscribed to %s: delivered %v, want %v (got: %s)",
							c.pub, c.topic, c.reader, c.filter, !want, want, topics(got))
					}
				})
			}
		})
	}
}

// TestLogin: no identity, a wrong password or an unknown user is
// refused at connect (CONNACK 5, not authorised), where the defaults let
// them in.
func TestLogin(t *testing.T) {
	for _, secured := range []bool{true, false} {
		t.Run(setting(secured), func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, secured)
			for _, c := range []struct {
				name, user, password string
			}{
				{"anonymous", "", ""},
				{"wrong password", victim, "not-" + b.Password(victim)},
				{"another identity's password", victim, b.Password(mallory)},
				{"unknown user", ghost, "whatever"},
				{"service identity without password", Ingest, ""},
			} {
				t.Run(c.name, func(t *testing.T) {
					cl, code, err := b.dial(t, c.user, func(o *mqtt.ClientOptions) { o.SetPassword(c.password) })
					switch {
					case secured && err == nil:
						t.Errorf("%s let in", c.name)
						cl.close()
					case secured && code != packets.ErrRefusedNotAuthorised:
						t.Errorf("CONNACK %d (%v), want %d (not authorised)", code, err, packets.ErrRefusedNotAuthorised)
					case !secured && err != nil:
						t.Errorf("the defaults refused %s: %v (CONNACK %d)", c.name, err, code)
					}
				})
			}
			for _, u := range []string{victim, mallory, Ingest, Dashboard} {
				b.mustDial(t, u).close()
			}
		})
	}
}

func setting(secured bool) string {
	if secured {
		return "deploy/mosquitto"
	}
	return "Mosquitto's defaults"
}

// TestClientIDTakeover shows what the ACL leaves open: any identity that
// connects with a connected gateway's client id takes its session over,
// and the broker disconnects the gateway. That costs availability, not
// data: the gateway reconnects and resends from its outbox.
func TestClientIDTakeover(t *testing.T) {
	b := startBroker(t, true)
	lost := make(chan struct{})
	gw, _, err := b.dial(t, victim, func(o *mqtt.ClientOptions) {
		o.SetClientID("outpost-" + victim).SetConnectionLostHandler(func(mqtt.Client, error) { close(lost) })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.close()
	atk, _, err := b.dial(t, mallory, func(o *mqtt.ClientOptions) { o.SetClientID("outpost-" + victim) })
	if err != nil {
		t.Fatalf("takeover refused: %v", err)
	}
	defer atk.close()
	select {
	case <-lost:
	case <-time.After(waitLimit):
		t.Fatal("the gateway's connection survived a takeover of its client id")
	}
}
