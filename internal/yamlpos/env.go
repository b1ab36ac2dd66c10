package yamlpos

import (
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// Limits of environment expansion. A scalar that would grow past
// MaxExpanded is an error, found before the value is built; so is a file
// whose expansions add up to more than maxExpandedTotal.
const (
	MaxExpanded      = 64 << 10
	maxExpandedTotal = 4 << 20
)

// target is what a field makes of an expanded scalar.
type target int

const (
	notScalar target = iota // a struct, slice or map: nothing to expand
	asText                  // a string field: the text as it is
	asTyped                 // anything else: the text read as an unquoted scalar
)

// targetOf says what a value of type t makes of an expanded scalar,
// following the rules of decoder.assign.
func targetOf(t reflect.Type) target {
	for {
		if t == durationType {
			return asTyped
		}
		if reflect.PointerTo(t).Implements(scalarUnmarshalerType) {
			if t.Kind() == reflect.String {
				return asText
			}
			return asTyped
		}
		switch t.Kind() {
		case reflect.Pointer:
			t = t.Elem()
			continue
		case reflect.String:
			return asText
		case reflect.Bool,
			reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64:
			return asTyped
		}
		return notScalar
	}
}

var scalarUnmarshalerType = reflect.TypeFor[ScalarUnmarshaler]()

// expandKey is one expansion: a node, for one kind of target (an anchored
// scalar can be used by both kinds of field).
type expandKey struct {
	n ast.Node
	t target
}

// expand returns the scalar that n, holding references to environment
// variables, stands for in a field of type t. n is returned as it is
// when expansion is off, when it holds no $, and when t is not a scalar
// type (the type error then shows the reference, not a value). ok is
// false when the references are wrong; the errors are reported.
func (dc *decoder) expand(path string, n ast.Node, t reflect.Type) (ast.Node, bool) {
	if dc.doc.lookupEnv == nil {
		return n, true
	}
	var text string
	switch s := n.(type) {
	case *ast.StringNode:
		text = s.Value
	case *ast.LiteralNode:
		if s.Value == nil {
			return n, true
		}
		text = s.Value.Value
	default:
		return n, true
	}
	tgt := targetOf(t)
	if tgt == notScalar || !strings.Contains(text, "$") {
		return n, true
	}
	// An alias uses its anchor's node again: expand it once, so that an
	// alias bomb costs no more than the file's own text.
	key := expandKey{n, tgt}
	r, done := dc.expanded[key]
	if !done {
		r = dc.expandNode(path, n, text, tgt)
		if dc.expanded == nil {
			dc.expanded = map[expandKey]ast.Node{}
		}
		dc.expanded[key] = r
	}
	if r == nil {
		dc.doc.failed[path] = true // reported once, where first used
		return nil, false
	}
	if isNull(r) {
		// Has and Pos treat the field as the null it became.
		if f, ok := dc.doc.fields[path]; ok {
			f.val = r
			dc.doc.fields[path] = f
		}
	}
	return r, true
}

func (dc *decoder) expandNode(path string, n ast.Node, text string, tgt target) ast.Node {
	refs := scanRefs(text)
	size, failed := len(text), false
	vals := make([]string, len(refs))
	for i, r := range refs {
		var v string
		switch {
		case r.dollar:
			v = "$"
		case r.err != "":
			dc.failRef(path, n, i, "%q: %s", quoteRef(text[r.start:r.end]), r.err)
			failed = true
			continue
		default:
			val, set := dc.doc.lookupEnv(r.name)
			switch {
			case set && (val != "" || !r.hasDefault):
				v = val
			case r.hasDefault:
				v = r.def
			default:
				dc.failRef(path, n, i, "environment variable %s is not set and ${%s} has no default", r.name, r.name)
				failed = true
				continue
			}
		}
		vals[i] = v
		size += len(v) - (r.end - r.start)
	}
	if failed {
		return nil
	}
	if size > MaxExpanded {
		dc.fail(path, n, "longer than %d KiB after expanding variables", MaxExpanded>>10)
		return nil
	}
	if dc.expandedBytes += size; dc.expandedBytes > maxExpandedTotal {
		dc.fail(path, n, "variables expand to more than %d MiB in the whole file", maxExpandedTotal>>20)
		return nil
	}
	var b strings.Builder
	b.Grow(size)
	last := 0
	for i, r := range refs {
		b.WriteString(text[last:r.start])
		b.WriteString(vals[i])
		last = r.end
	}
	b.WriteString(text[last:])
	return scalarNode(b.String(), n.GetToken().Position, tgt)
}

// scalarNode makes the node an expanded value stands for: a string for
// text fields; for the others, what the text would be written unquoted
// (an integer, a bool, null for nothing), though never more than one
// scalar: the text is not parsed as YAML.
func scalarNode(s string, pos *token.Position, tgt target) ast.Node {
	if tgt == asText {
		return ast.String(token.String(s, s, pos))
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return ast.Null(token.New("null", "", pos))
	}
	tk := token.New(s, s, pos)
	switch tk.Type {
	case token.NullType:
		return ast.Null(tk)
	case token.BoolType:
		return ast.Bool(tk)
	case token.IntegerType, token.BinaryIntegerType, token.OctetIntegerType, token.HexIntegerType:
		return ast.Integer(tk)
	case token.FloatType:
		return ast.Float(tk)
	case token.InfinityType:
		return ast.Infinity(tk)
	case token.NanType:
		return ast.Nan(tk)
	}
	return ast.String(token.String(s, s, pos))
}

// failRef reports a problem with the i-th $-construct of scalar n,
// positioned at its $ in the file.
func (dc *decoder) failRef(path string, n ast.Node, i int, format string, args ...any) {
	before := len(dc.errs)
	dc.fail(path, n, format, args...)
	if line, col, ok := dc.doc.refPos(n, i); ok {
		dc.errs[before].Line, dc.errs[before].Col = line, col
	}
}

// refPos finds the i-th $-construct of scalar n in the file's text. The
// scalar's value may differ from its text (quotes, escapes, folded
// lines), but not in its $-constructs, so the i-th of the text is the
// i-th of the value. Only a $ written as an escape ("\x24") breaks this;
// ok is then false.
func (d *Doc) refPos(n ast.Node, i int) (line, col int, ok bool) {
	line, col, ok = nodePos(n)
	if !ok {
		return 0, 0, false
	}
	if _, block := n.(*ast.LiteralNode); block {
		line, col = line+1, 1 // the text starts under the | or > line
	}
	off, ok := d.offset(line, col)
	if !ok {
		return 0, 0, false
	}
	at, ok := refStart(d.src[off:], i)
	if !ok {
		return 0, 0, false
	}
	text := d.src[off : off+at]
	nl := strings.LastIndexByte(text, '\n')
	if nl < 0 {
		return line, col + utf8.RuneCountInString(text), true
	}
	return line + strings.Count(text, "\n"), utf8.RuneCountInString(text[nl+1:]) + 1, true
}

// offset returns the byte offset of line and column (counted in runes,
// like go-yaml counts them) in the file's text.
func (d *Doc) offset(line, col int) (int, bool) {
	if d.lines == nil {
		d.lines = []int{0}
		for i := range len(d.src) {
			if d.src[i] == '\n' {
				d.lines = append(d.lines, i+1)
			}
		}
	}
	if line < 1 || line > len(d.lines) {
		return 0, false
	}
	off := d.lines[line-1]
	for c := 1; c < col && off < len(d.src) && d.src[off] != '\n'; c++ {
		_, size := utf8.DecodeRuneInString(d.src[off:])
		off += size
	}
	return off, true
}

// ref is one $-construct of a scalar: $$, ${NAME}, ${NAME:-default}, or
// a malformed one (err says what is wrong).
type ref struct {
	start, end int // its bytes in the scalar
	dollar     bool
	name, def  string
	hasDefault bool
	err        string
}

// scanRefs returns the $-constructs of s in order. A $ followed by
// anything but $, { or a letter or _ is just a $.
func scanRefs(s string) []ref {
	var refs []ref
	for i := 0; ; {
		start, ok := findRef(s, i)
		if !ok {
			return refs
		}
		r := parseRef(s, start)
		refs = append(refs, r)
		i = r.end
	}
}

// refStart returns where the i-th $-construct of s starts, reading s no
// further than that.
func refStart(s string, i int) (int, bool) {
	for k, at := 0, 0; ; k++ {
		start, ok := findRef(s, at)
		if !ok || k == i {
			return start, ok
		}
		at = parseRef(s, start).end
	}
}

// findRef returns where the first $-construct of s at or after byte i
// starts.
func findRef(s string, i int) (int, bool) {
	for {
		j := strings.IndexByte(s[i:], '$')
		if j < 0 || i+j+1 >= len(s) {
			return 0, false
		}
		i += j
		if c := s[i+1]; c == '$' || c == '{' || nameStart(c) {
			return i, true
		}
		i++
	}
}

// parseRef parses the $-construct that starts at s[i].
func parseRef(s string, i int) ref {
	switch c := s[i+1]; {
	case c == '$':
		return ref{start: i, end: i + 2, dollar: true}
	case c == '{':
		return braced(s, i)
	}
	end := i + 1
	for end < len(s) && nameChar(s[end]) {
		end++
	}
	name := s[i+1 : end]
	return ref{start: i, end: end, err: fmt.Sprintf("write ${%s} for a variable, or $$%s for a literal $", name, name)}
}

// braced parses the reference that starts with "${" at s[i]. It ends at
// the first }: a default is taken as written and holds no }.
func braced(s string, i int) ref {
	r := ref{start: i}
	j := strings.IndexByte(s[i+2:], '}')
	if j < 0 {
		r.end = len(s)
		r.err = `no closing "}" (write $$ for a literal $)`
		return r
	}
	r.end = i + 2 + j + 1
	body := s[i+2 : r.end-1]
	n := 0
	for n < len(body) && nameChar(body[n]) {
		n++
	}
	name, rest := body[:n], body[n:]
	r.name = name
	switch {
	case body == "":
		r.err = "no variable name"
	case r.name == "" || !nameStart(r.name[0]):
		r.err = "not a variable name (letters, digits and _, not starting with a digit)"
	case rest == "":
	case strings.HasPrefix(rest, ":-"):
		r.def, r.hasDefault = rest[2:], true
		if strings.Contains(r.def, "$") {
			r.err = "a default is taken as written and may not hold $ (references do not nest)"
		}
	default:
		r.err = fmt.Sprintf("unsupported form: write ${%s} or ${%s:-default}", r.name, r.name)
	}
	return r
}

func nameStart(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func nameChar(c byte) bool  { return nameStart(c) || '0' <= c && c <= '9' }

// quoteRef shortens a reference for a message.
func quoteRef(s string) string {
	if len(s) > 40 {
		i := 40
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "…"
	}
	return s
}
