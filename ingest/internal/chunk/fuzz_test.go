package chunk

import (
	"encoding/binary"
	"errors"
	"math"
	"math/big"
	"slices"
	"testing"
)

// FuzzDecode: Decode never panics, allocates for no more readings than
// the bytes can hold (half a reading a byte in format 1, two in format
// 2), and what it accepts encodes again to readings equal bit for bit,
// which Len and TimeRange agree with. The seeds are chunks of both
// formats, well formed and not.
func FuzzDecode(f *testing.F) {
	for _, fm := range formats {
		for _, c := range roundTrips() {
			if len(c.ts) <= 64 {
				p, err := fm.append(nil, c.ts, c.values, c.quality)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(p)
			}
		}
	}
	for _, m := range append(malformedChunks(), malformedV2()...) {
		if len(m.p) <= 64 {
			f.Add(m.p)
		}
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		ts, vs, q, err := Decode(p, nil, nil, nil)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v does not wrap ErrCorrupt", err)
			}
			if ts != nil || vs != nil || q != nil {
				t.Fatal("slices on error")
			}
			return
		}
		limit := 2 * len(p)
		if p[0] == version1 {
			limit = len(p) / 2
		}
		if cap(ts) > limit || cap(vs) > limit || cap(q) > limit {
			t.Fatalf("%d bytes: capacities %d %d %d", len(p), cap(ts), cap(vs), cap(q))
		}
		if n, err := Len(p); err != nil || n != len(ts) {
			t.Fatalf("Len = %d, %v; Decode: %d readings", n, err, len(ts))
		}
		if lo, hi, err := TimeRange(p); err != nil || lo != slices.Min(ts) || hi != slices.Max(ts) {
			t.Fatalf("TimeRange = %d %d %v", lo, hi, err)
		}
		p2, err := Append(nil, ts, vs, q)
		if err != nil {
			t.Fatalf("the decoded readings do not encode: %v", err)
		}
		ts2, vs2, q2, err := Decode(p2, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !same(ts, vs, q, ts2, vs2, q2) {
			t.Fatal("re-encoded readings differ")
		}
		// What Append writes, it writes again from what it decodes.
		p3, err := Append(nil, ts2, vs2, q2)
		if err != nil || string(p3) != string(p2) {
			t.Fatalf("Append is not stable: %v", err)
		}
	})
}

// FuzzRoundTrip: readings built from the fuzzer's bytes (decimals at
// every exponent, float32 and float64 bits) come back bit for bit from
// format 2, whose raw runs hold no value that should start a scaled
// run; Append refuses only timestamps whose deltas leave int64 in any
// unit that divides them all. Format 1's writer, which still writes the
// test vectors, round-trips them too, where its stricter limit on the
// timestamps allows.
func FuzzRoundTrip(f *testing.F) {
	f.Add(int64(t0), int64(1e9), []byte{}, []byte("0123456789abcdef"), uint8(2), []byte{})
	f.Add(int64(-1), int64(7), []byte{1, 2, 3}, []byte("0123456789abcdef01234567"), uint8(16), []byte{0, 1, 2})
	f.Add(int64(math.MinInt64), int64(math.MaxInt64), []byte{0xff}, []byte("01234567"), uint8(0), []byte{})
	f.Add(int64(-9e18), int64(6e18), []byte{0, 0, 0}, []byte("0123456789abcdef01234567"), uint8(15), []byte{2, 2, 2})
	f.Add(int64(t0), int64(60e9), []byte{1, 0, 0xff, 0, 1}, []byte("0123456789abcdef01234567"), uint8(30), []byte{})
	f.Add(int64(t0), int64(60e9), []byte{1, 0, 0xff, 0, 1}, []byte("0123456789abcdef01234567"), uint8(255), []byte{})
	f.Fuzz(func(t *testing.T, start, step int64, jitter, raw []byte, dec uint8, qb []byte) {
		n := min(len(raw)/8, 4096)
		if n == 0 {
			return
		}
		ts := make([]int64, n)
		vs := make([]float64, n)
		for i := range n {
			ts[i] = start + int64(i)*step // wrapping is fine: any int64 is a timestamp
			if i < len(jitter) {
				ts[i] += int64(int8(jitter[i]))
			}
			x := binary.LittleEndian.Uint64(raw[8*i:])
			switch {
			case dec <= -minExp:
				vs[i] = unscale(int64(x)>>11, -int(dec))
			case dec < 64:
				vs[i] = math.Float64frombits(fromFloat32(uint32(x)))
			default:
				vs[i] = math.Float64frombits(x)
			}
		}
		var q []byte
		if len(qb) >= n {
			q = make([]byte, n)
			for i := range q {
				q[i] = qb[i] % 3
			}
		}
		p, err := Append(nil, ts, vs, q)
		if err != nil {
			if !overflows(ts, false) {
				t.Fatalf("Append: %v", err)
			}
			return
		}
		if overflows(ts, false) {
			t.Fatal("Append accepted deltas past int64")
		}
		checkRuns(t, p, vs)
		ts2, vs2, q2, err := Decode(p, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !same(ts, vs, q, ts2, vs2, q2) {
			t.Fatal("readings differ")
		}
		if deltasFit(ts) {
			p2, err := AppendDeltas(nil, ts[0], deltas(ts), vs, q)
			if err != nil || string(p2) != string(p) {
				t.Fatalf("AppendDeltas: %v, or other bytes", err)
			}
		}
		p1, err := appendV1(nil, ts, vs, q)
		if err != nil {
			if !overflows(ts, true) {
				t.Fatalf("appendV1: %v", err)
			}
			return
		}
		ts1, vs1, q1, err := Decode(p1, nil, nil, nil)
		if err != nil || !same(ts, vs, q, ts1, vs1, q1) {
			t.Fatalf("format 1: %v, or readings differ", err)
		}
	})
}

// overflows reports, in exact arithmetic, whether a delta of ts (or,
// with dd, a delta of deltas, which format 1 stores), in units of the
// largest 10^k (k ≤ 9) dividing them all, leaves int64.
func overflows(ts []int64, dd bool) bool {
	k := 9
	for _, t := range ts {
		for k > 0 && t%pow10[k] != 0 {
			k--
		}
	}
	u := big.NewInt(pow10[k])
	lo, hi := big.NewInt(math.MinInt64), big.NewInt(math.MaxInt64)
	out := func(x *big.Int) bool { return x.Cmp(lo) < 0 || x.Cmp(hi) > 0 }
	prev := new(big.Int)
	for i := 1; i < len(ts); i++ {
		d := new(big.Int).Sub(big.NewInt(ts[i]), big.NewInt(ts[i-1]))
		d.Quo(d, u)
		if out(d) || dd && out(new(big.Int).Sub(d, prev)) {
			return true
		}
		prev = d
	}
	return false
}
