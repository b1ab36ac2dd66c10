package buffer

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
)

// seedFile writes an outbox with a history of every kind: batches of one
// and of many chunks, alerts, loss batches, holes left by acks. It returns
// the file's bytes.
func seedFile(t testing.TB, path string) []byte {
	t.Helper()
	o, err := Open(path, &Options{MaxBatches: 60, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		mustAppend(t, o, telemetry([...]int{5, 300, 3000}[i%3], i), alert("a"))
		if i%4 == 0 {
			if _, err := o.Delete([]uint64{uint64(2*i + 1)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	return readFile(t, path)
}

// checkDamaged writes p to a new file and opens it: Open must return
// within a deadline, without a panic; the outbox it opens, over the file
// or a new one after moving it aside, must read every entry as a valid
// batch or report it corrupt, drop it, and go on.
func checkDamaged(t *testing.T, dir, name string, p []byte) {
	t.Helper()
	path := filepath.Join(dir, name)
	writeFile(t, path, p)
	type result struct {
		o   *Outbox
		err error
	}
	done := make(chan result, 1)
	go func() {
		o, err := Open(path, &Options{NoSync: true})
		done <- result{o, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: Open hangs", name)
	}
	if r.err != nil {
		// The only refusal: a damaged version that reads as a newer one.
		if !errors.Is(r.err, ErrNewerFormat) {
			t.Errorf("%s: Open: %v", name, r.err)
		}
		return
	}
	o := r.o
	defer func() {
		if err := o.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	}()
	for l := range numLanes {
		drain(t, o, Lane(l), name)
	}
	if err := o.Append(batches(telemetry(5, 1), alert("a"))); err != nil {
		var ce *CorruptError
		if !errors.As(err, &ce) && !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Append: %v", name, err)
		}
	}
}

// drain reads a lane to its end: each entry must decode as the batch its
// key names; a corrupt one is dropped. Other errors fail the test.
func drain(t *testing.T, o *Outbox, lane Lane, name string) {
	t.Helper()
	var after uint64
	for range 10_000 {
		es, err := o.Read(lane, after, 100, nil)
		for _, e := range es {
			if b, derr := outpost.DecodeBatch(e.Data); derr != nil || b.Seq != e.Seq {
				t.Errorf("%s: %s seq %d passed its CRC but decodes as %v, %v", name, lane, e.Seq, b, derr)
			}
			after = e.Seq
		}
		var ce *CorruptError
		switch {
		case errors.As(err, &ce) && ce.Seq != 0:
			if derr := o.DropCorrupt(ce.Seq); derr != nil && !errors.Is(derr, ErrCorrupt) {
				t.Errorf("%s: DropCorrupt(%d): %v", name, ce.Seq, derr)
			}
			after = ce.Seq
		case err != nil:
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: Read: %v", name, err)
			}
			return
		case len(es) == 0:
			return
		}
	}
	t.Errorf("%s: %s lane does not end", name, lane)
}

// TestOpenFlippedBytes flips bytes at random offsets anywhere in a real
// file, meta pages included.
func TestOpenFlippedBytes(t *testing.T) {
	dir := t.TempDir()
	seed := seedFile(t, filepath.Join(dir, "seed.db"))
	r := rand.New(rand.NewPCG(7, 8))
	n := 300
	if testing.Short() {
		n = 60
	}
	for i := range n {
		q := bytes.Clone(seed)
		for range 1 + r.IntN(8) {
			q[r.IntN(len(q))] ^= 1 << r.IntN(8)
		}
		checkDamaged(t, dir, "flip"+strconv.Itoa(i)+".db", q)
	}
}

// TestOpenTruncated cuts a real file at random lengths, at page
// boundaries, and to nothing.
func TestOpenTruncated(t *testing.T) {
	dir := t.TempDir()
	seed := seedFile(t, filepath.Join(dir, "seed.db"))
	r := rand.New(rand.NewPCG(9, 10))
	lengths := []int{0, 1, 4095, 4096, 8192, 8193, len(seed) - 4096, len(seed) - 1}
	for range 100 {
		lengths = append(lengths, r.IntN(len(seed)))
	}
	for _, n := range lengths {
		checkDamaged(t, dir, "cut"+strconv.Itoa(n)+".db", seed[:n])
		if n > 0 && n < 2*4096 { // no valid meta page left: moved aside (empty: started anew)
			if m, _ := filepath.Glob(filepath.Join(dir, "cut"+strconv.Itoa(n)+".db.corrupt-*")); len(m) != 1 {
				t.Errorf("cut to %d bytes: not moved aside", n)
			}
		}
	}
}

// TestSeqMismatch: a sound value under another seq's key (a damaged key)
// is reported corrupt, so it cannot be resent forever under a seq that no
// ack names.
func TestSeqMismatch(t *testing.T) {
	path := newPath(t)
	o, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, o, alert("a"), alert("b"))
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(laneBuckets[LaneAlert])
		v := bytes.Clone(b.Get(putKey(nil, 2)))
		if err := b.Delete(putKey(nil, 2)); err != nil {
			return err
		}
		return b.Put(putKey(nil, 9), v)
	})
	o = open(t, path, nil)
	es, err := o.Read(LaneAlert, 0, 10, nil)
	var ce *CorruptError
	if len(es) != 1 || !errors.As(err, &ce) || ce.Seq != 9 || !strings.Contains(err.Error(), "differs from its key") {
		t.Fatalf("Read: %d entries, %v", len(es), err)
	}
	if err := o.DropCorrupt(9); err != nil {
		t.Fatal(err)
	}
}

// FuzzBatchHead: batchHead never panics, and reads the seq and created
// time of any batch.
func FuzzBatchHead(f *testing.F) {
	for _, b := range []*outpost.Batch{telemetry(3, 1), alert("a")} {
		b.Epoch, b.Seq = 1<<63+5, 300
		f.Add(encoded(f, b))
		b.Epoch, b.Seq, b.Created = 7, 1, -5
		f.Add(encoded(f, b))
		b.Created = 200
		f.Add(encoded(f, b))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		seq, created, ok := batchHead(p)
		if b := new(outpost.Batch); ok {
			if _, err := b.UnmarshalMsg(p); err == nil && (b.Seq != seq || b.Created != created) {
				t.Errorf("batchHead %d %d, batch %d %d", seq, created, b.Seq, b.Created)
			}
		}
	})
}
