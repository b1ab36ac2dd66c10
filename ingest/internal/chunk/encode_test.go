package chunk

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// maxExpOf, maxExpNear whatever its hint, and scalable find what a search of every
// exponent finds, on decimals of every exponent and length, float32s,
// raw floats and the special values, within every range of exponents.
func TestMaxExpOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var vs []float64
	for e := minExp - 3; e <= maxExp+3; e++ {
		for digits := 1; digits <= 17; digits++ {
			n := rng.Int64N(int64(math.Pow10(digits-1))*9) + int64(math.Pow10(digits-1))
			if rng.IntN(2) == 0 {
				n = -n
			}
			vs = append(vs, float64(n)*math.Pow10(e), float64(n)/math.Pow10(-e))
		}
	}
	for range 2000 {
		vs = append(vs, math.Float64frombits(rng.Uint64()), float64(float32(rng.NormFloat64())), rng.NormFloat64())
	}
	vs = append(vs, 0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64,
		math.MaxFloat64, 1<<53-1, 1<<53, 1<<53+2, 9.007199254740991e37, 9.007199254740993e37, 1e-22, 1e22, 0.1, 1e-23)
	ranges := [][2]int{{minExp, maxExp}, {narrowMinExp, narrowMaxExp}, {-3, 4}, {5, 5}, {7, 6}, {minExp, minExp - 1}}
	for _, v := range vs {
		for _, r := range ranges {
			want, wantOK := 0, false
			for e := r[1]; e >= r[0]; e-- {
				if _, ok := scale(v, e); ok {
					want, wantOK = e, true
					break
				}
			}
			got, ok := maxExpOf(v, r[0], r[1])
			if ok != wantOK || ok && got != want {
				t.Errorf("maxExpOf(%v, %d, %d) = %d, %v; want %d, %v", v, r[0], r[1], got, ok, want, wantOK)
			}
			for hint := minExp - 1; hint <= maxExp+1; hint++ {
				if got, ok := maxExpNear(v, r[0], r[1], hint); ok != wantOK || ok && got != want {
					t.Fatalf("maxExpNear(%v, %d, %d, %d) = %d, %v; want %d, %v", v, r[0], r[1], hint, got, ok, want, wantOK)
				}
			}
			if s := scalable(v, r[0], r[1]); s != wantOK {
				t.Errorf("scalable(%v, %d, %d) = %v", v, r[0], r[1], s)
			}
		}
	}
}

// Every float32 bit pattern class widens exactly, NaN payloads kept,
// and toFloat32 finds it again.
func TestFloat32(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	bs := []uint32{0, 1 << 31, 1, 0x8000_0001, 0x007f_ffff, 0x0040_0000, 0x0080_0000, 0x7f7f_ffff, 0x7f80_0000, 0xff80_0000,
		0x7fc0_0000, 0x7f80_0001, 0xffc0_1234, 0x3fc0_0000}
	for range 100000 {
		bs = append(bs, rng.Uint32())
	}
	for _, b := range bs {
		w := fromFloat32(b)
		f := math.Float32frombits(b)
		if f == f && w != math.Float64bits(float64(f)) { // not NaN: as Go converts
			t.Fatalf("%#08x: %#016x, Go says %#016x", b, w, math.Float64bits(float64(f)))
		}
		if f != f && (w>>52&0x7ff != 0x7ff || w<<12 == 0 || w>>63 != uint64(b>>31) || w>>29&0x7fffff != uint64(b&0x7fffff)) {
			t.Fatalf("NaN %#08x: %#016x", b, w)
		}
		got, ok := toFloat32(math.Float64frombits(w))
		if f == f && (!ok || got != b) {
			t.Fatalf("toFloat32(fromFloat32(%#08x)) = %#08x, %v", b, got, ok)
		}
	}
	if _, ok := toFloat32(0.1); ok {
		t.Error("0.1 is a float32")
	}
}

// What the writer picks for typical series: the runs of values and the
// width of the timestamps' codes. The reader relies on none of it; the
// bytes a reading do.
func TestWriterChoices(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	nan := math.NaN()
	noise := func(n int, f func(float64) float64) []float64 {
		vs := make([]float64, n)
		for i := range vs {
			vs[i] = f(20 + rng.NormFloat64())
		}
		return vs
	}
	f32 := func(v float64) float64 { return float64(float32(v)) }
	cases := []struct {
		name string
		ts   []int64
		vs   []float64
		runs []valueRun // bytes not compared
		w    int
	}{
		{"decimals", regular(6, t0, 1e9), []float64{21.5, 21.25, 21, 22, 0, 21.75}, []valueRun{{6, expBias - 2, 0}}, 0},
		{"an average among decimals", regular(5, t0, 60e9), []float64{426, 429.5, 433.666666666667, 426, 419},
			[]valueRun{{2, expBias - 1, 0}, {1, kindRaw64, 0}, {2, expBias, 0}}, 0}, // its integer takes 8 bytes too
		{"15 digits", regular(4, t0, 60e9), []float64{0.00479298817650529, 0.00478344094931065, 0.00477946352442199, 0.0047715088260817},
			[]valueRun{{4, expBias - 17, 0}}, 0},
		{"NaN, then decimals", regular(4, t0, 1e9), []float64{nan, 1.5, 1.5, 2}, []valueRun{{1, kindRaw64, 0}, {3, expBias - 1, 0}}, 0},
		{"float64 noise", regular(100, t0, 1e9), noise(100, func(v float64) float64 { return v }), []valueRun{{100, kindXOR64, 0}}, 0},
		{"float32 noise", regular(100, t0, 1e9), noise(100, f32), []valueRun{{100, kindXOR32, 0}}, 0},
		{"float32 and NaN", regular(3, t0, 1e9), []float64{f32(0.1), nan, f32(0.3)}, []valueRun{{3, kindRaw64, 0}}, 0},
		{"jittered minutes", []int64{t0, t0 + 59e9, t0 + 120e9, t0 + 180e9, t0 + 241e9, t0 + 300e9}, make([]float64, 6), []valueRun{{6, maxExp + expBias, 0}}, 2},
		{"a gap", append(regular(50, t0, 1e9), t0+3600e9), make([]float64, 51), []valueRun{{51, maxExp + expBias, 0}}, 1},
		{"random", []int64{5, 1e18, 7, -3e17}, []float64{1, 2, 3, 4}, []valueRun{{4, expBias, 0}}, widthVarints},
	}
	for _, c := range cases {
		p, err := Append(nil, c.ts, c.vs, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, runs, _ := runsOf(t, p)
		for i := range runs {
			runs[i].bytes = 0
		}
		if !slices.Equal(runs, c.runs) {
			t.Errorf("%s: runs %v, want %v", c.name, runs, c.runs)
		}
		h, _ := header(p)
		if r, _, err := newTimeReader(p, h); err != nil || r.w != c.w {
			t.Errorf("%s: width %d, want %d (%v)", c.name, r.w, c.w, err)
		}
	}
}
