package buffer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(envHold); path != "" {
		os.Exit(holdOutbox(path)) // a helper process of TestOpenLockedByAnotherProcess
	}
	goleak.VerifyTestMain(m)
}

const testGateway = "gw-test"

// testBase is the time the test batches were made: an hour ago, well within
// the default age cap (tests of the age cap inject a clock).
var testBase = time.Now().Add(-time.Hour).Truncate(time.Second).UnixNano()

// newPath returns a path for an outbox file in a fresh temp dir.
func newPath(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "outbox.db")
}

// open opens the outbox at path; at the end of the test it is closed and the
// file's bbolt consistency is checked.
func open(t testing.TB, path string, opts *Options) *Outbox {
	t.Helper()
	o, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := o.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkFile(t, path)
	})
	return o
}

// checkFile runs bbolt's consistency check and checkPages on a closed
// outbox file: checkPages must accept every file bbolt accepts.
func checkFile(t testing.TB, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		return // moved away by the test
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := checkPages(f, fi.Size()); err != nil {
		t.Errorf("checkPages %s: %v", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Errorf("check %s: %v", path, err)
		return
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("check %s: %v", path, err)
		}
		return nil
	})
	if err != nil {
		t.Errorf("check %s: %v", path, err)
	}
}

// rawUpdate changes a closed outbox file with a raw bbolt transaction.
func rawUpdate(t testing.TB, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// telemetry builds a telemetry batch of n readings over a few series; seed
// varies the values so batches differ.
func telemetry(n, seed int) *outpost.Batch {
	bb := outpost.NewBatchBuilder()
	rs := make([]outpost.Reading, n)
	base := testBase + int64(seed)*int64(time.Second)
	for i := range rs {
		rs[i] = outpost.Reading{
			Sensor: fmt.Sprintf("dev%d-env", i%8),
			Metric: [...]string{"temperature", "humidity"}[i%2],
			Unit:   [...]string{"Cel", "%RH"}[i%2],
			TS:     base + int64(i)*int64(time.Millisecond),
			Value:  float64(seed) + float64(i)/7,
		}
		if i%97 == 0 {
			rs[i].Quality = outpost.QualityUncertain
		}
	}
	bb.Add(rs)
	return bb.Take(testGateway, base)
}

func alert(rule string) *outpost.Batch {
	return &outpost.Batch{
		Version: outpost.WireVersion,
		Kind:    outpost.KindAlert,
		Gateway: testGateway,
		Created: testBase,
		Alerts: []outpost.Alert{{
			Rule: rule, Fingerprint: rule + "{}", State: outpost.StateFiring,
			Severity: "critical", Value: 42, ChangedAt: testBase,
		}},
	}
}

func mustAppend(t testing.TB, o *Outbox, bs ...*outpost.Batch) {
	t.Helper()
	if err := o.Append(bs); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// readAll reads a whole lane.
func readAll(t testing.TB, o *Outbox, lane Lane) []Entry {
	t.Helper()
	es, err := o.Read(lane, 0, 1<<20, nil)
	if err != nil {
		t.Fatalf("Read %s: %v", lane, err)
	}
	return es
}

func seqsOf(es []Entry) []uint64 {
	s := make([]uint64, len(es))
	for i, e := range es {
		s[i] = e.Seq
	}
	return s
}

// encoded returns the bytes Append stores for b (after it was appended).
func encoded(t testing.TB, b *outpost.Batch) []byte {
	t.Helper()
	p, err := b.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sameSeqs(a, b []uint64) bool { return slices.Equal(a, b) }

// checkEntries checks that es hold exactly bs, in order, byte for byte.
func checkEntries(t testing.TB, es []Entry, lane Lane, bs ...*outpost.Batch) {
	t.Helper()
	if len(es) != len(bs) {
		t.Fatalf("%d entries, want %d", len(es), len(bs))
	}
	for i, e := range es {
		if e.Seq != bs[i].Seq || e.Lane != lane {
			t.Errorf("entry %d: seq %d lane %s, want %d %s", i, e.Seq, e.Lane, bs[i].Seq, lane)
		}
		if !bytes.Equal(e.Data, encoded(t, bs[i])) {
			t.Errorf("entry %d (seq %d): data differs from the appended batch", i, e.Seq)
		}
		got, err := outpost.DecodeBatch(e.Data)
		if err != nil {
			t.Errorf("entry %d: decode: %v", i, err)
			continue
		}
		if got.Seq != e.Seq || got.Epoch != bs[i].Epoch || got.Len() != bs[i].Len() {
			t.Errorf("entry %d: decoded seq %d epoch %d len %d, want %d %d %d",
				i, got.Seq, got.Epoch, got.Len(), e.Seq, bs[i].Epoch, bs[i].Len())
		}
	}
}

func batches(bs ...*outpost.Batch) []*outpost.Batch { return bs }

// decode decodes a stored entry, which must be a valid batch.
func decode(t testing.TB, e Entry) *outpost.Batch {
	t.Helper()
	b, err := outpost.DecodeBatch(e.Data)
	if err != nil {
		t.Fatalf("seq %d: %v", e.Seq, err)
	}
	if b.Seq != e.Seq {
		t.Fatalf("entry seq %d holds batch seq %d", e.Seq, b.Seq)
	}
	return b
}

// losses returns the loss records stored in the alert lane.
func losses(t testing.TB, o *Outbox) []outpost.Loss {
	t.Helper()
	var ls []outpost.Loss
	for _, e := range readAll(t, o, LaneAlert) {
		if b := decode(t, e); b.Kind == outpost.KindLoss {
			ls = append(ls, b.Losses...)
		}
	}
	return ls
}

// lostCount sums the Count of the stored loss records of one kind.
func lostCount(t testing.TB, o *Outbox, kind outpost.Kind) uint64 {
	t.Helper()
	var n uint64
	for _, l := range losses(t, o) {
		if l.Kind == kind {
			n += l.Count
		}
	}
	return n
}

// chunkKey is the key of chunk i (from 1) of seq.
func chunkKey(seq uint64, i uint32) []byte {
	return binary.BigEndian.AppendUint32(putKey(nil, seq), i)
}

// flipValue flips a bit in the middle of the value under key.
func flipValue(b *bolt.Bucket, key []byte) error {
	v := b.Get(key)
	if v == nil {
		return fmt.Errorf("no key %x", key)
	}
	v = bytes.Clone(v)
	v[len(v)/2] ^= 0x10
	return b.Put(key, v)
}

// rawKeys returns every key of a lane, chunks included.
func rawKeys(t testing.TB, o *Outbox, lane Lane) [][]byte {
	t.Helper()
	var ks [][]byte
	err := o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(laneBuckets[lane]).ForEach(func(k, _ []byte) error {
			ks = append(ks, bytes.Clone(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	p, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// putCRC sets the CRC of a stored value (CRC and batch bytes).
func putCRC(v []byte) {
	binary.BigEndian.PutUint32(v, crc32.Checksum(v[crcLen:], castagnoli))
}

// sameStats compares stats but for the file size, which Close can change
// as it commits pending deletes.
func sameStats(a, b Stats) bool {
	a.FileBytes, b.FileBytes = 0, 0
	return a == b
}

// wlocked runs fn holding the writers' lock.
func (o *Outbox) wlocked(fn func() error) error {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	return fn()
}
