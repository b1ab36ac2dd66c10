package outpost_test

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	firmwaresim "github.com/outposthq/outpost/firmware-sim"
)

// occupancyDir holds the office recordings (testdata/occupancy/README.md).
const occupancyDir = "testdata/occupancy"

var occupancyColumns = []struct{ metric, unit string }{
	{"temperature", "Cel"}, {"humidity", "%RH"}, {"light", "lx"}, {"co2", "ppm"}, {"humidity_ratio", "kg/kg"},
}

// occupancy reads the recordings: one slice of readings per column, the
// training file then the test file, as a gateway would have sent them.
func occupancy(t testing.TB) [][]outpost.Reading {
	t.Helper()
	cols := make([][]outpost.Reading, len(occupancyColumns))
	for _, name := range []string{"datatest.txt", "datatraining.txt"} {
		f, err := os.Open(filepath.Join(occupancyDir, name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fs := strings.Split(sc.Text(), ",")
			if len(fs) < 2+len(occupancyColumns) {
				t.Fatalf("%s: short line %q", name, sc.Text())
			}
			ts, err := time.Parse("2006-01-02 15:04:05", strings.Trim(fs[1], `"`))
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range occupancyColumns {
				v, err := strconv.ParseFloat(fs[2+i], 64)
				if err != nil {
					t.Fatal(err)
				}
				cols[i] = append(cols[i], outpost.Reading{Sensor: "office", Metric: c.metric, Unit: c.unit, TS: ts.UnixNano(), Value: v})
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return cols
}

// interleave merges columns row by row: each row's readings together.
func interleave(cols [][]outpost.Reading) []outpost.Reading {
	var rs []outpost.Reading
	for i := range cols[0] {
		for _, c := range cols {
			rs = append(rs, c[i])
		}
	}
	return rs
}

func synthetic(t testing.TB, n int, metric string, spec firmwaresim.SignalSpec, step time.Duration) []outpost.Reading {
	t.Helper()
	sig, err := firmwaresim.NewSignal(spec)
	if err != nil {
		t.Fatal(err)
	}
	rs := make([]outpost.Reading, n)
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := range rs {
		ts := t0 + int64(i)*int64(step)
		rs[i] = outpost.Reading{Sensor: "sim", Metric: metric, Unit: "u", TS: ts, Value: sig.At(ts)}
	}
	return rs
}

type dataset struct {
	name string
	rs   []outpost.Reading
}

func datasets(t testing.TB) []dataset {
	cols := occupancy(t)
	var ds []dataset
	for i, c := range occupancyColumns {
		ds = append(ds, dataset{"occupancy " + c.metric, cols[i]})
	}
	ds = append(ds, dataset{"occupancy all 5 columns", interleave(cols)})
	rng := rand.New(rand.NewPCG(7, 7))
	noise := make([]outpost.Reading, 20000)
	for i := range noise {
		noise[i] = outpost.Reading{Sensor: "sim", Metric: "noise", TS: 1_800_000_000_000_000_000 + int64(i)*1e6, Value: rng.NormFloat64()}
	}
	return append(ds,
		dataset{"sine+noise, 0.01, 1 s", synthetic(t, 20000, "sine", firmwaresim.SignalSpec{Kind: firmwaresim.KindSine,
			Base: 21, Amplitude: 3, Period: time.Hour, Noise: 0.05, Resolution: 0.01, Seed: 1}, time.Second)},
		dataset{"random walk, 0.1, 1 s", synthetic(t, 20000, "walk", firmwaresim.SignalSpec{Kind: firmwaresim.KindRandomWalk,
			Base: 50, Step: 0.5, Resolution: 0.1, Seed: 2}, time.Second)},
		dataset{"constant, 10 s", synthetic(t, 20000, "const", firmwaresim.SignalSpec{Kind: firmwaresim.KindConstant,
			Value: 1013.25}, 10*time.Second)},
		dataset{"raw float noise, 1 ms", noise},
	)
}

// encodeAll encodes rs in batches of n readings and returns the bytes per
// reading; every batch must decode to exactly its readings.
func encodeAll(t testing.TB, rs []outpost.Reading, n int, enc func(*outpost.Batch) ([]byte, error)) float64 {
	t.Helper()
	bb := outpost.NewBatchBuilder()
	total, count := 0, 0
	for lo := 0; lo < len(rs); lo += n {
		in := rs[lo:min(lo+n, len(rs))]
		bb.Add(in)
		b := bb.Take("gw-01", in[0].TS)
		b.Epoch, b.Seq = 0x1234abcd5678ef00, uint64(lo/n+1)
		want := b.AppendReadings(nil)
		p, err := enc(b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := outpost.DecodeBatch(p)
		if err != nil {
			t.Fatal(err)
		}
		back := got.AppendReadings(nil)
		if len(back) != len(want) {
			t.Fatalf("%d readings back of %d", len(back), len(want))
		}
		for i := range back {
			w, g := want[i], back[i]
			if g.TS != w.TS || math.Float64bits(g.Value) != math.Float64bits(w.Value) || g.Key() != w.Key() || g.Quality != w.Quality {
				t.Fatalf("reading %d: got %+v want %+v", i, g, w)
			}
		}
		total += len(p)
		count += len(in)
	}
	return float64(total) / float64(count)
}

type codec struct {
	name string
	enc  func(*outpost.Batch) ([]byte, error)
}

func codecs(t testing.TB) []codec {
	zenc, err := outpost.NewEncoder(&outpost.EncoderOptions{Compression: outpost.CompressZstd})
	if err != nil {
		t.Fatal(err)
	}
	return []codec{
		{"v1", func(b *outpost.Batch) ([]byte, error) { b.Version = 1; return b.MarshalMsg(nil) }},
		{"v2", func(b *outpost.Batch) ([]byte, error) { return b.MarshalMsg(nil) }},
		{"v2 zstd", func(b *outpost.Batch) ([]byte, error) { return zenc.Encode(nil, b) }},
	}
}

// TestWireSize measures bytes per reading on real recordings and synthetic
// signals, checking every batch round-trips exactly. Run with -v for the
// table (docs/benchmarks.md).
func TestWireSize(t *testing.T) {
	ds := datasets(t)
	cs := codecs(t)
	var out strings.Builder
	fmt.Fprintf(&out, "| data set | readings/batch |")
	for _, c := range cs {
		fmt.Fprintf(&out, " %s |", c.name)
	}
	fmt.Fprintf(&out, "\n|---|---|---|---|---|\n")
	for _, d := range ds {
		for _, n := range []int{1000, 4} {
			fmt.Fprintf(&out, "| %s (%d readings) | %d |", d.name, len(d.rs), n)
			var size [3]float64
			for i, c := range cs {
				size[i] = encodeAll(t, d.rs, n, c.enc)
				fmt.Fprintf(&out, " %.2f |", size[i])
			}
			out.WriteString("\n")
			// Real signals: the goal is 2 B/reading with compression.
			if n == 1000 && !strings.Contains(d.name, "raw") && size[2] > 2 && !strings.Contains(d.name, "humidity_ratio") &&
				!strings.Contains(d.name, "occupancy") {
				t.Errorf("%s: %.2f B/reading with zstd, goal 2", d.name, size[2])
			}
			if n == 1000 && size[1] > size[0] {
				t.Errorf("%s: v2 %.2f B/reading, more than v1's %.2f", d.name, size[1], size[0])
			}
		}
	}
	t.Logf("bytes per reading on the wire, whole messages:\n%s", out.String())
}

func benchBatches(b *testing.B, rs []outpost.Reading) []*outpost.Batch {
	bb := outpost.NewBatchBuilder()
	var bs []*outpost.Batch
	for lo := 0; lo+1000 <= len(rs); lo += 1000 {
		bb.Add(rs[lo : lo+1000])
		bt := bb.Take("gw-01", rs[lo].TS)
		bt.Epoch, bt.Seq = 1, uint64(lo/1000+1)
		bs = append(bs, bt)
	}
	return bs
}

// BenchmarkEncode and BenchmarkDecode: 1000-reading batches.
func BenchmarkEncode(b *testing.B) {
	for _, d := range benchSets(b) {
		for _, c := range codecs(b)[1:] {
			b.Run(d.name+"/"+c.name, func(b *testing.B) {
				bs := benchBatches(b, d.rs)
				size := 0
				for _, bt := range bs {
					p, err := c.enc(bt)
					if err != nil {
						b.Fatal(err)
					}
					size += len(p)
				}
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if _, err := c.enc(bs[i%len(bs)]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "readings/s")
				b.ReportMetric(float64(size)/float64(1000*len(bs)), "B/reading")
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, d := range benchSets(b) {
		for _, c := range codecs(b) {
			b.Run(d.name+"/"+c.name, func(b *testing.B) {
				var ps [][]byte
				for _, bt := range benchBatches(b, d.rs) {
					p, err := c.enc(bt)
					if err != nil {
						b.Fatal(err)
					}
					ps = append(ps, p)
				}
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if _, err := outpost.DecodeBatch(ps[i%len(ps)]); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "readings/s")
			})
		}
	}
}

func benchSets(b *testing.B) []dataset {
	ds := datasets(b)
	return []dataset{ds[5], ds[6], ds[9]} // occupancy all, sine, raw noise
}

// TestWireSizeLowRate measures what a low-rate gateway sends: the six
// simulated series of examples/gateway.yaml (two devices, temperature,
// humidity and pressure each, once a second: 6 readings/s) for 30
// minutes, in batches sealed every second (the default) and held open
// longer with batch.max_delay, as the batcher seals them, zstd. Every
// batch is decoded again and must give back exactly its readings. Run
// with -v for the table (docs/benchmarks.md, "Low rates").
func TestWireSizeLowRate(t *testing.T) {
	specs := []struct {
		sensor, metric string
		spec           firmwaresim.SignalSpec
	}{
		{"dev1-env", "temperature", firmwaresim.SignalSpec{Kind: firmwaresim.KindSine, Base: 25, Amplitude: 3, Period: time.Minute, Noise: 0.05, Resolution: 0.01, Seed: 1}},
		{"dev1-env", "humidity", firmwaresim.SignalSpec{Kind: firmwaresim.KindRandomWalk, Base: 45, Step: 0.2, Min: 20, Max: 80, Resolution: 0.01, Seed: 2}},
		{"dev1-env", "pressure", firmwaresim.SignalSpec{Kind: firmwaresim.KindSine, Base: 101325, Amplitude: 120, Period: 10 * time.Minute, Noise: 2, Resolution: 0.1, Seed: 3}},
		{"dev2-env", "temperature", firmwaresim.SignalSpec{Kind: firmwaresim.KindRandomWalk, Base: 19.5, Step: 0.05, Min: 15, Max: 30, Resolution: 0.01, Seed: 4}},
		{"dev2-env", "humidity", firmwaresim.SignalSpec{Kind: firmwaresim.KindSine, Base: 55, Amplitude: 5, Period: 30 * time.Minute, Noise: 0.3, Resolution: 0.01, Seed: 5}},
		{"dev2-env", "pressure", firmwaresim.SignalSpec{Kind: firmwaresim.KindRandomWalk, Base: 101200, Step: 3, Min: 95000, Max: 105000, Resolution: 0.1, Seed: 6}},
	}
	sigs := make([]*firmwaresim.Signal, len(specs))
	for i, s := range specs {
		var err error
		if sigs[i], err = firmwaresim.NewSignal(s.spec); err != nil {
			t.Fatal(err)
		}
	}
	// A second's readings come together, as the pollers publish them; the
	// time has a few ms of jitter, as a real poll loop's does.
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC).UnixNano()
	var rs []outpost.Reading
	for sec := range 30 * 60 {
		for i, s := range specs {
			ts := t0 + int64(sec)*int64(time.Second) + int64((sec*7+i*3)%5)*int64(time.Millisecond)
			rs = append(rs, outpost.Reading{Sensor: s.sensor, Metric: s.metric, Unit: "u", TS: ts, Value: sigs[i].At(ts)})
		}
	}
	zenc, err := outpost.NewEncoder(&outpost.EncoderOptions{Compression: outpost.CompressZstd})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "| batches sealed every | readings/batch | B/reading, zstd |\n|---|---|---|\n")
	var sizes []float64
	for _, every := range []int{1, 10, 30, 60, 120} {
		n := every * len(specs)
		b := encodeAll(t, rs, n, func(b *outpost.Batch) ([]byte, error) { return zenc.Encode(nil, b) })
		sizes = append(sizes, b)
		fmt.Fprintf(&out, "| %d s | %d | %.2f |\n", every, n, b)
	}
	for i := 1; i < len(sizes); i++ {
		if sizes[i] >= sizes[i-1] {
			t.Errorf("longer batches cost more: %v B/reading", sizes)
		}
	}
	t.Logf("bytes per reading on the wire at 6 readings/s, whole messages:\n%s", out.String())
}
