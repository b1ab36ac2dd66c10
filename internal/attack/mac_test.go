package attack

import (
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/uplink"
)

// The same attacks on a broker WITHOUT any ACL (Mosquitto's defaults:
// anonymous clients may publish and read anything), with and without
// message MACs: the gateway signs its batches with its key
// (uplink.auth: required) and the ingest service, which holds the
// victim's and mallory's keys, requires signatures (--auth required).
// Without MACs each attack succeeds; with them each is refused by the
// MAC alone.

// macCase is a run with MACs or without.
type macCase struct {
	name string
	mac  bool
}

var macCases = []macCase{{"no ACL, no MAC", false}, {"no ACL, MAC", true}}

// macPipeline is a pipeline on a broker on Mosquitto's defaults; with
// mac, the victim signs with its key, and ingest holds it and mallory's.
type macPipeline struct {
	*pipeline
	mac                   bool
	victimKey, malloryKey outpost.Key
	keys                  *ingest.Keys
}

func newMACPipeline(t *testing.T, mac bool) *macPipeline {
	t.Helper()
	b := startBroker(t, false)
	m := &macPipeline{mac: mac}
	var edit []func(*config.UplinkConfig)
	if mac {
		file := filepath.Join(t.TempDir(), "victim.key")
		var err error
		if m.victimKey, err = uplink.CreateKey(file); err != nil {
			t.Fatal(err)
		}
		m.malloryKey = outpost.NewKey()
		if m.keys, err = ingest.NewKeys(map[string][]outpost.Key{victim: {m.victimKey}, mallory: {m.malloryKey}}); err != nil {
			t.Fatal(err)
		}
		edit = append(edit, func(u *config.UplinkConfig) { u.AuthKeyFile, u.Auth = file, config.AuthRequired })
	}
	m.pipeline = newPipeline(t, b, edit...)
	return m
}

func (m *macPipeline) startIngest() {
	m.pipeline.startIngest(func(o *ingest.Options) {
		if m.mac {
			o.Keys, o.Auth = m.keys, ingest.AuthRequired
		}
	})
}

// stopIngestStats stops the ingest service and returns its counters.
func (m *macPipeline) stopIngestStats() ingest.Stats {
	ing := m.ing
	m.stopIngest()
	return ing.Stats() // Close finished what it held
}

// arrived checks that the store holds every reading the gateway emitted,
// once, none forged, and that deadLetters messages were dead-lettered.
func (m *macPipeline) arrived(st gateway.Stats, c ingest.Counts, forged, deadLetters int64) {
	m.t.Helper()
	m.t.Logf("gateway emitted %d readings in %d batches (published %d, resent %d, acked %d, refused acks %d unsigned, %d forged); "+
		"the store holds %d readings (%d forged), %d batches, %d dead letters",
		st.ReadingsEmitted, st.BatchesStored, st.Uplink.Published, st.Uplink.Resent, st.Uplink.Acked,
		st.Uplink.UnsignedAcks, st.Uplink.ForgedAcks, c.Readings, forged, c.Batches, c.DeadLetters)
	if forged != 0 {
		m.t.Errorf("%d forged readings stored", forged)
	}
	if st.ReadingsEmitted == 0 || st.ReadingsStored != st.ReadingsEmitted || st.ReadingsLost != 0 {
		m.t.Errorf("gateway: %d readings emitted, %d stored in the outbox, %d lost before it",
			st.ReadingsEmitted, st.ReadingsStored, st.ReadingsLost)
	}
	if c.Readings != st.ReadingsEmitted || c.DistinctReadings != c.Readings {
		m.t.Errorf("the store holds %d readings (%d distinct) of the %d the gateway emitted", c.Readings, c.DistinctReadings, st.ReadingsEmitted)
	}
	if c.DeadLetters != deadLetters {
		m.t.Errorf("%d dead letters, want %d", c.DeadLetters, deadLetters)
	}
}

// openBatch decodes a batch as the attacker reads it off the topic: the
// batch inside a signed message needs no key to be read.
func openBatch(p []byte) (*outpost.Batch, error) {
	if outpost.IsSigned(p) {
		inner, err := outpost.OpenBatch(p)
		if err != nil {
			return nil, err
		}
		p = inner
	}
	return outpost.DecodeBatch(p)
}

// nextReal waits on c, subscribed to the victim's batch topic, for one
// of the victim's own batches with a seq of at least min, and returns
// its epoch, seq and payload.
func (c *client) nextReal(t *testing.T, min uint64) (epoch, seq uint64, payload []byte) {
	t.Helper()
	deadline := time.After(2 * waitLimit)
	for {
		select {
		case m := <-c.msgs:
			if !strings.HasSuffix(m.Topic(), "/"+victim+"/batch") {
				continue
			}
			bt, err := openBatch(m.Payload())
			if err != nil {
				t.Fatalf("batch on %s: %v", m.Topic(), err)
			}
			if bt.Kind == outpost.KindTelemetry && len(bt.Series) > 0 && bt.Series[0].Sensor != "forged" && bt.Seq >= min {
				return bt.Epoch, bt.Seq, slices.Clone(m.Payload())
			}
		case <-deadline:
			t.Fatalf("no batch of %s with seq >= %d", victim, min)
		}
	}
}

// TestMACSeqSquatting: an anonymous client reads the victim's epoch and
// seq off its batch topic and publishes forged batches for the seqs to
// come, unsigned, or signed with a key of its own. Without MACs ingest
// commits them (the real ones too: the ledger tells batches apart by
// their creation time as well as their seq); with them every
// forgery is dead-lettered, unacked and unrecorded, and the real batches
// with those seqs are committed: every real reading arrives.
func TestMACSeqSquatting(t *testing.T) {
	const ahead, squatted = 10, 20
	for _, mc := range macCases {
		t.Run(mc.name, func(t *testing.T) {
			t.Parallel()
			p := newMACPipeline(t, mc.mac)
			p.startIngest()
			p.startGateway()
			p.waitAcked()
			atk := p.b.mustDial(t, "")
			atk.subscribe(t, p.b.Topic(victim, "batch"))
			epoch, seq, _ := atk.nextReal(t, 0)
			own := outpost.NewKey()
			for s := seq + ahead; s < seq+ahead+squatted; s++ {
				forged := forgedTelemetry(t, victim, epoch, s, 1)
				if s%2 == 0 {
					forged = outpost.SignBatch(nil, &own, victim, forged)
				}
				atk.publish(t, p.b.Topic(victim, "batch"), forged, false)
			}
			atk.nextReal(t, seq+ahead+squatted) // the gateway sends the squatted seqs itself
			st := p.drain()
			is := p.stopIngestStats()
			c := p.counts()
			forged := p.readings(victim, "forged", "temperature")
			if mc.mac {
				p.arrived(st, c, forged, squatted)
				if is.AuthRefused != squatted {
					t.Errorf("ingest refused %d batches by their MAC, want %d", is.AuthRefused, squatted)
				}
				return
			}
			lost := p.lost(st, c, forged)
			t.Logf("without MAC: %d squatted batches stored, %d of %d real readings lost", forged, lost, st.ReadingsEmitted)
			if forged == 0 {
				t.Errorf("the attack failed without MACs: %d forged batches stored, %d readings lost", forged, lost)
			}
		})
	}
}

// TestMACSpoofedAcks: while ingest is down, an anonymous client acks
// every seq the gateway has stored, unsigned, and signed with a key of
// its own. Without MACs the gateway deletes them and their readings
// never arrive; with them it deletes nothing, counts the acks, and every
// reading arrives once ingest is back.
func TestMACSpoofedAcks(t *testing.T) {
	for _, mc := range macCases {
		t.Run(mc.name, func(t *testing.T) {
			t.Parallel()
			p := newMACPipeline(t, mc.mac)
			p.startGateway()
			waitFor(t, "the gateway to publish batches", func() bool { return p.gw.Stats().Uplink.Published >= 10 })
			atk := p.b.mustDial(t, "")
			atk.subscribe(t, p.b.Topic(victim, "batch"))
			epoch, seq, _ := atk.nextReal(t, 10) // the window's resends bring them round
			own := outpost.NewKey()
			sent := 0
			for from := uint64(1); from <= seq; from += 16 {
				var seqs []uint64
				for s := from; s < from+16 && s <= seq; s++ {
					seqs = append(seqs, s)
				}
				a := outpost.Ack{Version: outpost.AckVersion, Epoch: epoch, Seqs: seqs}
				atk.publish(t, p.b.Topic(victim, "ack"), ackPayload(t, epoch, seqs...), false)
				atk.publish(t, p.b.Topic(victim, "ack"), a.AppendSigned(nil, &own, victim), false)
				sent += 2
			}
			t.Logf("spoofed %d acks naming seqs 1 to %d of epoch %#x", sent, seq, epoch)
			if mc.mac {
				waitFor(t, "the gateway to refuse the spoofed acks", func() bool {
					up := p.gw.Stats().Uplink
					return up.UnsignedAcks+up.ForgedAcks >= int64(sent)
				})
				if up := p.gw.Stats().Uplink; up.Acked != 0 || up.UnsignedAcks != int64(sent/2) || up.ForgedAcks != int64(sent/2) {
					t.Errorf("uplink %+v: want nothing deleted, %d unsigned and %d forged acks refused", up, sent/2, sent/2)
				}
			} else {
				waitFor(t, "the gateway to delete on the spoofed acks", func() bool { return p.gw.Stats().Uplink.Acked > 0 })
				t.Logf("without MAC: the gateway deleted %d batches on spoofed acks", p.gw.Stats().Uplink.Acked)
			}
			p.startIngest()
			st := p.drain()
			p.stopIngest()
			c := p.counts()
			if mc.mac {
				p.arrived(st, c, 0, 0)
				return
			}
			lost := p.lost(st, c, 0)
			t.Logf("without MAC: %d of %d readings lost", lost, st.ReadingsEmitted)
			if lost <= 0 {
				t.Errorf("the attack failed without MACs: no reading lost")
			}
		})
	}
}

// TestMACForgery: an anonymous client publishes readings, an alert and
// a loss record under the victim's id (unsigned, and signed with
// mallory's key: a gateway that holds a key of its own), and readings
// under an id nobody registered. Without MACs all are stored; with them
// none: the victim's are not signed with its key, and an unknown
// gateway is refused under --auth required.
func TestMACForgery(t *testing.T) {
	for _, mc := range macCases {
		t.Run(mc.name, func(t *testing.T) {
			t.Parallel()
			p := newMACPipeline(t, mc.mac)
			p.startIngest()
			p.startGateway()
			p.waitAcked()
			atk := p.b.mustDial(t, "")
			const epoch = 0x5eed
			msgs := []struct {
				gw string
				p  []byte
			}{
				{victim, forgedTelemetry(t, victim, epoch, 1, 5)},
				{victim, outpost.SignBatch(nil, &p.malloryKey, victim, forgedTelemetry(t, victim, epoch, 2, 5))},
				{victim, forgedAlert(t, victim, epoch, 3)},
				{victim, forgedLoss(t, victim, epoch, 4)},
				{ghost, forgedTelemetry(t, ghost, epoch, 1, 5)},
			}
			for _, m := range msgs {
				atk.publish(t, p.b.Topic(m.gw, "batch"), m.p, false)
			}
			st := p.drain()
			p.stopIngest()
			c := p.counts()
			forged := p.readings(victim, "forged", "temperature") + p.readings(ghost, "forged", "temperature")
			alerts := c.Alerts - st.AlertsRaised - st.HealthEvents
			if mc.mac {
				if alerts != 0 || c.Gaps != 0 {
					t.Errorf("forged data taken: %d alerts, %d loss records", alerts, c.Gaps)
				}
				p.arrived(st, c, forged, int64(len(msgs)))
				return
			}
			t.Logf("without MAC: stored %d forged readings, %d alerts, %d loss records", forged, alerts, c.Gaps)
			if forged != 15 || alerts != 1 || c.Gaps != 1 {
				t.Errorf("the attack failed without MACs")
			}
		})
	}
}

// TestMACReplayUnderAnotherGateway: an anonymous client captures one of
// the victim's batches and sends its readings as mallory's, a gateway
// with a key of its own: the captured message as it is, and re-encoded
// with mallory's id. Without MACs the re-encoded one is stored under
// mallory (the one as it is fails the topic/payload check even so);
// with them both are refused: the MAC binds the gateway id of the topic
// and every byte.
func TestMACReplayUnderAnotherGateway(t *testing.T) {
	for _, mc := range macCases {
		t.Run(mc.name, func(t *testing.T) {
			t.Parallel()
			p := newMACPipeline(t, mc.mac)
			p.startIngest()
			p.startGateway()
			p.waitAcked()
			atk := p.b.mustDial(t, "")
			atk.subscribe(t, p.b.Topic(victim, "batch"))
			_, _, captured := atk.nextReal(t, 0)
			bt, err := openBatch(captured)
			if err != nil {
				t.Fatal(err)
			}
			bt.Gateway = mallory
			reencoded := encode(t, bt)
			if outpost.IsSigned(captured) {
				// The re-encoded batch in an envelope that keeps the
				// victim's MAC: the attacker has no key to make another.
				reencoded = outpost.SignBatch(nil, &outpost.Key{}, mallory, reencoded)
				copy(reencoded[len(reencoded)-outpost.MACSize:], captured[len(captured)-outpost.MACSize:])
			}
			for _, m := range [][]byte{captured, reencoded} {
				atk.publish(t, p.b.Topic(mallory, "batch"), m, false)
			}
			st := p.drain()
			is := p.stopIngestStats()
			c := p.counts()
			var underMallory int64
			for _, s := range bt.Series {
				underMallory += p.readings(mallory, s.Sensor, s.Metric)
			}
			if mc.mac {
				if underMallory != 0 || is.AuthRefused != 2 {
					t.Errorf("%d readings stored under %s, %d refused by their MAC: want none stored, both refused", underMallory, mallory, is.AuthRefused)
				}
				p.arrived(st, c, 0, 2)
				return
			}
			t.Logf("without MAC: %d of the victim's readings stored under %s", underMallory, mallory)
			if underMallory == 0 {
				t.Errorf("the attack failed without MACs")
			}
		})
	}
}

// TestMACReplayedAck: an anonymous client records the signed acks that
// ingest sends the victim, and replays them all, many times, while
// ingest is down. They verify (ingest made them), but they name only
// batches already committed and deleted, and seqs are never reused in an
// epoch: the gateway deletes nothing more, and every reading arrives
// once ingest is back.
func TestMACReplayedAck(t *testing.T) {
	p := newMACPipeline(t, true)
	atk := p.b.mustDial(t, "")
	var mu sync.Mutex
	var recorded [][]byte
	atk.subscribe(t, p.b.Topic(victim, "ack"), func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		recorded = append(recorded, slices.Clone(m.Payload()))
		mu.Unlock()
	})
	p.startIngest()
	p.startGateway()
	waitFor(t, "10 acks recorded", func() bool { mu.Lock(); defer mu.Unlock(); return len(recorded) >= 10 })
	p.stopIngest()
	published := p.gw.Stats().Uplink.Published
	waitFor(t, "batches sent while ingest is down", func() bool { return p.gw.Stats().Uplink.Published > published+5 })
	p.gw.StopSensors() // the outbox holds what it holds: only a delete changes it
	before := p.gw.Stats()
	mu.Lock()
	acks := slices.Clone(recorded)
	mu.Unlock()
	for range 3 {
		for _, a := range acks {
			if err := outpost.VerifyAck(a, victim, &p.victimKey); err != nil {
				t.Fatalf("a recorded ack does not verify: %v", err)
			}
			atk.publish(t, p.b.Topic(victim, "ack"), a, false)
		}
	}
	// The gateway's own ack topic is the attacker's marker too: once it
	// has had this one, it has had the replays.
	atk.publish(t, p.b.Topic(victim, "ack"), []byte("not an ack"), false)
	waitFor(t, "the gateway to get the replays", func() bool { return p.gw.Stats().Uplink.BadAcks > 0 })
	after := p.gw.Stats()
	if after.Uplink.Acked != before.Uplink.Acked || after.Outbox.Batches != before.Outbox.Batches || after.Uplink.ForgedAcks+after.Uplink.UnsignedAcks != 0 {
		t.Errorf("replayed acks deleted batches: acked %d → %d, outbox %v → %v; refused %d",
			before.Uplink.Acked, after.Uplink.Acked, before.Outbox.Batches, after.Outbox.Batches, after.Uplink.ForgedAcks+after.Uplink.UnsignedAcks)
	}
	if before.Outbox.Batches[1] == 0 {
		t.Error("nothing was left in the outbox to delete")
	}
	t.Logf("replayed %d recorded acks 3 times: acked %d → %d, outbox %v → %v", len(acks),
		before.Uplink.Acked, after.Uplink.Acked, before.Outbox.Batches, after.Outbox.Batches)
	p.startIngest()
	st := p.drain()
	p.stopIngest()
	p.arrived(st, p.counts(), 0, 0)
}
