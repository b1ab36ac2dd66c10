package yamlpos

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// The decoders of scalars: each sets v from node n or reports why not.

func (dc *decoder) str(path string, n ast.Node, v reflect.Value) {
	switch t := n.(type) {
	case *ast.StringNode:
		v.SetString(t.Value)
	case *ast.LiteralNode:
		if t.Value != nil {
			v.SetString(t.Value.Value)
		}
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		// The text as written: an id of 007 stays "007".
		v.SetString(nodeText(t))
	default:
		dc.typeErr(path, n, "a string")
	}
}

func (dc *decoder) integer(path string, n ast.Node, v reflect.Value) {
	var x int64
	switch t := n.(type) {
	case *ast.IntegerNode:
		switch iv := t.Value.(type) {
		case int64:
			x = iv
		case uint64:
			if iv > math.MaxInt64 {
				dc.fail(path, n, "%s is out of range", nodeText(n))
				return
			}
			x = int64(iv)
		default:
			dc.typeErr(path, n, "an integer")
			return
		}
	case *ast.FloatNode:
		if t.Value != math.Trunc(t.Value) || math.Abs(t.Value) >= 1<<63 {
			dc.typeErr(path, n, "an integer")
			return
		}
		x = int64(t.Value)
	default:
		dc.typeErr(path, n, "an integer")
		return
	}
	if v.OverflowInt(x) {
		dc.fail(path, n, "%s is out of range", nodeText(n))
		return
	}
	v.SetInt(x)
}

func (dc *decoder) unsigned(path string, n ast.Node, v reflect.Value) {
	var x uint64
	switch t := n.(type) {
	case *ast.IntegerNode:
		switch iv := t.Value.(type) {
		case int64:
			if iv < 0 {
				dc.fail(path, n, "%s is negative", nodeText(n))
				return
			}
			x = uint64(iv)
		case uint64:
			x = iv
		default:
			dc.typeErr(path, n, "an integer")
			return
		}
	case *ast.FloatNode:
		if t.Value != math.Trunc(t.Value) || t.Value < 0 || t.Value >= 1<<64 {
			dc.typeErr(path, n, "a non-negative integer")
			return
		}
		x = uint64(t.Value)
	default:
		dc.typeErr(path, n, "an integer")
		return
	}
	if v.OverflowUint(x) {
		dc.fail(path, n, "%s is out of range", nodeText(n))
		return
	}
	v.SetUint(x)
}

func (dc *decoder) float(path string, n ast.Node, v reflect.Value) {
	x, ok := number(n)
	switch {
	case !ok:
		dc.typeErr(path, n, "a number")
	case math.IsNaN(x) || math.IsInf(x, 0):
		dc.fail(path, n, "expected a finite number, got %s", nodeText(n))
	case v.OverflowFloat(x):
		dc.fail(path, n, "%s is out of range", nodeText(n))
	default:
		v.SetFloat(x)
	}
}

func (dc *decoder) duration(path string, n ast.Node, v reflect.Value) {
	const want = "like 500ms, 1s or 10m"
	switch t := n.(type) {
	case *ast.StringNode:
		d, err := time.ParseDuration(strings.TrimSpace(t.Value))
		if err != nil {
			dc.fail(path, n, "invalid duration %q (want a number with a unit, %s)", t.Value, want)
			return
		}
		v.SetInt(int64(d))
	case *ast.IntegerNode, *ast.FloatNode:
		if x, _ := number(n); x == 0 {
			v.SetInt(0)
			return
		}
		dc.fail(path, n, "duration %s has no unit (write it %s)", nodeText(n), want)
	default:
		dc.typeErr(path, n, "a duration "+want)
	}
}

func (dc *decoder) custom(path string, n ast.Node, u ScalarUnmarshaler) {
	var x any
	switch t := n.(type) {
	case *ast.StringNode:
		x = t.Value
	case *ast.LiteralNode:
		if t.Value != nil {
			x = t.Value.Value
		}
	case *ast.IntegerNode:
		x = t.Value
		if u, ok := t.Value.(uint64); ok && u <= math.MaxInt64 {
			x = int64(u) // go-yaml gives uint64 for some non-negative literals
		}
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		x, _ = number(n)
	case *ast.BoolNode:
		x = t.Value
	default:
		dc.typeErr(path, n, "a single value")
		return
	}
	if err := u.UnmarshalYAMLScalar(x); err != nil {
		dc.fail(path, n, "%s", err.Error())
	}
}

// number returns the value of a numeric scalar.
func number(n ast.Node) (float64, bool) {
	switch t := n.(type) {
	case *ast.IntegerNode:
		switch iv := t.Value.(type) {
		case int64:
			return float64(iv), true
		case uint64:
			return float64(iv), true
		}
	case *ast.FloatNode:
		return t.Value, true
	case *ast.InfinityNode:
		return t.Value, true
	case *ast.NanNode:
		return math.NaN(), true
	}
	return 0, false
}

// describe says what a node is, for "expected X, got Y".
func describe(n ast.Node) string {
	switch t := n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a sequence"
	case *ast.StringNode:
		s := t.Value
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return strconv.Quote(s)
	case *ast.LiteralNode:
		return "a block of text"
	}
	return nodeText(n)
}
