package buffer

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testGateway = "gw-test"

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
	base := int64(1_700_000_000_000_000_000) + int64(seed)*int64(time.Second)
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
		Created: 1_700_000_000_000_000_000,
		Alerts: []outpost.Alert{{
			Rule: rule, Fingerprint: rule + "{}", State: outpost.StateFiring,
			Severity: "critical", Value: 42, ChangedAt: 1_700_000_000_000_000_000,
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
