package decimal

import (
	"math"
	"testing"
)

func TestExp(t *testing.T) {
	cases := []struct {
		name string
		vs   []float64
		want int
	}{
		{"integers", []float64{1, 2, 400}, 0},
		{"hundreds", []float64{100, 2500, -300}, 2},
		{"zeros", []float64{0, 0}, MaxExp},
		{"two decimals", []float64{23.18, 23.15, 23.1}, -2},
		{"decimals growing later", []float64{21, 21.5, 21.25}, -2},
		{"tiny", []float64{1e-15, 2e-15, 0.00476416302}, -15},
		{"large integers", []float64{1 << 52, -(1 << 52), 1e15}, 0},
		{"too wide", []float64{1e15, 0.001}, Raw},
		{"2^53-1", []float64{1<<53 - 1}, 0},
		{"2^53", []float64{1 << 53}, Raw},
		{"NaN", []float64{1, math.NaN()}, Raw},
		{"Inf", []float64{math.Inf(-1)}, Raw},
		{"negative zero", []float64{math.Copysign(0, -1)}, Raw},
		{"subnormal", []float64{math.SmallestNonzeroFloat64}, Raw},
		{"noise", []float64{math.Nextafter(0.3, 1)}, Raw},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Exp(c.vs); got != c.want {
				t.Fatalf("Exp = %d, want %d", got, c.want)
			}
			if c.want == Raw {
				return
			}
			for _, v := range c.vs {
				n, ok := Scale(v, c.want)
				if !ok || math.Float64bits(Unscale(n, c.want)) != math.Float64bits(v) {
					t.Errorf("Scale(%g, %d) = %d, %v", v, c.want, n, ok)
				}
			}
		})
	}
}

// FuzzScale checks the promise of Scale: whatever it accepts, Unscale
// gives back bit for bit, with the integer in range.
func FuzzScale(f *testing.F) {
	f.Add(23.18, -2)
	f.Add(1e15, 0)
	f.Add(-0.5, -1)
	f.Add(9007199254740991.0, 0)
	f.Fuzz(func(t *testing.T, v float64, e int) {
		if e < MinExp || e > MaxExp {
			return
		}
		n, ok := Scale(v, e)
		if !ok {
			return
		}
		if n <= -MaxScaled || n >= MaxScaled {
			t.Fatalf("Scale(%v, %d) = %d, out of range", v, e, n)
		}
		if math.Float64bits(Unscale(n, e)) != math.Float64bits(v) {
			t.Fatalf("Unscale(Scale(%v, %d)) = %v", v, e, Unscale(n, e))
		}
	})
}
