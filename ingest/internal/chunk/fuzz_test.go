package chunk

import (
	"encoding/binary"
	"errors"
	"math"
	"math/big"
	"slices"
	"testing"

	"github.com/outposthq/outpost/internal/decimal"
)

// FuzzDecode: Decode never panics, allocates for no more readings than
// the bytes can hold, and what it accepts encodes again to readings
// equal bit for bit, which Len and TimeRange agree with.
func FuzzDecode(f *testing.F) {
	for _, c := range roundTrips() {
		if len(c.ts) <= 64 {
			p, err := Append(nil, c.ts, c.values, c.quality)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(p)
		}
	}
	for _, m := range malformedChunks() {
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
		if cap(ts) > len(p)/2 || cap(vs) > len(p)/2 || cap(q) > len(p)/2 {
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

// FuzzRoundTrip: readings built from the fuzzer's bytes come back bit for
// bit, with the exponent decimal.Exp picks; the encoder refuses only
// timestamps whose deltas or deltas of deltas leave int64 in any unit
// that divides them all.
func FuzzRoundTrip(f *testing.F) {
	f.Add(int64(t0), int64(1e9), []byte{}, []byte("0123456789abcdef"), uint8(2), []byte{})
	f.Add(int64(-1), int64(7), []byte{1, 2, 3}, []byte("0123456789abcdef01234567"), uint8(16), []byte{0, 1, 2})
	f.Add(int64(math.MinInt64), int64(math.MaxInt64), []byte{0xff}, []byte("01234567"), uint8(0), []byte{})
	f.Add(int64(-9e18), int64(6e18), []byte{0, 0, 0}, []byte("0123456789abcdef01234567"), uint8(15), []byte{2, 2, 2})
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
			if dec <= 15 {
				vs[i] = decimal.Unscale(int64(x)>>11, -int(dec))
			} else {
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
			if !overflows(ts) {
				t.Fatalf("Append: %v", err)
			}
			return
		}
		if overflows(ts) {
			t.Fatal("Append accepted deltas past int64")
		}
		if _, e := sections(t, p); e != decimal.Exp(vs) {
			t.Fatalf("e = %d, decimal.Exp says %d", e, decimal.Exp(vs))
		}
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
	})
}

// overflows reports, in exact arithmetic, whether a delta or a delta of
// deltas of ts, in units of the largest 10^k (k ≤ 9) dividing them all,
// leaves int64.
func overflows(ts []int64) bool {
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
		dd := new(big.Int).Sub(d, prev)
		if out(d) || out(dd) {
			return true
		}
		prev = d
	}
	return false
}
