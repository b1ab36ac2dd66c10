// Package chunk is the storage format of a series chunk: the readings of
// one series in one time window, in one PostgreSQL bytea or SQLite BLOB,
// columnar and compact, instead of a row a reading. Every timestamp and
// every value comes back exactly, bit for bit (Decode keeps even NaN
// payloads; UnpackSQL, which decodes the same bytes inside PostgreSQL,
// gives its own NaN for any NaN).
//
// Append writes format 2. Decode and UnpackSQL read formats 1 and 2,
// told apart by the first byte, so chunks stored by earlier releases
// stay readable; nothing rewrites them.
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
//
// # Format, version 2
//
// Varints as in format 1. Where format 1 has one exponent for all the
// values, format 2 has runs of values, each of its own kind, so that one
// odd value costs its own run rather than the chunk's; its timestamps
// are residuals from a base delta, packed in a few bits each. In order,
// with n readings:
//
//	byte     version       2
//	uvarint  n             1 ≤ n ≤ MaxReadings
//	byte     k             0 ≤ k ≤ 9: the timestamps below are in
//	                       units of 10^k ns, T[i] = t[i] / 10^k
//	varint   T[0]
//	if n ≥ 2:
//	varint   D             the base delta
//	byte     w             the width of the codes: 0, 1, 2, 4 or 8
//	                       bits, or 255 for none (varints instead)
//	w < 255:
//	bytes    codes         ⌈(n − 1) × w / 8⌉ bytes: the code c[i] of
//	                       residual i, 1 ≤ i < n, is bits (i − 1) × w
//	                       to i × w − 1, counting from bit 0 of the
//	                       first byte, bit 0 the least significant
//	                       (w divides 8: a code never straddles bytes).
//	                       c[i] < 2^w − 1 is r[i] zigzag-encoded;
//	                       c[i] = 2^w − 1 is an escape; w = 0, every
//	                       r[i] is 0 and the codes take no bytes
//	varint   r[i]          for each escape, in order of i
//	w = 255:
//	varint   r[i]          for each 1 ≤ i < n
//	                       T[i] = T[i−1] + D + r[i]
//	runs, until they hold n values; each:
//	uvarint  h             (length − 1) << 6 | kind: 1 ≤ length ≤
//	                       the values left, kind ≤ 48
//	kind 0 … 44, scaled at e = kind − 22 (−22 ≤ e ≤ 22):
//	varint   N[0]
//	varint   N[j] − N[j−1] for each 1 ≤ j < length; |N[j]| < 2^53,
//	                       and value = N[j] × 10^e, computed as
//	                       float64(N[j]) / 10^−e when e < 0, else
//	                       float64(N[j]) × 10^e: both operands are
//	                       exact (10^22 is the largest power of ten a
//	                       float64 holds), so it rounds once
//	kind 45, float64:
//	8 bytes  bits[j]       IEEE 754 bits, little-endian, each value
//	kind 46, float32:
//	4 bytes  bits[j]       float32 bits, little-endian, each value,
//	                       widened to float64 exactly (a NaN keeps its
//	                       sign and payload, shifted up 29 bits)
//	kind 47, float64 bits XORed with the value before:
//	byte     c             for each value, t << 4 | m, m + t ≤ 8
//	m bytes  x             bits[j] = bits[j−1] XOR (x << 8t), x
//	                       little-endian; bits[−1] = 0 (each run
//	                       starts again); m = 0 repeats the value
//	kind 48, float32 bits XORed, two control nibbles a byte:
//	byte     c             for each pair of values, and the last
//	                       value alone (its high nibble 0); the low
//	                       nibble the first value's, the high one the
//	                       second's: 15, a XOR of 0 (m = 0), else
//	                       t << 2 | (m − 1) with m + t ≤ 4
//	m bytes  x             the first value's XOR, then the second's,
//	                       as for kind 47, on 32 bits
//	byte     quality       as in format 1, and nothing follows
//
// Timestamps are int64 unix ns, in any order. The running sums (D +
// r[i], T[i]) and each t[i] = T[i] × 10^k stay within int64: a reader
// refuses a chunk where one does not, and a writer refuses readings
// whose deltas, in units, leave int64. A chunk takes at least 3 + n/2
// bytes after k (each value half a byte at least, a float32 XOR of 0),
// which a reader checks before it allocates for n readings.
//
// A writer picks k as in format 1; D, the delta more than half of the
// deltas equal (else their mean, or 0, whichever is cheaper) and w, the
// width that costs least with the escapes. Its runs are greedy, with a
// cost model (see appendValues): a scaled run at the largest exponent
// its first value needs, lowered for a later value that needs a smaller
// one when that costs less than a run of its own; raw runs for values
// that scale at no exponent, or whose integers and the next few deltas
// cost more than their bits and XORs, in whichever of the four kinds is
// shortest. A reader relies on none of these choices.
package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/outposthq/outpost"
)

const (
	// Version is the format version Append writes. Decode reads it and
	// format 1.
	Version = 2
	// version1 is the first format, which Decode still reads.
	version1 = 1
	// MaxReadings is the most readings one chunk holds.
	MaxReadings = 1 << 20
)

// ErrCorrupt is wrapped by every error of Decode, Len and TimeRange that
// comes from the bytes themselves: not a chunk, not a version Decode
// reads, or damaged. The message says what is wrong and at which byte.
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

// Append appends the chunk of the readings to dst, in format 2, and
// returns it. ts are absolute unix ns, in any order; values has one
// value per timestamp; quality is empty when every reading is good,
// else one byte per reading, each 0 (good), 1 (uncertain) or 2 (bad).
// It refuses (and returns dst unchanged) no readings, more than
// MaxReadings, columns of different lengths, a quality byte over 2, and
// timestamps whose deltas, in the chunk's units, overflow int64.
//
// Append allocates nothing when dst has room: a chunk of n readings
// takes at most MaxLen(n) bytes.
func Append(dst []byte, ts []int64, values []float64, quality []byte) ([]byte, error) {
	return appendChunk(dst, ts, values, quality, options{})
}

func appendChunk(dst []byte, ts []int64, values []float64, quality []byte, o options) ([]byte, error) {
	if len(ts) == 0 {
		return dst, errors.New("chunk: no readings")
	}
	if err := checkColumns(len(ts), len(values), quality); err != nil {
		return dst, err
	}
	k := tsExp(maxTSExp, ts)
	fit := true
	for i := 1; i < len(ts) && fit; i++ {
		_, fit = sub64(ts[i], ts[i-1])
	}
	p := appendHeader(dst, len(ts), k)
	switch {
	case fit:
		p = appendTimes(p, nsTimes{ts, k}, len(ts), k, o)
	case k > 0: // in units, where |t| < 2^63/10 and no delta overflows
		p = appendTimes(p, unitTimes{ts, k}, len(ts), k, o)
	default:
		return dst, errDeltaOverflow
	}
	return appendRest(p, values, quality, o), nil
}

// AppendDeltas is Append for timestamps in the wire's delta form
// (outpost.Series.TS): t0 is the absolute time of the first reading and
// deltas[i], for i ≥ 1, the difference to the reading before; deltas[0]
// is not read, so a window lo:hi of a series' TS can be passed with the
// absolute time of reading lo. It also refuses timestamps whose running
// sum leaves int64. It writes the bytes Append writes.
func AppendDeltas(dst []byte, t0 int64, deltas []int64, values []float64, quality []byte) ([]byte, error) {
	if len(deltas) == 0 {
		return dst, errors.New("chunk: no readings")
	}
	if err := checkColumns(len(deltas), len(values), quality); err != nil {
		return dst, err
	}
	t := t0
	for _, d := range deltas[1:] {
		var ok bool
		if t, ok = add64(t, d); !ok {
			return dst, errSumOverflow
		}
	}
	k := tsExp(tsExp(maxTSExp, []int64{t0}), deltas[1:])
	p := appendHeader(dst, len(deltas), k)
	p = appendTimes(p, deltaTimes{t0, deltas, k}, len(deltas), k, options{})
	return appendRest(p, values, quality, options{}), nil
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

// MaxLen is the most bytes a chunk of n readings takes, in either
// format: the header, 11 bytes a timestamp (a packed code and its
// escape), 14 a value (a run header and a varint), and 11 a quality run.
func MaxLen(n int) int {
	return 1 + binary.MaxVarintLen64 + 1 + 3*binary.MaxVarintLen64 + 1 + n*(binary.MaxVarintLen64+1) +
		n*(maxRunHeader+binary.MaxVarintLen64) + 1 + binary.MaxVarintLen64 + n*(binary.MaxVarintLen64+1)
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

var (
	errDeltaOverflow = errors.New("chunk: a delta or a delta of deltas of the timestamps overflows int64")
	errSumOverflow   = errors.New("chunk: the timestamps' running sum overflows int64")
)

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
