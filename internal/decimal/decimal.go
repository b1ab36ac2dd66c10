// Package decimal writes float64 values as scaled decimal integers when
// that is exact: v == n × 10^e, with n an integer below 2^53 in magnitude
// and e a small exponent. The wire codec (value_exp) and the ingest
// series chunks share it, so a value takes the same integer in both.
//
// Exactness rests on two facts: float64(n) is exact for |n| < 2^53, and
// 10^|e| is exact for |e| ≤ 15 (and ≤ 22), so Unscale rounds once, to the
// double nearest the decimal n × 10^e. Any implementation that divides
// (e < 0) or multiplies (e ≥ 0) those two exact doubles in IEEE 754
// double precision gets the same bits, which is what lets a decoder in
// another language (such as SQL) agree with this one.
package decimal

import "math"

const (
	// MinExp and MaxExp bound the exponents Scale and Exp use.
	MinExp = -15
	MaxExp = 15
	// Raw is what Exp returns when no exponent in MinExp…MaxExp scales
	// every value: the values must be stored as floats.
	Raw = 127
	// MaxScaled bounds the integers: |n| < MaxScaled, so float64(n) is
	// exact.
	MaxScaled = 1 << 53
)

// pow10 holds 10^0 … 10^15, all exact in float64.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// Unscale returns n × 10^e, rounded once: float64(n) divided by 10^-e
// for e < 0, else multiplied by 10^e. e must be in MinExp…MaxExp and
// |n| below MaxScaled for the result to be the double nearest the
// decimal.
func Unscale(n int64, e int) float64 {
	if e < 0 {
		return float64(n) / pow10[-e]
	}
	return float64(n) * pow10[e]
}

// Scale returns n with Unscale(n, e) == v bit for bit and |n| < MaxScaled,
// if there is one. e must be in MinExp…MaxExp. NaN, ±Inf and -0 never
// scale.
func Scale(v float64, e int) (int64, bool) {
	var f float64
	if e < 0 {
		f = math.Round(v * pow10[-e])
	} else {
		f = math.Round(v / pow10[e])
	}
	if !(f > -MaxScaled && f < MaxScaled) { // also NaN
		return 0, false
	}
	n := int64(f)
	return n, math.Float64bits(Unscale(n, e)) == math.Float64bits(v)
}

// Exp returns the largest exponent in MinExp…MaxExp at which every value
// scales, or Raw if there is none.
func Exp(vs []float64) int {
	e, changed := MaxExp, 0
	for i, v := range vs {
		for {
			if _, ok := Scale(v, e); ok {
				break
			}
			if e--; e < MinExp {
				return Raw
			}
			changed = i
		}
	}
	// A value that scaled at a larger exponent scales at a smaller one,
	// unless its integer grew past 2^53.
	for _, v := range vs[:changed] {
		if _, ok := Scale(v, e); !ok {
			return Raw
		}
	}
	return e
}
