package uplink

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memStore is an in-memory Store for uplink tests.
type memStore struct {
	mu      sync.Mutex
	epoch   uint64
	lanes   [2]map[uint64][]byte
	deleted []uint64
	notify  chan struct{}
}

func newMemStore(epoch uint64) *memStore {
	return &memStore{epoch: epoch, lanes: [2]map[uint64][]byte{{}, {}}, notify: make(chan struct{}, 1)}
}

func (s *memStore) put(lane int, seq uint64, data []byte) {
	s.mu.Lock()
	s.lanes[lane][seq] = data
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *memStore) Next(lane int, after uint64, max int, dst []Stored) ([]Stored, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var seqs []uint64
	for q := range s.lanes[lane] {
		if q > after {
			seqs = append(seqs, q)
		}
	}
	slices.Sort(seqs)
	for _, q := range seqs[:min(len(seqs), max)] {
		dst = append(dst, Stored{Seq: q, Data: s.lanes[lane][q]})
	}
	return dst, nil
}

func (s *memStore) Delete(seqs []uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range seqs {
		for _, l := range s.lanes {
			if _, ok := l[q]; ok {
				delete(l, q)
				s.deleted = append(s.deleted, q)
			}
		}
	}
	return nil
}

func (s *memStore) Notify() <-chan struct{} { return s.notify }

func (s *memStore) Has(lane int, seq uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.lanes[lane][seq]
	return ok, nil
}
func (s *memStore) Epoch() uint64 { return s.epoch }

func (s *memStore) left() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lanes[0]) + len(s.lanes[1])
}

// acker plays the ingest service: it receives batches and acks them, unless
// drop says to ignore a delivery.
type acker struct {
	c        mqtt.Client
	mu       sync.Mutex
	received []uint64 // seqs in arrival order
	drop     func(seq uint64, nth int) bool
	seen     map[uint64]int
}

func startAcker(t *testing.T, broker, prefix, gw string, drop func(uint64, int) bool) *acker {
	t.Helper()
	a := &acker{drop: drop, seen: map[uint64]int{}}
	a.c = connect(t, broker)
	tok := a.c.Subscribe(prefix+"/"+gw+"/batch", 1, func(c mqtt.Client, m mqtt.Message) {
		b, err := outpost.DecodeBatch(m.Payload())
		if err != nil {
			t.Errorf("acker: %v", err)
			return
		}
		a.mu.Lock()
		a.seen[b.Seq]++
		nth := a.seen[b.Seq]
		a.received = append(a.received, b.Seq)
		a.mu.Unlock()
		if a.drop != nil && a.drop(b.Seq, nth) {
			return
		}
		p, err := (&outpost.Ack{Version: outpost.AckVersion, Epoch: b.Epoch, Seqs: []uint64{b.Seq}}).MarshalMsg(nil)
		if err != nil {
			t.Error(err)
			return
		}
		c.Publish(prefix+"/"+gw+"/ack", 1, false, p)
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("acker subscribe: %v", tok.Error())
	}
	return a
}

func (a *acker) got() []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.received)
}

var clientN int

func connect(t *testing.T, broker string) mqtt.Client {
	t.Helper()
	clientN++
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("uplink-test-%d-%d", time.Now().UnixNano(), clientN)).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func batchBytes(t *testing.T, kind outpost.Kind, epoch, seq uint64) []byte {
	t.Helper()
	b := &outpost.Batch{Version: outpost.WireVersion, Kind: kind, Gateway: "gw", Epoch: epoch, Seq: seq}
	if kind == outpost.KindAlert {
		b.Alerts = []outpost.Alert{{Rule: "r"}}
	} else {
		b.Series = []outpost.Series{{Sensor: "s", Metric: "m", TS: []int64{int64(seq)}, Values: []float64{1}}}
	}
	p, err := b.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func uniquePrefix() string { return fmt.Sprintf("uplink-test/%d", time.Now().UnixNano()) }

func startUplink(t *testing.T, s Store, o Options) *Uplink {
	t.Helper()
	u, err := New(s, &o)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return u
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDeliversAlertsFirstAndDeletesOnAck(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	s := newMemStore(7)
	for seq := uint64(1); seq <= 50; seq++ {
		s.put(LaneTelemetry, seq, batchBytes(t, outpost.KindTelemetry, 7, seq))
	}
	s.put(LaneAlert, 51, batchBytes(t, outpost.KindAlert, 7, 51))
	a := startAcker(t, broker, prefix, "gw", nil)
	u := startUplink(t, s, Options{Broker: broker, Gateway: "gw", TopicPrefix: prefix, Window: 4})
	eventually(t, "all batches acked", func() bool { return s.left() == 0 })
	got := a.got()
	if got[0] != 51 {
		t.Errorf("first batch delivered was seq %d, want the alert (51)", got[0])
	}
	if st := u.Stats(); st.Acked != 51 || st.InFlight != 0 {
		t.Errorf("stats %+v, want 51 acked, none in flight", st)
	}
	// New data is picked up from the store's notification.
	s.put(LaneTelemetry, 52, batchBytes(t, outpost.KindTelemetry, 7, 52))
	eventually(t, "seq 52 acked", func() bool { return s.left() == 0 && slices.Contains(a.got(), 52) })
}

func TestWindowBoundsInFlight(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	s := newMemStore(1)
	// Never ack: the uplink must stop at its window.
	a := startAcker(t, broker, prefix, "gw", func(uint64, int) bool { return true })
	u := startUplink(t, s, Options{Broker: broker, Gateway: "gw", TopicPrefix: prefix, Window: 5, AckTimeout: time.Hour})
	eventually(t, "connected", func() bool { return u.Stats().Connected })
	// Batches stored while connected are fresh: they may fill the whole
	// window (the backlog leaves a slot free for them).
	for seq := uint64(1); seq <= 20; seq++ {
		s.put(LaneTelemetry, seq, batchBytes(t, outpost.KindTelemetry, 1, seq))
	}
	eventually(t, "window filled", func() bool { return len(a.got()) == 5 && u.Stats().InFlight == 5 })
	if got := a.got(); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("delivered %v, want seqs 1..5 in order", got)
	}
	// One ack opens one slot: exactly one more batch goes out.
	p, err := (&outpost.Ack{Version: outpost.AckVersion, Epoch: 1, Seqs: []uint64{1}}).MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	a.c.Publish(prefix+"/gw/ack", 1, false, p).Wait()
	eventually(t, "seq 6 delivered", func() bool { return len(a.got()) == 6 })
	if got := a.got(); got[5] != 6 {
		t.Fatalf("delivered %v after one ack, want seq 6 next", got)
	}
	eventually(t, "5 in flight after one ack", func() bool { st := u.Stats(); return st.InFlight == 5 && st.Published == 6 })
}

// A window full of unacked telemetry does not hold an alert back: alerts
// have alertSlots more, and no more than that; telemetry stays at its
// window.
func TestAlertsPassAFullWindow(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	s := newMemStore(1)
	a := startAcker(t, broker, prefix, "gw", func(uint64, int) bool { return true }) // never acks
	u := startUplink(t, s, Options{Broker: broker, Gateway: "gw", TopicPrefix: prefix, Window: 3, AckTimeout: time.Hour})
	eventually(t, "connected", func() bool { return u.Stats().Connected })
	for seq := uint64(1); seq <= 10; seq++ {
		s.put(LaneTelemetry, seq, batchBytes(t, outpost.KindTelemetry, 1, seq))
	}
	eventually(t, "window filled", func() bool { return u.Stats().InFlight == 3 })
	s.put(LaneAlert, 11, batchBytes(t, outpost.KindAlert, 1, 11))
	eventually(t, "the alert delivered", func() bool { return slices.Contains(a.got(), 11) })
	for seq := uint64(12); seq < 12+2*alertSlots; seq++ {
		s.put(LaneAlert, seq, batchBytes(t, outpost.KindAlert, 1, seq))
	}
	eventually(t, "the alert slots filled", func() bool {
		st := u.Stats()
		return st.InFlight == 3+alertSlots && st.Published == 3+alertSlots && len(a.got()) == 3+alertSlots
	})
	got := a.got()
	if len(got) != 3+alertSlots || !slices.Equal(got[:3], []uint64{1, 2, 3}) || got[3] != 11 || got[len(got)-1] != 11+alertSlots-1 {
		t.Fatalf("delivered %v, want telemetry 1..3 and alerts 11..%d", got, 11+alertSlots-1)
	}
}

func TestResendsWithSameBytesAfterAckTimeout(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	s := newMemStore(3)
	for seq := uint64(1); seq <= 10; seq++ {
		s.put(LaneTelemetry, seq, batchBytes(t, outpost.KindTelemetry, 3, seq))
	}
	// Lose the ack of every first delivery, as a broker drop would.
	a := startAcker(t, broker, prefix, "gw", func(_ uint64, nth int) bool { return nth == 1 })
	u := startUplink(t, s, Options{Broker: broker, Gateway: "gw", TopicPrefix: prefix, Window: 4, AckTimeout: 200 * time.Millisecond})
	eventually(t, "all batches acked", func() bool { return s.left() == 0 })
	if st := u.Stats(); st.Resent < 10 {
		t.Errorf("resent %d, want at least 10", st.Resent)
	}
	counts := map[uint64]int{}
	for _, q := range a.got() {
		counts[q]++
	}
	for seq := uint64(1); seq <= 10; seq++ {
		if counts[seq] < 2 {
			t.Errorf("seq %d delivered %d times, want >= 2", seq, counts[seq])
		}
	}
}

func TestIgnoresAckOfOtherEpoch(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	s := newMemStore(9)
	s.put(LaneTelemetry, 1, batchBytes(t, outpost.KindTelemetry, 9, 1))
	c := connect(t, broker)
	var once sync.Once
	delivered := make(chan struct{})
	tok := c.Subscribe(prefix+"/gw/batch", 1, func(c mqtt.Client, m mqtt.Message) {
		p, _ := (&outpost.Ack{Version: outpost.AckVersion, Epoch: 8, Seqs: []uint64{1}}).MarshalMsg(nil)
		c.Publish(prefix+"/gw/ack", 1, false, p).Wait()
		once.Do(func() { close(delivered) })
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	u := startUplink(t, s, Options{Broker: broker, Gateway: "gw", TopicPrefix: prefix, AckTimeout: time.Hour})
	<-delivered
	// Then a correct ack: once it is processed the wrong one was too (acks
	// are handled in order), and only the correct one may delete.
	p, _ := (&outpost.Ack{Version: outpost.AckVersion, Epoch: 9, Seqs: []uint64{2}}).MarshalMsg(nil)
	s.put(LaneTelemetry, 2, batchBytes(t, outpost.KindTelemetry, 9, 2))
	eventually(t, "seq 2 in flight", func() bool { return u.Stats().Published >= 2 })
	c.Publish(prefix+"/gw/ack", 1, false, p).Wait()
	eventually(t, "seq 2 acked", func() bool { return u.Stats().Acked == 1 })
	if s.left() != 1 {
		t.Fatalf("%d batches left, want seq 1 still stored", s.left())
	}
}

func TestBrokerAckMode(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	s := newMemStore(1)
	for seq := uint64(1); seq <= 5; seq++ {
		s.put(LaneTelemetry, seq, batchBytes(t, outpost.KindTelemetry, 1, seq))
	}
	startUplink(t, s, Options{Broker: broker, Gateway: "gw", TopicPrefix: prefix, Ack: AckBroker})
	eventually(t, "deleted on PUBACK", func() bool { return s.left() == 0 })
}

// The retained status says online while connected and offline after a
// clean close; both carry the sensors and their labels.
func TestStatusBirthAndOffline(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	labels := map[string]map[string]string{"dev1-env": {"room": "lab", "floor": "2"}, "door": nil}
	u, err := New(newMemStore(1), &Options{Broker: broker, Gateway: "gw", TopicPrefix: prefix, SensorLabels: labels})
	if err != nil {
		t.Fatal(err)
	}
	labels["dev1-env"]["room"] = "changed after New" // the uplink keeps its own copy
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "connected", func() bool { return u.Stats().Connected })
	check := func(got, state string) {
		t.Helper()
		var st outpost.Status
		if err := json.Unmarshal([]byte(got), &st); err != nil {
			t.Fatalf("status %q: %v", got, err)
		}
		want := map[string]outpost.SensorStatus{"dev1-env": {Labels: map[string]string{"room": "lab", "floor": "2"}}, "door": {Labels: map[string]string{}}}
		if st.State != state || st.Gateway != "gw" || !reflect.DeepEqual(st.Sensors, want) {
			t.Errorf("status %q, want %s with sensors %v", got, state, want)
		}
		if !contains(got, `"door":{"labels":{}}`) {
			t.Errorf("status %q: a sensor without labels must show {}", got)
		}
	}
	check(retained(t, broker, prefix+"/gw/status"), "online")
	if err := u.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	check(retained(t, broker, prefix+"/gw/status"), "offline")
	// The last will is offline, undated (ingest takes it for newer than
	// the online before it), without sensors (their labels stand).
	if will := string(u.willJSON()); will != `{"state":"offline","gateway":"gw"}` {
		t.Errorf("last will %s", will)
	}
}

// Without SensorLabels the status has no sensors field: ingest leaves
// the labels it holds as they are.
func TestStatusWithoutSensors(t *testing.T) {
	u, err := New(newMemStore(1), &Options{Broker: "tcp://127.0.0.1:1", Gateway: "gw"})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(u.statusJSON("online")); contains(got, "sensors") || !contains(got, `"state":"online"`) {
		t.Fatalf("status %q, want online without sensors", got)
	}
}

func retained(t *testing.T, broker, topic string) string {
	t.Helper()
	c := connect(t, broker)
	ch := make(chan string, 1)
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case ch <- string(m.Payload()):
		default:
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("no retained message on %s", topic)
		return ""
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// A connection that dies without a goodbye makes the broker publish the
// gateway's last will (status offline, undated); when the link heals the uplink
// reconnects on its own and says online again.
func TestLastWillAndReconnect(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	px := startProxy(t, strings.TrimPrefix(broker, "tcp://"))
	u := startUplink(t, newMemStore(1), Options{Broker: "tcp://" + px.addr, Gateway: "gw", TopicPrefix: prefix, MaxReconnect: 2 * time.Second})
	eventually(t, "connected", func() bool { return u.Stats().Connected })
	if got := retained(t, broker, prefix+"/gw/status"); !contains(got, `"state":"online"`) {
		t.Fatalf("status %q, want online", got)
	}
	px.cut() // the link dies; the broker notices and sends the will
	eventually(t, "will published", func() bool {
		return contains(retained(t, broker, prefix+"/gw/status"), `"state":"offline"`)
	})
	// Undated: ingest takes it for newer than the online before it, which
	// a time taken when the will was registered would not be.
	if got := retained(t, broker, prefix+"/gw/status"); got != `{"state":"offline","gateway":"gw"}` {
		t.Fatalf("will %s", got)
	}
	px.heal(t)
	eventually(t, "reconnected", func() bool { return u.connGen.Load() == 2 && u.Stats().Connected })
	if got := retained(t, broker, prefix+"/gw/status"); !contains(got, `"state":"online"`) {
		t.Fatalf("status after reconnect %q, want online", got)
	}
}

// proxy forwards TCP connections to a target; cut kills the link, heal
// brings it back on the same address.
type proxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
	wg           sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{addr: "127.0.0.1:0", target: target}
	p.heal(t)
	t.Cleanup(func() {
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) heal(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(b, c); b.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, b); c.Close() }()
		}
	}()
}

// cut closes the listener and every forwarded connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// A batch the store evicts while it waits for its ack is not resent: the
// store has reported it lost, and delivering it too would count it twice.
func TestEvictedBatchIsNotResent(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	s := newMemStore(5)
	s.put(LaneTelemetry, 1, batchBytes(t, outpost.KindTelemetry, 5, 1))
	s.put(LaneTelemetry, 2, batchBytes(t, outpost.KindTelemetry, 5, 2))
	// Never ack seq 1; ack seq 2 from its second delivery on.
	a := startAcker(t, broker, prefix, "gw", func(seq uint64, nth int) bool { return seq == 1 || nth == 1 })
	u := startUplink(t, s, Options{Broker: broker, Gateway: "gw", TopicPrefix: prefix, AckTimeout: 100 * time.Millisecond})
	eventually(t, "both delivered", func() bool { return len(a.got()) >= 2 })
	s.mu.Lock()
	delete(s.lanes[LaneTelemetry], 1) // evicted by the store
	s.mu.Unlock()
	eventually(t, "seq 2 acked and seq 1 dropped", func() bool {
		st := u.Stats()
		return st.Acked == 1 && st.Dropped == 1 && st.InFlight == 0
	})
	n := 0
	for _, q := range a.got() {
		if q == 1 {
			n++
		}
	}
	// It may have been resent before the eviction, never after.
	before := n
	time.Sleep(300 * time.Millisecond) // three ack timeouts: a resend would show
	n = 0
	for _, q := range a.got() {
		if q == 1 {
			n++
		}
	}
	if n != before {
		t.Fatalf("seq 1 resent after its eviction (%d deliveries, then %d)", before, n)
	}
}
