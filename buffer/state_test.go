package buffer

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
)

func mustState(t *testing.T, o *Outbox, key string) []byte {
	t.Helper()
	v, err := o.State(key)
	if err != nil {
		t.Fatalf("State(%q): %v", key, err)
	}
	return v
}

func TestStatePutGet(t *testing.T) {
	path := newPath(t)
	o := open(t, path, &Options{NoSync: true})
	if v := mustState(t, o, "rules"); v != nil {
		t.Fatalf("state before any put: %q", v)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16 KB: many chunks
	cases := []struct {
		name, key string
		value     []byte
	}{
		{"small", "rules", []byte(`{"seq":3}`)},
		{"empty", "empty", []byte{}},
		{"chunked", "big", big},
		{"overwrite shorter", "big", []byte("short")},
		{"overwrite longer", "rules", big[:5000]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := o.PutState(c.key, c.value); err != nil {
				t.Fatal(err)
			}
			got := mustState(t, o, c.key)
			if got == nil || !bytes.Equal(got, c.value) {
				t.Fatalf("got %d bytes, want %d", len(got), len(c.value))
			}
		})
	}
	mustAppend(t, o, telemetry(10, 1), alert("hot"))
	if err := o.PutState("big", nil); err != nil {
		t.Fatal(err)
	}
	if v := mustState(t, o, "big"); v != nil {
		t.Fatalf("deleted key returns %d bytes", len(v))
	}
	if v := mustState(t, o, "rules"); !bytes.Equal(v, big[:5000]) {
		t.Fatalf("other key changed by a delete: %d bytes", len(v))
	}
	// The lanes do not see the state.
	if st := o.Stats(); st.Batches[LaneTelemetry] != 1 || st.Batches[LaneAlert] != 1 {
		t.Fatalf("stats %+v", st)
	}
	if es := readAll(t, o, LaneAlert); len(es) != 1 || decode(t, es[0]).Alerts[0].Rule != "hot" {
		t.Fatalf("alert lane %+v", es)
	}

	for _, bad := range []string{"", strings.Repeat("k", MaxStateKey+1), "a\x00b"} {
		if err := o.PutState(bad, []byte("x")); err == nil {
			t.Errorf("PutState(%q) accepted", bad)
		}
		if _, err := o.State(bad); err == nil {
			t.Errorf("State(%q) accepted", bad)
		}
	}
}

// State survives a reopen, is readable read-only (outpost buffer stats),
// and a read-only outbox refuses PutState.
func TestStateSurvivesReopen(t *testing.T) {
	path := newPath(t)
	o, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, o, telemetry(100, 1))
	if err := o.PutState("rules", []byte("persisted")); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, path)

	ro, err := Open(path, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if v := mustState(t, ro, "rules"); string(v) != "persisted" {
		t.Fatalf("read-only: %q", v)
	}
	if err := ro.PutState("rules", nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only PutState: %v", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}

	o = open(t, path, nil)
	if v := mustState(t, o, "rules"); string(v) != "persisted" {
		t.Fatalf("after reopen: %q", v)
	}
	if st := o.Stats(); st.Batches[LaneTelemetry] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Compaction at Open (the cap was lowered) copies the state bucket.
func TestStateSurvivesCompaction(t *testing.T) {
	path := newPath(t)
	o, err := Open(path, &Options{MaxBytes: 16 << 20, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		mustAppend(t, o, telemetry(1000, i))
	}
	value := bytes.Repeat([]byte("state "), 2000)
	if err := o.PutState("rules", value); err != nil {
		t.Fatal(err)
	}
	before := o.Stats()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = open(t, path, &Options{MaxBytes: MinFileBytes})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() >= before.FileBytes || fi.Size() > MinFileBytes {
		t.Fatalf("not compacted: %d bytes, was %d", fi.Size(), before.FileBytes)
	}
	if v := mustState(t, o, "rules"); !bytes.Equal(v, value) {
		t.Fatalf("after compaction: %d bytes, want %d", len(v), len(value))
	}
	mustAppend(t, o, telemetry(10, 1))
	if err := o.PutState("rules", []byte("next")); err != nil {
		t.Fatal(err)
	}
}

// A damaged state value is reported, not returned; the outbox opens.
func TestStateCorrupt(t *testing.T) {
	path := newPath(t)
	o, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.PutState("rules", []byte("value")); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketState).Put([]byte("rules"), []byte("\x00\x00\x00\x00value"))
	})
	o = open(t, path, nil)
	if _, err := o.State("rules"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("State of a damaged value: %v", err)
	}
	if err := o.PutState("rules", []byte("fresh")); err != nil {
		t.Fatal(err)
	}
	if v := mustState(t, o, "rules"); string(v) != "fresh" {
		t.Fatalf("%q", v)
	}
}

// AppendDeletingState stores the batches and deletes the state in one
// transaction: both, after a reopen too, or, when the append fails,
// neither; other keys stay.
func TestAppendDeletingState(t *testing.T) {
	path := newPath(t)
	enc, err := outpost.NewEncoder(&outpost.EncoderOptions{MaxMessageBytes: outpost.MinMessageBytes})
	if err != nil {
		t.Fatal(err)
	}
	o := open(t, path, &Options{Encoder: enc, NoSync: true})
	if err := o.PutState("open", []byte("readings")); err != nil {
		t.Fatal(err)
	}
	if err := o.PutState("other", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	// A reading alone over the message cap fails the append: the state
	// stays.
	huge := alert(strings.Repeat("r", 2*outpost.MinMessageBytes))
	if err := o.AppendDeletingState([]*outpost.Batch{huge}, "open"); err == nil {
		t.Fatal("an alert over the cap was stored")
	}
	if v := mustState(t, o, "open"); string(v) != "readings" {
		t.Fatalf("state after a failed append: %q", v)
	}
	if err := o.AppendDeletingState([]*outpost.Batch{telemetry(10, 1)}, "open"); err != nil {
		t.Fatal(err)
	}
	if v := mustState(t, o, "open"); v != nil {
		t.Fatalf("state after the append: %q", v)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = open(t, path, &Options{Encoder: enc, NoSync: true})
	if v := mustState(t, o, "open"); v != nil {
		t.Fatalf("state after a reopen: %q", v)
	}
	if v := mustState(t, o, "other"); string(v) != "kept" {
		t.Fatalf("other key: %q", v)
	}
	if st := o.Stats(); st.Batches[LaneTelemetry] != 1 {
		t.Fatalf("stats %+v, want the batch stored", st)
	}
	// No state stored under the key, or none at all: the append alone.
	if err := o.AppendDeletingState([]*outpost.Batch{telemetry(10, 2)}, "never"); err != nil {
		t.Fatal(err)
	}
	if err := o.AppendDeletingState(nil, ""); err == nil {
		t.Fatal("an empty key was taken")
	}
}
