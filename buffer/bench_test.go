package buffer

import (
	"fmt"
	"testing"

	"github.com/outposthq/outpost"
)

// BenchmarkAppendReadDelete is the outbox's steady state: the batcher
// appends sealed 1000-reading batches, the uplink reads them and deletes
// them on ack. Durable: every Append and Delete is an fsynced commit.
func BenchmarkAppendReadDelete(b *testing.B) {
	for _, per := range []int{1, 8} {
		b.Run(fmt.Sprintf("batches=%d", per), func(b *testing.B) {
			o := open(b, newPath(b), nil)
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
