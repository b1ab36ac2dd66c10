package chunk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/decimal"
)

// roundTrip is one set of readings that must come back exactly.
type roundTrip struct {
	name    string
	ts      []int64
	values  []float64
	quality []byte
	k, e    int // the unit and exponent the encoder must pick; -99: any
}

const t0 = 1_700_000_000_000_000_000 // 2023-11-14, a multiple of 10^9 ns

func regular(n int, start, step int64) []int64 {
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = start + int64(i)*step
	}
	return ts
}

func fill64(n int, f func(i int) int64) []int64 {
	xs := make([]int64, n)
	for i := range xs {
		xs[i] = f(i)
	}
	return xs
}

func fill(n int, f func(i int) float64) []float64 {
	vs := make([]float64, n)
	for i := range vs {
		vs[i] = f(i)
	}
	return vs
}

func roundTrips() []roundTrip {
	rng := rand.New(rand.NewPCG(7, 11))
	jittered := make([]int64, 1000)
	for i := range jittered {
		jittered[i] = t0 + int64(i)*1e9 + rng.Int64N(2e6) - 1e6
	}
	unsorted := regular(500, t0, 1e6)
	rng.Shuffle(len(unsorted), func(i, j int) { unsorted[i], unsorted[j] = unsorted[j], unsorted[i] })
	noise := fill(300, func(int) float64 { return rng.NormFloat64() })
	mixed := make([]byte, 1000)
	for i := range mixed {
		if i > 0 && rng.IntN(4) != 0 {
			mixed[i] = mixed[i-1]
		} else {
			mixed[i] = byte(rng.IntN(3))
		}
	}
	nan := math.Float64frombits(0x7ff8_0000_dead_beef) // a NaN with a payload
	cs := []roundTrip{
		{"1 Hz", regular(3600, t0, 1e9), fill(3600, func(i int) float64 { return 20 + float64(i%50)/100 }), nil, 9, -2},
		{"jittered ns", jittered, fill(1000, func(i int) float64 { return float64(i) }), nil, 0, 0},
		{"ms steps", regular(100, t0+5e6, 250e6), fill(100, func(i int) float64 { return float64(i * 100) }), nil, 6, 2},
		{"unsorted", unsorted, fill(500, func(i int) float64 { return float64(-i) / 8 }), nil, 6, -3},
		{"negative timestamps", []int64{-5e9, -4e9, -1e9, 0, 3e9}, []float64{-1.5, -1, -0.5, 0, 0.5}, nil, 9, -1},
		{"max int64", []int64{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 - 5, math.MaxInt64}, fill(4, func(int) float64 { return 1 }), nil, 0, 0},
		{"min int64", []int64{math.MinInt64, math.MinInt64 + 7, math.MinInt64 + 3}, fill(3, func(int) float64 { return 1 }), nil, 0, 0},
		{"one extreme", []int64{math.MinInt64}, []float64{2}, nil, 0, 0},
		{"seconds far apart", []int64{-9e18, 9e18, -9e18, 9e18}, fill(4, func(int) float64 { return 3 }), nil, 9, 0},
		{"ns delta of deltas overflows", []int64{0, 5e18, 0}, fill(3, func(int) float64 { return 3 }), nil, 9, 0},
		{"raw floats", regular(300, t0, 1e9), noise, nil, 9, decimal.Raw},
		{"specials", regular(12, t0, 1e9), []float64{
			math.NaN(), nan, math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0,
			math.SmallestNonzeroFloat64, -math.Float64frombits(0x000f_ffff_ffff_ffff), 0x1p-1022,
			1e300, -math.MaxFloat64, 1 << 53,
		}, nil, 9, decimal.Raw},
		{"subnormals", regular(4, t0, 1e9), []float64{0x1p-1074, 0x1p-1030, 0x1.8p-1050, -0x1p-1073}, nil, 9, decimal.Raw},
		{"near 2^53", regular(4, t0, 1e9), []float64{1<<53 - 1, -(1<<53 - 1), 1<<53 - 2, 0}, nil, 9, 0},
		{"2^53 and a half", regular(2, t0, 1e9), []float64{1<<53 - 1, 0.5}, nil, 9, decimal.Raw},
		{"too wide", regular(2, t0, 1e9), []float64{1e15, 0.001}, nil, 9, decimal.Raw},
		{"large exponent", regular(3, t0, 1e9), []float64{1e15, 3e30, -7e20}, nil, 9, 15},
		{"tiny decimals", regular(3, t0, 1e9), []float64{1e-15, 2e-15, 0.00476416302}, nil, 9, -15},
		{"decimals later", regular(4, t0, 1e9), []float64{21, 21.5, 21.25, 21.125}, nil, 9, -3},
		{"mixed quality", regular(1000, t0, 1e9), fill(1000, func(i int) float64 { return float64(i % 7) }), mixed, 9, 0},
		{"all uncertain", regular(10, t0, 1e9), fill(10, func(i int) float64 { return 1 }), slices.Repeat([]byte{1}, 10), 9, 0},
		{"quality zeros", regular(10, t0, 1e9), fill(10, func(i int) float64 { return 1 }), make([]byte, 10), 9, 0},
		{"last bad", regular(3, t0, 1e9), []float64{1, 2, 3}, []byte{0, 0, 2}, 9, 0},
		{"single reading", []int64{t0 + 123}, []float64{7.25}, nil, 0, -2},
		{"single bad", []int64{t0}, []float64{7}, []byte{2}, 9, 0},
	}
	// Format 2's cases: what its runs, raw kinds and packed timestamps
	// are for (format 1 reads them too).
	f32 := fill(400, func(i int) float64 { return float64(float32(20 + 5*math.Sin(float64(i)/50) + rng.NormFloat64()/10)) })
	grid := make([]int64, 600) // a minute apart, give or take a second, with two gaps
	for i := range grid {
		grid[i] = t0 + int64(i)*60e9 + (rng.Int64N(3)-1)*1e9
		if i >= 200 {
			grid[i] += 3600e9
		}
		if i >= 500 {
			grid[i] += 7 * 60e9
		}
	}
	averaged := fill(500, func(i int) float64 {
		switch {
		case i%37 == 5:
			return 426 + float64(i%5)/3 // 15 significant digits
		case i%50 < 10:
			return 0
		}
		return float64(400+i%20) + float64(i%4)/4
	})
	ratios := fill(300, func(i int) float64 { // 15 significant digits, exponent -17 or -18
		return float64(479298817650529-rng.Int64N(1e12)*int64(i%3)) / 1e17
	})
	repeated := fill(200, func(i int) float64 { return noise[i/20] })
	cs = append(cs,
		roundTrip{"float32", regular(400, t0, 1e9), f32, nil, 9, -99},
		roundTrip{"float32 specials", regular(9, t0, 1e9), []float64{
			math.Float64frombits(fromFloat32(0x7fc0_0001)), math.Float64frombits(fromFloat32(0xff80_0001)),
			float64(float32(math.Inf(1))), math.Copysign(0, -1), 0x1p-149, -0x1.8p-140, 0x1p-126, math.MaxFloat32, 1.5,
		}, nil, 9, -99},
		roundTrip{"grid with jitter and gaps", grid, fill(600, func(i int) float64 { return float64(i % 9) }), nil, 9, -99},
		roundTrip{"averages among decimals", regular(500, t0, 60e9), averaged, nil, 9, -99},
		roundTrip{"ratios", regular(300, t0, 60e9), ratios, nil, 9, -99},
		roundTrip{"repeated raw", regular(200, t0, 1e9), repeated, nil, 9, -99},
		roundTrip{"exponents 22 and -22", regular(6, t0, 1e9), []float64{1e22, 3e37, -9.007199254740991e37, 1e-22, 5e-23, 0x1p-60}, nil, 9, -99},
		roundTrip{"random timestamps", fill64(300, func(int) int64 { return rng.Int64N(1 << 60) }), noise, nil, 0, -99},
		roundTrip{"repeated float32", regular(1000, t0, 1e9), fill(1000, func(i int) float64 { return f32[i/300] }), nil, 9, -99},
		roundTrip{"regular with one late", append(regular(99, t0, 1e9), t0+1000e9), fill(100, func(i int) float64 { return 1 }), nil, 9, -99},
	)
	for d := 0; d <= 15; d++ {
		cs = append(cs, roundTrip{
			name:   "decimals " + string(rune('a'+d)),
			ts:     regular(200, t0, 60e9),
			values: fill(200, func(int) float64 { return float64(rng.Int64N(2e6)-1e6) / math.Pow10(d) }),
			k:      9, e: -99,
		})
	}
	return cs
}

// format is one chunk format's writers.
type format struct {
	name         string
	append       func(dst []byte, ts []int64, values []float64, quality []byte) ([]byte, error)
	appendDeltas func(dst []byte, t0 int64, deltas []int64, values []float64, quality []byte) ([]byte, error)
}

// formats are format 1, as it was written, and format 2, as Append
// writes it: Decode reads both.
var formats = []format{{"v1", appendV1, appendV1Deltas}, {"v2", Append, AppendDeltas}}

// sectionsV1 returns the k and e bytes of a well-formed format 1 chunk.
func sectionsV1(t testing.TB, p []byte) (k, e int) {
	t.Helper()
	if p[0] != version1 {
		t.Fatalf("version %d, want 1", p[0])
	}
	n, m := binary.Uvarint(p[1:])
	off := 1 + m
	k = int(p[off])
	off++
	for range n {
		_, m := binary.Varint(p[off:])
		off += m
	}
	return k, int(int8(p[off]))
}

// valueRun is one run of the values of a format 2 chunk.
type valueRun struct {
	len, kind int
	bytes     int // its header included
}

// runsOf returns the k and the value runs of a well-formed format 2
// chunk, and the bytes of its timestamps section (k included).
func runsOf(t testing.TB, p []byte) (k int, runs []valueRun, tsBytes int) {
	t.Helper()
	h, err := header(p)
	if err != nil || h.version != Version {
		t.Fatalf("version %d, %v", p[0], err)
	}
	r, off, err := newTimeReader(p, h)
	if err != nil {
		t.Fatal(err)
	}
	if off, _, _, err = r.read(p, off, make([]int64, h.n)); err != nil {
		t.Fatal(err)
	}
	tsBytes = off - h.off + 1
	for left := h.n; left > 0; {
		u, m := binary.Uvarint(p[off:])
		l := int(u>>kindBits) + 1
		end, err := decodeRuns(p, off, make([]float64, l))
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, valueRun{l, int(u & kindMask), end - off})
		off, left = end, left-l
		_ = m
	}
	return h.k, runs, tsBytes
}

// checkRuns checks what the writer promises of the runs of the format
// 2 chunk p of the values vs: a raw run starts and goes on with values
// that scaledStart finds better raw.
func checkRuns(t testing.TB, p []byte, vs []float64) {
	t.Helper()
	_, runs, _ := runsOf(t, p)
	i := 0
	for _, r := range runs {
		if r.kind > 2*expBias {
			f32 := true
			for j := i; j < i+r.len; j++ {
				if _, ok := scaledStart(vs, j, minExp, maxExp, options{}, j > i, f32, maxExp); ok {
					t.Fatalf("raw run (kind %d) at value %d holds value %d, %v, which starts a scaled run", r.kind, i, j, vs[j])
				}
				f32 = f32 && isFloat32(vs[j], options{})
			}
		}
		i += r.len
	}
}

// same reports whether the readings are equal bit for bit; quality nil
// and all zeros are the same.
func same(ts1 []int64, vs1 []float64, q1 []byte, ts2 []int64, vs2 []float64, q2 []byte) bool {
	if !slices.Equal(ts1, ts2) || len(vs1) != len(vs2) {
		return false
	}
	for i := range vs1 {
		if math.Float64bits(vs1[i]) != math.Float64bits(vs2[i]) {
			return false
		}
	}
	if allGood(q1) && allGood(q2) {
		return true
	}
	return slices.Equal(q1, q2)
}

func allGood(q []byte) bool {
	for _, c := range q {
		if c != 0 {
			return false
		}
	}
	return true
}

// deltas returns ts in the wire's delta form.
func deltas(ts []int64) []int64 {
	d := slices.Clone(ts)
	for i := len(d) - 1; i > 0; i-- {
		d[i] -= d[i-1]
	}
	return d
}

// deltasFit reports whether ts has a delta form: every delta in int64.
func deltasFit(ts []int64) bool {
	for i := 1; i < len(ts); i++ {
		if _, ok := sub64(ts[i], ts[i-1]); !ok {
			return false
		}
	}
	return true
}

func TestRoundTrip(t *testing.T) {
	for _, f := range formats {
		for _, c := range roundTrips() {
			t.Run(f.name+"/"+c.name, func(t *testing.T) { testRoundTrip(t, f, c) })
		}
	}
}

func testRoundTrip(t *testing.T, f format, c roundTrip) {
	p, err := f.append([]byte("prefix"), c.ts, c.values, c.quality)
	if err != nil {
		t.Fatal(err)
	}
	if string(p[:6]) != "prefix" {
		t.Fatal("Append changed what dst held")
	}
	p = p[6:]
	if len(p) > MaxLen(len(c.ts)) {
		t.Errorf("%d bytes, MaxLen %d", len(p), MaxLen(len(c.ts)))
	}
	if f.name == "v1" {
		k, e := sectionsV1(t, p)
		if e != decimal.Exp(c.values) {
			t.Errorf("e = %d, decimal.Exp says %d", e, decimal.Exp(c.values))
		}
		if c.e != -99 && (k != c.k || e != c.e) {
			t.Errorf("k %d e %d, want %d %d", k, e, c.k, c.e)
		}
	} else {
		k, _, _ := runsOf(t, p)
		if k != c.k {
			t.Errorf("k %d, want %d", k, c.k)
		}
		checkRuns(t, p, c.values)
	}
	ts, vs, q, err := Decode(p, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !same(ts, vs, q, c.ts, c.values, c.quality) {
		t.Fatalf("decoded\n%v\n%v\n%v\nwant\n%v\n%v\n%v", ts, vs, q, c.ts, c.values, c.quality)
	}
	if allGood(c.quality) != (q == nil) {
		t.Errorf("quality %v for %v", q, c.quality)
	}
	if n, err := Len(p); err != nil || n != len(c.ts) {
		t.Errorf("Len = %d, %v", n, err)
	}
	lo, hi, err := TimeRange(p)
	if err != nil || lo != slices.Min(c.ts) || hi != slices.Max(c.ts) {
		t.Errorf("TimeRange = %d, %d, %v", lo, hi, err)
	}

	// The wire's delta form encodes to the same bytes, whole and (in
	// format 2, which AppendSeries writes) as a series window, where
	// the deltas fit int64.
	if !deltasFit(c.ts) {
		return
	}
	d := deltas(c.ts)
	p2, err := f.appendDeltas(nil, c.ts[0], d, c.values, c.quality)
	if err != nil || string(p2) != string(p) {
		t.Errorf("AppendDeltas: %v, bytes differ: %v", err, string(p2) != string(p))
	}
	if f.name == "v1" {
		return
	}
	s := &outpost.Series{TS: append([]int64{c.ts[0] - 1}, d...), Values: append([]float64{0}, c.values...)}
	s.TS[1] = 1
	if c.ts[0] == math.MinInt64 {
		s.TS[0], s.TS[1] = c.ts[0], 0
	}
	if c.quality != nil {
		s.Quality = append([]byte{2}, c.quality...)
	}
	p3, err := AppendSeries(nil, s, 1, len(s.TS))
	if err != nil || string(p3) != string(p) {
		t.Errorf("AppendSeries: %v, bytes differ: %v", err, string(p3) != string(p))
	}
}

func TestAppendRefuses(t *testing.T) {
	cases := []struct {
		name    string
		ts      []int64
		values  []float64
		quality []byte
		want    string
		v1      bool // format 1 alone refuses it
	}{
		{"none", nil, nil, nil, "no readings", false},
		{"short values", []int64{1, 2}, []float64{1}, nil, "1 values for 2 timestamps", false},
		{"short quality", []int64{1, 2}, []float64{1, 2}, []byte{1}, "1 quality bytes", false},
		{"quality 3", []int64{1, 2}, []float64{1, 2}, []byte{0, 3}, "quality 3 of reading 1", false},
		{"too many", make([]int64, MaxReadings+1), make([]float64, MaxReadings+1), nil, "limit", false},
		{"delta overflows", []int64{math.MinInt64, math.MaxInt64}, []float64{1, 2}, nil, "overflows int64", false},
		{"delta overflows down", []int64{1, math.MinInt64}, []float64{1, 2}, nil, "overflows int64", false},
		{"delta of deltas overflows", []int64{0, 1<<62 + 1, 0}, []float64{1, 2, 3}, nil, "overflows int64", true},
		{"second delta overflows", []int64{0, math.MaxInt64, math.MinInt64 + 1}, []float64{1, 2, 3}, nil, "overflows int64", false},
	}
	for _, f := range formats {
		for _, c := range cases {
			t.Run(f.name+"/"+c.name, func(t *testing.T) {
				dst := []byte("kept")
				p, err := f.append(dst, c.ts, c.values, c.quality)
				if c.v1 && f.name != "v1" {
					// Format 2 stores deltas, not deltas of deltas.
					ts, vs, q, err := Decode(p[4:], nil, nil, nil)
					if err != nil || !same(ts, vs, q, c.ts, c.values, c.quality) {
						t.Fatalf("%v: %v %v", err, ts, vs)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err = %v, want %q", err, c.want)
				}
				if string(p) != "kept" {
					t.Errorf("dst = %q", p)
				}
			})
		}
	}
	// The delta form refuses the same, and a running sum leaving int64,
	// and windows outside the series.
	for _, f := range formats {
		if _, err := f.appendDeltas(nil, math.MaxInt64, []int64{0, 1}, []float64{1, 2}, nil); err == nil {
			t.Errorf("%s: AppendDeltas accepted a sum past int64", f.name)
		}
	}
	if _, err := appendV1Deltas(nil, 0, []int64{0, 1<<62 + 1, -(1<<62 + 1)}, []float64{1, 2, 3}, nil); err == nil {
		t.Error("appendV1Deltas accepted a delta of deltas past int64")
	}
	s := &outpost.Series{TS: []int64{1, 1, 1}, Values: []float64{1, 2, 3}}
	for _, w := range [][2]int{{-1, 2}, {2, 2}, {0, 4}, {3, 2}} {
		if _, err := AppendSeries(nil, s, w[0], w[1]); err == nil {
			t.Errorf("AppendSeries accepted readings %d to %d of 3", w[0], w[1])
		}
	}
	s.TS = []int64{math.MaxInt64, 1, 1}
	if _, err := AppendSeries(nil, s, 2, 3); err == nil {
		t.Error("AppendSeries accepted a start past int64")
	}
}

// chunkOf builds a chunk by hand: version 1, the header, then the rest.
func chunkOf(n uint64, k byte, rest ...[]byte) []byte {
	p := binary.AppendUvarint([]byte{version1}, n)
	p = append(p, k)
	for _, r := range rest {
		p = append(p, r...)
	}
	return p
}

func varints(xs ...int64) []byte {
	var p []byte
	for _, x := range xs {
		p = binary.AppendVarint(p, x)
	}
	return p
}

func uvarints(xs ...uint64) []byte {
	var p []byte
	for _, x := range xs {
		p = binary.AppendUvarint(p, x)
	}
	return p
}

type malformed struct {
	name string
	p    []byte
	want string
}

func malformedChunks() []malformed {
	good := []byte{0}
	overlong := []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02}
	raw8 := binary.LittleEndian.AppendUint64(nil, math.Float64bits(1.5))
	return []malformed{
		{"empty", nil, "byte 0: empty"},
		{"version 0", []byte{0, 1, 0, 0, 0, 0}, "version 0"},
		{"version 3", []byte{3, 1, 0, 0, 0, 0}, "version 3, want 1 or 2"},
		{"no count", []byte{1}, "number of readings: truncated"},
		{"count truncated", []byte{1, 0x80}, "number of readings: truncated"},
		{"count overflows", append([]byte{1}, overlong...), "varint overflows"},
		{"no readings", chunkOf(0, 0, varints(), []byte{0}, good), "0 readings"},
		{"too many readings", chunkOf(MaxReadings+1, 0, varints(1)), "1048577 readings"},
		{"no unit", []byte{1, 1}, "truncated before the unit"},
		{"unit 10", chunkOf(1, 10, varints(1), []byte{0}, varints(1), good), "units of 10^10"},
		{"claims 2^20 in 10 bytes", chunkOf(MaxReadings, 0, []byte{0, 0, 0, 0, 0}), "1048576 readings in 5 bytes"},
		{"claims 3 in 6 bytes", chunkOf(3, 0, varints(1, 1, 1), []byte{0}, varints(1, 1)), "3 readings in 6 bytes"},
		{"timestamp truncated", chunkOf(2, 0, varints(math.MaxInt64)), "timestamp 1: truncated"},
		{"non-minimal varint, then truncated", chunkOf(2, 0, varints(1), []byte{0x80, 0}, varints(1, 1), []byte{0}), "truncated before the quality"},
		{"timestamp overflows", chunkOf(2, 0, varints(1), overlong, []byte{0}, varints(1, 1), good), "timestamp 1: varint overflows"},
		{"running sum", chunkOf(2, 0, varints(math.MaxInt64, 1), []byte{0}, varints(1, 1), good), "timestamp 1 overflows int64"},
		{"running delta", chunkOf(3, 0, varints(0, math.MaxInt64, 1), []byte{0}, varints(1, 1, 1), good), "timestamp 2 overflows int64"},
		{"unit overflows", chunkOf(1, 9, varints(1e10), []byte{0}, varints(1), good), "timestamp 0 overflows int64"},
		{"unit overflows down", chunkOf(1, 1, varints(math.MinInt64/10-1), []byte{0}, varints(1), good), "timestamp 0 overflows int64"},
		{"no exponent", chunkOf(1, 0, varints(1), []byte{}, good), "readings in"},
		{"exponent 16", chunkOf(1, 0, varints(1), []byte{16}, varints(1), good), "value exponent 16"},
		{"exponent -16", chunkOf(1, 0, varints(1), []byte{0xf0}, varints(1), good), "value exponent -16"},
		{"exponent 126", chunkOf(1, 0, varints(1), []byte{126}, varints(1), good), "value exponent 126"},
		{"scaled 2^53", chunkOf(1, 0, varints(1), []byte{0}, varints(1<<53), good), "scaled integer out of range"},
		{"scaled -2^53", chunkOf(1, 0, varints(1), []byte{0}, varints(-1<<53), good), "scaled integer out of range"},
		{"scaled sum 2^53", chunkOf(2, 0, varints(1, 1), []byte{0}, varints(1<<53-1, 1), good), "value 1: scaled"},
		{"scaled delta huge", chunkOf(2, 0, varints(1, 1), []byte{0}, varints(0, math.MaxInt64), good), "value 1: scaled"},
		{"value truncated", chunkOf(2, 0, varints(1<<40, 1), []byte{0}, varints(1), []byte{0x80}), "value 1: truncated"},
		{"value overflows", chunkOf(1, 0, varints(1), []byte{0}, overlong, good), "value 0: varint overflows"},
		{"raw truncated", chunkOf(2, 0, varints(1, 1), []byte{127}, raw8, []byte{0, 0, 0}, good), "2 raw values in 12 bytes"},
		{"no quality", chunkOf(1, 0, varints(1), []byte{0}, varints(1)), "readings in"},
		{"no quality after raw", chunkOf(1, 0, varints(1), []byte{127}, raw8), "truncated before the quality"},
		{"quality mode 2", chunkOf(1, 0, varints(1), []byte{0}, varints(1), []byte{2}), "quality mode 2"},
		{"trailing byte", chunkOf(1, 0, varints(1), []byte{0}, varints(1), good, []byte{0}), "1 trailing bytes"},
		{"no runs", chunkOf(1, 0, varints(1), []byte{0}, varints(1), []byte{1}), "number of quality runs: truncated"},
		{"zero runs", chunkOf(1, 0, varints(1), []byte{0}, varints(1), []byte{1}, uvarints(0), []byte{0, 0}), "0 quality runs"},
		{"more runs than readings", chunkOf(2, 0, varints(1, 1), []byte{0}, varints(1, 1), []byte{1}, uvarints(3, 1), []byte{0}, uvarints(1), []byte{1}, uvarints(1), []byte{2}), "3 quality runs for 2"},
		{"runs past the end", chunkOf(2, 0, varints(1, 1), []byte{0}, varints(1, 1), []byte{1}, uvarints(2, 1), []byte{0}), "2 quality runs"},
		{"run of 0", chunkOf(1, 0, varints(1), []byte{0}, varints(1), []byte{1}, uvarints(1, 0), []byte{1}), "quality run 0 of 0 readings"},
		{"run too long", chunkOf(2, 0, varints(1, 1), []byte{0}, varints(1, 1), []byte{1}, uvarints(1, 3), []byte{1}), "quality run 0 of 3 readings, 2 left"},
		{"run length overflows", chunkOf(1, 0, varints(1), []byte{0}, varints(1), []byte{1}, uvarints(1), overlong, []byte{1}), "quality run 0: varint overflows"},
		{"quality 3", chunkOf(1, 0, varints(1), []byte{0}, varints(1), []byte{1}, uvarints(1, 1), []byte{3}), "quality 3"},
		{"runs short", chunkOf(3, 0, varints(1, 1, 1), []byte{0}, varints(1, 1, 1), []byte{1}, uvarints(1, 2), []byte{1}), "cover 2 of 3"},
		{"run byte missing", chunkOf(300, 0, make([]byte, 300), []byte{0}, make([]byte, 300), []byte{1}, uvarints(2, 150), []byte{1}, uvarints(150)), "truncated in quality run 1"},
		{"trailing after runs", chunkOf(1, 0, varints(1), []byte{0}, varints(1), []byte{1}, uvarints(1, 1), []byte{1}, []byte{9}), "1 trailing bytes"},
	}
}

// chunkOf2 builds a format 2 chunk by hand: the header, then the rest.
func chunkOf2(n uint64, k byte, rest ...[]byte) []byte {
	p := binary.AppendUvarint([]byte{Version}, n)
	p = append(p, k)
	for _, r := range rest {
		p = append(p, r...)
	}
	return p
}

// run is a format 2 run header.
func run(l, kind int) []byte {
	return appendRunHeader(nil, l, kind)
}

func malformedV2() []malformed {
	good := []byte{0}
	overlong := []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02}
	long := varints(math.MinInt64) // 10 bytes
	e0 := expBias                  // the kind of scaled at 10^0
	raw8 := binary.LittleEndian.AppendUint64(nil, math.Float64bits(1.5))
	plain := []byte{widthVarints}
	return []malformed{
		{"v2 no readings", chunkOf2(0, 0, varints(0), run(1, e0), varints(1), good), "0 readings"},
		{"v2 claims 2^20 in 10 bytes", chunkOf2(MaxReadings, 0, make([]byte, 5)), "1048576 readings in 5 bytes"},
		{"v2 claims 7 in 5 bytes", chunkOf2(7, 0, varints(0, 1), []byte{0}, run(7, kindXOR32)), "7 readings in 5 bytes"},
		{"v2 first timestamp truncated", chunkOf2(1, 0, []byte{0x80, 0x80, 0x80, 0x80}), "timestamp 0: truncated"},
		{"v2 first timestamp overflows", chunkOf2(1, 0, overlong, run(1, e0), varints(1), good), "timestamp 0: varint overflows"},
		{"v2 unit overflows", chunkOf2(1, 9, varints(1e10), run(1, e0), varints(1), good), "timestamp 0 overflows int64"},
		{"v2 base truncated", chunkOf2(2, 0, varints(0), []byte{0x80, 0x80, 0x80, 0x80}), "base delta of the timestamps: truncated"},
		{"v2 base overflows", chunkOf2(2, 0, varints(0), overlong, []byte{0}, run(2, e0), varints(1, 1), good), "base delta of the timestamps: varint overflows"},
		{"v2 no width", chunkOf2(2, 0, varints(0, 1<<40)), "truncated before the width of the timestamps"},
		{"v2 width 3", chunkOf2(2, 0, varints(0, 1), []byte{3, 0}, run(2, e0), varints(1, 1), good), "timestamps of width 3"},
		{"v2 width 16", chunkOf2(2, 0, varints(0, 1), []byte{16, 0, 0}, run(2, e0), varints(1, 1), good), "timestamps of width 16"},
		{"v2 codes past the end", chunkOf2(100, 0, long, long, []byte{8}, make([]byte, 83)), "99 bytes of timestamps in 83"},
		{"v2 escape truncated", chunkOf2(2, 0, varints(0, 1), []byte{1, 1, 0x80}), "timestamp 1: truncated"},
		{"v2 escape overflows", chunkOf2(2, 0, varints(0, 1), []byte{2, 3}, overlong, run(2, e0), varints(1, 1), good), "timestamp 1: varint overflows"},
		{"v2 varint truncated", chunkOf2(3, 0, varints(0, 1), plain, varints(1), []byte{0x80, 0x80, 0x80}), "timestamp 2: truncated"},
		{"v2 base and residual", chunkOf2(2, 0, varints(0, math.MaxInt64), plain, varints(1), run(2, e0), varints(1, 1), good), "timestamp 1 overflows int64"},
		{"v2 running sum", chunkOf2(2, 0, varints(math.MaxInt64, 1), []byte{0}, run(2, e0), varints(1, 1), good), "timestamp 1 overflows int64"},
		{"v2 running sum down", chunkOf2(3, 0, varints(math.MinInt64+1, -1), []byte{1, 0}, run(3, e0), varints(1, 1, 1), good), "timestamp 2 overflows int64"},
		{"v2 unit overflows later", chunkOf2(3, 9, varints(9e9, 2e8), []byte{0}, run(3, e0), varints(1, 1, 1), good), "timestamp 2 overflows int64"},
		{"v2 no values", chunkOf2(1, 0, varints(1), []byte{0x80, 0x80, 0x80}), "value run at value 0: truncated"},
		{"v2 run header overflows", chunkOf2(1, 0, varints(1), overlong), "value run at value 0: varint overflows"},
		{"v2 run too long", chunkOf2(2, 0, varints(0, 1), []byte{0}, run(3, e0), varints(1, 1), good), "value run at value 0 longer than the 2 values left"},
		{"v2 second run too long", chunkOf2(3, 0, varints(0, 1), []byte{0}, run(1, e0), varints(1), run(3, e0), varints(1, 1), good), "value run at value 1 longer than the 2 values left"},
		{"v2 run of 2^58", chunkOf2(2, 0, varints(0, 1), []byte{0}, uvarints(1<<63|uint64(e0)), varints(1, 1), good), "value run at value 0 longer than the 2 values left"},
		{"v2 run kind 49", chunkOf2(1, 0, varints(1), run(1, 49), varints(1), good), "value run kind 49, want 0 to 48"},
		{"v2 run kind 63", chunkOf2(1, 0, varints(1), run(1, 63), varints(1), good), "value run kind 63"},
		{"v2 scaled truncated", chunkOf2(2, 0, varints(0, 1), []byte{0}, run(2, e0), varints(1), []byte{0x80}), "value 1: truncated"},
		{"v2 scaled overflows", chunkOf2(1, 0, varints(1), run(1, e0), overlong, good), "value 0: varint overflows"},
		{"v2 scaled 2^53", chunkOf2(1, 0, varints(1), run(1, 0), varints(1<<53), good), "value 0: scaled integer out of range"},
		{"v2 scaled -2^53", chunkOf2(1, 0, varints(1), run(1, 2*expBias), varints(-1<<53), good), "value 0: scaled integer out of range"},
		{"v2 scaled sum, second run", chunkOf2(3, 0, varints(0, 1), []byte{0}, run(1, e0), varints(5), run(2, e0+1), varints(1<<53-1, 1), good), "value 2: scaled"},
		{"v2 scaled delta huge", chunkOf2(2, 0, varints(0, 1), []byte{0}, run(2, e0), varints(0, math.MaxInt64), good), "value 1: scaled"},
		{"v2 raw truncated", chunkOf2(2, 0, varints(0, 1), []byte{0}, run(2, kindRaw64), raw8, []byte{0, 0, 0}, good), "2 raw values in 12 bytes"},
		{"v2 raw32 truncated", chunkOf2(2, 0, varints(0, 1), []byte{0}, run(2, kindRaw32), []byte{0, 0, 0xc0, 0x3f, 0, 0}, good), "2 raw values in 7 bytes"},
		{"v2 xor bytes past the word", chunkOf2(1, 0, varints(1), run(1, kindXOR64), []byte{0x18}, raw8, good), "value 0: 8 bytes from byte 1 of 8"},
		{"v2 xor32 bytes past the word", chunkOf2(1, 0, varints(1), run(1, kindXOR32), []byte{0x07, 1, 2, 3, 4, 5}, good), "value 0: 4 bytes from byte 1 of 4"},
		{"v2 xor32 second past the word", chunkOf2(2, 0, varints(0, 1), []byte{0}, run(2, kindXOR32), []byte{0xdf, 1, 2, 3, 4, 5}, good), "value 1: 2 bytes from byte 3 of 4"},
		{"v2 xor32 nibble after the last", chunkOf2(1, 0, varints(1), run(1, kindXOR32), []byte{0x13, 1, 2, 3, 4}, good), "value 0: control nibble 1 after the last value"},
		{"v2 xor32 bytes truncated", chunkOf2(2, 0, varints(0, 1), []byte{0}, run(2, kindXOR32), []byte{0x3f, 1, 2}), "value 1: truncated"},
		{"v2 xor truncated", chunkOf2(2, 0, varints(0, 1), []byte{0}, run(2, kindXOR64), []byte{0x08}, raw8, []byte{0x02, 1}), "value 1: truncated"},
		{"v2 xor control missing", chunkOf2(3, 0, varints(0, 1), []byte{0}, run(3, kindXOR64), []byte{0, 0}), "value 2: truncated"},
		{"v2 xor32 control missing", chunkOf2(3, 0, varints(0, 1), []byte{0}, run(3, kindXOR32), []byte{0xff}), "value 2: truncated"},
		{"v2 runs short", chunkOf2(2, 0, varints(0, 1), []byte{0}, run(1, e0), varints(1), good), "value 1: truncated"},
		{"v2 no quality", chunkOf2(1, 0, varints(1), run(1, kindRaw32), []byte{0, 0, 0xc0, 0x3f}), "truncated before the quality"},
		{"v2 trailing byte", chunkOf2(1, 0, varints(1), run(1, e0), varints(1), good, []byte{0}), "1 trailing bytes"},
		{"v2 quality runs short", chunkOf2(2, 0, varints(0, 1), []byte{0}, run(2, e0), varints(1, 1), []byte{1}, uvarints(1, 1), []byte{2}), "cover 1 of 2"},
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, c := range append(malformedChunks(), malformedV2()...) {
		t.Run(c.name, func(t *testing.T) {
			ts0, vs0, q0 := []int64{5}, []float64{6}, []byte{1}
			ts, vs, q, err := Decode(c.p, ts0, vs0, q0)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrCorrupt and %q", err, c.want)
			}
			if len(ts) != 1 || len(vs) != 1 || len(q) != 1 || ts[0] != 5 || vs[0] != 6 || q[0] != 1 {
				t.Errorf("slices changed: %v %v %v", ts, vs, q)
			}
			t.Log(err)
		})
	}
}

// The chunks the rejection table is built from are well formed but for
// the one thing each breaks: the same pieces, mended, decode.
func TestChunkOf(t *testing.T) {
	p := chunkOf(2, 0, varints(1, 1), []byte{0}, varints(1, 1), []byte{1}, uvarints(2, 1), []byte{1}, uvarints(1), []byte{2})
	ts, vs, q, err := Decode(p, nil, nil, nil)
	if err != nil || !same(ts, vs, q, []int64{1, 2}, []float64{1, 2}, []byte{1, 2}) {
		t.Fatalf("%v %v %v %v", ts, vs, q, err)
	}
	// Format 2: every width and run kind, built by hand.
	p = chunkOf2(6, 0, varints(1, 2), []byte{2, 0b1110_0100, 0b0000_0011}, varints(5, -7),
		run(2, expBias-1), varints(15, 10), // 1.5, 2.5
		run(1, kindRaw64), binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.Pi)),
		run(1, kindRaw32), binary.LittleEndian.AppendUint32(nil, math.Float32bits(0.1)),
		run(2, kindXOR64), []byte{0x62, 0x08, 0x40}, []byte{0x61, 0x02}, // 3, then 3 ^ 1<<49 (3.25)
		[]byte{1}, uvarints(2, 5), []byte{0}, uvarints(1), []byte{2})
	ts, vs, q, err = Decode(p, nil, nil, nil)
	// Residuals 0, -1, 1, escaped 5, escaped -7, on a base delta of 2.
	want := []int64{1, 3, 4, 7, 14, 9}
	if err != nil || !same(ts, vs, q, want, []float64{1.5, 2.5, math.Pi, float64(float32(0.1)), 3, 3.25}, []byte{0, 0, 0, 0, 0, 2}) {
		t.Fatalf("%v %v %v %v", ts, vs, q, err)
	}
	// 1.5 (bytes 2 and 3 of 0x3fc00000), the same, and 1.5 + 2^-23.
	p = chunkOf2(3, 0, varints(1, 2), []byte{widthVarints}, varints(0, 3), run(3, kindXOR32), []byte{0xf9, 0xc0, 0x3f, 0x00, 0x01}, []byte{0})
	if ts, vs, q, err = Decode(p, nil, nil, nil); err != nil || !same(ts, vs, q, []int64{1, 3, 8}, []float64{1.5, 1.5, 1.5 + 0x1p-23}, nil) {
		t.Fatalf("%v %v %v %v", ts, vs, q, err)
	}
}

func TestDecodeAppends(t *testing.T) {
	good, err := Append(nil, []int64{10, 20}, []float64{1, 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := Append(nil, []int64{30, 40}, []float64{3, 4}, []byte{0, 2})
	if err != nil {
		t.Fatal(err)
	}
	ts, vs, q, err := Decode(good, nil, nil, nil)
	if err != nil || q != nil {
		t.Fatalf("quality %v, %v", q, err)
	}
	ts, vs, q, err = Decode(good, ts, vs, q)
	if err != nil || q != nil || len(ts) != 4 {
		t.Fatalf("quality %v, %d timestamps, %v", q, len(ts), err)
	}
	// A reading that is not good pads the quality of those before.
	ts, vs, q, err = Decode(bad, ts, vs, q)
	if err != nil || !same(ts, vs, q, []int64{10, 20, 10, 20, 30, 40}, []float64{1, 2, 1, 2, 3, 4}, []byte{0, 0, 0, 0, 0, 2}) {
		t.Fatalf("%v %v %v %v", ts, vs, q, err)
	}
	// Once there, quality stays one byte a reading.
	ts, vs, q, err = Decode(good, ts, vs, q)
	if err != nil || len(q) != len(ts) || !allGood(q[6:]) {
		t.Fatalf("%v %v %v", ts, q, err)
	}
	// Stale bytes in the capacity do not leak into the padding.
	q = append(make([]byte, 0, 16), 7, 7, 7)[:0]
	_, _, q, err = Decode(bad, []int64{1, 2}, []float64{1, 2}, q)
	if err != nil || !slices.Equal(q, []byte{0, 0, 0, 2}) {
		t.Fatalf("quality %v, %v", q, err)
	}
	_, _, q, err = Decode(good, []int64{1, 2}, []float64{1, 2}, append(make([]byte, 0, 16), 7, 7, 7)[:1])
	if err != nil || !slices.Equal(q, []byte{7, 0, 0, 0}) {
		t.Fatalf("quality %v, %v", q, err)
	}
	if _, _, _, err := Decode(good, nil, nil, []byte{1}); err == nil || errors.Is(err, ErrCorrupt) {
		t.Errorf("a quality longer than ts: %v", err)
	}
}

func TestAllocations(t *testing.T) {
	for _, c := range roundTrips() {
		dst := make([]byte, 0, MaxLen(len(c.ts)))
		var err error
		if a := testing.AllocsPerRun(10, func() {
			if _, err = Append(dst, c.ts, c.values, c.quality); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%s: Append: %v allocations", c.name, a)
		}
		d := deltas(c.ts)
		if a := testing.AllocsPerRun(10, func() {
			if !deltasFit(c.ts) {
				return
			}
			if _, err = AppendDeltas(dst, c.ts[0], d, c.values, c.quality); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%s: AppendDeltas: %v allocations", c.name, a)
		}
		for _, f := range formats {
			p, _ := f.append(nil, c.ts, c.values, c.quality)
			ts, vs, q := make([]int64, 0, len(c.ts)), make([]float64, 0, len(c.ts)), make([]byte, 0, len(c.ts))
			if a := testing.AllocsPerRun(10, func() {
				if _, _, _, err = Decode(p, ts, vs, q); err != nil {
					t.Fatal(err)
				}
			}); a != 0 {
				t.Errorf("%s %s: Decode: %v allocations", f.name, c.name, a)
			}
			if a := testing.AllocsPerRun(10, func() {
				if _, _, err = TimeRange(p); err != nil {
					t.Fatal(err)
				}
			}); a != 0 {
				t.Errorf("%s %s: TimeRange: %v allocations", f.name, c.name, a)
			}
		}
	}
}

// A short input claiming the most readings allocates nothing for them,
// in either format: its error, a few hundred bytes, is all.
func TestDecodeHostileCount(t *testing.T) {
	for _, p := range [][]byte{chunkOf(MaxReadings, 0, make([]byte, 5)), chunkOf2(MaxReadings, 0, make([]byte, 5))} {
		if len(p) != 10 {
			t.Fatalf("%d bytes", len(p))
		}
		const runs = 100
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			if _, _, _, err := Decode(p, nil, nil, nil); err == nil {
				t.Fatal("accepted")
			}
			if _, _, err := TimeRange(p); err == nil {
				t.Fatal("accepted")
			}
		}
		runtime.ReadMemStats(&after)
		if b := (after.TotalAlloc - before.TotalAlloc) / runs; b > 1024 {
			t.Errorf("version %d: %d bytes allocated a call", p[0], b)
		}
	}
}

// The most readings a chunk of so many bytes can hold: format 2's floor
// is half a byte a value (float32 XORs of 0), and a count above what
// the bytes can hold so is refused before anything is allocated.
func TestDecodeDensest(t *testing.T) {
	const n = 1000
	rest := [][]byte{varints(1, 1), {0}, run(n, kindXOR32), bytes.Repeat([]byte{0xff}, n/2), {qualityGood}}
	p := chunkOf2(n, 9, rest...)
	ts, vs, _, err := Decode(p, nil, nil, nil)
	if err != nil || len(ts) != n || vs[n-1] != 0 {
		t.Fatalf("%d readings, %v", len(ts), err)
	}
	size := len(bytes.Join(rest, nil))
	p = chunkOf2(uint64(2*(size-3)+1), 9, rest...)
	if _, _, _, err := Decode(p, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "readings in") {
		t.Fatalf("%d readings in %d bytes: %v", 2*(size-3)+1, size, err)
	}
}
