package rules

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/outposthq/outpost"
)

var lowerMetrics = []string{"temperature", "humidity"}

// compileBoth compiles src as a rule over lowerMetrics does, returning
// the program for the VM, its lowering (nil if it has none) and how many
// window calls it makes; ok is false if src does not compile.
func compileBoth(src string) (prog *vm.Program, fn func(*exprEnv) bool, calls int, ok bool) {
	xc := newExprCompiler(lowerMetrics)
	p := &patcher{xc: xc}
	prog, err := expr.Compile(src, append(slices.Clone(exprOptions), expr.Patch(p))...)
	if err != nil || len(p.errs) > 0 {
		return nil, nil, 0, false
	}
	return prog, lower(prog.Node(), len(lowerMetrics), len(xc.calls)), len(xc.calls), true
}

// sameAsVM checks the lowered condition against the VM on env.
func sameAsVM(t *testing.T, src string, prog *vm.Program, fn func(*exprEnv) bool, env *exprEnv) {
	t.Helper()
	var machine vm.VM
	want, err := (&exprCond{src: src, prog: prog}).test(&evalCtx{env: env, vm: &machine})
	if err != nil {
		t.Fatalf("%s: the VM failed on value=%g M=%v W=%v, and the lowering cannot: %v", src, env.Value, env.M, env.W, err)
	}
	if got := fn(env); got != want {
		t.Fatalf("%s: lowered %v, VM %v, on value=%g M=%v W=%v", src, got, want, env.Value, env.M, env.W)
	}
}

// lowerValues are the numbers the tests feed: the constants of the
// expressions (for equality), signed zeros, infinities and NaN.
var lowerValues = []float64{0, math.Copysign(0, -1), 1, -1, 2, 2.5, 3, -2.5, 0.1, 1e300, -1e300, math.Inf(1), math.Inf(-1), math.NaN()}

func TestLowered(t *testing.T) {
	for _, tc := range []struct {
		src   string
		lower bool
	}{
		{"value > 2", true},
		{"value > 2 && temperature < 3", true},
		{`avg(temperature, "1m") > 2`, true},
		{`age(humidity) < 5 or min(temperature, "5m") <= -2.5`, true},
		{"not (value >= -2.5) || 1 + 2 > value", true},
		{"-temperature > 1 and +humidity != 0.1", true},
		{"temperature - value * 2 / humidity == 0", true},
		{`metric["humidity"] > last(temperature)`, true},
		{"(value > 1) == (humidity < 2)", true},
		{"value > 2 != true", true},
		{"true", true},
		{"value / 0 > 1", true},
		{"9223372036854775807 + 1 < value", true}, // folded, wrapped, by expr
		// Left to the VM.
		{`labels.room == "a"`, false},
		{"abs(value) > 1", false},
		{"value ** 2 > 1", false},
		{"value in [1, 2]", false},
		{"(value > 1 ? humidity : temperature) > 0", false},
		{"value > 1 && labels.x == 'y'", false},
		{"value > len(labels)", false},
	} {
		t.Run(tc.src, func(t *testing.T) {
			prog, fn, calls, ok := compileBoth(tc.src)
			if !ok {
				t.Fatal("does not compile")
			}
			if (fn != nil) != tc.lower {
				t.Fatalf("lowered: %v, want %v", fn != nil, tc.lower)
			}
			if fn == nil {
				return
			}
			env := &exprEnv{M: make([]float64, 2), W: make([]float64, calls)}
			for _, v := range lowerValues {
				for _, m := range lowerValues {
					env.Value, env.M[0], env.M[1] = v, m, -m
					for i := range env.W {
						env.W[i] = v - m
					}
					sameAsVM(t, tc.src, prog, fn, env)
				}
			}
		})
	}
}

// TestLoweredInRules: a rule's lowerable condition and reset do not run
// in the VM; others do.
func TestLoweredInRules(t *testing.T) {
	set := mustParse(t, `rules:
  - name: a
    select: {metric: t}
    condition: 'value > 2'
    reset: 'value < 1'
  - name: b
    select: {metric: t}
    condition: 'labels.room == "x" && value > 2'
`)
	a, b := set.Rules[0].Levels[0], set.Rules[1].Levels[0]
	if _, ok := a.cond.(*lowered); !ok {
		t.Errorf("a's condition is a %T", a.cond)
	}
	if _, ok := a.reset.(*lowered); !ok {
		t.Errorf("a's reset is a %T", a.reset)
	}
	if _, ok := b.cond.(*exprCond); !ok {
		t.Errorf("b's condition is a %T", b.cond)
	}
	if a.Condition != "value > 2" || a.Reset != "value < 1" {
		t.Errorf("a reads %q, reset %q", a.Condition, a.Reset)
	}
}

// TestLoweredNoAllocs: lowered conditions, windows included, keep Eval's
// path without a transition free of allocations.
func TestLoweredNoAllocs(t *testing.T) {
	e := NewEngine(mustParse(t, `rules:
  - {name: join, select: {metrics: [t, h]}, condition: 'value > 100 && h < 3', for: 1m}
  - {name: win, select: {metric: t}, condition: 'avg(t, "1m") - min(t, "1m") > 100'}
`), nil)
	rs := []outpost.Reading{rd("s1", "t", 0, 20), rd("s1", "h", 0, 50), rd("s2", "t", 0, 20)}
	dst := e.Eval(rs, nil) // first sight of each series allocates
	ts := int64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		ts++
		for i := range rs {
			rs[i].TS = ts * sec
			rs[i].Value = float64(ts % 7)
		}
		dst = e.Eval(rs, dst[:0])
	})
	if allocs != 0 {
		t.Fatalf("Eval allocates %v times per call on the no-transition path", allocs)
	}
	if len(dst) != 0 {
		t.Fatalf("alerts: %v", dst)
	}
}

// TestLoweredMatchesVM compares lowered conditions with the VM over
// random expressions of the subset and random environments.
func TestLoweredMatchesVM(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	nums := []string{"value", "temperature", "humidity", `metric["humidity"]`, `avg(temperature, "1m")`,
		`max(humidity, "5m")`, "age(temperature)", "last(humidity)", "0", "1", "2", "3", "2.5", "0.1", "1e300", "-1"}
	var num func(depth int) string
	num = func(depth int) string {
		if depth == 0 || rng.IntN(3) == 0 {
			return nums[rng.IntN(len(nums))]
		}
		switch rng.IntN(6) {
		case 0:
			return "-(" + num(depth-1) + ")"
		case 1:
			return "(" + num(depth-1) + ")"
		}
		return "(" + num(depth-1) + " " + []string{"+", "-", "*", "/"}[rng.IntN(4)] + " " + num(depth-1) + ")"
	}
	var boolean func(depth int) string
	boolean = func(depth int) string {
		if depth == 0 || rng.IntN(3) == 0 {
			return num(2) + " " + []string{"<", "<=", ">", ">=", "==", "!="}[rng.IntN(6)] + " " + num(2)
		}
		switch rng.IntN(5) {
		case 0:
			return "!(" + boolean(depth-1) + ")"
		case 1:
			return "(" + boolean(depth-1) + ") " + []string{"==", "!="}[rng.IntN(2)] + " (" + boolean(depth-1) + ")"
		}
		return "(" + boolean(depth-1) + ") " + []string{"&&", "||", "and", "or"}[rng.IntN(4)] + " (" + boolean(depth-1) + ")"
	}
	lowered := 0
	const n = 2000
	for range n {
		src := boolean(3)
		prog, fn, calls, ok := compileBoth(src)
		if !ok {
			t.Fatalf("%s does not compile", src)
		}
		if fn == nil {
			continue // int arithmetic the optimizer did not fold: the VM's
		}
		lowered++
		env := &exprEnv{M: make([]float64, 2), W: make([]float64, calls)}
		for range 50 {
			env.Value = lowerValues[rng.IntN(len(lowerValues))]
			for i := range env.M {
				env.M[i] = lowerValues[rng.IntN(len(lowerValues))]
			}
			for i := range env.W {
				env.W[i] = lowerValues[rng.IntN(len(lowerValues))]
			}
			sameAsVM(t, src, prog, fn, env)
		}
	}
	if lowered < n*9/10 {
		t.Errorf("only %d of %d expressions of the subset were lowered", lowered, n)
	}
}

// FuzzLowered: whatever the expression, a lowered condition agrees with
// the VM.
func FuzzLowered(f *testing.F) {
	f.Add("value > 2 && temperature < 3", 2.5, 1.0, 0.0, 0.0)
	f.Add(`avg(temperature, "1m") / humidity >= -value`, 1.0, 0.0, 0.0, math.Inf(1))
	f.Add("!(humidity == 0) != (value < 1e300)", math.NaN(), 0.0, math.Copysign(0, -1), 0.0)
	f.Add("1 + 2 * 3 > value - 4 / 8", 6.5, 0.0, 0.0, 0.0)
	f.Fuzz(func(t *testing.T, src string, v, m0, m1, w float64) {
		if len(src) > 200 || strings.ContainsAny(src, "\x00") {
			return
		}
		prog, fn, calls, ok := compileBoth(src)
		if !ok || fn == nil {
			return
		}
		env := &exprEnv{Value: v, M: []float64{m0, m1}, W: make([]float64, calls)}
		for i := range env.W {
			env.W[i] = w + float64(i)
		}
		sameAsVM(t, fmt.Sprintf("%q", src), prog, fn, env)
	})
}
