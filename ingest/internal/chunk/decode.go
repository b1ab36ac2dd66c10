package chunk

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/outposthq/outpost/internal/decimal"
)

// Decode appends the readings of the chunk p, of format 1 or 2, to ts,
// values and quality and returns the three slices. Quality follows outpost.Series: it stays
// empty while every reading decoded into these slices is good, and is
// otherwise one byte per timestamp, so when p has a reading that is not
// good and quality is shorter than ts, quality is first padded with
// zeros to the length of ts. A quality longer than ts is refused.
//
// The count of readings is checked against the bytes left before
// anything is allocated (each reading takes at least two bytes in
// format 1, half a byte in format 2), so a hostile input cannot make
// Decode allocate more than 17 bytes a reading, some 34 bytes a byte of
// p; with room in the slices Decode allocates nothing. On error it returns the slices it
// was given (what lies past their lengths may have been written), and
// an error that wraps ErrCorrupt unless the slices were at fault.
func Decode(p []byte, ts []int64, values []float64, quality []byte) ([]int64, []float64, []byte, error) {
	if len(quality) > len(ts) {
		return ts, values, quality, fmt.Errorf("chunk: %d quality bytes for %d timestamps", len(quality), len(ts))
	}
	h, err := header(p)
	if err != nil {
		return ts, values, quality, err
	}
	if err := h.fits(p); err != nil {
		return ts, values, quality, err
	}
	n := h.n
	ts2, vs2 := extend(ts, n), extend(values, n)
	r, off, err := newTimeReader(p, h)
	if err != nil {
		return ts, values, quality, err
	}
	if off, _, _, err = r.read(p, off, ts2[len(ts):]); err != nil {
		return ts, values, quality, err
	}
	if h.version == version1 {
		off, err = decodeValues(p, off, vs2[len(values):])
	} else {
		off, err = decodeRuns(p, off, vs2[len(values):])
	}
	if err != nil {
		return ts, values, quality, err
	}
	q2, err := decodeQuality(p, off, n, len(ts), quality)
	if err != nil {
		return ts, values, quality, err
	}
	return ts2, vs2, q2, nil
}

// Len returns the number of readings of the chunk p, from its header.
// It checks nothing past the header.
func Len(p []byte) (int, error) {
	h, err := header(p)
	return h.n, err
}

// TimeRange returns the earliest and the latest timestamp of the chunk
// p, without allocating. It checks the header and the timestamps, not
// what follows them.
func TimeRange(p []byte) (lo, hi int64, err error) {
	h, err := header(p)
	if err != nil {
		return 0, 0, err
	}
	if err := h.fits(p); err != nil {
		return 0, 0, err
	}
	var buf [256]int64
	r, off, err := newTimeReader(p, h)
	if err != nil {
		return 0, 0, err
	}
	lo, hi = math.MaxInt64, math.MinInt64
	for left := h.n; left > 0; {
		b := buf[:min(left, len(buf))]
		var l, h int64
		if off, l, h, err = r.read(p, off, b); err != nil {
			return 0, 0, err
		}
		lo, hi, left = min(lo, l), max(hi, h), left-len(b)
	}
	return lo, hi, nil
}

// chunkHeader is what the first bytes of a chunk say.
type chunkHeader struct {
	version byte
	n, k    int
	off     int // the offset of the timestamps, after k
}

// header reads the version, the number of readings and k.
func header(p []byte) (chunkHeader, error) {
	if len(p) == 0 {
		return chunkHeader{}, corrupt(0, "empty")
	}
	if p[0] != version1 && p[0] != Version {
		return chunkHeader{}, corrupt(0, "version %d, want 1 or 2", p[0])
	}
	u, m := uvarint(p, 1)
	if m <= 0 {
		return chunkHeader{}, varintError(1, m, "number of readings")
	}
	off := 1 + m
	if u < 1 || u > MaxReadings {
		return chunkHeader{}, corrupt(1, "%d readings, want 1 to %d", u, MaxReadings)
	}
	if off >= len(p) {
		return chunkHeader{}, corrupt(off, "truncated before the unit of the timestamps")
	}
	k := int(p[off])
	if k > maxTSExp {
		return chunkHeader{}, corrupt(off, "timestamps in units of 10^%d ns, want at most 10^%d", k, maxTSExp)
	}
	return chunkHeader{version: p[0], n: int(u), k: k, off: off + 1}, nil
}

// fits checks the number of readings against the bytes left, before
// anything is allocated for them. In format 1 the timestamps and the
// values take a byte a reading at least, the exponent and the quality
// mode one each; in format 2 the values take half a byte a reading at
// least (a float32 XOR of 0), the first timestamp, a run header and the
// quality mode one each.
func (h chunkHeader) fits(p []byte) error {
	rest := len(p) - h.off
	if h.version == version1 && h.n > (rest-2)/2 || h.version != version1 && h.n > 2*(rest-3) {
		return corrupt(h.off, "%d readings in %d bytes", h.n, rest)
	}
	return nil
}

// timeReader decodes the timestamps section, in pieces if need be.
type timeReader struct {
	i        int   // index of the next timestamp
	t, d     int64 // the last timestamp and delta, in units
	u        int64 // 10^k
	tlo, thi int64 // t × u fits int64 between them
	// Format 2: the base delta, the width of the residuals' codes
	// (widthVarints: none, each a varint) and the offset of the codes.
	v2     bool
	base   int64
	w      int
	packed int
}

// newTimeReader returns the reader of the timestamps of the chunk p
// with header h, and the offset of the first varint it reads.
func newTimeReader(p []byte, h chunkHeader) (timeReader, int, error) {
	u := pow10[h.k]
	r := timeReader{u: u, tlo: math.MinInt64 / u, thi: math.MaxInt64 / u}
	off := h.off
	if h.version == version1 {
		return r, off, nil
	}
	r.v2 = true
	x, m := varint(p, off)
	if m <= 0 {
		return r, off, varintError(off, m, "timestamp 0")
	}
	r.t, off = x, off+m
	if r.t < r.tlo || r.t > r.thi {
		return r, off, corrupt(off-m, "timestamp 0 overflows int64")
	}
	if h.n == 1 {
		return r, off, nil
	}
	if r.base, m = varint(p, off); m <= 0 {
		return r, off, varintError(off, m, "base delta of the timestamps")
	}
	off += m
	if off >= len(p) {
		return r, off, corrupt(off, "truncated before the width of the timestamps")
	}
	switch r.w = int(p[off]); r.w {
	case 0, 1, 2, 4, 8, widthVarints:
	default:
		return r, off, corrupt(off, "timestamps of width %d, want 0, 1, 2, 4, 8 or 255", r.w)
	}
	off++
	if r.w != widthVarints {
		size := ((h.n-1)*r.w + 7) / 8
		if size > len(p)-off {
			return r, off, corrupt(off, "%d bytes of timestamps in %d", size, len(p)-off)
		}
		r.packed, off = off, off+size
	}
	return r, off, nil
}

// read decodes len(ts) timestamps from p[off:] into ts, and returns the
// offset after them and their least and greatest.
func (r *timeReader) read(p []byte, off int, ts []int64) (_ int, lo, hi int64, err error) {
	if r.v2 {
		return r.read2(p, off, ts)
	}
	lo, hi = math.MaxInt64, math.MinInt64
	t, d := r.t, r.d
	for j := range ts {
		i := r.i + j
		var x int64
		var m int
		if off < len(p) && p[off] < 0x80 { // varint's fast path, inlined
			x, m = int64(p[off]>>1)^-int64(p[off]&1), 1
		} else if x, m = varint(p, off); m <= 0 {
			return off, 0, 0, varintError(off, m, fmt.Sprintf("timestamp %d", i))
		}
		var ok bool
		switch i {
		case 0:
			t, ok = x, true
		case 1:
			d = x
			t, ok = add64(t, d)
		default:
			if d, ok = add64(d, x); ok {
				t, ok = add64(t, d)
			}
		}
		if !ok || t < r.tlo || t > r.thi {
			return off, 0, 0, corrupt(off, "timestamp %d overflows int64", i)
		}
		ts[j] = t * r.u
		lo, hi = min(lo, ts[j]), max(hi, ts[j])
		off += m
	}
	r.i, r.t, r.d = r.i+len(ts), t, d
	return off, lo, hi, nil
}

// read2 is read for format 2, where the reader has read T[0], the base
// delta and the width, and off is where the escapes or the varints
// begin.
func (r *timeReader) read2(p []byte, off int, ts []int64) (_ int, lo, hi int64, err error) {
	lo, hi = math.MaxInt64, math.MinInt64
	t, w := r.t, r.w
	esc := byte(1)<<w - 1 // w < 8; for 8, 255 by overflow
	for j := range ts {
		i := r.i + j
		if i > 0 {
			var x int64
			escaped := w == widthVarints
			if !escaped && w != 0 {
				bit := (i - 1) * w
				c := p[r.packed+bit>>3] >> (bit & 7) & esc
				if escaped = c == esc; !escaped {
					x = int64(c>>1) ^ -int64(c&1)
				}
			}
			if escaped {
				var m int
				if x, m = varint(p, off); m <= 0 {
					return off, 0, 0, varintError(off, m, fmt.Sprintf("timestamp %d", i))
				}
				off += m
			}
			d, ok := add64(r.base, x)
			if ok {
				t, ok = add64(t, d)
			}
			if !ok || t < r.tlo || t > r.thi {
				return off, 0, 0, corrupt(off, "timestamp %d overflows int64", i)
			}
		}
		ts[j] = t * r.u
		lo, hi = min(lo, ts[j]), max(hi, ts[j])
	}
	r.i, r.t = r.i+len(ts), t
	return off, lo, hi, nil
}

// decodeValues decodes the exponent and len(vs) values of format 1 from
// p[off:] into vs, and returns the offset after them.
func decodeValues(p []byte, off int, vs []float64) (int, error) {
	if off >= len(p) {
		return off, corrupt(off, "truncated before the exponent of the values")
	}
	e := int(int8(p[off]))
	off++
	if e == decimal.Raw {
		if len(p)-off < 8*len(vs) {
			return off, corrupt(off, "%d raw values in %d bytes", len(vs), len(p)-off)
		}
		for i := range vs {
			vs[i] = math.Float64frombits(binary.LittleEndian.Uint64(p[off:]))
			off += 8
		}
		return off, nil
	}
	if e < decimal.MinExp || e > decimal.MaxExp {
		return off - 1, corrupt(off-1, "value exponent %d, want %d to %d or %d", e, decimal.MinExp, decimal.MaxExp, decimal.Raw)
	}
	return decodeScaled(p, off, vs, e, 0)
}

// decodeScaled decodes len(vs) scaled values at exponent e, the first
// the delta from 0 and each other from the one before, into vs, the
// first of them value i of the chunk, and returns the offset after
// them.
func decodeScaled(p []byte, off int, vs []float64, e, i int) (int, error) {
	var acc int64
	for j := range vs {
		var x int64
		var m int
		if off < len(p) && p[off] < 0x80 { // varint's fast path, inlined
			x, m = int64(p[off]>>1)^-int64(p[off]&1), 1
		} else if x, m = varint(p, off); m <= 0 {
			return off, varintError(off, m, fmt.Sprintf("value %d", i+j))
		}
		// Bounding x first keeps the sum in int64.
		if x <= -2*maxScaled || x >= 2*maxScaled {
			return off, corrupt(off, "value %d: scaled integer out of range", i+j)
		}
		acc += x
		if acc <= -maxScaled || acc >= maxScaled {
			return off, corrupt(off, "value %d: scaled integer out of range", i+j)
		}
		vs[j] = unscale(acc, e)
		off += m
	}
	return off, nil
}

// decodeRuns decodes the values section of format 2, runs of len(vs)
// values in all, from p[off:] into vs, and returns the offset after
// them.
func decodeRuns(p []byte, off int, vs []float64) (int, error) {
	for i := 0; i < len(vs); {
		at := off
		h, m := uvarint(p, off)
		if m <= 0 {
			return off, varintError(off, m, fmt.Sprintf("value run at value %d", i))
		}
		off += m
		left := len(vs) - i
		if h>>kindBits >= uint64(left) {
			return at, corrupt(at, "value run at value %d longer than the %d values left", i, left)
		}
		l, kind := int(h>>kindBits)+1, int(h&kindMask)
		run := vs[i : i+l]
		var err error
		switch kind {
		case kindRaw64:
			if len(p)-off < 8*l {
				return off, corrupt(off, "%d raw values in %d bytes", l, len(p)-off)
			}
			for j := range run {
				run[j] = math.Float64frombits(binary.LittleEndian.Uint64(p[off:]))
				off += 8
			}
		case kindRaw32:
			if len(p)-off < 4*l {
				return off, corrupt(off, "%d raw values in %d bytes", l, len(p)-off)
			}
			for j := range run {
				run[j] = math.Float64frombits(fromFloat32(binary.LittleEndian.Uint32(p[off:])))
				off += 4
			}
		case kindXOR64:
			off, err = decodeXOR(p, off, run, i)
		case kindXOR32:
			off, err = decodeXOR32(p, off, run, i)
		default:
			if kind > 2*expBias {
				return at, corrupt(at, "value run kind %d, want 0 to %d", kind, maxKind)
			}
			off, err = decodeScaled(p, off, run, kind-expBias, i)
		}
		if err != nil {
			return off, err
		}
		i += l
	}
	return off, nil
}

// decodeXOR decodes a run of XORed float64 bits into vs, the first of
// them value i of the chunk.
func decodeXOR(p []byte, off int, vs []float64, i int) (int, error) {
	var b uint64
	for j := range vs {
		if off >= len(p) {
			return off, corrupt(off, "value %d: truncated", i+j)
		}
		c := int(p[off])
		m, t := c&15, c>>4
		if m+t > 8 {
			return off, corrupt(off, "value %d: %d bytes from byte %d of 8", i+j, m, t)
		}
		if len(p)-off-1 < m {
			return off, corrupt(off, "value %d: truncated", i+j)
		}
		var x uint64
		for k := m; k > 0; k-- {
			x = x<<8 | uint64(p[off+k])
		}
		b ^= x << (8 * t)
		off += 1 + m
		vs[j] = math.Float64frombits(b)
	}
	return off, nil
}

// decodeXOR32 decodes a run of XORed float32 bits, two control nibbles
// a byte, into vs, the first of them value i of the chunk.
func decodeXOR32(p []byte, off int, vs []float64, i int) (int, error) {
	var b uint32
	var ctl byte
	at := 0 // the offset of the control byte
	for j := range vs {
		if j%2 == 0 {
			if off >= len(p) {
				return off, corrupt(off, "value %d: truncated", i+j)
			}
			at, ctl = off, p[off]
			off++
		} else {
			ctl >>= 4
		}
		c := int(ctl & 15)
		m, t := 0, 0
		if c != xorZero32 {
			m, t = c&3+1, c>>2
			if m+t > 4 {
				return at, corrupt(at, "value %d: %d bytes from byte %d of 4", i+j, m, t)
			}
		}
		if len(p)-off < m {
			return off, corrupt(off, "value %d: truncated", i+j)
		}
		var x uint32
		for k := m - 1; k >= 0; k-- {
			x = x<<8 | uint32(p[off+k])
		}
		b ^= x << (8 * t)
		off += m
		vs[j] = math.Float64frombits(fromFloat32(b))
	}
	if len(vs)%2 == 1 && ctl>>4 != 0 {
		return at, corrupt(at, "value %d: control nibble %d after the last value", i+len(vs)-1, ctl>>4)
	}
	return off, nil
}

// decodeQuality decodes the quality section of n readings at p[off:] and
// checks that nothing follows. q is the caller's quality column and nts
// the length of its ts column before this chunk.
func decodeQuality(p []byte, off, n, nts int, q []byte) ([]byte, error) {
	if off >= len(p) {
		return nil, corrupt(off, "truncated before the quality")
	}
	mode, nq := p[off], len(q)
	off++
	switch mode {
	case qualityGood:
		if off != len(p) {
			return nil, corrupt(off, "%d trailing bytes", len(p)-off)
		}
		if len(q) == 0 {
			return q, nil
		}
		q = extend(q, nts-len(q)+n)
		clear(q[nq:])
		return q, nil
	case qualityRuns:
	default:
		return nil, corrupt(off-1, "quality mode %d, want 0 or 1", mode)
	}
	r, m := uvarint(p, off)
	if m <= 0 {
		return nil, varintError(off, m, "number of quality runs")
	}
	if r < 1 || r > uint64(n) || r > uint64(len(p)-off-m)/2 {
		return nil, corrupt(off, "%d quality runs for %d readings in %d bytes", r, n, len(p)-off-m)
	}
	off += m
	q = extend(q, nts-nq+n)
	clear(q[nq:nts])
	at, left := nts, n
	for i := range int(r) {
		l, m := uvarint(p, off)
		if m <= 0 {
			return nil, varintError(off, m, fmt.Sprintf("quality run %d", i))
		}
		if l < 1 || l > uint64(left) {
			return nil, corrupt(off, "quality run %d of %d readings, %d left", i, l, left)
		}
		off += m
		if off >= len(p) {
			return nil, corrupt(off, "truncated in quality run %d", i)
		}
		c := p[off]
		if c > maxQuality {
			return nil, corrupt(off, "quality %d, want 0, 1 or 2", c)
		}
		off++
		left -= int(l)
		for range l {
			q[at] = c
			at++
		}
	}
	if left != 0 {
		return nil, corrupt(off, "quality runs cover %d of %d readings", n-left, n)
	}
	if off != len(p) {
		return nil, corrupt(off, "%d trailing bytes", len(p)-off)
	}
	return q, nil
}

// extend returns s lengthened by n elements, allocating exactly that
// room if it has not (slices.Grow rounds up to a size class, which would
// blur what a hostile count can cost). The new elements hold whatever
// the capacity held.
func extend[S ~[]E, E any](s S, n int) S {
	if cap(s)-len(s) >= n {
		return s[:len(s)+n]
	}
	t := make(S, len(s)+n)
	copy(t, s)
	return t
}

// uvarint reads a uvarint at p[off:] as binary.Uvarint does: m is the
// bytes read, 0 if p ends first, negative if it overflows 64 bits. The
// loops over readings inline its one-byte case.
func uvarint(p []byte, off int) (x uint64, m int) {
	return binary.Uvarint(p[off:])
}

// varint reads a zigzag varint at p[off:] as binary.Varint does.
func varint(p []byte, off int) (int64, int) {
	ux, m := uvarint(p, off)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, m
}

func varintError(off, m int, what string) error {
	if m == 0 {
		return corrupt(off, "%s: truncated", what)
	}
	return corrupt(off, "%s: varint overflows 64 bits", what)
}

// corrupt returns an error wrapping ErrCorrupt at byte off of the chunk.
func corrupt(off int, format string, args ...any) error {
	return fmt.Errorf("%w: byte %d: %s", ErrCorrupt, off, fmt.Sprintf(format, args...))
}
