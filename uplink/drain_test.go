package uplink

import (
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/testenv"
)

// Last is the highest seq ever put.
func (s *memStore) Last() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last uint64
	for _, l := range s.lanes {
		for q := range l {
			last = max(last, q)
		}
	}
	for _, q := range s.deleted {
		last = max(last, q)
	}
	return last
}

// delivery is one batch as a subscriber saw it.
type delivery struct {
	seq        uint64
	kind       outpost.Kind
	historical bool
}

// flagAcker acks every batch except historical ones while hold is set.
type flagAcker struct {
	c    mqtt.Client
	mu   sync.Mutex
	got  []delivery
	held []uint64
	hold bool
	ack  func(seqs ...uint64)
}

func startFlagAcker(t *testing.T, broker, prefix string, epoch uint64) *flagAcker {
	t.Helper()
	a := &flagAcker{hold: true}
	a.c = connect(t, broker)
	a.ack = func(seqs ...uint64) {
		p, err := (&outpost.Ack{Version: outpost.AckVersion, Epoch: epoch, Seqs: seqs}).MarshalMsg(nil)
		if err != nil {
			t.Error(err)
			return
		}
		a.c.Publish(prefix+"/gw/ack", 1, false, p)
	}
	tok := a.c.Subscribe(prefix+"/gw/batch", 1, func(_ mqtt.Client, m mqtt.Message) {
		b, err := outpost.DecodeBatch(m.Payload())
		if err != nil {
			t.Errorf("decode: %v", err)
			return
		}
		hist := b.Flags&outpost.FlagHistorical != 0
		a.mu.Lock()
		a.got = append(a.got, delivery{b.Seq, b.Kind, hist})
		hold := hist && a.hold
		if hold {
			a.held = append(a.held, b.Seq)
		}
		a.mu.Unlock()
		if !hold {
			a.ack(b.Seq)
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return a
}

func (a *flagAcker) deliveries() []delivery {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.got)
}

func (a *flagAcker) release() {
	a.mu.Lock()
	a.hold = false
	held := a.held
	a.held = nil
	a.mu.Unlock()
	a.ack(held...)
}

// After an outage (here: batches stored before the uplink connects), alerts
// go first, fresh batches overtake the backlog, and only backlog batches
// carry the historical flag. The acker holds the backlog's acks, so the
// window stays full of backlog except the slot kept for fresh data.
func TestLiveFirstDrain(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	s := newMemStore(3)
	for seq := uint64(1); seq <= 30; seq++ {
		s.put(LaneTelemetry, seq, batchBytes(t, outpost.KindTelemetry, 3, seq))
	}
	s.put(LaneAlert, 31, batchBytes(t, outpost.KindAlert, 3, 31))
	a := startFlagAcker(t, broker, prefix, 3)
	u := startUplink(t, s, Options{Broker: broker, Gateway: "gw", TopicPrefix: prefix, Window: 4, AckTimeout: time.Hour})

	// The alert, then backlog up to the window minus the reserved slot.
	eventually(t, "window filled with backlog", func() bool { return len(a.deliveries()) == 4 })
	// Fresh batches arrive while the backlog's acks are held: they use the
	// reserved slot, one after the other.
	for seq := uint64(32); seq <= 35; seq++ {
		s.put(LaneTelemetry, seq, batchBytes(t, outpost.KindTelemetry, 3, seq))
		eventually(t, "fresh batch delivered", func() bool {
			return slices.ContainsFunc(a.deliveries(), func(d delivery) bool { return d.seq == seq })
		})
	}
	a.release()
	eventually(t, "everything acked", func() bool { return s.left() == 0 })

	got := a.deliveries()
	if got[0].seq != 31 || got[0].kind != outpost.KindAlert || got[0].historical {
		t.Errorf("first delivery %+v, want the alert (31), not historical", got[0])
	}
	var backlog, fresh []uint64
	for _, d := range got[1:] {
		switch {
		case d.seq <= 30 && d.historical:
			backlog = append(backlog, d.seq)
		case d.seq > 31 && !d.historical:
			fresh = append(fresh, d.seq)
		default:
			t.Errorf("delivery %+v: backlog (<= 30) must be historical, fresh (> 31) must not", d)
		}
	}
	if !slices.IsSorted(backlog) || len(backlog) != 30 {
		t.Errorf("backlog delivered %v, want 1..30 in order", backlog)
	}
	if !slices.Equal(fresh, []uint64{32, 33, 34, 35}) {
		t.Errorf("fresh delivered %v, want 32..35", fresh)
	}
	// The fresh batches went out while the backlog was stuck at its first
	// three batches.
	for i, d := range got {
		if d.seq == 35 {
			for _, e := range got[:i] {
				if e.historical && e.seq > 3 {
					t.Errorf("backlog seq %d went out before fresh seq 35", e.seq)
				}
			}
		}
	}
	if st := u.Stats(); st.Backlog != 30 || st.Acked != 35 {
		t.Errorf("stats %+v, want 30 backlog batches and 35 acked", st)
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := bucket{rate: 1000}
	if w := b.wait(t0); w != 0 {
		t.Fatalf("fresh bucket waits %v", w)
	}
	b.take(t0, 1500) // larger than a second's worth: goes into debt
	steps := []struct {
		at   time.Duration
		want time.Duration
	}{
		{0, 1500 * time.Millisecond},
		{500 * time.Millisecond, time.Second},
		{1500 * time.Millisecond, 0},
	}
	for _, s := range steps {
		if w := b.wait(t0.Add(s.at)); w != s.want {
			t.Errorf("at +%v: wait %v, want %v", s.at, w, s.want)
		}
	}
	// A long idle time earns at most one second's worth.
	b.wait(t0.Add(time.Hour))
	b.take(t0.Add(time.Hour), 1000)
	b.take(t0.Add(time.Hour), 500)
	if w := b.wait(t0.Add(time.Hour)); w != 500*time.Millisecond {
		t.Errorf("after idle and 1500 B: wait %v, want 500ms", w)
	}
	// Rate 0 is unlimited.
	u := bucket{}
	u.take(t0, 1<<30)
	if w := u.wait(t0); w != 0 {
		t.Errorf("unlimited bucket waits %v", w)
	}
}

// Drain lets the backlog take the slot kept for fresh batches: nothing
// fresh comes any more.
func TestDrainUsesTheWholeWindow(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	s := newMemStore(5)
	for seq := uint64(1); seq <= 20; seq++ {
		s.put(LaneTelemetry, seq, batchBytes(t, outpost.KindTelemetry, 5, seq))
	}
	a := startAcker(t, broker, prefix, "gw", func(uint64, int) bool { return true }) // never acks
	u := startUplink(t, s, Options{Broker: broker, Gateway: "gw", TopicPrefix: prefix, Window: 8, AckTimeout: time.Hour})
	eventually(t, "window filled but its reserved slot", func() bool { return len(a.got()) == 7 && u.Stats().InFlight == 7 })
	u.Drain()
	eventually(t, "the reserved slot used", func() bool { return len(a.got()) == 8 && u.Stats().InFlight == 8 })
	if got := a.got(); !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("delivered %v, want backlog seqs 1..8 in order", got)
	}
	u.Drain() // again: nothing more
}

// While draining, the loop wakes when the oldest batch in flight reaches
// its ack timeout, not at the next tick.
func TestNextResend(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	u := &Uplink{opt: Options{AckTimeout: 10 * time.Second, Now: func() time.Time { return now }}}
	l := &loop{u: u, inflight: map[uint64]*flight{}}
	if _, ok := l.nextResend(); ok {
		t.Fatal("a wake-up with nothing in flight")
	}
	l.inflight[1] = &flight{sentAt: t0.Add(2 * time.Second)}
	l.inflight[2] = &flight{sentAt: t0}
	if _, ok := l.nextResend(); ok {
		t.Fatal("a wake-up while disconnected: the reconnect resends")
	}
	u.connected.Store(true)
	now = t0.Add(3 * time.Second)
	if d, ok := l.nextResend(); !ok || d != 7*time.Second {
		t.Fatalf("next resend in %v (%v), want 7s: seq 2's timeout", d, ok)
	}
	now = t0.Add(time.Minute)
	if d, ok := l.nextResend(); !ok || d != time.Millisecond {
		t.Fatalf("overdue: next resend in %v (%v), want the 1ms floor", d, ok)
	}
}
