package uplink

import (
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/testenv"
)

// message is an mqtt.Message for calling handlers directly.
type message struct {
	topic   string
	payload []byte
}

func (m *message) Duplicate() bool   { return false }
func (m *message) Qos() byte         { return 1 }
func (m *message) Retained() bool    { return false }
func (m *message) Topic() string     { return m.topic }
func (m *message) MessageID() uint16 { return 1 }
func (m *message) Payload() []byte   { return m.payload }
func (m *message) Ack()              {}

// hostileAck is 8 bytes that claim a million seqs: [1, epoch 1, array32
// of 1 048 576].
var hostileAck = []byte{0x93, 1, 1, 0xdd, 0x00, 0x10, 0x00, 0x00}

func ackBytes(t *testing.T, epoch uint64, seqs ...uint64) []byte {
	t.Helper()
	p, err := (&outpost.Ack{Version: outpost.AckVersion, Epoch: epoch, Seqs: seqs}).MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHostileAckAllocatesNothing: acks are decoded with the window (and
// the alert slots) as the most seqs they may name, so one claiming a
// million allocates nothing for them and is ignored. Each such ack used to allocate 8 MiB:
// 300 of them took a gateway from 16 to 57–81 MiB of RSS.
func TestHostileAckAllocatesNothing(t *testing.T) {
	u, err := New(newMemStore(1), &Options{Broker: "tcp://127.0.0.1:1", Gateway: "gw", Window: 16})
	if err != nil {
		t.Fatal(err)
	}
	m := &message{topic: "outpost/v1/gw/ack", payload: hostileAck}
	u.onAck(nil, m) // warm up
	const n = 300
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		u.onAck(nil, m)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d acks of %d bytes claiming 1048576 seqs each: %d bytes allocated (%d per ack)", n, len(hostileAck), alloc, alloc/n)
	if alloc > n*1024 {
		t.Fatalf("%d hostile acks allocated %d bytes, want < 1 KiB each", n, alloc)
	}
	if got := u.Stats().BadAcks; got != n+1 {
		t.Fatalf("BadAcks %d, want %d", got, n+1)
	}
	if len(u.acks) != 0 {
		t.Fatalf("%d hostile acks passed on for deletion", len(u.acks))
	}

	// A well-formed ack naming more seqs than can be in flight (the
	// window and the alert slots) is ignored too; one naming as many is
	// taken.
	most := 16 + alertSlots
	seqs := make([]uint64, most+1)
	for i := range seqs {
		seqs[i] = uint64(i + 1)
	}
	u.onAck(nil, &message{topic: m.topic, payload: ackBytes(t, 1, seqs...)})
	if len(u.acks) != 0 {
		t.Fatalf("an ack of %d seqs with %d in flight at most was passed on for deletion", most+1, most)
	}
	u.onAck(nil, &message{topic: m.topic, payload: ackBytes(t, 1, seqs[:most]...)})
	if got := <-u.acks; !slices.Equal(got, seqs[:most]) {
		t.Fatalf("passed on %v, want seqs 1 to %d", got, most)
	}
}

// TestOversizedAckDeletesNothing: over a real broker, a hostile ack and
// an ack naming more seqs than can be in flight delete nothing; the next
// good ack still does.
func TestOversizedAckDeletesNothing(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	s := newMemStore(5)
	a := startAcker(t, broker, prefix, "gw", func(uint64, int) bool { return true }) // never acks by itself
	u := startUplink(t, s, Options{Broker: broker, Gateway: "gw", TopicPrefix: prefix, Window: 4, AckTimeout: time.Hour})
	eventually(t, "connected", func() bool { return u.Stats().Connected })
	for seq := uint64(1); seq <= 8; seq++ {
		s.put(LaneTelemetry, seq, batchBytes(t, outpost.KindTelemetry, 5, seq))
	}
	eventually(t, "window filled", func() bool { return u.Stats().InFlight == 4 })
	topic := prefix + "/gw/ack"
	over := make([]uint64, 4+alertSlots+1) // more than can be in flight
	for i := range over {
		over[i] = uint64(i + 1)
	}
	for _, p := range [][]byte{hostileAck, ackBytes(t, 5, over...)} {
		if tok := a.c.Publish(topic, 1, false, p); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	// Acks are handled in order: once this one is, the others were.
	if tok := a.c.Publish(topic, 1, false, ackBytes(t, 5, 8)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	eventually(t, "seq 8 deleted", func() bool { ok, _ := s.Has(LaneTelemetry, 8); return !ok })
	if left := s.left(); left != 7 {
		t.Fatalf("%d batches left, want 7: the oversized acks deleted some", left)
	}
	if st := u.Stats(); st.BadAcks != 2 || st.Acked != 0 {
		t.Fatalf("stats %+v, want 2 bad acks and none of the in-flight batches acked", st)
	}
}
