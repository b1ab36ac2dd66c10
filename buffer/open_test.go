package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
)

var fixedNow = time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))

const asideSuffix = ".corrupt-20240102T020405Z" // fixedNow in UTC

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// validFile writes an outbox with a few batches to path and returns its
// epoch and bbolt high-water mark in bytes.
func validFile(t *testing.T, path string) (epoch uint64, hwm int64) {
	t.Helper()
	o, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		mustAppend(t, o, telemetry(300, i), alert("a"))
	}
	epoch = o.Epoch()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error { hwm = tx.Size(); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return epoch, hwm
}

func TestOpenMovesAsideCorrupt(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string) (oldEpoch uint64)
	}{
		{"garbage", func(t *testing.T, path string) uint64 {
			writeFile(t, path, randomBytes(64<<10))
			return 0
		}},
		{"shorter than a page", func(t *testing.T, path string) uint64 {
			writeFile(t, path, randomBytes(100))
			return 0
		}},
		{"truncated", func(t *testing.T, path string) uint64 {
			epoch, hwm := validFile(t, path)
			if err := os.Truncate(path, hwm-4096); err != nil {
				t.Fatal(err)
			}
			return epoch
		}},
		{"pages overwritten", func(t *testing.T, path string) uint64 {
			epoch, hwm := validFile(t, path)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(randomBytes(int(hwm-2*4096)), 2*4096); err != nil {
				t.Fatal(err)
			}
			return epoch
		}},
		{"bbolt file of another program", func(t *testing.T, path string) uint64 {
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("widgets"))
				if err != nil {
					return err
				}
				return b.Put([]byte("k"), []byte("v"))
			})
			return 0
		}},
		{"malformed meta", func(t *testing.T, path string) uint64 {
			epoch, _ := validFile(t, path)
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return tx.Bucket(bucketMeta).Put(metaEpoch, []byte{1, 2, 3})
			})
			return epoch
		}},
		{"lane bucket missing", func(t *testing.T, path string) uint64 {
			epoch, _ := validFile(t, path)
			rawUpdate(t, path, func(tx *bolt.Tx) error {
				return tx.DeleteBucket(laneBuckets[LaneAlert])
			})
			return epoch
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := newPath(t)
			oldEpoch := tt.make(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			o := open(t, path, &Options{Logger: zerolog.New(&logs), Now: func() time.Time { return fixedNow }})

			moved, err := os.ReadFile(path + asideSuffix)
			if err != nil {
				t.Fatalf("not moved aside: %v", err)
			}
			if !bytes.Equal(moved, before) {
				t.Error("moved-aside file differs from the original")
			}
			if o.Epoch() == 0 || o.Epoch() == oldEpoch {
				t.Errorf("epoch %d, old %d: want a new non-zero one", o.Epoch(), oldEpoch)
			}
			if st := o.Stats(); st.NextSeq != 1 || st.Batches != [2]int{} {
				t.Errorf("new file stats %+v", st)
			}
			if n := strings.Count(logs.String(), `"level":"error"`); n != 1 ||
				!strings.Contains(logs.String(), `"moved_to":"`+path+asideSuffix+`"`) {
				t.Errorf("want one error line naming the new path, got:\n%s", logs.String())
			}
			mustAppend(t, o, telemetry(3, 1))
		})
	}
}

// A kill between creating the file and bbolt's first write leaves it empty:
// that is a new outbox, not a corrupt one.
func TestOpenEmptyFileStartsFresh(t *testing.T) {
	path := newPath(t)
	writeFile(t, path, nil)
	var logs bytes.Buffer
	o := open(t, path, &Options{Logger: zerolog.New(&logs)})
	if _, err := os.Stat(path + asideSuffix); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty file moved aside (%v)", err)
	}
	if o.Epoch() == 0 || o.Stats().NextSeq != 1 {
		t.Errorf("epoch %d, stats %+v: want a fresh outbox", o.Epoch(), o.Stats())
	}
	if strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), "empty") {
		t.Errorf("want one warning, no error:\n%s", logs.String())
	}
	mustAppend(t, o, telemetry(3, 1))
}

func TestOpenMovesAsideTwice(t *testing.T) {
	path := newPath(t)
	opts := &Options{Now: func() time.Time { return fixedNow }}
	for range 2 {
		writeFile(t, path, randomBytes(8192))
		o, err := Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{path + asideSuffix, path + asideSuffix + ".1"} {
		if _, err := os.Stat(name); err != nil {
			t.Errorf("%v", err)
		}
	}
}

func TestOpenLocked(t *testing.T) {
	path := newPath(t)
	o := open(t, path, nil)
	mustAppend(t, o, telemetry(3, 1))

	o2, err := Open(path, nil)
	if err == nil {
		o2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if o2 != nil {
		t.Errorf("Open returned %p with its error", o2)
	}
	// bbolt's flock is per open file description: a second Open in this
	// process conflicts like one in another process would.
	wantLocked(t, err, path, os.Getpid())
	if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
		t.Errorf("moved aside: %v", m)
	}
	if es := readAll(t, o, LaneTelemetry); len(es) != 1 {
		t.Errorf("first outbox holds %d entries after the failed Open", len(es))
	}
	// The failed Open left no lock behind: once the holder closes, the
	// file opens.
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o3, err := Open(path, nil)
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	if es := readAll(t, o3, LaneTelemetry); len(es) != 1 {
		t.Errorf("reopened outbox holds %d entries", len(es))
	}
	if err := o3.Close(); err != nil {
		t.Fatal(err)
	}
}

// A file written in a newer format (an older release installed over a
// newer one) is refused with an error naming the file and both versions,
// by a read-write and a read-only Open alike, and left byte for byte as
// it was: not moved aside, not written.
func TestOpenNewerFormat(t *testing.T) {
	path := newPath(t)
	validFile(t, path)
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaVersion, putKey(nil, formatVersion+1))
	})
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		o, err := Open(path, &Options{ReadOnly: ro})
		if err == nil {
			o.Close()
			t.Fatalf("read-only %v: opened a file of a newer format", ro)
		}
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.Is(err, ErrNewerFormat) || fe.Path != path ||
			fe.Version != formatVersion+1 || fe.Supported != formatVersion {
			t.Fatalf("read-only %v: Open = %v (%#v), want a FormatError for %s", ro, err, fe, path)
		}
		want := "buffer: outbox " + path + " has format version 3, newer than this build's 2 (written by a newer outpost)"
		if err.Error() != want {
			t.Errorf("read-only %v: error %q\nwant %q", ro, err, want)
		}
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the refused file was changed")
	}
	if m, _ := filepath.Glob(path + ".*"); len(m) != 0 {
		t.Errorf("files beside it: %v", m)
	}
}

func TestOpenMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "outbox.db")
	if o, err := Open(path, nil); err == nil {
		o.Close()
		t.Fatal("Open succeeded")
	}
}

// TestOpenRepairs: malformed entries are dropped and the next seq is moved
// past the highest stored one, without starting a new epoch.
func TestOpenRepairs(t *testing.T) {
	path := newPath(t)
	epoch, _ := validFile(t, path) // seqs 1..40
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(laneBuckets[LaneTelemetry])
		if err := b.Put([]byte("short"), []byte("value")); err != nil {
			return err
		}
		if err := b.Put(putKey(nil, 99), []byte{1}); err != nil {
			return err
		}
		v := slicesClone(tx.Bucket(laneBuckets[LaneAlert]).Get(putKey(nil, 2)))
		return tx.Bucket(laneBuckets[LaneAlert]).Put(putKey(nil, 100), v)
	})
	var logs bytes.Buffer
	o := open(t, path, &Options{Logger: zerolog.New(&logs)})
	if o.Epoch() != epoch {
		t.Fatalf("new epoch after repair")
	}
	st := o.Stats()
	if st.Batches != [2]int{21, 20} || st.NextSeq != 101 {
		t.Errorf("stats %+v, want 21 alerts, 20 telemetry, next seq 101", st)
	}
	if es := readAll(t, o, LaneTelemetry); len(es) != 20 {
		t.Errorf("%d telemetry entries", len(es))
	}
	b := telemetry(1, 1)
	mustAppend(t, o, b)
	if b.Seq != 101 {
		t.Errorf("seq %d, want 101", b.Seq)
	}
	if !strings.Contains(logs.String(), "malformed entries") {
		t.Errorf("repair not logged:\n%s", logs.String())
	}
}

func TestReadCorrupt(t *testing.T) {
	path := newPath(t)
	o, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	bs := []*outpost.Batch{telemetry(50, 1), telemetry(50, 2), telemetry(50, 3)}
	mustAppend(t, o, bs...)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	// Flip one byte inside seq 2's batch bytes.
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(laneBuckets[LaneTelemetry])
		v := slicesClone(b.Get(putKey(nil, 2)))
		v[len(v)/2] ^= 0x40
		return b.Put(putKey(nil, 2), v)
	})

	o = open(t, path, nil)
	es, err := o.Read(LaneTelemetry, 0, 10, nil)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read: %v, want ErrCorrupt", err)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Seq != 2 || ce.Lane != LaneTelemetry || !strings.Contains(err.Error(), "seq 2") {
		t.Errorf("error %v does not name seq 2", err)
	}
	checkEntries(t, es, LaneTelemetry, bs[0])

	// The uplink drops the damaged entry and carries on.
	if n, err := o.Delete([]uint64{ce.Seq}); n != 1 || err != nil {
		t.Fatalf("Delete: %d, %v", n, err)
	}
	es, err = o.Read(LaneTelemetry, 1, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, es, LaneTelemetry, bs[2])
}

func writeFile(t *testing.T, path string, p []byte) {
	t.Helper()
	if err := os.WriteFile(path, p, 0o600); err != nil {
		t.Fatal(err)
	}
}

func slicesClone(p []byte) []byte { return append([]byte(nil), p...) }

// TestOpenDamagedPages damages random bytes of a valid file's data pages
// (the meta pages have checksums): Open must never panic, hang or leak a
// goroutine, and an outbox it opens must work. FuzzOpen explores further.
func TestOpenDamagedPages(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed.db")
	validFile(t, seed)
	p, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	const metaPages = 2 * 4096
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		q := bytes.Clone(p)
		for range 1 + r.IntN(8) {
			off := metaPages + r.IntN(len(q)-metaPages)
			if r.IntN(2) == 0 {
				q[off] ^= 1 << r.IntN(8)
			} else { // a small number where page ids and sizes live
				binary.NativeEndian.PutUint64(q[off&^7:], uint64(r.IntN(64)))
			}
		}
		path := filepath.Join(dir, strconv.Itoa(i)+".db")
		writeFile(t, path, q)
		o, err := Open(path, &Options{NoSync: true})
		if err != nil {
			continue // e.g. a damaged format version reads as a newer one
		}
		for l := range numLanes {
			es, _ := o.Read(Lane(l), 0, 1000, nil)
			if _, err := o.Delete(seqsOf(es)); err != nil {
				t.Logf("%d: Delete: %v", i, err)
			}
		}
		if err := o.Append(batches(telemetry(5, i))); err != nil {
			t.Logf("%d: Append: %v", i, err)
		}
		if err := o.Close(); err != nil {
			t.Errorf("%d: Close: %v", i, err)
		}
	}
}

// TestCheckPagesAcceptsValid: files with varied histories (deep trees,
// inline and non-inline buckets, deletes that merge pages, a synced
// freelist) pass checkPages and reopen with the same contents.
func TestCheckPagesAcceptsValid(t *testing.T) {
	tests := []struct {
		name   string
		rounds int
		sizes  []int // readings per telemetry batch, cycled
		alerts int   // alert batches per round
		del    func(round int, seqs []uint64) []uint64
	}{
		{"empty", 0, nil, 0, nil},
		{"alerts only, inline", 3, nil, 2, nil},
		{"many small batches", 300, []int{1, 2, 3}, 3, nil},
		{"large batches", 60, []int{1000, 3000}, 1, nil},
		{"acked from the front", 200, []int{5, 500}, 2, func(r int, seqs []uint64) []uint64 {
			if r%3 == 0 {
				return seqs[:len(seqs)/2]
			}
			return nil
		}},
		{"acked in a scatter", 200, []int{1, 50}, 1, func(r int, seqs []uint64) []uint64 {
			var d []uint64
			for _, s := range seqs {
				if s%7 == uint64(r%7) {
					d = append(d, s)
				}
			}
			return d
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := newPath(t)
			o, err := Open(path, &Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			var stored []uint64
			for r := range tt.rounds {
				var bs []*outpost.Batch
				for i := range tt.alerts {
					bs = append(bs, alert(strconv.Itoa(i)))
				}
				if len(tt.sizes) > 0 {
					bs = append(bs, telemetry(tt.sizes[r%len(tt.sizes)], r))
				}
				mustAppend(t, o, bs...)
				for _, b := range bs {
					stored = append(stored, b.Seq)
				}
				if tt.del != nil {
					d := tt.del(r, stored)
					if _, err := o.Delete(d); err != nil {
						t.Fatal(err)
					}
					stored = slices.DeleteFunc(stored, func(s uint64) bool { return slices.Contains(d, s) })
				}
			}
			want := o.Stats()
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			checkFile(t, path)
			rawUpdate(t, path, func(*bolt.Tx) error { return nil }) // writes a synced freelist
			checkFile(t, path)

			o = open(t, path, nil)
			if m, _ := filepath.Glob(path + ".corrupt-*"); len(m) != 0 {
				t.Fatalf("moved aside")
			}
			if got := o.Stats(); got.Batches != want.Batches || got.Bytes != want.Bytes {
				t.Errorf("after reopen %+v, want %+v", got, want)
			}
		})
	}
}
