package chaos

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
)

// batchID names a batch end to end.
type batchID struct{ epoch, seq uint64 }

// seenBatch is what the monitor saw of one (epoch, seq).
type seenBatch struct {
	sum   [sha256.Size]byte // of the first payload
	times int               // publications seen, resends included
	diff  int               // of which with other bytes than the first
}

// monitor subscribes to a gateway's batch topic, like a dashboard would,
// and records a hash of every payload per (epoch, seq): a resend must carry
// the bytes of the first send. QoS 1 from a clean session: a broker may
// still drop messages to a slow subscriber, so what it saw is a sample.
type monitor struct {
	client      mqtt.Client
	statusTopic string

	mu        sync.Mutex
	seen      map[batchID]*seenBatch
	messages  int
	malformed []string
}

func startMonitor(broker, prefix, gateway string) (*monitor, error) {
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	m := &monitor{seen: make(map[batchID]*seenBatch), statusTopic: prefix + "/" + gateway + "/status"}
	o := mqtt.NewClientOptions().AddBroker(broker).
		SetClientID("chaos-monitor-" + hex.EncodeToString(rnd[:])).
		SetCleanSession(true).SetAutoReconnect(true).
		SetConnectTimeout(10 * time.Second).SetOrderMatters(false)
	m.client = mqtt.NewClient(o)
	if t := m.client.Connect(); !t.WaitTimeout(15*time.Second) || t.Error() != nil {
		m.client.Disconnect(0)
		return nil, fmt.Errorf("chaos: monitor connect %s: %v", broker, t.Error())
	}
	topic := prefix + "/" + gateway + "/batch"
	if t := m.client.Subscribe(topic, 1, m.onBatch); !t.WaitTimeout(15*time.Second) || t.Error() != nil {
		m.client.Disconnect(0)
		return nil, fmt.Errorf("chaos: monitor subscribe %s: %v", topic, t.Error())
	}
	return m, nil
}

func (m *monitor) onBatch(_ mqtt.Client, msg mqtt.Message) {
	p := msg.Payload()
	sum := contentSum(p)
	b, err := outpost.DecodeBatch(p)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.messages++
	if err != nil {
		if len(m.malformed) < 10 {
			m.malformed = append(m.malformed, err.Error())
		}
		return
	}
	id := batchID{b.Epoch, b.Seq}
	s := m.seen[id]
	if s == nil {
		m.seen[id] = &seenBatch{sum: sum, times: 1}
		return
	}
	s.times++
	if s.sum != sum {
		s.diff++
	}
}

// close clears the gateway's retained status (so runs leave nothing behind
// in a shared broker) and disconnects.
func (m *monitor) close() {
	if m.client.IsConnectionOpen() {
		m.client.Publish(m.statusTopic, 1, true, []byte{}).WaitTimeout(5 * time.Second)
	}
	m.client.Disconnect(250)
}

// record returns a copy of what was seen.
func (m *monitor) record() MonitorRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := MonitorRecord{Messages: m.messages, Malformed: append([]string(nil), m.malformed...), Seen: make(map[batchID]seenBatch, len(m.seen))}
	for id, s := range m.seen {
		r.Seen[id] = *s
	}
	return r
}

// MonitorRecord is what the batch-topic monitor saw.
type MonitorRecord struct {
	Messages  int
	Malformed []string
	Seen      map[batchID]seenBatch
}

// contentSum hashes an encoded batch without its historical flag: the
// uplink sets that bit on a copy when it sends a batch from the backlog,
// so a resend after a restart may differ from the first send in it alone.
func contentSum(p []byte) [32]byte {
	if len(p) > 3 {
		p = slices.Clone(p)
		p[3] &^= outpost.FlagHistorical
	}
	return sha256.Sum256(p)
}
