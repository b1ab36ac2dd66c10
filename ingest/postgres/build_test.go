package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest/storetest"
)

// BenchmarkBuild measures turning a group of 16 batches (10 series of 100
// readings, and 10 of 3, stored as rows) into the commit statement's
// columns: the CPU a commit spends before its round trip.
func BenchmarkBuild(b *testing.B) {
	var rs []outpost.Reading
	for i := range 10 {
		rs = append(rs, storetest.Series(fmt.Sprint("sensor-", i), "temperature", storetest.T0, time.Second, 100, 20.5)...)
		rs = append(rs, storetest.Series(fmt.Sprint("slow-", i), "temperature", storetest.T0, time.Minute, 3, 20.5)...)
	}
	const n = 16
	bs, sizes, ids := make([]*outpost.Batch, n), make([]int, n), make([][]int64, n)
	for i := range bs {
		bs[i] = storetest.Telemetry("bench-gw", 1, uint64(i+1), rs...)
		sizes[i] = 1
		ids[i] = make([]int64, len(bs[i].Series))
		for j := range ids[i] {
			ids[i][j] = int64(j + 1)
		}
	}
	var sc commitScratch
	b.ReportAllocs()
	for b.Loop() {
		if err := sc.build(bs, sizes, ids); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*n*len(rs))/b.Elapsed().Seconds(), "readings/s")
}
