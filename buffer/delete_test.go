package buffer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/outposthq/outpost"
)

// TestDeferredDelete: a Delete is visible at once to Read and Stats, and
// reaches the file with the next write transaction, Close, or the bound on
// pending deletes; a crash before that brings the batches back (they are
// sent again), never anything else.
func TestDeferredDelete(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "outbox.db")
	o := open(t, path, nil)
	bs := batches(telemetry(3000, 1), alert("a"), telemetry(10, 2), telemetry(10, 3))
	mustAppend(t, o, bs...)
	before := o.Stats()
	if n, err := o.Delete([]uint64{1, 2, 1, 99}); n != 2 || err != nil {
		t.Fatalf("Delete: %d, %v", n, err)
	}
	if n, err := o.Delete([]uint64{1}); n != 0 || err != nil {
		t.Fatalf("Delete again: %d, %v", n, err)
	}
	checkEntries(t, readAll(t, o, LaneTelemetry), LaneTelemetry, bs[2], bs[3])
	if es := readAll(t, o, LaneAlert); len(es) != 0 {
		t.Errorf("alert lane %v", seqsOf(es))
	}
	st := o.Stats()
	if st.Batches != [2]int{0, 2} || st.Bytes[LaneAlert] != 0 ||
		st.Bytes[LaneTelemetry] != before.Bytes[LaneTelemetry]-int64(len(encoded(t, bs[0]))+crcLen) ||
		st.OldestCreated != [2]int64{0, bs[2].Created} {
		t.Errorf("stats %+v", st)
	}
	if keys := rawKeys(t, o, LaneTelemetry); len(keys) <= 2 {
		t.Errorf("deleted from the file before the next write: %x", keys)
	}

	// A crash now: the file still holds them.
	crashed := filepath.Join(dir, "crashed.db")
	if err := os.WriteFile(crashed, readFile(t, path), 0o600); err != nil {
		t.Fatal(err)
	}
	c := open(t, crashed, nil)
	if got := seqsOf(readAll(t, c, LaneTelemetry)); !sameSeqs(got, []uint64{1, 3, 4}) {
		t.Errorf("after a crash: telemetry %v, want the deleted batch back", got)
	}

	// The next Append deletes them from the file.
	mustAppend(t, o, telemetry(10, 4))
	if keys := rawKeys(t, o, LaneTelemetry); len(keys) != 3 {
		t.Errorf("telemetry keys after the next Append: %x", keys)
	}
	if st := o.Stats(); st.Batches != [2]int{0, 3} {
		t.Errorf("stats %+v", st)
	}

	// Close commits what is pending.
	if _, err := o.Delete([]uint64{3}); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o2 := open(t, path, nil)
	if got := seqsOf(readAll(t, o2, LaneTelemetry)); !sameSeqs(got, []uint64{4, 5}) {
		t.Errorf("after Close and Open: telemetry %v", got)
	}
}

// TestDeleteBound: past maxPendingDeletes, Delete commits itself.
func TestDeleteBound(t *testing.T) {
	o := open(t, newPath(t), &Options{NoSync: true})
	bs := make([]*outpost.Batch, maxPendingDeletes+10)
	for i := range bs {
		bs[i] = alert("a")
	}
	mustAppend(t, o, bs...)
	seqs := seqRange(1, len(bs))
	if n, err := o.Delete(seqs); n != len(bs) || err != nil {
		t.Fatalf("Delete: %d, %v", n, err)
	}
	if keys := rawKeys(t, o, LaneAlert); len(keys) != 0 || len(o.pending) != 0 {
		t.Errorf("%d keys, %d pending", len(keys), len(o.pending))
	}
}

// TestSyncDeletes: with SyncDeletes a Delete is in the file when it returns.
func TestSyncDeletes(t *testing.T) {
	o := open(t, newPath(t), &Options{SyncDeletes: true})
	mustAppend(t, o, telemetry(3000, 1), telemetry(10, 2))
	if n, err := o.Delete([]uint64{1}); n != 1 || err != nil {
		t.Fatalf("Delete: %d, %v", n, err)
	}
	if keys := rawKeys(t, o, LaneTelemetry); len(keys) != 1 {
		t.Errorf("keys %x", keys)
	}
}
