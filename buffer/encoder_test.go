package buffer

import (
	"encoding/binary"
	"hash/crc32"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
)

// TestEncoderSplits: with a capped encoder a large batch is stored as
// several batches, each within the cap, with consecutive seqs that the
// next Append continues; together they hold its readings in order.
func TestEncoderSplits(t *testing.T) {
	for _, comp := range []outpost.Compression{outpost.CompressNone, outpost.CompressZstd} {
		t.Run(comp.String(), func(t *testing.T) {
			const maxMsg = 2048
			enc, err := outpost.NewEncoder(&outpost.EncoderOptions{Compression: comp, MaxMessageBytes: maxMsg})
			if err != nil {
				t.Fatal(err)
			}
			o := open(t, newPath(t), &Options{Encoder: enc, NoSync: true})
			big, small := telemetry(3000, 1), telemetry(10, 2)
			want := big.AppendReadings(nil)
			mustAppend(t, o, alert("a"), big, small)
			if big.Seq != 2 {
				t.Fatalf("big batch seq %d, want 2", big.Seq)
			}
			es := readAll(t, o, LaneTelemetry)
			if len(es) < 3 {
				t.Fatalf("%d telemetry entries: the big batch was not split", len(es))
			}
			var got []outpost.Reading
			for i, e := range es[:len(es)-1] {
				if len(e.Data) > maxMsg {
					t.Errorf("seq %d: %d bytes over the cap", e.Seq, len(e.Data))
				}
				b := decode(t, e)
				if e.Seq != big.Seq+uint64(i) || b.Created != big.Created {
					t.Fatalf("part %d: seq %d created %d", i, e.Seq, b.Created)
				}
				got = b.AppendReadings(got)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("parts hold %d readings, want the %d of the batch in order", len(got), len(want))
			}
			last := es[len(es)-1]
			if last.Seq != small.Seq || small.Seq != big.Seq+uint64(len(es)-1) {
				t.Fatalf("small batch seq %d stored as %d, after %d parts", small.Seq, last.Seq, len(es)-1)
			}
			if st := o.Stats(); st.NextSeq != small.Seq+1 || st.Batches != [2]int{1, len(es)} {
				t.Fatalf("stats %+v", st)
			}
			mustAppend(t, o, telemetry(5, 3))
			if es := readAll(t, o, LaneTelemetry); es[len(es)-1].Seq != small.Seq+1 {
				t.Fatalf("next append stored as seq %d, want %d", es[len(es)-1].Seq, small.Seq+1)
			}
		})
	}
}

// TestEncoderLossBatchesFit: loss records the caps write go through the
// encoder too, within its cap.
func TestEncoderLossBatchesFit(t *testing.T) {
	enc, err := outpost.NewEncoder(&outpost.EncoderOptions{MaxMessageBytes: outpost.MinMessageBytes})
	if err != nil {
		t.Fatal(err)
	}
	o := open(t, newPath(t), &Options{Encoder: enc, MaxBatches: 40, NoSync: true})
	for i := range 60 {
		mustAppend(t, o, telemetry(200, i)) // 8 series each: many loss records
	}
	var records int
	for _, e := range readAll(t, o, LaneAlert) {
		if len(e.Data) > outpost.MinMessageBytes {
			t.Errorf("loss batch seq %d: %d bytes over the cap", e.Seq, len(e.Data))
		}
		records += len(decode(t, e).Losses)
	}
	if records == 0 {
		t.Fatal("no loss records")
	}
}

// TestReadsVersion1: batches stored in wire version 1 by an older gateway
// are read, evicted and reported like the others.
func TestReadsVersion1(t *testing.T) {
	path := newPath(t)
	o := open(t, path, &Options{MaxBatches: 4, NoSync: true})
	mustAppend(t, o, telemetry(10, 1))
	// Rewrite seq 1 as version 1, as a gateway before wire version 2
	// stored it.
	old := telemetry(10, 1)
	old.Version, old.Epoch, old.Seq = 1, o.Epoch(), 1
	p, err := old.MarshalMsg(make([]byte, crcLen))
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint32(p, crc32.Checksum(p[crcLen:], castagnoli))
	if err := o.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(laneBuckets[LaneTelemetry]).Put(putKey(nil, 1), p)
	}); err != nil {
		t.Fatal(err)
	}
	es := readAll(t, o, LaneTelemetry)
	if b := decode(t, es[0]); b.Version != 1 || b.Len() != 10 {
		t.Fatalf("stored v1 batch reads as version %d with %d readings", b.Version, b.Len())
	}
	for i := range 4 {
		mustAppend(t, o, telemetry(10, i+2))
	}
	if n := lostCount(t, o, outpost.KindTelemetry); n < 10 {
		t.Fatalf("%d readings reported lost, want the v1 batch's 10 at least", n)
	}
}
