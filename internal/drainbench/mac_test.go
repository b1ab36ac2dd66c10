package drainbench

import (
	"fmt"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
)

// BenchmarkDrainMAC is the CPU cost of the MAC per batch of the drain's
// data sets, as the gateway encodes them (5 000-reading batches, under
// the default message cap, with the room signing needs): op=sign is the
// gateway's SignBatch at first send, op=verify the ingest service's
// VerifyBatch before decoding. It reports ns per batch (ns/op), per
// reading, and the bytes signing adds per reading; BenchmarkDrain's
// auth=mac variants show the effect on the whole drain.
//
//	go test -run='^$' -bench=DrainMAC ./internal/drainbench/
func BenchmarkDrainMAC(b *testing.B) {
	sources := []struct {
		name string
		make func() (Source, error)
	}{
		{"sim", func() (Source, error) { return NewSignals(6, 10*time.Millisecond, 277) }},
		{"sim1s", func() (Source, error) { return NewSignals(100, time.Second, 16) }},
		{"occupancy", func() (Source, error) { return LoadOccupancy(occupancyDir, 1000) }},
	}
	key := outpost.NewKey()
	for _, src := range sources {
		for _, comp := range []string{config.CompressionNone, config.CompressionZstd} {
			msgs, readings := encodedBatches(b, src.make, comp, 64)
			bytes := 0
			signed := make([][]byte, len(msgs))
			for i, m := range msgs {
				bytes += len(m)
				signed[i] = outpost.SignBatch(nil, &key, "drainbench", m)
			}
			perBatch := float64(readings) / float64(len(msgs))
			for _, op := range []string{"sign", "verify"} {
				b.Run(fmt.Sprintf("data=%s/comp=%s/op=%s", src.name, comp, op), func(b *testing.B) {
					b.SetBytes(int64(bytes / len(msgs)))
					b.ReportAllocs()
					var dst []byte
					i := 0
					for b.Loop() {
						if op == "sign" {
							dst = outpost.SignBatch(dst[:0], &key, "drainbench", msgs[i])
						} else if _, _, err := outpost.VerifyBatch(signed[i], "drainbench", key); err != nil {
							b.Fatal(err)
						}
						i = (i + 1) % len(msgs)
					}
					ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					b.ReportMetric(ns/perBatch, "ns/reading")
					b.ReportMetric(float64(len(signed[0])-len(msgs[0]))/perBatch, "B/reading-added")
					b.ReportMetric(float64(bytes)/float64(len(msgs)), "B/batch")
				})
			}
		}
	}
}

// encodedBatches encodes n batches from a source, as a signing gateway
// with the default config would store them, and counts their readings.
func encodedBatches(b *testing.B, newSource func() (Source, error), comp string, n int) ([][]byte, int) {
	b.Helper()
	src, err := newSource()
	if err != nil {
		b.Skipf("data: %v", err)
	}
	cfg := &config.Config{Batch: config.BatchConfig{Compression: comp},
		Uplink: config.UplinkConfig{AuthKeyFile: "gateway.key"}}
	cfg.SetDefaults()
	enc := gatewayEncoder(b, cfg)
	var msgs [][]byte
	readings := 0
	for len(msgs) < n {
		bt := src.Next("drainbench")
		bt.Epoch, bt.Seq = 1, uint64(len(msgs)+1)
		readings += bt.Len()
		p, ends, err := enc.AppendParts(nil, bt, 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		start := 0
		for _, end := range ends {
			msgs = append(msgs, p[start:end])
			start = end
		}
	}
	return msgs, readings
}
