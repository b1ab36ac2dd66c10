package rules

import (
	"reflect"

	"github.com/expr-lang/expr/ast"
)

// lowered is an expression condition compiled to Go closures instead of
// expr bytecode. Running a program in expr's VM costs a few hundred
// nanoseconds and allocates (it fetches env fields by reflection and
// boxes numbers); with many rules per reading that is most of the
// engine's time. Most conditions are arithmetic and comparisons over
// value, metrics and windows joined by and/or, so lower handles those
// and leaves the rest to the VM, with the same results either way
// (TestLoweredMatchesVM).
type lowered struct {
	src string
	fn  func(*exprEnv) bool
}

// The subset never fails at run time (an index is a slot the compiler
// made, division by zero is ±Inf or NaN), as in the VM.
func (c *lowered) test(x *evalCtx) (bool, error) { return c.fn(x.env), nil }

func (c *lowered) String() string { return c.src }

// lower turns a checked and patched expression into a function, or
// returns nil if it has anything outside the subset: numbers, value,
// __m[i] (i < metrics) and __w[i] (i < calls), unary - and +, + - * /
// with a float operand, the six comparisons of numbers, and !, not, &&,
// and, ||, or, == and != over booleans.
func lower(n ast.Node, metrics, calls int) func(*exprEnv) bool {
	l := lowerer{metrics: metrics, calls: calls}
	return l.boolean(n)
}

type lowerer struct {
	metrics, calls int
}

func (l lowerer) boolean(n ast.Node) func(*exprEnv) bool {
	switch n := n.(type) {
	case *ast.BoolNode:
		v := n.Value
		return func(*exprEnv) bool { return v }
	case *ast.ConstantNode:
		v, ok := n.Value.(bool)
		if !ok {
			return nil
		}
		return func(*exprEnv) bool { return v }
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil
		}
		x := l.boolean(n.Node)
		if x == nil {
			return nil
		}
		return func(e *exprEnv) bool { return !x(e) }
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			a, b := l.boolean(n.Left), l.boolean(n.Right)
			if a == nil || b == nil {
				return nil
			}
			if n.Operator == "&&" || n.Operator == "and" {
				return func(e *exprEnv) bool { return a(e) && b(e) }
			}
			return func(e *exprEnv) bool { return a(e) || b(e) }
		case "==", "!=":
			if isBool(n.Left) && isBool(n.Right) {
				a, b := l.boolean(n.Left), l.boolean(n.Right)
				if a == nil || b == nil {
					return nil
				}
				if n.Operator == "==" {
					return func(e *exprEnv) bool { return a(e) == b(e) }
				}
				return func(e *exprEnv) bool { return a(e) != b(e) }
			}
			return l.compare(n)
		case "<", "<=", ">", ">=":
			return l.compare(n)
		}
	}
	return nil
}

func isBool(n ast.Node) bool {
	t := n.Type()
	return t != nil && t.Kind() == reflect.Bool
}

// compare lowers a comparison of two numbers.
func (l lowerer) compare(n *ast.BinaryNode) func(*exprEnv) bool {
	a, okA := l.number(n.Left)
	b, okB := l.number(n.Right)
	if !okA || !okB {
		return nil
	}
	switch n.Operator {
	case "<":
		return func(e *exprEnv) bool { return a.get(e) < b.get(e) }
	case "<=":
		return func(e *exprEnv) bool { return a.get(e) <= b.get(e) }
	case ">":
		return func(e *exprEnv) bool { return a.get(e) > b.get(e) }
	case ">=":
		return func(e *exprEnv) bool { return a.get(e) >= b.get(e) }
	case "==":
		return func(e *exprEnv) bool { return a.get(e) == b.get(e) }
	case "!=":
		return func(e *exprEnv) bool { return a.get(e) != b.get(e) }
	}
	return nil
}

// num is a lowered number: the common leaves inline, anything else a
// function.
type num struct {
	kind  numKind
	i     int
	c     float64
	fn    func(*exprEnv) float64
	isInt bool // an integer constant (expr keeps int arithmetic int)
}

type numKind uint8

const (
	numConst numKind = iota
	numValue
	numMetric
	numWindow
	numFunc
)

func (n *num) get(e *exprEnv) float64 {
	switch n.kind {
	case numConst:
		return n.c
	case numValue:
		return e.Value
	case numMetric:
		return e.M[n.i]
	case numWindow:
		return e.W[n.i]
	}
	return n.fn(e)
}

func (l lowerer) number(n ast.Node) (num, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return num{kind: numConst, c: float64(n.Value), isInt: true}, true
	case *ast.FloatNode:
		return num{kind: numConst, c: n.Value}, true
	case *ast.ConstantNode:
		switch v := n.Value.(type) {
		case int:
			return num{kind: numConst, c: float64(v), isInt: true}, true
		case float64:
			return num{kind: numConst, c: v}, true
		}
	case *ast.IdentifierNode:
		if n.Value == "value" {
			return num{kind: numValue}, true
		}
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		ix, isInt := n.Property.(*ast.IntegerNode)
		if !ok || !isInt || n.Optional || n.Method || ix.Value < 0 {
			return num{}, false
		}
		switch {
		case id.Value == "__m" && ix.Value < l.metrics:
			return num{kind: numMetric, i: ix.Value}, true
		case id.Value == "__w" && ix.Value < l.calls:
			return num{kind: numWindow, i: ix.Value}, true
		}
	case *ast.UnaryNode:
		x, ok := l.number(n.Node)
		if !ok || x.isInt { // an int stays an int in expr: leave it to the VM
			return num{}, false
		}
		switch n.Operator {
		case "+":
			return x, true
		case "-":
			return num{kind: numFunc, fn: func(e *exprEnv) float64 { return -x.get(e) }}, true
		}
	case *ast.BinaryNode:
		a, okA := l.number(n.Left)
		b, okB := l.number(n.Right)
		// int op int is int arithmetic in expr (the optimizer folds
		// constants, so this is rare): leave it to the VM.
		if !okA || !okB || a.isInt && b.isInt {
			return num{}, false
		}
		var fn func(*exprEnv) float64
		switch n.Operator {
		case "+":
			fn = func(e *exprEnv) float64 { return a.get(e) + b.get(e) }
		case "-":
			fn = func(e *exprEnv) float64 { return a.get(e) - b.get(e) }
		case "*":
			fn = func(e *exprEnv) float64 { return a.get(e) * b.get(e) }
		case "/":
			fn = func(e *exprEnv) float64 { return a.get(e) / b.get(e) }
		default:
			return num{}, false
		}
		return num{kind: numFunc, fn: fn}, true
	}
	return num{}, false
}
