// Package chunk is the storage format of a series chunk: the readings of
// one series in one time window, in one PostgreSQL bytea or SQLite BLOB,
// columnar and compact, instead of a row a reading. Every timestamp and
// every value comes back exactly, bit for bit (Decode keeps even NaN
// payloads; UnpackSQL, which decodes the same bytes inside PostgreSQL,
// gives its own NaN for any NaN).
//
// # Format, version 1
//
// Varints are LEB128 as encoding/binary writes them: a uvarint as
// binary.AppendUvarint does, a varint zigzag-encoded first, as
// binary.AppendVarint does. A reader accepts what binary.Uvarint and
// binary.Varint accept: at most 10 bytes, the tenth at most 1 (a longer
// encoding of a small number included). In order, with n readings:
//
//	byte     version       1
//	uvarint  n             1 ≤ n ≤ MaxReadings
//	byte     k             0 ≤ k ≤ 9: the timestamps below are in
//	                       units of 10^k ns, T[i] = t[i] / 10^k
//	varint   T[0]
//	varint   T[1] − T[0]   if n ≥ 2
//	varint   dd[i]         for each 2 ≤ i < n, the delta of deltas
//	                       (T[i] − T[i−1]) − (T[i−1] − T[i−2])
//	byte     e             as an int8: −15 ≤ e ≤ 15, the values are
//	                       scaled integers; 127, the values are raw
//	scaled:
//	varint   N[0]
//	varint   N[i] − N[i−1] for each 1 ≤ i < n; |N[i]| < 2^53, and
//	                       value[i] = N[i] × 10^e, computed as
//	                       float64(N[i]) / 10^−e when e < 0, else
//	                       float64(N[i]) × 10^e (decimal.Unscale)
//	raw:
//	8 bytes  value[i]      for each i: its IEEE 754 bits, little-endian
//	byte     quality       0: every reading is good; nothing follows
//	                       1: run-length encoded, as follows
//	uvarint  r             1 ≤ r ≤ n runs, each:
//	uvarint  length        ≥ 1; the lengths sum to n
//	byte     q             the quality of length readings: 0 good,
//	                       1 uncertain, 2 bad (outpost.Quality)
//
// Nothing follows. Timestamps are int64 unix ns, in any order. The
// running sums (the delta in units, T[i] in units) and each t[i] =
// T[i] × 10^k stay within int64: a reader refuses a chunk where one
// does not, rather than wrap, and a writer refuses readings whose deltas
// or deltas of deltas, in units, leave int64.
//
// A writer picks the largest k dividing every timestamp, and e as
// decimal.Exp does: the largest exponent at which every value is a
// scaled integer exactly, else raw (NaN, ±Inf and −0 are always raw).
// A reader relies on neither choice.
package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/decimal"
)

const (
	// Version is the format version the encoders write and Decode reads.
	Version = 1
	// MaxReadings is the most readings one chunk holds.
	MaxReadings = 1 << 20
)

// ErrCorrupt is wrapped by every error of Decode, Len and TimeRange that
// comes from the bytes themselves: not a chunk, not this version, or
// damaged. The message says what is wrong and at which byte.
var ErrCorrupt = errors.New("chunk: corrupt")

// Quality modes (the byte after the values).
const (
	qualityGood = 0
	qualityRuns = 1
	// maxQuality is the largest quality byte.
	maxQuality = byte(outpost.QualityBad)
)

// maxTSExp is the largest k: timestamps in units of 10^9 ns, seconds.
const maxTSExp = 9

var pow10 = [...]int64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// Append appends the chunk of the readings to dst and returns it. ts are
// absolute unix ns, in any order; values has one value per timestamp;
// quality is empty when every reading is good, else one byte per reading,
// each 0 (good), 1 (uncertain) or 2 (bad). It refuses (and returns dst
// unchanged) no readings, more than MaxReadings, columns of different
// lengths, a quality byte over 2, and timestamps whose deltas or deltas
// of deltas, in the chunk's units, overflow int64.
//
// Append allocates nothing when dst has room: a chunk of n readings
// takes at most MaxLen(n) bytes.
func Append(dst []byte, ts []int64, values []float64, quality []byte) ([]byte, error) {
	if len(ts) == 0 {
		return dst, errors.New("chunk: no readings")
	}
	if err := checkColumns(len(ts), len(values), quality); err != nil {
		return dst, err
	}
	k := tsExp(maxTSExp, ts)
	p, err := appendTimes(appendHeader(dst, len(ts), k), ts, k)
	if err != nil {
		return dst, err // as it was: p may have grown into a new array
	}
	return appendRest(p, values, quality), nil
}

// AppendDeltas is Append for timestamps in the wire's delta form
// (outpost.Series.TS): t0 is the absolute time of the first reading and
// deltas[i], for i ≥ 1, the difference to the reading before; deltas[0]
// is not read, so a window lo:hi of a series' TS can be passed with the
// absolute time of reading lo. It also refuses timestamps whose running
// sum leaves int64.
func AppendDeltas(dst []byte, t0 int64, deltas []int64, values []float64, quality []byte) ([]byte, error) {
	if len(deltas) == 0 {
		return dst, errors.New("chunk: no readings")
	}
	if err := checkColumns(len(deltas), len(values), quality); err != nil {
		return dst, err
	}
	k := tsExp(tsExp(maxTSExp, []int64{t0}), deltas[1:])
	p, err := appendDeltaTimes(appendHeader(dst, len(deltas), k), t0, deltas, k)
	if err != nil {
		return dst, err // as it was: p may have grown into a new array
	}
	return appendRest(p, values, quality), nil
}

// AppendSeries appends the chunk of readings lo to hi (exclusive) of s.
// It finds the absolute time of reading lo by summing s.TS[:lo+1]: to
// cut a long series into many chunks, keep the running time and call
// AppendDeltas instead.
func AppendSeries(dst []byte, s *outpost.Series, lo, hi int) ([]byte, error) {
	if lo < 0 || hi > len(s.TS) || lo >= hi {
		return dst, fmt.Errorf("chunk: readings %d to %d of a series of %d", lo, hi, len(s.TS))
	}
	t0 := s.TS[0]
	for i, d := range s.TS[1 : lo+1] {
		var ok bool
		if t0, ok = add64(t0, d); !ok {
			return dst, fmt.Errorf("chunk: timestamp %d overflows int64", i+1)
		}
	}
	if len(s.Values) < hi {
		return dst, fmt.Errorf("chunk: %d values for %d timestamps", len(s.Values), len(s.TS))
	}
	var q []byte
	if len(s.Quality) != 0 {
		if len(s.Quality) < hi {
			return dst, fmt.Errorf("chunk: %d quality bytes for %d timestamps", len(s.Quality), len(s.TS))
		}
		q = s.Quality[lo:hi]
	}
	return AppendDeltas(dst, t0, s.TS[lo:hi], s.Values[lo:hi], q)
}

// MaxLen is the most bytes a chunk of n readings takes: the header, 10
// bytes a timestamp and a value, and 11 a quality run.
func MaxLen(n int) int {
	return 1 + binary.MaxVarintLen64 + 1 + n*binary.MaxVarintLen64 + 1 + n*binary.MaxVarintLen64 +
		1 + binary.MaxVarintLen64 + n*(binary.MaxVarintLen64+1)
}

// checkColumns checks the lengths of the columns of n readings, and the
// quality bytes.
func checkColumns(n, values int, quality []byte) error {
	switch {
	case n > MaxReadings:
		return fmt.Errorf("chunk: %d readings, limit %d", n, MaxReadings)
	case values != n:
		return fmt.Errorf("chunk: %d values for %d timestamps", values, n)
	case len(quality) != 0 && len(quality) != n:
		return fmt.Errorf("chunk: %d quality bytes for %d timestamps", len(quality), n)
	}
	for i, q := range quality {
		if q > maxQuality {
			return fmt.Errorf("chunk: quality %d of reading %d, want 0, 1 or 2", q, i)
		}
	}
	return nil
}

func appendHeader(dst []byte, n, k int) []byte {
	dst = append(dst, Version)
	dst = binary.AppendUvarint(dst, uint64(n))
	return append(dst, byte(k))
}

// appendRest appends the values and quality sections.
func appendRest(dst []byte, values []float64, quality []byte) []byte {
	dst = appendValues(dst, values)
	return appendQuality(dst, quality)
}

// appendTimes appends the timestamps section of absolute timestamps ts,
// every one a multiple of 10^k. It works in ns, where a delta of deltas
// is a multiple of 10^k that needs dividing only when it is not zero;
// where ns overflow, in units, where only k = 0 can.
func appendTimes(dst []byte, ts []int64, k int) ([]byte, error) {
	u := pow10[k]
	mark := len(dst)
	dst = binary.AppendVarint(dst, ts[0]/u)
	var prev int64 // the delta before, in ns; 0 makes the first dd t1 − t0
	for i := 1; i < len(ts); i++ {
		d, ok := sub64(ts[i], ts[i-1])
		dd, ok2 := sub64(d, prev)
		if !ok || !ok2 {
			return appendTimesUnits(dst[:mark], ts, k)
		}
		prev = d
		if dd != 0 && u != 1 {
			dd /= u
		}
		dst = binary.AppendVarint(dst, dd)
	}
	return dst, nil
}

// appendTimesUnits is appendTimes in units, for timestamps whose deltas
// or deltas of deltas overflow int64 in ns. With k ≥ 1, |t/10^k| is
// below 2^63/10, so nothing overflows in units.
func appendTimesUnits(dst []byte, ts []int64, k int) ([]byte, error) {
	if k == 0 {
		return dst, errDeltaOverflow
	}
	u := pow10[k]
	dst = binary.AppendVarint(dst, ts[0]/u)
	var prev int64
	for i := 1; i < len(ts); i++ {
		d := ts[i]/u - ts[i-1]/u
		dst = binary.AppendVarint(dst, d-prev)
		prev = d
	}
	return dst, nil
}

var (
	errDeltaOverflow = errors.New("chunk: a delta or a delta of deltas of the timestamps overflows int64")
	errSumOverflow   = errors.New("chunk: the timestamps' running sum overflows int64")
)

// appendDeltaTimes is appendTimes for timestamps in delta form.
func appendDeltaTimes(dst []byte, t0 int64, deltas []int64, k int) ([]byte, error) {
	u := pow10[k]
	dst = binary.AppendVarint(dst, t0/u)
	t, prev := t0, int64(0)
	for _, d := range deltas[1:] {
		var ok bool
		if t, ok = add64(t, d); !ok {
			return dst, errSumOverflow
		}
		dd, ok := sub64(d, prev)
		if !ok {
			if k == 0 {
				return dst, errDeltaOverflow
			}
			dd = d/u - prev/u // both below 2^63/10 in magnitude
		} else if dd != 0 && u != 1 {
			dd /= u
		}
		prev = d
		dst = binary.AppendVarint(dst, dd)
	}
	return dst, nil
}

// tsExp returns the largest k ≤ max such that 10^k divides every x.
func tsExp(k int, xs []int64) int {
	i := 0
	for k > 0 {
		if i = divisibleRun(xs, i, k); i == len(xs) {
			break
		}
		k--
	}
	return k
}

// divisibleRun returns the first index from i whose x is not a multiple
// of 10^k, or len(xs). Constant divisors let the compiler test
// divisibility with a multiplication.
func divisibleRun(xs []int64, i, k int) int {
	switch k {
	case 9:
		for i < len(xs) && xs[i]%1e9 == 0 {
			i++
		}
	case 8:
		for i < len(xs) && xs[i]%1e8 == 0 {
			i++
		}
	case 7:
		for i < len(xs) && xs[i]%1e7 == 0 {
			i++
		}
	case 6:
		for i < len(xs) && xs[i]%1e6 == 0 {
			i++
		}
	case 5:
		for i < len(xs) && xs[i]%1e5 == 0 {
			i++
		}
	case 4:
		for i < len(xs) && xs[i]%1e4 == 0 {
			i++
		}
	case 3:
		for i < len(xs) && xs[i]%1e3 == 0 {
			i++
		}
	case 2:
		for i < len(xs) && xs[i]%1e2 == 0 {
			i++
		}
	case 1:
		for i < len(xs) && xs[i]%10 == 0 {
			i++
		}
	default:
		return len(xs)
	}
	return i
}

// appendValues appends the exponent byte and the values section. It
// picks the exponent as decimal.Exp does, in the same pass that writes
// the integers: when a value needs a smaller exponent than the ones
// before it, it starts over at that exponent (at most 30 times). Those
// before it then scale again, unless an integer grew past 2^53, which a
// smaller exponent cannot mend: then the values go raw, as with Exp.
func appendValues(dst []byte, vs []float64) []byte {
	at := len(dst)
	dst = append(dst, 0)
	e := decimal.MaxExp
	var prev int64
	for i := 0; i < len(vs); i++ {
		n, ok := decimal.Scale(vs[i], e)
		if !ok {
			for !ok {
				if e--; e < decimal.MinExp {
					return appendRaw(dst[:at], vs)
				}
				n, ok = decimal.Scale(vs[i], e)
			}
			if i > 0 {
				dst, prev, i = dst[:at+1], 0, -1 // start over
				continue
			}
		}
		dst = binary.AppendVarint(dst, n-prev)
		prev = n
	}
	dst[at] = byte(int8(e))
	return dst
}

// appendRaw appends the exponent byte of raw values and their bits.
func appendRaw(dst []byte, vs []float64) []byte {
	dst = append(dst, decimal.Raw)
	for _, v := range vs {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
	}
	return dst
}

// appendQuality appends the quality section of checked quality bytes.
func appendQuality(dst, q []byte) []byte {
	runs := 0
	for i, c := range q {
		if i == 0 || c != q[i-1] {
			runs++
		}
	}
	if runs == 0 || runs == 1 && q[0] == 0 {
		return append(dst, qualityGood)
	}
	dst = append(dst, qualityRuns)
	dst = binary.AppendUvarint(dst, uint64(runs))
	for i := 0; i < len(q); {
		j := i + 1
		for j < len(q) && q[j] == q[i] {
			j++
		}
		dst = binary.AppendUvarint(dst, uint64(j-i))
		dst = append(dst, q[i])
		i = j
	}
	return dst
}

func add64(a, b int64) (int64, bool) {
	c := a + b
	return c, (c > a) == (b > 0)
}

func sub64(a, b int64) (int64, bool) {
	c := a - b
	return c, (c < a) == (b > 0)
}
