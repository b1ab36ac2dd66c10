package buffer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
)

// TestFileBound appends 20 times MaxBytes in 1000-reading batches, acking
// some (in order, and a scatter) and not others: the file never grows past
// its cap (its hard limit is the cap plus the slack; with no concurrent
// reader the slack is not needed), and the loss records account for every
// reading that was neither acked nor is still stored.
func TestFileBound(t *testing.T) {
	const maxBytes = 4 << 20
	for _, per := range []int{1, 8, 32} {
		t.Run(map[int]string{1: "1 batch per append", 8: "8", 32: "32"}[per], func(t *testing.T) {
			if testing.Short() && per == 1 {
				t.Skip("slow")
			}
			path := newPath(t)
			o := open(t, path, &Options{MaxBytes: maxBytes, NoSync: true})
			r := rand.New(rand.NewPCG(1, uint64(per)))
			var appended, total, acked int64
			var maxSize int64
			var unacked []*outpost.Batch
			for i := 0; appended < 20*maxBytes; i++ {
				bs := make([]*outpost.Batch, per)
				for j := range bs {
					bs[j] = telemetry(1000, i*per+j)
				}
				if i%10 == 0 {
					bs = append(bs, alert("a"))
				}
				mustAppend(t, o, bs...)
				for _, b := range bs {
					if b.Kind == outpost.KindTelemetry {
						appended += int64(len(encoded(t, b)))
						total += int64(b.Len())
						unacked = append(unacked, b)
					}
				}
				if r.IntN(3) == 0 {
					// The two oldest, and now and then a later one.
					var ack []uint64
					keep := unacked[:0]
					for k, b := range unacked {
						if (k < 2 || r.IntN(64) == 0) && len(ack) < per {
							ack = append(ack, b.Seq)
							if stored(t, o, b.Seq) { // not evicted meanwhile
								acked += int64(b.Len())
							}
						} else {
							keep = append(keep, b)
						}
					}
					if _, err := o.Delete(ack); err != nil {
						t.Fatal(err)
					}
					unacked = keep
				}
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				maxSize = max(maxSize, fi.Size())
				if fi.Size() > o.lim.fileCap {
					t.Fatalf("append %d: file %d bytes, cap %d", i, fi.Size(), o.lim.fileCap)
				}
			}
			var left int64
			for _, e := range readAll(t, o, LaneTelemetry) {
				left += int64(decode(t, e).Len())
			}
			st := o.Stats()
			lost := lostCount(t, o, outpost.KindTelemetry)
			if int64(lost) != total-left-acked || int64(lost) != st.EvictedReadings {
				t.Errorf("loss records count %d readings; %d appended, %d acked, %d stored, %d evicted",
					lost, total, acked, left, st.EvictedReadings)
			}
			if st.EvictedReadings == 0 || st.EvictedAlerts != 0 {
				t.Errorf("stats %+v", st)
			}
			t.Logf("largest file %d bytes (cap %d, hard limit %d); %d readings evicted in %d loss batches",
				maxSize, o.lim.fileCap, o.lim.fileHard, st.EvictedReadings, st.LossRecords)
		})
	}
}

// stored reports whether seq is in the telemetry lane.
func stored(t *testing.T, o *Outbox, seq uint64) bool {
	t.Helper()
	es, err := o.Read(LaneTelemetry, seq-1, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	return len(es) == 1 && es[0].Seq == seq
}

// TestCompactOnOpen: an outbox reopened with a lower cap evicts down to it,
// with loss records, and compacts the file under it.
func TestCompactOnOpen(t *testing.T) {
	const appended = 900 // batches of 1000 readings, ~10 KB each
	path := newPath(t)
	o, err := Open(path, &Options{MaxBytes: 16 << 20, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range appended {
		mustAppend(t, o, telemetry(1000, i))
	}
	before := o.Stats()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if before.FileBytes < 8<<20 {
		t.Fatalf("file of %d bytes: not large enough to test", before.FileBytes)
	}

	const maxBytes = 2 << 20
	o = open(t, path, &Options{MaxBytes: maxBytes})
	st := o.Stats()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > maxBytes || st.FileBytes != fi.Size() {
		t.Errorf("file %d bytes (stats %d) after compaction, cap %d", fi.Size(), st.FileBytes, maxBytes)
	}
	if m, _ := filepath.Glob(path + compactSuffix + "*"); len(m) != 0 {
		t.Errorf("left behind: %v", m)
	}
	if st.Epoch != before.Epoch || st.NextSeq != before.NextSeq+1 || st.Evicted == 0 {
		t.Errorf("stats after compaction %+v", st)
	}
	var stored int64
	for _, e := range readAll(t, o, LaneTelemetry) {
		stored += int64(decode(t, e).Len())
	}
	if lost := lostCount(t, o, outpost.KindTelemetry); int64(lost) != appended*1000-stored {
		t.Errorf("%d readings lost by the records, %d appended, %d stored", lost, appended*1000, stored)
	}
	mustAppend(t, o, telemetry(1000, 1))
}

// TestChunks: a batch larger than a chunk round-trips byte for byte, and
// Delete and eviction remove every chunk.
func TestChunks(t *testing.T) {
	o := open(t, newPath(t), &Options{MaxBatches: 3})
	big, small := telemetry(20000, 1), telemetry(10, 2)
	mustAppend(t, o, big, small)
	n := len(encoded(t, big)) + crcLen
	if keys := rawKeys(t, o, LaneTelemetry); len(keys) != chunks(n, o.chunk)+1 {
		t.Fatalf("%d keys for a value of %d bytes in chunks of %d", len(keys), n, o.chunk)
	}
	checkEntries(t, readAll(t, o, LaneTelemetry), LaneTelemetry, big, small)
	if st := o.Stats(); st.Bytes[LaneTelemetry] != int64(n+len(encoded(t, small))+crcLen) {
		t.Errorf("bytes %d", st.Bytes[LaneTelemetry])
	}
	if n, err := o.Delete([]uint64{1}); n != 1 || err != nil {
		t.Fatalf("Delete: %d, %v", n, err)
	}
	if err := o.wlocked(o.flushDeletes); err != nil {
		t.Fatal(err)
	}
	if keys := rawKeys(t, o, LaneTelemetry); len(keys) != 1 {
		t.Errorf("keys left after Delete: %x", keys)
	}
	mustAppend(t, o, telemetry(20000, 3), telemetry(20000, 4), telemetry(20000, 5))
	if got := seqsOf(readAll(t, o, LaneTelemetry)); !sameSeqs(got, []uint64{4, 5}) {
		t.Errorf("telemetry %v", got)
	}
	if keys := rawKeys(t, o, LaneTelemetry); len(keys) != 2*chunks(n, o.chunk) {
		t.Errorf("%d keys left for two batches of %d chunks", len(keys), chunks(n, o.chunk))
	}
}

// TestChunkDamage: a chunk missing, out of place or without its first
// makes the entry corrupt; Open deletes chunks without a first.
func TestChunkDamage(t *testing.T) {
	tests := []struct {
		name   string
		damage func(b *bolt.Bucket) error
		read   []uint64 // seqs read before the error
		bad    uint64   // the corrupt seq, 0 if none
		left   int      // telemetry batches left in the end
	}{
		{"chunk missing", func(b *bolt.Bucket) error { return b.Delete(chunkKey(2, 2)) }, []uint64{1}, 2, 2},
		{"chunk out of order", func(b *bolt.Bucket) error {
			v := b.Get(chunkKey(2, 2))
			if err := b.Delete(chunkKey(2, 2)); err != nil {
				return err
			}
			return b.Put(chunkKey(2, 40000), v)
		}, []uint64{1}, 2, 2},
		{"first chunk missing: deleted at open", func(b *bolt.Bucket) error { return b.Delete(putKey(nil, 2)) }, []uint64{1, 3}, 0, 2},
		{"stray chunk: deleted at open", func(b *bolt.Bucket) error { return b.Put(chunkKey(5, 1), []byte("x")) }, []uint64{1, 2, 3}, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := newPath(t)
			o, err := Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			mustAppend(t, o, telemetry(10, 1), telemetry(5000, 2), telemetry(10, 3))
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			rawUpdate(t, path, func(tx *bolt.Tx) error { return tt.damage(tx.Bucket(laneBuckets[LaneTelemetry])) })
			o = open(t, path, nil)
			es, err := o.Read(LaneTelemetry, 0, 10, nil)
			if got := seqsOf(es); !sameSeqs(got, tt.read) {
				t.Errorf("read %v, want %v", got, tt.read)
			}
			ce, _ := err.(*CorruptError)
			switch {
			case tt.bad == 0 && err != nil:
				t.Errorf("Read: %v", err)
			case tt.bad != 0 && (ce == nil || ce.Seq != tt.bad):
				t.Errorf("Read: %v, want seq %d corrupt", err, tt.bad)
			case tt.bad != 0:
				if err := o.DropCorrupt(tt.bad); err != nil {
					t.Fatal(err)
				}
				for _, k := range rawKeys(t, o, LaneTelemetry) {
					if len(k) > keyLen && k[7] == byte(tt.bad) {
						t.Errorf("key %x left after DropCorrupt", k)
					}
				}
			}
			if st := o.Stats(); st.Batches[LaneTelemetry] != tt.left || len(readAll(t, o, LaneTelemetry)) != tt.left {
				t.Errorf("stats %+v, want %d telemetry batches", st, tt.left)
			}
		})
	}
}

// TestFormatV1: a version 1 file (values of any size under one key) opens
// as it is, reads the same, and is marked version 2.
func TestFormatV1(t *testing.T) {
	path := newPath(t)
	o, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	epoch := o.Epoch()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	big, small := appendedCopy(telemetry(5000, 1)), telemetry(10, 2)
	small.Epoch, small.Seq = epoch, 2
	big.Epoch = epoch
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(metaVersion, putKey(nil, 1)); err != nil {
			return err
		}
		if err := meta.Put(metaNextSeq, putKey(nil, 3)); err != nil {
			return err
		}
		for _, b := range []*outpost.Batch{big, small} {
			v := append([]byte{0, 0, 0, 0}, encoded(t, b)...)
			putCRC(v)
			if err := tx.Bucket(laneBuckets[LaneTelemetry]).Put(putKey(nil, b.Seq), v); err != nil {
				return err
			}
		}
		return nil
	})
	o = open(t, path, nil)
	checkEntries(t, readAll(t, o, LaneTelemetry), LaneTelemetry, big, small)
	b := telemetry(5000, 3)
	mustAppend(t, o, b)
	if b.Seq != 3 {
		t.Errorf("seq %d, want 3", b.Seq)
	}
	err = o.db.View(func(tx *bolt.Tx) error {
		if v := getUint(tx.Bucket(bucketMeta), metaVersion); v != formatVersion {
			t.Errorf("format version %d after open", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
