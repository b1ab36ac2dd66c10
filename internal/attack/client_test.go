package attack

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Gateway identities of the tests.
const (
	victim   = "gw-victim"  // the gateway under attack
	mallory  = "gw-mallory" // a gateway identity the attacker holds
	markerGW = "gw-marker"  // a gateway identity the tests order messages with
	ghost    = "gw-ghost"   // a gateway id nobody holds
)

// waitLimit guards every wait on the broker; it is never an assertion.
const waitLimit = 30 * time.Second

// startBroker is StartBroker with the tests' gateway identities.
func startBroker(t *testing.T, secured bool) *Broker {
	t.Helper()
	return StartBroker(t, secured, victim, mallory, markerGW)
}

// client is an MQTT client of a test: an attacker, or an identity that
// watches what the broker delivers. It keeps every message delivered to
// it, in the order of delivery.
type client struct {
	b      *Broker
	user   string // "" for anonymous
	c      mqtt.Client
	msgs   chan mqtt.Message
	marker string // the topic of its sync markers, subscribed at connect
}

var clientSeq atomic.Int64

// dial connects as user ("" for anonymous), with its password unless
// edit changes the options. It returns the client, or the CONNACK's
// return code and the error.
func (b *Broker) dial(t *testing.T, user string, edit func(*mqtt.ClientOptions)) (*client, byte, error) {
	t.Helper()
	c := &client{b: b, user: user, msgs: make(chan mqtt.Message, 1<<14), marker: b.markerTopic(user)}
	o := mqtt.NewClientOptions().AddBroker(b.URL()).
		SetClientID(fmt.Sprintf("attack-%d-%s", clientSeq.Add(1), user)).
		SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetOrderMatters(true). // handlers run in delivery order
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { c.msgs <- m })
	if user != "" {
		o.SetUsername(user).SetPassword(b.passwords[user])
	}
	if edit != nil {
		edit(o)
	}
	c.c = mqtt.NewClient(o)
	tok := c.c.Connect()
	if !tok.WaitTimeout(waitLimit) {
		t.Fatalf("connect as %q: no CONNACK", user)
	}
	if err := tok.Error(); err != nil {
		return nil, tok.(*mqtt.ConnectToken).ReturnCode(), err
	}
	t.Cleanup(c.close)
	c.subscribe(t, c.marker)
	return c, 0, nil
}

// mustDial is dial for an identity that must be let in.
func (b *Broker) mustDial(t *testing.T, user string) *client {
	t.Helper()
	c, code, err := b.dial(t, user, nil)
	if err != nil {
		t.Fatalf("connect as %q: %v (CONNACK %d)", user, err, code)
	}
	return c
}

// markerTopic is a topic user may read, for sync: a gateway's (or
// anonymous') own ack, or a service's: the marker gateway's status.
func (b *Broker) markerTopic(user string) string {
	switch user {
	case Ingest, Dashboard:
		return b.Topic(markerGW, "status")
	case "":
		return b.Topic("anonymous", "ack")
	}
	return b.Topic(user, "ack")
}

func (c *client) close() { c.c.Disconnect(100) }

// subscribe subscribes to filter at QoS 1 and returns what the SUBACK
// granted (0x80: refused). Messages go to c.msgs unless a handler is
// given, which then runs in their place, in order with the others.
func (c *client) subscribe(t *testing.T, filter string, handler ...mqtt.MessageHandler) byte {
	t.Helper()
	var h mqtt.MessageHandler
	if len(handler) > 0 {
		h = handler[0]
	}
	tok := c.c.Subscribe(filter, 1, h)
	if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("%q: subscribe %s: %v", c.user, filter, tok.Error())
	}
	// One entry, keyed by the filter without a $share/{group}/ prefix.
	for _, q := range tok.(*mqtt.SubscribeToken).Result() {
		return q
	}
	t.Fatalf("%q: subscribe %s: no result", c.user, filter)
	return 0
}

// publish publishes at QoS 1 and waits for the PUBACK, which Mosquitto
// sends also for a publish its ACL drops (MQTT 3.1.1 has no way to say
// no): once it is back, the broker has delivered the message, or not.
func (c *client) publish(t *testing.T, topic string, payload []byte, retained bool) {
	t.Helper()
	tok := c.c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("%q: publish %s: %v", c.user, topic, tok.Error())
	}
}

// sync returns, in order, the messages delivered to c before a marker
// that another identity publishes now: everything the broker routed to
// c before that moment. Messages after it stay for the next call.
func (c *client) sync(t *testing.T) []mqtt.Message {
	t.Helper()
	from := Ingest // acks are the ingest service's to publish
	if c.user == Ingest || c.user == Dashboard {
		from = markerGW
	}
	p := c.b.mustDial(t, from)
	defer p.close()
	token := "marker-" + randomHex(t, 8)
	payload := token
	if from == markerGW { // a status that an ingest service records, not dead-letters
		payload = `{"state":"online","gateway":"` + markerGW + `","marker":"` + token + `"}`
	}
	p.publish(t, c.marker, []byte(payload), false)
	var before []mqtt.Message
	deadline := time.After(waitLimit)
	for {
		select {
		case m := <-c.msgs:
			if m.Topic() == c.marker && strings.Contains(string(m.Payload()), token) {
				return before
			}
			before = append(before, m)
		case <-deadline:
			t.Fatalf("%q: marker on %s not delivered within %v", c.user, c.marker, waitLimit)
		}
	}
}

// delivered reports whether a message with payload was among msgs.
func delivered(msgs []mqtt.Message, payload string) bool {
	for _, m := range msgs {
		if string(m.Payload()) == payload {
			return true
		}
	}
	return false
}

// topics lists the messages' topics, for failure messages.
func topics(msgs []mqtt.Message) string {
	var s []string
	for _, m := range msgs {
		s = append(s, m.Topic())
	}
	return strings.Join(s, ", ")
}

// waitFor polls cond until it holds, or fails the test after waitLimit
// (twice that for slow work).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
