package yamlpos

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// Defaulter is implemented by structs with default values. Decode calls
// SetDefaults on every struct it allocates (sequence items, map values,
// pointer targets) before filling it from the file, so absent fields keep
// their defaults while present ones override them, even with a zero value.
// The value passed to Decode is not touched: set its defaults first.
type Defaulter interface {
	SetDefaults()
}

// ScalarUnmarshaler is implemented by types decoded from one YAML scalar,
// such as a byte size written "1GiB" or 1073741824. v is a string, int64
// (uint64 only beyond math.MaxInt64), float64 or bool; the text of the
// returned error becomes the message, positioned at the scalar.
type ScalarUnmarshaler interface {
	UnmarshalYAMLScalar(v any) error
}

const (
	// maxNodes bounds the work of one Decode: aliases let a small file
	// expand to a huge tree ("billion laughs"). Each value decoded costs
	// some 250 bytes (its path, where it came from), so a file that
	// reaches the bound costs ~60 MiB; real configs and rules files have
	// a few thousand values.
	maxNodes = 1 << 18
	// maxDepth bounds recursion over the AST.
	maxDepth = 10000
)

var durationType = reflect.TypeFor[time.Duration]()

// Decode fills the value v points to from the file, strictly, and returns
// every error it finds; it carries on past each one, so the list is as
// complete as the file allows. Rules:
//
//   - Structs are decoded from mappings. Only fields with a `yaml:"name"`
//     tag are decoded; a key with no matching field is an error.
//   - Duplicate keys are errors. Anchors, aliases and merge keys (<<) work.
//   - A null value (a key with nothing after it) leaves the field as it is.
//   - Strings take any scalar as written ("007" stays "007").
//   - Integers must be integral and fit; floats must be finite.
//   - time.Duration takes strings like "500ms", "1s", "10m", and 0.
//   - Types implementing ScalarUnmarshaler decode themselves.
//   - When the Doc was parsed with Options.LookupEnv, references to
//     environment variables (${NAME}) in scalars are expanded first.
//
// Decode also records where each field came from, for Has, Pos and Errorf.
func (d *Doc) Decode(v any) ErrorList {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return ErrorList{{File: d.name, Msg: fmt.Sprintf("yamlpos: Decode needs a non-nil pointer, got %T", v)}}
	}
	dc := &decoder{doc: d, budget: maxNodes}
	if d.extra != nil {
		dc.errs = append(dc.errs, d.extra)
	}
	d.fields["$"] = field{val: d.body}
	if d.body != nil {
		dc.value("$", d.body, rv.Elem())
	}
	return dc.errs
}

type decoder struct {
	doc    *Doc
	errs   ErrorList
	budget int

	expanded      map[expandKey]ast.Node // nil: the expansion failed
	expandedBytes int
}

// entry is one key of a mapping, after merge keys are expanded.
type entry struct {
	key    string
	keyTok *token.Token
	val    ast.Node
}

func (dc *decoder) value(path string, n ast.Node, v reflect.Value) {
	if !dc.spend(n) {
		return
	}
	n, ok := dc.resolve(path, n)
	if !ok {
		return
	}
	if n, ok = dc.expand(path, n, v.Type()); ok {
		dc.assign(path, n, v)
	}
}

// assign sets v from n, a node that holds a value (aliases resolved,
// references expanded).
func (dc *decoder) assign(path string, n ast.Node, v reflect.Value) {
	if isNull(n) {
		return
	}
	if v.Type() == durationType {
		dc.duration(path, n, v)
		return
	}
	if v.CanAddr() {
		if u, ok := v.Addr().Interface().(ScalarUnmarshaler); ok {
			dc.custom(path, n, u)
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			dc.assign(path, n, v.Elem())
			return
		}
		// Set the pointer only if its value decodes: a nil pointer means
		// "not given", and a bad value must not look given.
		nv := reflect.New(v.Type().Elem())
		setDefaults(nv)
		before := len(dc.errs)
		dc.assign(path, n, nv.Elem())
		if len(dc.errs) == before {
			v.Set(nv)
		}
	case reflect.Struct:
		dc.structure(path, n, v)
	case reflect.Slice:
		dc.sequence(path, n, v)
	case reflect.Map:
		dc.mapping(path, n, v)
	case reflect.String:
		dc.str(path, n, v)
	case reflect.Bool:
		if b, ok := n.(*ast.BoolNode); ok {
			v.SetBool(b.Value)
		} else {
			dc.typeErr(path, n, "true or false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		dc.integer(path, n, v)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		dc.unsigned(path, n, v)
	case reflect.Float32, reflect.Float64:
		dc.float(path, n, v)
	default:
		dc.fail(path, n, "cannot decode into Go type %s", v.Type())
	}
}

// spend takes one unit of the node budget, reporting once when it runs out.
func (dc *decoder) spend(n ast.Node) bool {
	dc.budget--
	if dc.budget == -1 {
		line, col, _ := nodePos(n)
		dc.errs = append(dc.errs, &Error{File: dc.doc.name, Line: line, Col: col,
			Msg: fmt.Sprintf("document too large: more than %d values after expanding aliases", maxNodes)})
	}
	return dc.budget >= 0
}

// resolve follows anchors, aliases and standard tags to the node that
// holds the value. A nil result with ok true is a null.
func (dc *decoder) resolve(path string, n ast.Node) (ast.Node, bool) {
	for range 64 {
		switch t := n.(type) {
		case *ast.AnchorNode:
			n = t.Value
		case *ast.AliasNode:
			target, ok := dc.doc.anchors[t]
			if !ok {
				dc.fail(path, t, "unknown anchor %q", nodeText(t.Value))
				return nil, false
			}
			n = target
		case *ast.TagNode:
			if tag := nodeText(t); !strings.HasPrefix(tag, "!!") {
				dc.fail(path, t, "unsupported tag %s", tag)
				return nil, false
			}
			n = t.Value
		default:
			return n, true
		}
	}
	dc.fail(path, n, "aliases nested too deep")
	return nil, false
}

func (dc *decoder) structure(path string, n ast.Node, v reflect.Value) {
	if !isMapping(n) {
		dc.typeErr(path, n, "a mapping")
		return
	}
	info := fieldsOf(v.Type())
	for _, e := range dc.entries(path, n, 0) {
		idx, ok := info.index[e.key]
		if !ok {
			msg := fmt.Sprintf("unknown field %q", e.key)
			if s := suggest(e.key, info.names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			dc.failTok(path, e.keyTok, e.val, "%s", msg)
			continue
		}
		fp := path + "." + e.key
		dc.doc.fields[fp] = field{key: e.keyTok, val: e.val}
		dc.value(fp, e.val, v.FieldByIndex(idx))
	}
}

func (dc *decoder) mapping(path string, n ast.Node, v reflect.Value) {
	if !isMapping(n) {
		dc.typeErr(path, n, "a mapping")
		return
	}
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		dc.fail(path, n, "cannot decode into Go type %s", t)
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	for _, e := range dc.entries(path, n, 0) {
		fp := path + "." + e.key
		dc.doc.fields[fp] = field{key: e.keyTok, val: e.val}
		ev := reflect.New(t.Elem())
		setDefaults(ev)
		dc.value(fp, e.val, ev.Elem())
		v.SetMapIndex(reflect.ValueOf(e.key).Convert(t.Key()), ev.Elem())
	}
}

func (dc *decoder) sequence(path string, n ast.Node, v reflect.Value) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		dc.typeErr(path, n, "a sequence")
		return
	}
	s := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
	for i, item := range seq.Values {
		ip := path + "[" + strconv.Itoa(i) + "]"
		dc.doc.fields[ip] = field{val: item}
		ev := s.Index(i)
		setDefaults(ev.Addr())
		dc.value(ip, item, ev)
	}
	v.Set(s)
}

// entries lists the keys of a mapping in file order, then the keys merge
// keys (<<) bring in that the mapping does not set itself. Duplicate keys
// are reported and dropped.
func (dc *decoder) entries(path string, n ast.Node, depth int) []entry {
	var (
		own    []entry
		merges []ast.Node
		first  = map[string]*token.Token{}
	)
	for _, kv := range mapValues(n) {
		if !dc.spend(kv) {
			return own
		}
		if kv.Key == nil {
			continue
		}
		if kv.Key.IsMergeKey() {
			merges = append(merges, kv.Value)
			continue
		}
		key, ok := dc.key(path, kv.Key)
		if !ok {
			continue
		}
		tok := kv.Key.GetToken()
		if prev, dup := first[key]; dup {
			dc.failTok(path, tok, kv.Key, "duplicate key %q (first at line %d)", key, lineOf(prev))
			continue
		}
		first[key] = tok
		own = append(own, entry{key: key, keyTok: tok, val: kv.Value})
	}
	if len(merges) > 0 && depth > 32 {
		dc.fail(path, n, "merge keys (<<) nested too deep")
		return own
	}
	for _, m := range merges {
		for _, src := range dc.mergeSources(path, m) {
			for _, e := range dc.entries(path, src, depth+1) {
				if _, set := first[e.key]; !set {
					first[e.key] = e.keyTok
					own = append(own, e)
				}
			}
		}
	}
	return own
}

// mergeSources returns the mappings a merge key's value names: one
// mapping, or a sequence of them (earlier ones win).
func (dc *decoder) mergeSources(path string, m ast.Node) []ast.Node {
	const msg = "a merge key (<<) takes a mapping or a sequence of mappings"
	r, ok := dc.resolve(path, m)
	if !ok || isNull(r) {
		return nil
	}
	if isMapping(r) {
		return []ast.Node{r}
	}
	seq, isSeq := r.(*ast.SequenceNode)
	if !isSeq {
		dc.fail(path, m, msg)
		return nil
	}
	var srcs []ast.Node
	for _, item := range seq.Values {
		ri, ok := dc.resolve(path, item)
		if !ok {
			continue
		}
		if !isMapping(ri) {
			dc.fail(path, item, msg)
			continue
		}
		srcs = append(srcs, ri)
	}
	return srcs
}

// key returns a mapping key as a string; keys must be scalars.
func (dc *decoder) key(path string, k ast.Node) (string, bool) {
	r, ok := dc.resolve(path, k)
	if !ok {
		return "", false
	}
	switch t := r.(type) {
	case *ast.StringNode:
		return t.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NullNode, *ast.InfinityNode, *ast.NanNode:
		return nodeText(t), true
	}
	dc.failTok(path, k.GetToken(), k, "mapping keys must be plain scalars")
	return "", false
}

func (dc *decoder) typeErr(path string, n ast.Node, want string) {
	dc.fail(path, n, "expected %s, got %s", want, describe(n))
}

// fail reports a problem with the value at path, positioned at node n.
func (dc *decoder) fail(path string, n ast.Node, format string, args ...any) {
	dc.doc.failed[path] = true
	dc.failTok(path, nil, n, format, args...)
}

// failTok reports a problem at tok (or, lacking it, at node n, or at path).
func (dc *decoder) failTok(path string, tok *token.Token, n ast.Node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if l := Label(path); l != "" {
		msg = l + ": " + msg
	}
	e := &Error{File: dc.doc.name, Msg: msg}
	switch line, col, ok := nodePos(n); {
	case tok != nil && tok.Position != nil && tok.Position.Line > 0:
		e.Line, e.Col = tok.Position.Line, max(tok.Position.Column, 1)
	case ok:
		e.Line, e.Col = line, col
	default:
		e.Line, e.Col = dc.doc.Pos(path)
	}
	dc.errs = append(dc.errs, e)
}

// setDefaults calls SetDefaults on the value ptr points to, if it has one.
func setDefaults(ptr reflect.Value) {
	if d, ok := ptr.Interface().(Defaulter); ok {
		d.SetDefaults()
	}
}

func isMapping(n ast.Node) bool {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return true
	}
	return false
}

func mapValues(n ast.Node) []*ast.MappingValueNode {
	switch t := n.(type) {
	case *ast.MappingNode:
		return t.Values
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{t}
	}
	return nil
}

// lineOf returns the line of tok, 0 if it has none.
func lineOf(tok *token.Token) int {
	if tok == nil || tok.Position == nil {
		return 0
	}
	return tok.Position.Line
}
