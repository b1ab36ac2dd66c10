package ruletest

import (
	"errors"
	"slices"
	"testing"
)

func TestParseValues(t *testing.T) {
	m := Sample{Missing: true}
	v := func(xs ...float64) []Sample {
		out := make([]Sample, len(xs))
		for i, x := range xs {
			out[i] = Sample{Value: x}
		}
		return out
	}
	cases := []struct {
		in   string
		want []Sample
	}{
		{"1 2 3", v(1, 2, 3)},
		{"  -2+4x3 ", v(-2, 2, 6, 10)},     // promtool's example
		{"1-2x4", v(1, -1, -3, -5, -7)},    // promtool's example
		{"1x4", v(1, 1, 1, 1, 1)},          // n+1 samples, as promtool
		{"-14x2", v(-14, -14, -14)},        // a negative start is not a step
		{"1e-3+1e3x1", v(0.001, 1000.001)}, // an exponent's sign is not a step
		{"0.5+0.25x2", v(0.5, 0.75, 1)},
		{"1 _ 2", []Sample{{Value: 1}, m, {Value: 2}}},
		{"_x3 7", []Sample{m, m, m, {Value: 7}}}, // _xn is n gaps, as promtool
		{"5x0", v(5)},
		{"1\t2\n3", v(1, 2, 3)},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseValues(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestParseValuesErrors(t *testing.T) {
	cases := []struct {
		in     string
		offset int
		term   string
	}{
		{"1 2 x3", 4, "x3"},
		{"1 abc", 2, "abc"},
		{"1 2x", 2, "2x"},
		{"1 2x-1", 2, "2x-1"},
		{"1 2x+1", 2, "2x+1"},
		{"NaN", 0, "NaN"},
		{"1 +Inf", 2, "+Inf"},
		{"1+x3", 0, "1+x3"},
		{"1x99999999999", 0, "1x99999999999"},
		{"1x2000000", 0, "1x2000000"},
		{"stale", 0, "stale"},
		{"", 0, ""},
		{"   ", 0, ""},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			_, err := ParseValues(c.in)
			var ve *ValuesError
			if !errors.As(err, &ve) {
				t.Fatalf("err %v, want a *ValuesError", err)
			}
			if ve.Offset != c.offset || ve.Term != c.term {
				t.Fatalf("offset %d term %q, want %d %q (%v)", ve.Offset, ve.Term, c.offset, c.term, err)
			}
		})
	}
}

func FuzzParseValues(f *testing.F) {
	for _, s := range []string{"1 2 3", "-2+4x3", "_x3 1e-3+1x2", "1x4 _ 5", "x", "1-x", "--1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseValues(s)
		if err != nil {
			var ve *ValuesError
			if !errors.As(err, &ve) || ve.Offset < 0 || ve.Offset > len(s) {
				t.Fatalf("%q: bad error %v", s, err)
			}
			return
		}
		if len(got) == 0 || len(got) > maxSamples {
			t.Fatalf("%q: %d samples", s, len(got))
		}
		for _, x := range got {
			if x.Missing && x.Value != 0 || x.Value != x.Value {
				t.Fatalf("%q: bad sample %+v", s, x)
			}
		}
	})
}
