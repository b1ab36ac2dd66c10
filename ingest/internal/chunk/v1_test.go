package chunk

// The format 1 writer, kept for the tests: stores still hold format 1
// chunks, so Decode and outpost_chunk_unpack must go on reading them.

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/outposthq/outpost/internal/decimal"
)

// appendV1 is Append as format 1 wrote it.
func appendV1(dst []byte, ts []int64, values []float64, quality []byte) ([]byte, error) {
	if len(ts) == 0 {
		return dst, errors.New("chunk: no readings")
	}
	if err := checkColumns(len(ts), len(values), quality); err != nil {
		return dst, err
	}
	k := tsExp(maxTSExp, ts)
	p, err := appendTimesV1(appendHeaderV1(dst, len(ts), k), ts, k)
	if err != nil {
		return dst, err
	}
	return appendRestV1(p, values, quality), nil
}

// appendV1Deltas is AppendDeltas as format 1 wrote it.
func appendV1Deltas(dst []byte, t0 int64, deltas []int64, values []float64, quality []byte) ([]byte, error) {
	if len(deltas) == 0 {
		return dst, errors.New("chunk: no readings")
	}
	if err := checkColumns(len(deltas), len(values), quality); err != nil {
		return dst, err
	}
	k := tsExp(tsExp(maxTSExp, []int64{t0}), deltas[1:])
	p, err := appendDeltaTimesV1(appendHeaderV1(dst, len(deltas), k), t0, deltas, k)
	if err != nil {
		return dst, err
	}
	return appendRestV1(p, values, quality), nil
}

func appendHeaderV1(dst []byte, n, k int) []byte {
	dst = append(dst, version1)
	dst = binary.AppendUvarint(dst, uint64(n))
	return append(dst, byte(k))
}

// appendRestV1 appends the values and quality sections.
func appendRestV1(dst []byte, values []float64, quality []byte) []byte {
	dst = appendValuesV1(dst, values)
	return appendQuality(dst, quality)
}

// appendTimesV1 appends the timestamps section of absolute timestamps ts,
// every one a multiple of 10^k. It works in ns, where a delta of deltas
// is a multiple of 10^k that needs dividing only when it is not zero;
// where ns overflow, in units, where only k = 0 can.
func appendTimesV1(dst []byte, ts []int64, k int) ([]byte, error) {
	u := pow10[k]
	mark := len(dst)
	dst = binary.AppendVarint(dst, ts[0]/u)
	var prev int64 // the delta before, in ns; 0 makes the first dd t1 − t0
	for i := 1; i < len(ts); i++ {
		d, ok := sub64(ts[i], ts[i-1])
		dd, ok2 := sub64(d, prev)
		if !ok || !ok2 {
			return appendTimesUnitsV1(dst[:mark], ts, k)
		}
		prev = d
		if dd != 0 && u != 1 {
			dd /= u
		}
		dst = binary.AppendVarint(dst, dd)
	}
	return dst, nil
}

// appendTimesUnitsV1 is appendTimesV1 in units, for timestamps whose deltas
// or deltas of deltas overflow int64 in ns. With k ≥ 1, |t/10^k| is
// below 2^63/10, so nothing overflows in units.
func appendTimesUnitsV1(dst []byte, ts []int64, k int) ([]byte, error) {
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

// appendDeltaTimesV1 is appendTimesV1 for timestamps in delta form.
func appendDeltaTimesV1(dst []byte, t0 int64, deltas []int64, k int) ([]byte, error) {
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

// appendValuesV1 appends the exponent byte and the values section. It
// picks the exponent as decimal.Exp does, in the same pass that writes
// the integers: when a value needs a smaller exponent than the ones
// before it, it starts over at that exponent (at most 30 times). Those
// before it then scale again, unless an integer grew past 2^53, which a
// smaller exponent cannot mend: then the values go raw, as with Exp.
func appendValuesV1(dst []byte, vs []float64) []byte {
	at := len(dst)
	dst = append(dst, 0)
	e := decimal.MaxExp
	var prev int64
	for i := 0; i < len(vs); i++ {
		n, ok := decimal.Scale(vs[i], e)
		if !ok {
			for !ok {
				if e--; e < decimal.MinExp {
					return appendRawV1(dst[:at], vs)
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

// appendRawV1 appends the exponent byte of raw values and their bits.
func appendRawV1(dst []byte, vs []float64) []byte {
	dst = append(dst, decimal.Raw)
	for _, v := range vs {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
	}
	return dst
}
