package ruletest

import (
	"fmt"
	"strconv"
	"strings"
)

// Sample is one step of an input series: a value, or no reading at all.
type Sample struct {
	Value   float64
	Missing bool // "_": no reading at this step
}

// ValuesError is a bad term in a values string. Offset is the byte offset
// of the term in the string, so that the test file's error can point at
// the term itself.
type ValuesError struct {
	Offset int
	Term   string
	Msg    string
}

func (e *ValuesError) Error() string { return fmt.Sprintf("%q: %s", e.Term, e.Msg) }

// maxSamples bounds what one values string may expand to: "1x1000000000"
// is short to write and must not exhaust memory.
const maxSamples = 1 << 20

// ParseValues expands promtool's notation for a series, one sample per
// step, terms separated by spaces:
//
//	a        the value a
//	_        no reading at this step
//	a+bxn    a, a+b, a+2b, …, a+nb (n+1 samples)
//	a-bxn    a, a-b, …, a-nb (n+1 samples)
//	axn      a repeated n+1 times (short for a+0xn)
//	_xn      n steps without a reading
//
// Values are Go floats ("1e3", "-0.5", "NaN" is refused: the engine
// ignores NaN readings, write "_" for a gap).
func ParseValues(s string) ([]Sample, error) {
	var out []Sample
	for i := 0; i < len(s); {
		if s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '\n' && s[j] != '\r' {
			j++
		}
		var err error
		if out, err = expand(out, s[i:j]); err != nil {
			return nil, &ValuesError{Offset: i, Term: s[i:j], Msg: err.Error()}
		}
		i = j
	}
	if len(out) == 0 {
		return nil, &ValuesError{Msg: "no samples"}
	}
	return out, nil
}

// expand appends the samples of one term to out.
func expand(out []Sample, term string) ([]Sample, error) {
	base, count, hasX := strings.Cut(term, "x")
	n := 0
	if hasX {
		var err error
		n, err = strconv.Atoi(count)
		if err != nil || n < 0 || count[0] == '+' {
			return nil, fmt.Errorf("the count after x must be a non-negative integer")
		}
		if len(out)+n+1 > maxSamples {
			return nil, fmt.Errorf("expands to more than %d samples", maxSamples)
		}
	}
	if base == "_" {
		if !hasX {
			return append(out, Sample{Missing: true}), nil
		}
		for range n {
			out = append(out, Sample{Missing: true})
		}
		return out, nil
	}
	start, step := base, "0"
	if hasX {
		// The sign of the step is the last + or - that is not the value's
		// own sign or an exponent's ("1e-3+1x2").
		for k := len(base) - 1; k > 0; k-- {
			if (base[k] == '+' || base[k] == '-') && base[k-1] != 'e' && base[k-1] != 'E' {
				start, step = base[:k], base[k:]
				break
			}
		}
	}
	a, err := number(start)
	if err != nil {
		return nil, err
	}
	if !hasX {
		return append(out, Sample{Value: a}), nil
	}
	b, err := number(step)
	if err != nil {
		return nil, err
	}
	for k := 0; k <= n; k++ {
		out = append(out, Sample{Value: a + float64(k)*b})
	}
	return out, nil
}

func number(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v != v || v-v != 0 { // NaN or ±Inf
		return 0, fmt.Errorf("%q is not a finite number (terms: a, _, a+bxn, a-bxn, axn, _xn)", s)
	}
	return v, nil
}
