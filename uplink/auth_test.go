package uplink

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/testenv"
)

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "gw.key")
	k, err := CreateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(name)
	if fi.Mode().Perm() != 0o600 || string(b) != k.Hex()+"\n" {
		t.Fatalf("key file mode %v, %d bytes", fi.Mode(), len(b))
	}
	got, perm, err := LoadKey(name)
	if err != nil || !got.Equal(k) || perm != 0o600 {
		t.Fatalf("LoadKey = %v, %v, %v", got, perm, err)
	}
	if _, err := CreateKey(name); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("CreateKey over a key: %v, want fs.ErrExist", err)
	}
	if got, _, created, err := LoadOrCreateKey(name); err != nil || created || !got.Equal(k) {
		t.Fatalf("LoadOrCreateKey of an existing key: created %v, %v", created, err)
	}
	// The group may read it: loaded, and the mode says so.
	if err := os.Chmod(name, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, perm, err := LoadKey(name); err != nil || perm != 0o640 {
		t.Fatalf("group-readable key: %v, %v", perm, err)
	}

	secret := k.Hex()
	for _, c := range []struct {
		name    string
		content string
		mode    fs.FileMode
		want    string
	}{
		{"world-readable", secret + "\n", 0o644, "other users may read or write it (mode 0644)"},
		{"world-writable", secret + "\n", 0o602, "mode 0602"},
		{"short", secret[:40] + "\n", 0o600, "40 characters"},
		{"not hex", strings.Repeat("z", 64), 0o600, "not 32 bytes of hex or base64"},
		{"two keys", secret + "\n" + secret + "\n", 0o600, "characters"},
		{"zeros", strings.Repeat("0", 64), 0o600, "all zeros"},
		{"large", strings.Repeat("a", 5000), 0o600, "larger than 4096 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(dir, c.name)
			if err := os.WriteFile(f, []byte(c.content), c.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f, c.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			for _, load := range []func(string) error{
				func(f string) error { _, _, err := LoadKey(f); return err },
				func(f string) error { _, _, _, err := LoadOrCreateKey(f); return err },
			} {
				err := load(f)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %v, want one saying %q", err, c.want)
				}
				if strings.Contains(err.Error(), secret[:12]) || strings.Contains(err.Error(), "zzzz") {
					t.Fatalf("error %q shows the file's content", err)
				}
			}
			if b, _ := os.ReadFile(f); string(b) != c.content {
				t.Fatal("a refused key file was changed")
			}
		})
	}

	// Absent: created, in a directory that exists only.
	fresh := filepath.Join(dir, "fresh.key")
	k2, perm, created, err := LoadOrCreateKey(fresh)
	if err != nil || !created || perm != 0o600 || k2.Equal(k) {
		t.Fatalf("LoadOrCreateKey of no file: created %v, mode %v, %v", created, perm, err)
	}
	if _, _, _, err := LoadOrCreateKey(filepath.Join(dir, "no", "such", "dir.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a key in a missing directory: %v, want fs.ErrNotExist", err)
	}
	// Empty (a creation cut short): replaced by a new key.
	empty := filepath.Join(dir, "empty.key")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadKey(empty); err == nil {
		t.Fatal("LoadKey took an empty file")
	}
	if k3, _, created, err := LoadOrCreateKey(empty); err != nil || !created || k3.Equal(k) {
		t.Fatalf("LoadOrCreateKey of an empty file: created %v, %v", created, err)
	}
	// A directory in its place is refused, not replaced.
	if _, _, _, err := LoadOrCreateKey(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a directory: %v", err)
	}
}

// TestCreateKeyRace: gateways started at once on one key file end up
// with the same key.
func TestCreateKeyRace(t *testing.T) {
	name := filepath.Join(t.TempDir(), "gw.key")
	keys := make([]outpost.Key, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, _, _, err := LoadOrCreateKey(name)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !k.Equal(keys[0]) {
			t.Fatal("two keys for one file")
		}
	}
}

func TestAuthOptions(t *testing.T) {
	k := outpost.NewKey()
	for _, c := range []struct {
		key  *outpost.Key
		auth AuthMode
		want AuthMode // "" for an error
	}{
		{nil, "", AuthOff}, {&k, "", AuthRequired}, {&k, AuthOptional, AuthOptional},
		{nil, AuthRequired, ""}, {nil, AuthOptional, ""}, {&k, AuthOff, ""}, {&k, "sometimes", ""},
	} {
		u, err := New(newMemStore(1), &Options{Broker: "tcp://127.0.0.1:1", Gateway: "gw", Key: c.key, Auth: c.auth})
		switch {
		case c.want == "" && err == nil:
			t.Errorf("key %v, auth %q: accepted", c.key != nil, c.auth)
		case c.want != "" && (err != nil || u.opt.Auth != c.want):
			t.Errorf("key %v, auth %q: %v", c.key != nil, c.auth, err)
		}
	}
}

// signingAcker plays an ingest service that holds key: it verifies
// every batch and answers with the ack that sign says (signed with key,
// or with another, or unsigned).
type signingAcker struct {
	c        mqtt.Client
	mu       sync.Mutex
	batches  [][]byte
	verified int
}

func startSigningAcker(t *testing.T, broker, prefix, gw string, key outpost.Key, ack func(a *outpost.Ack) []byte) *signingAcker {
	t.Helper()
	a := &signingAcker{c: connect(t, broker)}
	tok := a.c.Subscribe(prefix+"/"+gw+"/batch", 1, func(c mqtt.Client, m mqtt.Message) {
		inner, _, err := outpost.VerifyBatch(m.Payload(), gw, key)
		if err != nil {
			t.Errorf("acker: %v", err)
			return
		}
		b, err := outpost.DecodeBatch(inner)
		if err != nil {
			t.Errorf("acker: %v", err)
			return
		}
		a.mu.Lock()
		a.batches = append(a.batches, slices.Clone(m.Payload()))
		a.verified++
		a.mu.Unlock()
		if p := ack(&outpost.Ack{Version: outpost.AckVersion, Epoch: b.Epoch, Seqs: []uint64{b.Seq}}); p != nil {
			c.Publish(prefix+"/"+gw+"/ack", 1, false, p)
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("acker subscribe: %v", tok.Error())
	}
	return a
}

func (a *signingAcker) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.verified
}

// TestSignedUplink: with a key every batch goes out signed, stored
// before the key or after, backlog (historical) or fresh; acks delete as
// the auth mode says.
func TestSignedUplink(t *testing.T) {
	broker := testenv.MQTT(t)
	key, other := outpost.NewKey(), outpost.NewKey()
	signed := func(k outpost.Key) func(*outpost.Ack) []byte {
		return func(a *outpost.Ack) []byte { return a.AppendSigned(nil, &k, "gw") }
	}
	unsigned := func(a *outpost.Ack) []byte { p, _ := a.MarshalMsg(nil); return p }
	for _, c := range []struct {
		name    string
		auth    AuthMode
		ack     func(*outpost.Ack) []byte
		deletes bool
	}{
		{"required, signed acks", AuthRequired, signed(key), true},
		{"required, unsigned acks", AuthRequired, unsigned, false},
		{"required, acks of another key", AuthRequired, signed(other), false},
		{"optional, signed acks", AuthOptional, signed(key), true},
		{"optional, unsigned acks", AuthOptional, unsigned, true},
		{"optional, acks of another key", AuthOptional, signed(other), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			prefix := uniquePrefix()
			s := newMemStore(4)
			// Stored before the connection: backlog, sent historical.
			for seq := uint64(1); seq <= 6; seq++ {
				s.put(LaneTelemetry, seq, batchBytes(t, outpost.KindTelemetry, 4, seq))
			}
			s.put(LaneAlert, 7, batchBytes(t, outpost.KindAlert, 4, 7))
			a := startSigningAcker(t, broker, prefix, "gw", key, c.ack)
			u := startUplink(t, s, Options{Broker: broker, Gateway: "gw", TopicPrefix: prefix, Window: 16,
				AckTimeout: time.Hour, Key: &key, Auth: c.auth})
			eventually(t, "7 batches verified", func() bool { return a.count() >= 7 })
			if c.deletes {
				eventually(t, "all deleted", func() bool { return s.left() == 0 })
				if st := u.Stats(); st.Acked != 7 || st.ForgedAcks+st.UnsignedAcks != 0 {
					t.Fatalf("stats %+v", st)
				}
			} else {
				eventually(t, "7 acks refused", func() bool { st := u.Stats(); return st.ForgedAcks+st.UnsignedAcks == 7 })
				if left, st := s.left(), u.Stats(); left != 7 || st.Acked != 0 {
					t.Fatalf("%d batches left, stats %+v: a refused ack deleted", left, st)
				}
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			hist := 0
			for _, p := range a.batches {
				inner, _, err := outpost.VerifyBatch(p, "gw", key)
				if err != nil {
					t.Fatal(err)
				}
				if inner[3]&outpost.FlagHistorical != 0 {
					hist++
				}
				// Exactly the stored bytes (but for the historical bit).
				b, err := outpost.DecodeBatch(inner)
				if err != nil {
					t.Fatal(err)
				}
				want := batchBytes(t, b.Kind, 4, b.Seq)
				if !bytes.Equal(outpost.SetHistorical(want)[4:], inner[4:]) {
					t.Fatalf("seq %d: signed bytes differ from the stored ones", b.Seq)
				}
			}
			if hist != 6 {
				t.Errorf("%d historical batches, want the 6 of the backlog", hist)
			}
		})
	}
}
