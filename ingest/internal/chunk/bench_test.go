package chunk

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// benchSet is one series to encode, at most 3600 readings.
type benchSet struct {
	name   string
	ts     []int64
	values []float64
}

// benchSets are the occupancy recordings, one a metric, and three
// synthetic series: a 1 Hz sine with noise at two decimals (the common
// case), the same as float32 values without rounding (a sensor sending
// float32), and ns-jittered raw floats (the worst).
func benchSets(b testing.TB) []benchSet {
	var sets []benchSet
	for _, r := range occupancy(b) {
		sets = append(sets, benchSet{"occupancy-" + r.metric, r.ts, r.values})
	}
	rng := rand.New(rand.NewPCG(3, 4))
	sine := make([]float64, 3600)
	for i := range sine {
		sine[i] = math.Round((20+5*math.Sin(float64(i)/600)+rng.NormFloat64()*0.1)*100) / 100
	}
	sets = append(sets, benchSet{"sine-2dec-1Hz", regular(3600, t0, 1e9), sine})
	f32 := make([]float64, 3600)
	for i := range f32 {
		f32[i] = float64(float32(20 + 5*math.Sin(float64(i)/600) + rng.NormFloat64()*0.1))
	}
	sets = append(sets, benchSet{"float32-1Hz", regular(3600, t0, 1e9), f32})
	jitter := make([]int64, 3600)
	noise := make([]float64, 3600)
	for i := range jitter {
		jitter[i] = t0 + int64(i)*1e6 + rng.Int64N(1000)
		noise[i] = rng.NormFloat64()
	}
	return append(sets, benchSet{"raw-jitter-1kHz", jitter, noise})
}

// report adds readings/s and B/reading.
func report(b *testing.B, n, size int) {
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "readings/s")
	b.ReportMetric(float64(size)/float64(n), "B/reading")
}

// BenchmarkAppend encodes in format 2 (Append) and, for comparison, in
// format 1 (appendV1).
func BenchmarkAppend(b *testing.B) {
	for _, f := range formats {
		for _, s := range benchSets(b) {
			for _, n := range []int{1000, 3600} {
				b.Run(fmt.Sprintf("%s/%s/%d", f.name, s.name, n), func(b *testing.B) {
					dst := make([]byte, 0, MaxLen(n))
					var err error
					for b.Loop() {
						if dst, err = f.append(dst[:0], s.ts[:n], s.values[:n], nil); err != nil {
							b.Fatal(err)
						}
					}
					report(b, n, len(dst))
				})
			}
		}
	}
}

// BenchmarkAppendDeltas encodes from the wire's delta form, as the
// ingest service would from a decoded batch.
func BenchmarkAppendDeltas(b *testing.B) {
	for _, f := range formats {
		for _, s := range benchSets(b) {
			const n = 3600
			d := deltas(s.ts[:n])
			b.Run(fmt.Sprintf("%s/%s/%d", f.name, s.name, n), func(b *testing.B) {
				dst := make([]byte, 0, MaxLen(n))
				var err error
				for b.Loop() {
					if dst, err = f.appendDeltas(dst[:0], s.ts[0], d, s.values[:n], nil); err != nil {
						b.Fatal(err)
					}
				}
				report(b, n, len(dst))
			})
		}
	}
}

// BenchmarkDecode decodes chunks of either format.
func BenchmarkDecode(b *testing.B) {
	for _, f := range formats {
		for _, s := range benchSets(b) {
			for _, n := range []int{1000, 3600} {
				p, err := f.append(nil, s.ts[:n], s.values[:n], nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Run(fmt.Sprintf("%s/%s/%d", f.name, s.name, n), func(b *testing.B) {
					ts, vs := make([]int64, 0, n), make([]float64, 0, n)
					var q []byte
					for b.Loop() {
						if ts, vs, q, err = Decode(p, ts[:0], vs[:0], q[:0]); err != nil {
							b.Fatal(err)
						}
					}
					report(b, n, len(p))
				})
			}
		}
	}
}
