package rules

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// condition decides whether an instance meets a level (or its reset).
type condition interface {
	test(x *evalCtx) (bool, error)
	String() string // the condition in words, for Level.Condition
}

// evalCtx is what a condition sees: the instance's environment and the
// engine's reusable VM.
type evalCtx struct {
	env *exprEnv
	vm  *vm.VM
}

// exprEnv is the typed environment conditions compile against. Metric
// identifiers and window calls are rewritten into M[i] and W[i].
type exprEnv struct {
	Value  float64           `expr:"value"`
	Labels map[string]string `expr:"labels"`
	M      []float64         `expr:"__m"` // latest value of each selected metric
	W      []float64         `expr:"__w"` // value of each window call, at evaluation time
}

// threshold is `above: x` (value > x) or `below: x` (value < x).
type threshold struct {
	above bool
	x     float64
}

func (t threshold) test(x *evalCtx) (bool, error) {
	if t.above {
		return x.env.Value > t.x, nil
	}
	return x.env.Value < t.x, nil
}

func (t threshold) String() string {
	op := "<"
	if t.above {
		op = ">"
	}
	return "value " + op + " " + strconv.FormatFloat(t.x, 'g', -1, 64)
}

// exprCond is a compiled expression.
type exprCond struct {
	src  string
	prog *vm.Program
}

func (c *exprCond) test(x *evalCtx) (bool, error) {
	out, err := x.vm.Run(c.prog, x.env)
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("condition gave %T, not bool", out)
	}
	return b, nil
}

func (c *exprCond) String() string { return c.src }

// windowFn is a function over a metric in an instance's group.
type windowFn uint8

const (
	fnAvg windowFn = iota
	fnMin
	fnMax
	fnCount
	fnRate
	fnAge
)

var windowFns = map[string]windowFn{
	"avg": fnAvg, "min": fnMin, "max": fnMax, "count": fnCount,
	"rate": fnRate, "derivative": fnRate, "age": fnAge, "last": fnAge, // last is rewritten to __m
}

// windowSpec is one window an instance keeps: a metric over a duration.
type windowSpec struct {
	metric   int
	dur      int64
	min, max bool // keep the monotonic deques
}

// callSpec is one window call: W[i] = fn over windows[win] (or, for age,
// over metric).
type callSpec struct {
	fn     windowFn
	win    int
	metric int
}

// exprCompiler compiles the expressions of one rule, which share its
// metrics and windows.
type exprCompiler struct {
	metrics map[string]int
	names   []string
	windows []windowSpec
	calls   []callSpec
}

func newExprCompiler(metrics []string) *exprCompiler {
	xc := &exprCompiler{metrics: map[string]int{}, names: metrics}
	for i, m := range metrics {
		xc.metrics[m] = i
	}
	return xc
}

// stub stands in for the window functions, so that expr parses them as
// calls (not as its builtins) and types them; every call is rewritten
// before it can run.
func stub(...any) (any, error) { return nil, errors.New("window function not rewritten") }

var exprOptions = []expr.Option{
	expr.Env(&exprEnv{}),
	expr.AsBool(),
	expr.Function("avg", stub, new(func(float64, string) float64)),
	expr.Function("min", stub, new(func(float64, string) float64)),
	expr.Function("max", stub, new(func(float64, string) float64)),
	expr.Function("count", stub, new(func(float64, string) float64)),
	expr.Function("rate", stub, new(func(float64, string) float64)),
	expr.Function("derivative", stub, new(func(float64, string) float64)),
	expr.Function("last", stub, new(func(float64) float64)),
	expr.Function("age", stub, new(func(float64) float64)),
}

// compile compiles src, the value at path, reporting errors positioned
// inside the expression.
func (xc *exprCompiler) compile(k *checker, path, src string) condition {
	p := &patcher{xc: xc}
	opts := append(append([]expr.Option{}, exprOptions...), expr.Patch(p))
	prog, err := expr.Compile(src, opts...)
	for _, pe := range p.errs {
		line, col := exprPos(src, pe.from)
		k.exprErrorf(path, line, col, "%s", pe.msg)
	}
	if err != nil {
		var fe *file.Error
		msg, line, col := err.Error(), 1, 1
		if errors.As(err, &fe) {
			msg, line, col = fe.Message, fe.Line, fe.Column+1
			if fe.Line == 0 {
				line, col = exprPos(src, fe.From)
			}
		}
		if len(p.errs) == 0 || !strings.Contains(msg, "__") {
			k.exprErrorf(path, line, col, "%s", msg)
		}
		return nil
	}
	if len(p.errs) > 0 {
		return nil
	}
	if fn := lower(prog.Node(), len(xc.names), len(xc.calls)); fn != nil {
		return &lowered{src: src, fn: fn}
	}
	return &exprCond{src: src, prog: prog}
}

// patcher rewrites metric identifiers into __m[i] and window calls into
// __w[i], collecting what it cannot rewrite.
type patcher struct {
	xc   *exprCompiler
	errs []patchErr
}

type patchErr struct {
	from int
	msg  string
}

func (p *patcher) errorf(n ast.Node, format string, args ...any) {
	p.errs = append(p.errs, patchErr{n.Location().From, fmt.Sprintf(format, args...)})
}

func ref(slot string, i int) ast.Node {
	return &ast.MemberNode{Node: &ast.IdentifierNode{Value: slot}, Property: &ast.IntegerNode{Value: i}}
}

// metricOf returns the metric index of an already rewritten metric
// reference.
func metricOf(n ast.Node) (int, bool) {
	m, ok := n.(*ast.MemberNode)
	if !ok {
		return 0, false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "__m" {
		return 0, false
	}
	i, ok := m.Property.(*ast.IntegerNode)
	if !ok {
		return 0, false
	}
	return i.Value, true
}

func (p *patcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		switch n.Value {
		case "value", "labels", "metric":
			return
		}
		if i, ok := p.xc.metrics[n.Value]; ok {
			ast.Patch(node, ref("__m", i))
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || id.Value != "metric" {
			return
		}
		s, ok := n.Property.(*ast.StringNode)
		if !ok {
			p.errorf(n, "metric[...] takes a constant metric name")
			ast.Patch(node, &ast.FloatNode{})
			return
		}
		i, ok := p.xc.metrics[s.Value]
		if !ok {
			p.errorf(n, "metric %q is not selected by the rule (it selects %s)", s.Value, strings.Join(p.xc.names, ", "))
			ast.Patch(node, &ast.FloatNode{})
			return
		}
		ast.Patch(node, ref("__m", i))
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok {
			return
		}
		fn, ok := windowFns[id.Value]
		if !ok {
			return
		}
		p.call(node, n, id.Value, fn)
	}
}

func (p *patcher) call(node *ast.Node, n *ast.CallNode, name string, fn windowFn) {
	bad := func(format string, args ...any) {
		p.errorf(n, format, args...)
		ast.Patch(node, &ast.FloatNode{})
	}
	windowed := fn != fnAge
	want := 1
	if windowed {
		want = 2
	}
	if len(n.Arguments) != want {
		if windowed {
			bad("%s takes a metric and a duration, like %s(temperature, \"5m\")", name, name)
		} else {
			bad("%s takes a metric, like %s(temperature)", name, name)
		}
		return
	}
	m, ok := metricOf(n.Arguments[0])
	if !ok {
		if id, isID := n.Arguments[0].(*ast.IdentifierNode); isID {
			bad("%s: %q is not a metric the rule selects (it selects %s)", name, id.Value, strings.Join(p.xc.names, ", "))
		} else {
			bad("%s: the first argument must be a metric the rule selects (%s)", name, strings.Join(p.xc.names, ", "))
		}
		return
	}
	if name == "last" {
		ast.Patch(node, ref("__m", m))
		return
	}
	if !windowed {
		p.xc.calls = append(p.xc.calls, callSpec{fn: fn, metric: m})
		ast.Patch(node, ref("__w", len(p.xc.calls)-1))
		return
	}
	s, ok := n.Arguments[1].(*ast.StringNode)
	if !ok {
		bad("%s: the window must be a constant duration, like \"5m\"", name)
		return
	}
	d, err := time.ParseDuration(s.Value)
	if err != nil || d <= 0 {
		bad("%s: invalid window %q (want a positive duration like \"30s\" or \"5m\")", name, s.Value)
		return
	}
	w := -1
	for i, ws := range p.xc.windows {
		if ws.metric == m && ws.dur == int64(d) {
			w = i
		}
	}
	if w < 0 {
		p.xc.windows = append(p.xc.windows, windowSpec{metric: m, dur: int64(d)})
		w = len(p.xc.windows) - 1
	}
	p.xc.windows[w].min = p.xc.windows[w].min || fn == fnMin
	p.xc.windows[w].max = p.xc.windows[w].max || fn == fnMax
	p.xc.calls = append(p.xc.calls, callSpec{fn: fn, win: w, metric: m})
	ast.Patch(node, ref("__w", len(p.xc.calls)-1))
}

// exprPos turns a rune offset in src into a 1-based line and column.
func exprPos(src string, from int) (line, col int) {
	line, col = 1, 1
	for i, r := range src {
		if utf8.RuneCountInString(src[:i]) >= from {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// exprErrorf reports an error at line:col of the expression at path,
// translated to the file: a plain or quoted scalar starts at its value's
// position (after the quote), a block scalar (| or >) on the next line,
// at its indentation.
func (k *checker) exprErrorf(path string, line, col int, format string, args ...any) {
	if k.doc.Failed(path) {
		return
	}
	e := k.doc.Errorf(path, format, args...)
	if e.Line == 0 {
		k.errs = append(k.errs, e)
		return
	}
	lines := strings.Split(string(k.src), "\n")
	if e.Line > len(lines) {
		k.errs = append(k.errs, e)
		return
	}
	at := lines[e.Line-1]
	c := byte(0)
	if e.Col-1 < len(at) {
		c = at[e.Col-1]
	}
	switch c {
	case '|', '>':
		l := e.Line + line
		if l <= len(lines) && e.Line < len(lines) {
			first := lines[e.Line] // the block's indentation is its first line's
			indent := len(first) - len(strings.TrimLeft(first, " "))
			e.Line, e.Col = l, indent+col
		}
	case '\'', '"':
		if line == 1 {
			e.Col += col
		}
	default:
		if line == 1 {
			e.Col += col - 1
		}
	}
	k.errs = append(k.errs, e)
}

// nan is returned by an empty window.
var nan = math.NaN()
