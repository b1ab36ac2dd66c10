package buffer

import (
	"fmt"
	"testing"

	"github.com/outposthq/outpost"
)

// BenchmarkAppendReadDelete is the outbox's steady state: the batcher
// appends sealed 1000-reading batches, the uplink reads them and deletes
// them on ack. Durable: every Append is an fsynced commit, which also
// commits the deletes of the acks before it; with sync-deletes every
// Delete is an fsynced commit of its own too.
func BenchmarkAppendReadDelete(b *testing.B) {
	for _, tc := range []struct {
		per  int
		sync bool
	}{{1, false}, {8, false}, {1, true}, {8, true}} {
		name := fmt.Sprintf("batches=%d", tc.per)
		if tc.sync {
			name += "/sync-deletes"
		}
		per := tc.per
		b.Run(name, func(b *testing.B) {
			o := open(b, newPath(b), &Options{SyncDeletes: tc.sync})
			bs := make([]*outpost.Batch, per)
			for i := range bs {
				bs[i] = telemetry(1000, i)
			}
			seqs := make([]uint64, per)
			var dst []Entry
			var after uint64
			b.ReportAllocs()
			for b.Loop() {
				if err := o.Append(bs); err != nil {
					b.Fatal(err)
				}
				var err error
				if dst, err = o.Read(LaneTelemetry, after, per, dst[:0]); err != nil || len(dst) != per {
					b.Fatalf("Read: %d entries, %v", len(dst), err)
				}
				for i, e := range dst {
					seqs[i] = e.Seq
				}
				after = seqs[per-1]
				if n, err := o.Delete(seqs); err != nil || n != per {
					b.Fatalf("Delete: %d, %v", n, err)
				}
			}
			b.ReportMetric(float64(b.N*per*1000)/b.Elapsed().Seconds(), "readings/s")
			b.ReportMetric(float64(len(dst[0].Data)), "bytes/batch")
		})
	}
}

// BenchmarkAppendCapped is the outbox in an outage: the file is at its
// cap and nothing is acked, so Appends evict the oldest telemetry (down to
// the low-water mark, 1/64 of the cap at a time), decode it into loss
// records and store a loss batch, in the same durable transaction.
func BenchmarkAppendCapped(b *testing.B) {
	for _, per := range []int{1, 8} {
		b.Run(fmt.Sprintf("batches=%d", per), func(b *testing.B) {
			o := open(b, newPath(b), &Options{MaxBytes: 16 << 20})
			bs := make([]*outpost.Batch, per)
			for i := range bs {
				bs[i] = telemetry(1000, i)
			}
			o.db.NoSync = true // fill to the cap quickly
			for o.Stats().Evicted == 0 {
				if err := o.Append(bs); err != nil {
					b.Fatal(err)
				}
			}
			o.db.NoSync = false
			before := o.Stats()
			b.ReportAllocs()
			for b.Loop() {
				if err := o.Append(bs); err != nil {
					b.Fatal(err)
				}
			}
			st := o.Stats()
			b.ReportMetric(float64(b.N*per*1000)/b.Elapsed().Seconds(), "readings/s")
			b.ReportMetric(float64(st.Evicted-before.Evicted)/float64(b.N), "evicted/op")
			b.ReportMetric(float64(st.FileBytes), "file-bytes")
		})
	}
}
