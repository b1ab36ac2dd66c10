package chunk

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// Format 2 constants: see the package doc.
const (
	// minExp and maxExp bound the decimal exponents of scaled runs:
	// 10^22 is the largest power of ten a float64 holds exactly.
	minExp, maxExp = -22, 22
	// narrowMinExp and narrowMaxExp are format 1's (decimal.MinExp and
	// MaxExp), for measuring what the wider range brings.
	narrowMinExp, narrowMaxExp = -15, 15
	// maxScaled bounds the scaled integers: |N| < 2^53.
	maxScaled = 1 << 53

	// A run header is the uvarint (length − 1) << kindBits | kind.
	kindBits  = 6
	kindMask  = 1<<kindBits - 1
	expBias   = 22 // the kind of a scaled run is its exponent + expBias
	kindRaw64 = 45 // float64 bits, 8 bytes little-endian each
	kindRaw32 = 46 // float32 bits, 4 bytes little-endian each
	kindXOR64 = 47 // float64 bits XOR the previous, byte-trimmed
	kindXOR32 = 48 // float32 bits XOR the previous, byte-trimmed, 2 controls a byte
	maxKind   = kindXOR32
	// maxRunHeader is the longest run header: a length of at most
	// MaxReadings and a kind need 26 bits, 4 varint bytes.
	maxRunHeader = 4
	// xorZero32 is the control nibble of a float32 XOR of 0.
	xorZero32 = 15

	// widthVarints is the width byte of timestamps whose residuals are
	// plain varints rather than packed codes.
	widthVarints = 255
)

// options picks the encoder's levers: Append uses them all (the zero
// value); the tests turn them off one at a time to measure each. Every
// choice is the writer's: the decoder reads what any of them writes.
type options struct {
	oneRun     bool // one run for all the values, as format 1 had
	narrowExp  bool // exponents −15…15 only, as format 1 had
	noXOR      bool // raw runs as plain bits
	noFloat32  bool // raw runs as float64 even when float32 is exact
	plainTimes bool // timestamps as varints of their deltas (D = 0)
}

func appendHeader(dst []byte, n, k int) []byte {
	dst = append(dst, Version)
	dst = binary.AppendUvarint(dst, uint64(n))
	return append(dst, byte(k))
}

// appendRest appends the values and quality sections.
func appendRest(dst []byte, values []float64, quality []byte, o options) []byte {
	dst = appendValues(dst, values, o)
	return appendQuality(dst, quality)
}

// times is the timestamps of a chunk being written, in units of 10^k
// ns: the first, and the delta before each of the others, which the
// caller has checked to fit int64.
type times interface {
	first() int64
	delta(i int) int64
}

// nsTimes are absolute timestamps whose deltas fit int64 in ns.
type nsTimes struct {
	ts []int64
	k  int
}

func (t nsTimes) first() int64      { return div10(t.ts[0], t.k) }
func (t nsTimes) delta(i int) int64 { return div10(t.ts[i]-t.ts[i-1], t.k) }

// unitTimes are absolute timestamps whose deltas overflow in ns but not
// in units of 10^k, k ≥ 1.
type unitTimes struct {
	ts []int64
	k  int
}

func (t unitTimes) first() int64      { return div10(t.ts[0], t.k) }
func (t unitTimes) delta(i int) int64 { return div10(t.ts[i], t.k) - div10(t.ts[i-1], t.k) }

// deltaTimes are timestamps in the wire's delta form.
type deltaTimes struct {
	t0     int64
	deltas []int64
	k      int
}

func (t deltaTimes) first() int64      { return div10(t.t0, t.k) }
func (t deltaTimes) delta(i int) int64 { return div10(t.deltas[i], t.k) }

// div10 returns x / 10^k. Constant divisors let the compiler divide
// with a multiplication.
func div10(x int64, k int) int64 {
	switch k {
	case 0:
		return x
	case 1:
		return x / 10
	case 2:
		return x / 100
	case 3:
		return x / 1e3
	case 4:
		return x / 1e4
	case 5:
		return x / 1e5
	case 6:
		return x / 1e6
	case 7:
		return x / 1e7
	case 8:
		return x / 1e8
	default:
		return x / 1e9
	}
}

// residualCost is what the residuals d − D of one base delta D cost.
type residualCost struct {
	ok    bool // every residual fits int64
	zeros int
	// vl[c] sums the varint lengths of the residuals whose zigzag code
	// is in class c: 0, 1–2, 3–14, 15–254, 255 and over, the classes
	// that packing in 0, 1, 2, 4 and 8 bits escapes from.
	vl [5]int
}

// widths are the packed widths, and the class each escapes from.
var widths = [...]struct{ w, class int }{{1, 1}, {2, 2}, {4, 3}, {8, 4}}

func residuals[T times](t T, n int, base int64) residualCost {
	c := residualCost{ok: true}
	for i := 1; i < n; i++ {
		r, ok := sub64(t.delta(i), base)
		if !ok {
			return residualCost{}
		}
		z := zigzag(r)
		switch {
		case z == 0:
			c.zeros++
			c.vl[0]++
		case z < 3:
			c.vl[1]++
		case z < 15:
			c.vl[2]++
		case z < 255:
			c.vl[3] += uvarintLen(z)
		default:
			c.vl[4] += uvarintLen(z)
		}
	}
	return c
}

// best returns the width of the cheapest encoding of m residuals, and
// its bytes.
func (c residualCost) best(m int) (w, size int) {
	if !c.ok {
		return 0, math.MaxInt
	}
	if c.zeros == m {
		return 0, 0
	}
	w, size = widthVarints, c.vl[0]+c.vl[1]+c.vl[2]+c.vl[3]+c.vl[4]
	for _, x := range widths {
		s := (m*x.w + 7) / 8
		for _, v := range c.vl[x.class:] {
			s += v
		}
		if s < size {
			w, size = x.w, s
		}
	}
	return w, size
}

// appendTimes appends the timestamps section of format 2 but for k:
// T[0], and for two readings or more the base delta D and the
// residuals (T[i] − T[i−1]) − D, packed. D is the delta most of the
// deltas equal, or the mean delta, or 0, whichever costs least.
func appendTimes[T times](dst []byte, t T, n, k int, o options) []byte {
	dst = binary.AppendVarint(dst, t.first())
	if n < 2 {
		return dst
	}
	m := n - 1
	var base int64
	w, size := widthVarints, 0
	if !o.plainTimes {
		// Boyer–Moore's vote finds the delta that more than half of
		// the deltas equal, if there is one.
		var cand int64
		votes := 0
		for i := 1; i < n; i++ {
			switch d := t.delta(i); {
			case votes == 0:
				cand, votes = d, 1
			case d == cand:
				votes++
			default:
				votes--
			}
		}
		c := residuals(t, n, cand)
		base = cand
		w, size = c.best(m)
		if c.zeros*2 <= m {
			// No majority: jitter around a grid, say, whose step
			// the mean delta may be; else 0, the deltas as they are.
			var sum int64
			ok := true
			for i := 1; i < n && ok; i++ {
				sum, ok = add64(sum, t.delta(i))
			}
			bases := [2]int64{sum / int64(m), 0}
			for _, b := range bases[:] {
				if b == cand || b != 0 && !ok {
					continue
				}
				if w2, s2 := residuals(t, n, b).best(m); s2 < size {
					base, w, size = b, w2, s2
				}
			}
		}
	}
	dst = binary.AppendVarint(dst, base)
	dst = append(dst, byte(w))
	if w == widthVarints {
		for i := 1; i < n; i++ {
			dst = binary.AppendVarint(dst, t.delta(i)-base)
		}
		return dst
	}
	at := len(dst)
	for range (m*w + 7) / 8 {
		dst = append(dst, 0)
	}
	if w == 0 {
		return dst
	}
	esc := uint64(1)<<w - 1
	for i := 1; i < n; i++ {
		r := t.delta(i) - base
		z := zigzag(r)
		if z >= esc {
			z = esc
			dst = binary.AppendVarint(dst, r)
		}
		bit := (i - 1) * w
		dst[at+bit>>3] |= byte(z << (bit & 7))
	}
	return dst
}

func zigzag(x int64) uint64 { return uint64(x<<1) ^ uint64(x>>63) }

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func varintLen(x int64) int { return uvarintLen(zigzag(x)) }

// pow10f holds 10^0 … 10^22, all exact in float64.
var pow10f = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// unscale is decimal.Unscale over minExp…maxExp: n × 10^e rounded once,
// float64(n) divided by 10^−e for e < 0, else multiplied by 10^e. With
// |n| < 2^53 and |e| ≤ 22 both operands are exact, so any IEEE 754
// implementation gets the same bits.
func unscale(n int64, e int) float64 {
	if e < 0 {
		return float64(n) / pow10f[-e]
	}
	return float64(n) * pow10f[e]
}

// scale is decimal.Scale over minExp…maxExp: the n with unscale(n, e)
// == v bit for bit and |n| < 2^53, if there is one. NaN, ±Inf and −0
// never scale.
//
// Before the exact test, which divides, a cheaper one rejects most
// values that are not decimals at e: if v is the double nearest N ×
// 10^e, v × 10^−e is within |N| × 2^−52 of N (two roundings), while
// other values land anywhere between two integers.
func scale(v float64, e int) (int64, bool) {
	var x float64
	if e < 0 {
		x = v * pow10f[-e]
	} else {
		x = v / pow10f[e]
	}
	f := math.Round(x)
	if !(f > -maxScaled && f < maxScaled) { // also NaN
		return 0, false
	}
	if math.Abs(x-f) > math.Abs(f)*0x1p-51 {
		return 0, false
	}
	n := int64(f)
	return n, math.Float64bits(unscale(n, e)) == math.Float64bits(v)
}

// expRange returns the exponents at which v can scale: above hi, |v| <
// 10^e; below lo, |N| ≥ 2^53. Every e from lo+1 to the largest at which
// v scales scales too (N grows by a power of ten and stays below 2^53,
// and unscale rounds the same decimal). It returns ok false for NaN,
// ±Inf, −0 and subnormals (below 10^−307, out of reach), and when no
// exponent of lo…hi is left. +0 scales everywhere.
func expRange(v float64, lo, hi int) (elo, ehi int, ok bool) {
	b := math.Float64bits(v)
	if b == 0 {
		return hi, hi, lo <= hi
	}
	x := int(b >> 52 & 0x7ff)
	if x == 0x7ff || x == 0 {
		return 0, 0, false
	}
	x -= 1023 // 2^x ≤ |v| < 2^(x+1)
	// log10(2) to 12 digits is exact enough: m × log10(2) for |m| <
	// 1100 is never within 10^−4 of an integer.
	const l2n, l2d = 301029995664, 1_000_000_000_000
	ehi = floorDiv(int64(x+1)*l2n, l2d) // 10^e ≤ |v| < 2^(x+1)
	// At e ≥ ceil((x − 52) × log10 2), |N| < 2^(x+1) / 10^e ≤ 2^53; one
	// below that, N may still fit.
	elo = -floorDiv(-int64(x-52)*l2n, l2d) - 1
	elo, ehi = max(elo, lo), min(ehi, hi)
	return elo, ehi, elo <= ehi
}

func floorDiv(a, b int64) int {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return int(q)
}

// maxExpOf returns the largest exponent in lo…hi at which v scales.
func maxExpOf(v float64, lo, hi int) (int, bool) {
	elo, ehi, ok := expRange(v, lo, hi)
	if !ok {
		return 0, false
	}
	return maxExpIn(v, elo, ehi)
}

// maxExpNear is maxExpOf for a value whose largest exponent is likely
// hint (a neighbour's): two scales settle it when it is.
func maxExpNear(v float64, lo, hi, hint int) (int, bool) {
	elo, ehi, ok := expRange(v, lo, hi)
	if !ok {
		return 0, false
	}
	if hint > elo+2 && hint <= ehi { // where scaling is monotone
		if !scalableAt(v, hint) {
			return maxExpIn(v, elo, hint-1)
		}
		if hint == ehi || !scalableAt(v, hint+1) {
			return hint, true
		}
		return bisect(v, hint+1, ehi), true
	}
	return maxExpIn(v, elo, ehi)
}

// maxExpIn is maxExpOf within elo…ehi of expRange. Two above the
// bottom, |N| < 2^50, where v × 10^−e rounds to N exactly whenever v is
// a decimal at e: from there up, scaling is monotone and a bisection
// finds the largest exponent. Below, where that rounding can miss by
// one, each exponent is tried in turn.
func maxExpIn(v float64, elo, ehi int) (int, bool) {
	a := min(elo+2, ehi)
	if !scalableAt(v, a) {
		for e := a - 1; e >= elo; e-- {
			if scalableAt(v, e) {
				return e, true
			}
		}
		return 0, false
	}
	return bisect(v, a, ehi), true
}

// bisect returns the largest exponent in a…b at which v scales, where
// it scales at a and scaling is monotone.
func bisect(v float64, a, b int) int {
	for a < b {
		mid := (a + b + 1) / 2
		if scalableAt(v, mid) {
			a = mid
		} else {
			b = mid - 1
		}
	}
	return a
}

func scalableAt(v float64, e int) bool {
	_, ok := scale(v, e)
	return ok
}

// scalable reports whether v scales at some exponent in lo…hi.
func scalable(v float64, lo, hi int) bool {
	elo, ehi, ok := expRange(v, lo, hi)
	if !ok {
		return false
	}
	for e := min(elo+2, ehi); e >= elo; e-- {
		if _, ok := scale(v, e); ok {
			return true
		}
	}
	return false
}

// appendValues appends the values section: runs, each of one kind,
// until every value has one. A scaled run takes the largest exponent
// its first value scales at and goes on while values scale at it. A
// value that needs a smaller exponent either lowers the run's (the run
// is written again) or starts a run of its own, whichever the cost
// model below finds cheaper; a run also ends before a value that costs
// three bytes or more as a delta and less as the first of a run at a
// larger exponent. Values that scale at no exponent make a raw run,
// written in the cheapest of its four kinds, and so do values that
// scale only to long integers, which raw bits store for less (see
// scaledStart): a noisy float32 often has a 16-digit decimal.
func appendValues(dst []byte, vs []float64, o options) []byte {
	lo, hi := minExp, maxExp
	if o.narrowExp {
		lo, hi = narrowMinExp, narrowMaxExp
	}
	if o.oneRun {
		return appendOneRun(dst, vs, lo, hi, o)
	}
	last := hi // the exponent of the last scaled run
	for i := 0; i < len(vs); {
		e, ok := scaledStart(vs, i, lo, hi, o, false, false, last)
		if ok {
			var j int
			dst, j, last = appendScaledRun(dst, vs, i, e, lo, hi)
			i = j
			continue
		}
		j, f32 := i+1, isFloat32(vs[i], o)
		for j < len(vs) {
			if _, ok := scaledStart(vs, j, lo, hi, o, true, f32, last); ok {
				break
			}
			f32 = f32 && isFloat32(vs[j], o)
			j++
		}
		dst = appendRawRun(dst, vs[i:j], o)
		i = j
	}
	return dst
}

// lookahead is how many values after a possible start of a scaled run
// scaledStart weighs, scaled and raw.
const lookahead = 4

// scaledStart returns the exponent of a scaled run starting at vs[i],
// if one should: vs[i] scales, and costs less scaled than raw, alone or
// with the lookahead values after it when they all scale at the same
// exponent (as the values of a long decimal do, whose first integer
// can cost more than its bits while each delta costs less than a XOR).
// Raw is the bits (4 bytes a float32, 8 a float64), XORed with the
// value before after the first. In a raw run (inRaw; f32, of float32s
// so far) vs[i] is XORed too, and a scaled run costs a run header and
// about two bytes more: the raw run after it starts again, with a
// header and a XOR from 0.
func scaledStart(vs []float64, i, lo, hi int, o options, inRaw, f32 bool, hint int) (int, bool) {
	e, ok := maxExpNear(vs[i], lo, hi, hint)
	if !ok {
		return 0, false
	}
	n, _ := scale(vs[i], e)
	// In half bytes.
	c := 2 * varintLen(n)
	f32 = isFloat32(vs[i], o) && (f32 || !inRaw)
	r := rawCost2(vs, i, o, inRaw, f32)
	if inRaw {
		c += 2 + 4
	}
	if c < r {
		return e, true
	}
	end := min(i+1+lookahead, len(vs))
	if end == i+1 {
		return 0, false
	}
	prev := n
	for j := i + 1; j < end; j++ {
		x, ok := scale(vs[j], e)
		if !ok {
			return 0, false
		}
		f32 = f32 && isFloat32(vs[j], o)
		c, r = c+2*varintLen(x-prev), r+rawCost2(vs, j, o, true, f32)
		if c > r+16 {
			return 0, false
		}
		prev = x
	}
	return e, c < r
}

// isFloat32 reports whether v is exactly a float32, and the options let
// raw runs of float32s be written.
func isFloat32(v float64, o options) bool {
	_, ok := toFloat32(v)
	return ok && !o.noFloat32
}

// rawCost2 is about what vs[i] costs in a raw run of float32s (f32: it
// and the value before are float32s) or of float64s, in half bytes: its
// bits, or with xor its XOR with the value before if that takes fewer
// (float32 XORs have half a byte of control, float64 XORs a byte).
func rawCost2(vs []float64, i int, o options, xor, f32 bool) int {
	xor = xor && i > 0 && !o.noXOR
	if f32 {
		if !xor {
			return 8
		}
		b, _ := toFloat32(vs[i])
		p, _ := toFloat32(vs[i-1])
		m, _ := xorTrim(uint64(b^p), 4)
		return min(8, 1+2*m)
	}
	if !xor {
		return 16
	}
	m, _ := xorTrim(math.Float64bits(vs[i])^math.Float64bits(vs[i-1]), 8)
	return min(16, 2+2*m)
}

// appendOneRun appends all the values as one run: scaled at the largest
// exponent they all scale at, else raw.
func appendOneRun(dst []byte, vs []float64, lo, hi int, o options) []byte {
	e := hi
	for _, v := range vs {
		x, ok := maxExpOf(v, lo, e)
		if !ok {
			return appendRawRun(dst, vs, o)
		}
		e = x
	}
	for _, v := range vs { // those before the last lowering, again
		if _, ok := scale(v, e); !ok {
			return appendRawRun(dst, vs, o)
		}
	}
	dst = appendRunHeader(dst, len(vs), e+expBias)
	var prev int64
	for _, v := range vs {
		n, _ := scale(v, e)
		dst = binary.AppendVarint(dst, n-prev)
		prev = n
	}
	return dst
}

func appendRunHeader(dst []byte, l, kind int) []byte {
	return binary.AppendUvarint(dst, uint64(l-1)<<kindBits|uint64(kind))
}

// appendScaledRun appends the scaled run that starts with vs[i] at
// exponent e, and returns the index after it and its exponent.
func appendScaledRun(dst []byte, vs []float64, i, e, lo, hi int) ([]byte, int, int) {
	at := len(dst)
	dst = append(dst, make([]byte, maxRunHeader)...) // room for the header
	body := len(dst)
	first, _ := scale(vs[i], e)
	dst = binary.AppendVarint(dst, first)
	prev, cost := first, varintLen(first)
	j := i + 1
	for ; j < len(vs); j++ {
		v := vs[j]
		if x, ok := scale(v, e); ok {
			d := x - prev
			l := varintLen(d)
			if l >= 3 && e < hi && scalableAt(v, e+1) {
				// An expensive delta: a run at a coarser exponent
				// may take v for less.
				if e2, ok := maxExpOf(v, e+1, hi); ok {
					if n2, _ := scale(v, e2); 2+varintLen(n2) < l {
						break
					}
				}
			}
			dst = binary.AppendVarint(dst, d)
			prev, cost = x, cost+l
			continue
		}
		e2, ok := maxExpNear(v, lo, e-1, e-1)
		if !ok {
			break // raw, or coarser than e but too large for it
		}
		// Lowering the run to e2 costs what the values so far grow
		// by, and as much again for those to come, a guess; a run of
		// its own for v costs two run headers (v's and the next),
		// v's integer, and the next value whole instead of a delta.
		c2, last, ok := runCost(vs[i:j], e2)
		if !ok {
			break
		}
		n2, _ := scale(v, e2)
		if 2*(c2-cost)+varintLen(n2-last) > 3+varintLen(n2) {
			break
		}
		e = e2
		dst = dst[:body]
		prev = 0
		for _, w := range vs[i:j] {
			x, _ := scale(w, e)
			dst = binary.AppendVarint(dst, x-prev)
			prev = x
		}
		cost = c2
		j-- // v again, at e
	}
	var h [maxRunHeader]byte
	hl := copy(h[:], appendRunHeader(h[:0], j-i, e+expBias))
	copy(dst[at:], h[:hl])
	n := copy(dst[at+hl:], dst[body:])
	return dst[:at+hl+n], j, e
}

// runCost returns the bytes of the values scaled at e, the first whole
// and the others as deltas, and the integer of the last.
func runCost(vs []float64, e int) (cost int, last int64, ok bool) {
	for _, v := range vs {
		x, ok := scale(v, e)
		if !ok {
			return 0, 0, false
		}
		cost += varintLen(x - last)
		last = x
	}
	return cost, last, true
}

// appendRawRun appends a run of raw values, in the cheapest kind: float64
// or float32 bits (the latter when every value is exactly a float32),
// plain or XORed with the value before.
func appendRawRun(dst []byte, vs []float64, o options) []byte {
	f32 := !o.noFloat32
	for _, v := range vs {
		if !f32 {
			break
		}
		_, f32 = toFloat32(v)
	}
	kind, size := kindRaw64, 8*len(vs)
	if f32 && 4*len(vs) < size {
		kind, size = kindRaw32, 4*len(vs)
	}
	if !o.noXOR {
		if s := xorCost64(vs); s < size {
			kind, size = kindXOR64, s
		}
		if f32 {
			if s := xorCost32(vs); s < size {
				kind = kindXOR32
			}
		}
	}
	dst = appendRunHeader(dst, len(vs), kind)
	switch kind {
	case kindRaw64:
		for _, v := range vs {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
		}
	case kindRaw32:
		for _, v := range vs {
			b, _ := toFloat32(v)
			dst = binary.LittleEndian.AppendUint32(dst, b)
		}
	case kindXOR64:
		var prev uint64
		for _, v := range vs {
			b := math.Float64bits(v)
			dst = appendXOR(dst, b^prev)
			prev = b
		}
	case kindXOR32:
		dst = appendXOR32(dst, vs)
	}
	return dst
}

// appendXOR32 appends float32 values XORed, in pairs: a control byte,
// the low nibble the first value's and the high one the second's, then
// the first's bytes and the second's. A control nibble is t<<2 | (m−1)
// for m ≥ 1 bytes from byte t, or xorZero32 for a XOR of 0; after an
// odd last value, the high nibble is 0.
func appendXOR32(dst []byte, vs []float64) []byte {
	var prev uint32
	ctl := 0
	for j, v := range vs {
		b, _ := toFloat32(v)
		x := uint64(b ^ prev)
		prev = b
		m, t := xorTrim(x, 4)
		c := byte(xorZero32)
		if m > 0 {
			c = byte(t<<2 | (m - 1))
		}
		if j%2 == 0 {
			ctl = len(dst)
			dst = append(dst, c)
		} else {
			dst[ctl] |= c << 4
		}
		x >>= 8 * t
		for range m {
			dst = append(dst, byte(x))
			x >>= 8
		}
	}
	return dst
}

// xorTrim returns the bytes of x, a word of size bytes, that are not
// zero at either end: their number m, and the zero bytes below them t.
func xorTrim(x uint64, size int) (m, t int) {
	if x == 0 {
		return 0, 0
	}
	t = bits.TrailingZeros64(x) / 8
	return 8 - bits.LeadingZeros64(x)/8 - t, t
}

// appendXOR appends x, a float64's bits XOR the previous: its control
// byte t<<4 | m and its m bytes, little-endian, from byte t.
func appendXOR(dst []byte, x uint64) []byte {
	m, t := xorTrim(x, 8)
	dst = append(dst, byte(t<<4|m))
	x >>= 8 * t
	for range m {
		dst = append(dst, byte(x))
		x >>= 8
	}
	return dst
}

func xorCost64(vs []float64) int {
	var prev uint64
	size := len(vs)
	for _, v := range vs {
		b := math.Float64bits(v)
		m, _ := xorTrim(b^prev, 8)
		size += m
		prev = b
	}
	return size
}

func xorCost32(vs []float64) int {
	var prev uint32
	size := (len(vs) + 1) / 2
	for _, v := range vs {
		b, _ := toFloat32(v)
		m, _ := xorTrim(uint64(b^prev), 4)
		size += m
		prev = b
	}
	return size
}

// toFloat32 returns the float32 bits that widen to v exactly (as
// fromFloat32 widens them), if there are some.
func toFloat32(v float64) (uint32, bool) {
	b := math.Float32bits(float32(v))
	return b, fromFloat32(b) == math.Float64bits(v)
}

// fromFloat32 returns the float64 bits of the float32 bits b, exactly,
// NaN payloads included (shifted up, as hardware widens them, but
// never quieted).
func fromFloat32(b uint32) uint64 {
	sign := uint64(b>>31) << 63
	x := b >> 23 & 0xff
	frac := uint64(b & 0x7fffff)
	switch {
	case x == 0xff:
		return sign | 0x7ff<<52 | frac<<29
	case x != 0:
		return sign | uint64(x+1023-127)<<52 | frac<<29
	case frac == 0:
		return sign
	}
	// A subnormal, frac × 2^−149: normal as a float64.
	s := bits.LeadingZeros64(frac) - 40 // shifts bringing the top bit to bit 23
	return sign | uint64(1023-126-s)<<52 | (frac<<s&0x7fffff)<<29
}
