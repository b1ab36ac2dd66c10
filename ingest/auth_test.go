package ingest_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/storetest"
)

// rawAcks collects the raw ack payloads of one gateway.
type rawAcks struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (e *env) watchAcks(gw string) *rawAcks {
	e.t.Helper()
	r := &rawAcks{}
	tok := e.client.Subscribe(e.prefix+"/"+gw+"/ack", 1, func(_ mqtt.Client, m mqtt.Message) {
		r.mu.Lock()
		r.msgs = append(r.msgs, slices.Clone(m.Payload()))
		r.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		e.t.Fatalf("subscribe: %v", tok.Error())
	}
	return r
}

// verified returns the seqs that acks signed with key name, and how many
// acks were not signed with it.
func (r *rawAcks) verified(gw string, key *outpost.Key) (seqs []uint64, other int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.msgs {
		a, err := outpost.DecodeAck(p)
		if err != nil || outpost.VerifyAck(p, gw, key) != nil {
			other++
			continue
		}
		seqs = append(seqs, a.Seqs...)
	}
	return seqs, other
}

func (e *env) signed(b *outpost.Batch, key *outpost.Key) []byte {
	return outpost.SignBatch(nil, key, b.Gateway, storetest.Encode(e.t, b))
}

// TestServiceRefusesForgeries: a gateway with a registered key. Forged
// batches for its next seqs (unsigned, or signed with another key) are
// dead-lettered with the reason, not acked and not recorded, so the real
// batches with those seqs are committed after them; a signed batch
// replayed under another gateway's topic is refused too. Every ack the
// gateway gets is signed with its key.
func TestServiceRefusesForgeries(t *testing.T) {
	key, other, mallory := outpost.NewKey(), outpost.NewKey(), outpost.NewKey()
	keys, err := ingest.NewKeys(map[string][]outpost.Key{"gw-victim": {key}, "gw-mallory": {mallory}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvGW(t, "gw-victim", nil, func(o *ingest.Options) { o.Keys = keys })
	acks := e.watchAcks(e.gw)
	const epoch = 77
	real := func(seq uint64) *outpost.Batch {
		return storetest.Telemetry(e.gw, epoch, seq, readings(3, storetest.T0+int64(seq)*int64(time.Minute))...)
	}
	forged := func(seq uint64) *outpost.Batch {
		return storetest.Telemetry(e.gw, epoch, seq, storetest.Series("forged", "temperature", storetest.T0, time.Second, 5, 99)...)
	}
	e.publish(e.batchTopic(e.gw), e.signed(real(1), &key), false)
	e.waitAcks(epoch, 1, 1)

	e.publish(e.batchTopic(e.gw), storetest.Encode(t, forged(2)), false)
	e.publish(e.batchTopic(e.gw), e.signed(forged(3), &other), false)
	e.publish(e.batchTopic(e.gw), e.signed(forged(4), &mallory), false)
	// Mallory replays the victim's signed batch under its own topic.
	e.publish(e.batchTopic("gw-mallory"), e.signed(real(1), &key), false)
	eventually(t, "4 dead letters", func() bool { return len(e.store.deadLetters()) == 4 })
	for seq := uint64(2); seq <= 4; seq++ {
		e.publish(e.batchTopic(e.gw), e.signed(real(seq), &key), false)
		e.waitAcks(epoch, seq, 1)
	}

	c := e.counts()
	if c.Batches != 4 || c.Readings != 4*6 || c.DeadLetters != 4 {
		t.Errorf("counts %+v: want the 4 real batches and their 24 readings, and 4 dead letters", c)
	}
	var reasons []string
	for _, d := range e.store.deadLetters() {
		reasons = append(reasons, d.reason)
	}
	for _, want := range []string{"auth: unsigned batch from gateway \"gw-victim\"", "auth: bad MAC: no registered key of gateway \"gw-victim\"",
		"auth: bad MAC: no registered key of gateway \"gw-mallory\""} {
		if !slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(r, want) }) {
			t.Errorf("dead letters %q: none says %q", reasons, want)
		}
	}
	for _, r := range reasons {
		if strings.Contains(r, key.Hex()[:12]) || strings.Contains(r, other.Hex()[:12]) {
			t.Errorf("a reason shows a key: %q", r)
		}
	}
	seqs, unsigned := acks.verified(e.gw, &key)
	slices.Sort(seqs)
	if !slices.Equal(seqs, []uint64{1, 2, 3, 4}) || unsigned != 0 {
		t.Errorf("signed acks of %v, %d others: want seqs 1 to 4, each once and signed", seqs, unsigned)
	}
	if st := e.svc.Stats(); st.AuthRefused != 4 || st.Batches != 4 || st.Unverified != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestServiceOptionalAndRequired: a gateway without a key is taken
// unchecked under optional (signed or not, acked unsigned) and refused
// under required.
func TestServiceOptionalAndRequired(t *testing.T) {
	for _, mode := range []ingest.AuthMode{ingest.AuthOptional, ingest.AuthRequired} {
		t.Run(string(mode), func(t *testing.T) {
			k := outpost.NewKey()
			e := newEnv(t, nil, func(o *ingest.Options) {
				o.Auth = mode
				o.Keys, _ = ingest.NewKeys(nil)
			})
			acks := e.watchAcks(e.gw)
			b1 := storetest.Telemetry(e.gw, 5, 1, readings(2, storetest.T0)...)
			b2 := storetest.Telemetry(e.gw, 5, 2, readings(2, storetest.T0+int64(time.Minute))...)
			e.publishBatch(b1)
			e.publish(e.batchTopic(e.gw), e.signed(b2, &k), false)
			if mode == ingest.AuthRequired {
				eventually(t, "2 dead letters", func() bool { return len(e.store.deadLetters()) == 2 })
				if c := e.counts(); c.Batches != 0 {
					t.Fatalf("counts %+v", c)
				}
				if st := e.svc.Stats(); st.AuthRefused != 2 {
					t.Fatalf("stats %+v", st)
				}
				return
			}
			e.waitAcks(5, 1, 1)
			e.waitAcks(5, 2, 1)
			if _, signed := acks.verified(e.gw, &k); signed != 2 {
				t.Errorf("acks: want both unsigned")
			}
			if st := e.svc.Stats(); st.Unverified != 2 || st.Batches != 2 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestServiceKeyRotation: a gateway starts signing with its next key
// before the service has it: refused, until the keys file lists it;
// the service reads the changed file by itself. Acks are signed with the
// key that verified the batch.
func TestServiceKeyRotation(t *testing.T) {
	oldKey, newKey := outpost.NewKey(), outpost.NewKey()
	path := filepath.Join(t.TempDir(), "keys")
	var e *env
	write := func(lines ...string) {
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gw := "gw-rot"
	write(gw + " " + oldKey.Hex())
	keys, err := ingest.LoadKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	e = newEnvGW(t, gw, nil, func(o *ingest.Options) { o.Keys, o.Auth = keys, ingest.AuthRequired })
	acks := e.watchAcks(gw)
	b := func(seq uint64) *outpost.Batch {
		return storetest.Telemetry(gw, 9, seq, readings(1, storetest.T0+int64(seq)*int64(time.Minute))...)
	}
	e.publish(e.batchTopic(gw), e.signed(b(1), &oldKey), false)
	e.waitAcks(9, 1, 1)
	e.publish(e.batchTopic(gw), e.signed(b(2), &newKey), false)
	eventually(t, "a dead letter", func() bool { return len(e.store.deadLetters()) == 1 })

	// Both keys, while the fleet switches; the gateway resends.
	time.Sleep(1100 * time.Millisecond) // past the service's once-a-second look at the file
	write(gw+" "+oldKey.Hex(), gw+" "+newKey.Hex()+" # next")
	e.publish(e.batchTopic(gw), e.signed(b(2), &newKey), false)
	e.waitAcks(9, 2, 1)
	e.publish(e.batchTopic(gw), e.signed(b(3), &oldKey), false) // sent before the gateway switched
	e.waitAcks(9, 3, 1)
	if s, _ := acks.verified(gw, &newKey); !slices.Equal(s, []uint64{2}) {
		t.Errorf("acks signed with the new key: %v, want seq 2", s)
	}
	if s, _ := acks.verified(gw, &oldKey); !slices.Equal(s, []uint64{1, 3}) {
		t.Errorf("acks signed with the old key: %v, want seqs 1 and 3", s)
	}
	// The old key removed, at a SIGHUP: its batches are refused.
	write(gw + " " + newKey.Hex())
	if err := keys.Reload(); err != nil {
		t.Fatal(err)
	}
	e.publish(e.batchTopic(gw), e.signed(b(4), &oldKey), false)
	eventually(t, "a second dead letter", func() bool { return len(e.store.deadLetters()) == 2 })
	if c := e.counts(); c.Batches != 3 {
		t.Errorf("counts %+v", c)
	}
}
