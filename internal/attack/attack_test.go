package attack

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// Each attack runs against a real gateway and a real ingest service, by
// an anonymous client and by one holding another gateway's identity, on
// a broker secured with deploy/mosquitto, and by an anonymous client on
// Mosquitto's defaults, where it succeeds: the ACL is what stops it.

// attacker is who attacks, on which broker.
type attacker struct {
	name    string
	secured bool   // deploy/mosquitto's settings, else Mosquitto's defaults
	user    string // the identity it holds; "" for none
}

var attackers = []attacker{
	{"without ACL: anonymous", false, ""},
	{"ACL: anonymous", true, ""},
	{"ACL: another gateway's identity", true, mallory},
}

// connect connects the attacker. An anonymous one is refused by a
// secured broker: connect checks that and returns nil.
func (a attacker) connect(t *testing.T, b *Broker) *client {
	t.Helper()
	c, code, err := b.dial(t, a.user, nil)
	if a.secured && a.user == "" {
		if err == nil || code != packets.ErrRefusedNotAuthorised {
			t.Fatalf("anonymous attacker: connect %v, CONNACK %d; want refused, not authorised", err, code)
		}
		return nil
	}
	if err != nil {
		t.Fatalf("attacker %q: connect: %v (CONNACK %d)", a.user, err, code)
	}
	return c
}

// TestSeqSquatting: the attacker learns the gateway's epoch and seq and
// publishes forged batches for the seqs to come. Without the ACL, ingest
// commits them: forged readings are stored under the victim's name (the
// real batches, made at other times than the forgeries, are stored too:
// the ledger tells a batch by its creation time as well as its seq). With
// it, the forged batches never reach ingest.
func TestSeqSquatting(t *testing.T) {
	const ahead, squatted = 10, 20 // the first squatted seq is a second ahead
	for _, a := range attackers {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, a.secured)
			p := newPipeline(t, b)
			p.flowing()
			// The test's own eye on the gateway's batches (the ingest
			// identity may read them).
			eye := b.mustDial(t, Ingest)
			eye.subscribe(t, b.Topic(victim, "batch"))

			var last uint64 // the last squatted seq
			if atk := a.connect(t, b); atk != nil {
				var epoch, seq uint64
				if a.secured {
					// It may not read them (TestACL): tell it.
					epoch, seq = eye.nextBatch(t, 0)
				} else {
					atk.subscribe(t, b.Topic(victim, "batch"))
					epoch, seq = atk.nextBatch(t, 0)
				}
				for s := seq + ahead; s < seq+ahead+squatted; s++ {
					atk.publish(t, b.Topic(victim, "batch"), forgedTelemetry(t, victim, epoch, s, 1), false)
				}
				last = seq + ahead + squatted - 1
			}
			// The gateway sends the squatted seqs itself.
			eye.nextBatch(t, last+1)
			st := p.drain()
			p.stopIngest()
			c := p.counts()
			forged := p.readings(victim, "forged", "temperature")
			if a.secured {
				if forged != 0 {
					t.Errorf("%d forged readings stored", forged)
				}
				p.complete(st, c, forged)
				return
			}
			lost := p.lost(st, c, forged)
			t.Logf("without ACL: %d squatted batches stored, %d of %d real readings lost", forged, lost, st.ReadingsEmitted)
			if forged == 0 {
				t.Errorf("the attack failed without the ACL: %d forged batches stored, %d readings lost", forged, lost)
			}
		})
	}
}

// TestSpoofedAcks: while ingest is down, the attacker acks what the
// gateway holds. Without the ACL the gateway deletes it, and its
// readings never arrive; with it, the acks never reach the gateway.
func TestSpoofedAcks(t *testing.T) {
	for _, a := range attackers {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, a.secured)
			p := newPipeline(t, b)
			p.startGateway()
			waitFor(t, "the gateway to publish batches", func() bool { return p.gw.Stats().Uplink.Published >= 10 })
			eye := b.mustDial(t, Ingest)
			eye.subscribe(t, b.Topic(victim, "batch"))

			if atk := a.connect(t, b); atk != nil {
				var epoch, seq uint64
				if a.secured {
					epoch, seq = eye.nextBatch(t, 0)
				} else {
					atk.subscribe(t, b.Topic(victim, "batch"))
					epoch, seq = atk.nextBatch(t, 0)
				}
				// Every seq stored so far, in acks of at most a window's
				// seqs (the gateway ignores longer ones).
				for from := uint64(1); from <= seq; from += 16 {
					var seqs []uint64
					for s := from; s < from+16 && s <= seq; s++ {
						seqs = append(seqs, s)
					}
					atk.publish(t, b.Topic(victim, "ack"), ackPayload(t, epoch, seqs...), false)
				}
			}
			// An ack the gateway can tell from the others, published by
			// the identity that may: once the gateway counts it, it has
			// had whatever the broker delivered before.
			ing := b.mustDial(t, Ingest)
			ing.publish(t, b.Topic(victim, "ack"), []byte("not an ack"), false)
			waitFor(t, "the gateway to get an ack", func() bool { return p.gw.Stats().Uplink.BadAcks > 0 })
			if a.secured {
				if n := p.gw.Stats().Uplink.Acked; n != 0 {
					t.Errorf("the gateway deleted %d batches on spoofed acks", n)
				}
			} else {
				waitFor(t, "the gateway to delete on the spoofed acks", func() bool { return p.gw.Stats().Uplink.Acked > 0 })
				t.Logf("without ACL: the gateway deleted %d batches on spoofed acks", p.gw.Stats().Uplink.Acked)
			}

			p.startIngest()
			st := p.drain()
			p.stopIngest()
			c := p.counts()
			if a.secured {
				p.complete(st, c, 0)
				return
			}
			lost := p.lost(st, c, 0)
			t.Logf("without ACL: %d of %d readings lost", lost, st.ReadingsEmitted)
			if lost <= 0 {
				t.Errorf("the attack failed without the ACL: no reading lost")
			}
		})
	}
}

// TestSharedSubscriptionHijack: the attacker joins the ingest service's
// shared subscription (the default group) and acks what it gets.
// Without the ACL it gets a share of the batches, and the gateway
// deletes them. With it, the broker grants the subscription but
// delivers nothing to it: Mosquitto drops the messages whose turn in the
// group falls on the attacker, and the gateway sends them again after
// its ack timeout until they reach ingest.
func TestSharedSubscriptionHijack(t *testing.T) {
	for _, a := range attackers {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, a.secured)
			p := newPipeline(t, b)
			p.flowing()

			var got atomic.Int64
			atk := a.connect(t, b)
			if atk != nil {
				filter := "$share/" + ingest.DefaultGroup + "/" + b.Prefix + "/+/batch"
				granted := atk.subscribe(t, filter, func(_ mqtt.Client, m mqtt.Message) {
					got.Add(1)
					bt, err := outpost.DecodeBatch(m.Payload())
					if err != nil {
						return // not a batch: nothing to ack
					}
					ack, err := ackBytes(bt.Epoch, bt.Seq)
					if err != nil {
						return
					}
					// Not waited for: this is paho's delivery goroutine.
					atk.c.Publish(b.Topic(bt.Gateway, "ack"), 1, false, ack)
				})
				t.Logf("SUBACK %#x for %s", granted, filter)
				n := p.gw.Stats().BatchesStored
				waitFor(t, "20 batches with the attacker in the group", func() bool { return p.gw.Stats().BatchesStored >= n+20 })
			}
			st := p.drain()
			if atk != nil {
				atk.sync(t) // all it was handed before now, it had
			}
			p.stopIngest()
			c := p.counts()
			if a.secured {
				if n := got.Load(); n != 0 {
					t.Errorf("the attacker got %d batches", n)
				}
				p.complete(st, c, 0)
				return
			}
			lost := p.lost(st, c, 0)
			t.Logf("without ACL: the attacker got %d batches; %d of %d readings lost", got.Load(), lost, st.ReadingsEmitted)
			if got.Load() == 0 || lost <= 0 {
				t.Errorf("the attack failed without the ACL: %d batches taken, %d readings lost", got.Load(), lost)
			}
		})
	}
}

// TestForgery: the attacker publishes, under the victim's id and under
// one no gateway has, readings, an alert telling people to evacuate, a
// loss record, and retained dashboard documents. Without the ACL the
// store and the dashboards take all of it; with it, none.
func TestForgery(t *testing.T) {
	for _, a := range attackers {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, a.secured)
			p := newPipeline(t, b)
			p.flowing()

			if atk := a.connect(t, b); atk != nil {
				const epoch = 0x5eed
				atk.publish(t, b.Topic(victim, "batch"), forgedTelemetry(t, victim, epoch, 1, 5), false)
				atk.publish(t, b.Topic(ghost, "batch"), forgedTelemetry(t, ghost, epoch, 1, 5), false)
				atk.publish(t, b.Topic(victim, "batch"), forgedAlert(t, victim, epoch, 2), false)
				atk.publish(t, b.Topic(victim, "batch"), forgedLoss(t, victim, epoch, 3), false)
				atk.publish(t, b.Topic(victim, "alert/fire"), []byte(`{"rule":"fire","state":"firing","message":"evacuate the building"}`), true)
				atk.publish(t, b.Topic(victim, "live/forged/temperature"), []byte(`{"value":99.5,"unit":"Cel"}`), true)
				atk.publish(t, b.Topic(ghost, "status"), statusJSON(ghost, "online", time.Now()), true)
			}
			// What a dashboard that starts now sees: the retained
			// documents, and the live stream.
			dash := b.mustDial(t, Dashboard)
			dash.subscribe(t, b.Prefix+"/+/alert/#")
			dash.subscribe(t, b.Prefix+"/+/live/#")
			dash.subscribe(t, b.Prefix+"/+/status")
			var forgedDocs []string
			for _, m := range dash.sync(t) {
				if strings.Contains(m.Topic(), "forged") || strings.Contains(m.Topic(), "/fire") || strings.Contains(m.Topic(), ghost) {
					forgedDocs = append(forgedDocs, m.Topic())
				}
			}

			st := p.drain()
			p.stopIngest()
			c := p.counts()
			forged := p.readings(victim, "forged", "temperature") + p.readings(ghost, "forged", "temperature")
			alerts := c.Alerts - st.AlertsRaised - st.HealthEvents // the gateway's own are counted
			ghostState := p.gatewayState(ghost)
			if a.secured {
				if forged != 0 || alerts != 0 || c.Gaps != 0 || ghostState != "" || len(forgedDocs) != 0 {
					t.Errorf("forged data taken: %d readings, %d alerts, %d loss records, status of %s %q, dashboard documents %q",
						forged, alerts, c.Gaps, ghost, ghostState, forgedDocs)
				}
				p.complete(st, c, forged)
				return
			}
			t.Logf("without ACL: stored %d forged readings, %d alerts, %d loss records, %s is %q; dashboards see %q",
				forged, alerts, c.Gaps, ghost, ghostState, forgedDocs)
			if forged != 10 || alerts != 1 || c.Gaps != 1 || ghostState != "online" || len(forgedDocs) != 3 {
				t.Errorf("the attack failed without the ACL")
			}
		})
	}
}

// TestStatusPinning: after the gateway stopped, the attacker sets its
// retained status to online, dated 2261, by a publish and by a last
// will. Without the ACL that is what every dashboard sees from then on;
// with it, the gateway's own offline stays.
func TestStatusPinning(t *testing.T) {
	for _, a := range attackers {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, a.secured)
			p := newPipeline(t, b)
			p.flowing()
			st := p.drain()
			p.stopGateway()
			waitFor(t, "the store to say the gateway is offline", func() bool { return p.gatewayState(victim) == "offline" })

			pinned := statusJSON(victim, "online", time.Date(2261, 1, 1, 0, 0, 0, 0, time.UTC))
			if atk := a.connect(t, b); atk != nil {
				atk.publish(t, b.Topic(victim, "status"), pinned, true)
				// A last will on the victim's status: a second connection
				// with the same client id takes the session over, and the
				// broker sends the will of the first, if the ACL lets it.
				id := "attack-will-" + randomHex(t, 4)
				will, _, err := b.dial(t, a.user, func(o *mqtt.ClientOptions) {
					o.SetClientID(id).SetBinaryWill(b.Topic(victim, "status"), pinned, 1, true)
				})
				if err != nil {
					t.Fatalf("attacker with a will: %v", err)
				}
				again, _, err := b.dial(t, a.user, func(o *mqtt.ClientOptions) { o.SetClientID(id) })
				if err != nil {
					t.Fatalf("attacker taking its session over: %v", err)
				}
				again.close()
				will.close()
			}
			dash := b.mustDial(t, Dashboard)
			dash.subscribe(t, b.Topic(victim, "status"))
			var retained []string
			for _, m := range dash.sync(t) {
				if m.Topic() == b.Topic(victim, "status") {
					retained = append(retained, string(m.Payload()))
				}
			}
			if len(retained) != 1 {
				t.Fatalf("retained statuses of %s: %q, want one", victim, retained)
			}
			var status struct{ State, TS string }
			if err := json.Unmarshal([]byte(retained[0]), &status); err != nil {
				t.Fatalf("retained status %q: %v", retained[0], err)
			}
			// The ingest service has had every status before the marker.
			waitFor(t, "the marker status", func() bool { return p.gatewayState(markerGW) == "online" })
			p.stopIngest()
			stored := p.gatewayState(victim)
			if a.secured {
				if status.State != "offline" || stored != "offline" {
					t.Errorf("the gateway shows %q to dashboards (%s) and %q in the store, want offline", status.State, status.TS, stored)
				}
				p.complete(st, p.counts(), 0)
				return
			}
			t.Logf("without ACL: dashboards see %s %q since %s; the store says %q", victim, status.State, status.TS, stored)
			if status.State != "online" || !strings.HasPrefix(status.TS, "2261") {
				t.Errorf("the attack failed without the ACL: retained status %q", retained[0])
			}
		})
	}
}

// nextBatch waits on c, subscribed to the gateway's batch topic, for a
// batch of the gateway itself (not a forged one) with a seq of at least
// min, and returns its epoch and seq.
func (c *client) nextBatch(t *testing.T, min uint64) (epoch, seq uint64) {
	t.Helper()
	deadline := time.After(2 * waitLimit)
	for {
		select {
		case m := <-c.msgs:
			if !strings.HasSuffix(m.Topic(), "/"+victim+"/batch") {
				continue
			}
			bt, err := outpost.DecodeBatch(m.Payload())
			if err != nil {
				t.Fatalf("batch on %s: %v", m.Topic(), err)
			}
			if bt.Kind == outpost.KindTelemetry && len(bt.Series) > 0 && bt.Series[0].Sensor != "forged" && bt.Seq >= min {
				return bt.Epoch, bt.Seq
			}
		case <-deadline:
			t.Fatalf("%q: no batch of %s with seq >= %d", c.user, victim, min)
		}
	}
}

func statusJSON(gw, state string, ts time.Time) []byte {
	b, _ := json.Marshal(map[string]string{"state": state, "gateway": gw, "ts": ts.UTC().Format(time.RFC3339Nano)})
	return b
}
