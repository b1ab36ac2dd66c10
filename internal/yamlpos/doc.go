package yamlpos

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Doc is one parsed YAML file. Decode fills a Go value from it and records
// where every decoded field came from, so that Errorf can position errors
// found afterwards. A Doc is not safe for concurrent use.
//
// A nil *Doc is valid for Errorf and Failed: it stands for a value that
// came from no file (built in code, or overridden by a flag), and its
// errors have no position.
type Doc struct {
	name      string
	src       string                      // the file's text, to position errors inside scalars
	lines     []int                       // where each line of src starts; made when first needed
	lookupEnv func(string) (string, bool) // nil: no expansion
	body      ast.Node                    // the first document's body; nil for an empty file
	extra     *Error                      // set when the file holds more than one document
	anchors   map[*ast.AliasNode]ast.Node // each alias's target, resolved in document order
	fields    map[string]field            // decoded paths → where they are in the file
	failed    map[string]bool             // paths whose value failed to decode
}

// field is where one decoded path sits in the file.
type field struct {
	key *token.Token // the key, for mapping entries; nil for sequence items and the root
	val ast.Node     // the value as written, before alias resolution
}

// Options changes how a file is read; nil Options mean the defaults.
type Options struct {
	// LookupEnv, when not nil, turns on references to environment
	// variables in values, and returns a variable's value and whether it
	// is set (os.LookupEnv does). nil means none: a $ is just a $.
	//
	// Decode then expands, in each scalar it decodes into a string,
	// number, bool, duration or ScalarUnmarshaler field, quoted or not:
	//
	//	${NAME}            the variable's value; an error when it is not set
	//	${NAME:-default}   the default when the variable is unset or empty
	//	$$                 a literal $
	//
	// A default is taken as written, up to the first }, and holds no $.
	// $NAME (no braces) is an error that says how to write either, and
	// so is a malformed reference ("${", "${}", "${1X}"); each error is
	// positioned at its $ in the file. A $ before any other character is
	// just a $.
	//
	// Expansion works on the values the parser has read, not on the file's
	// text: keys and comments are never expanded, and a value can hold
	// anything (a newline, "key: value") without changing the document's
	// shape. Values are not expanded again: a variable holding "${X}"
	// gives the text ${X}. A string field takes the expanded text as it
	// is; other fields read it as YAML reads an unquoted scalar, so
	// "${WINDOW:-16}" is the integer 16 even when quoted (a reference in
	// a flow mapping must be), and an empty result is a null, which
	// leaves the field as it is. An expanded scalar is at most
	// MaxExpanded bytes.
	LookupEnv func(name string) (value string, ok bool)
}

// Parse parses data, naming it name in errors, with no expansion. A
// syntax error ends parsing, so it comes back alone, as an ErrorList of
// one.
//
// Before parsing, data's shape is checked against MaxDepth, MaxKeys and
// MaxDocMarkers, in one pass that allocates nothing: beyond them go-yaml's
// cost grows with their square, so a small file could take gigabytes. A
// file past a limit gets an error at the first byte past it. The size of
// data is the caller's to bound (ReadFile); the parse costs a few hundred
// bytes of memory per byte of YAML.
func Parse(name string, data []byte) (*Doc, error) {
	return ParseWith(name, data, nil)
}

// ParseWith is Parse with options; nil opts means none.
func ParseWith(name string, data []byte, opts *Options) (doc *Doc, err error) {
	defer func() {
		// go-yaml is third-party code fed with untrusted bytes: a panic in
		// it must become an error, not take the gateway down.
		if r := recover(); r != nil {
			doc, err = nil, ErrorList{{File: name, Msg: fmt.Sprintf("yaml: parser failed: %v", r)}}
		}
	}()
	if e := checkShape(name, data); e != nil {
		return nil, ErrorList{e}
	}
	// Duplicate keys are reported by Decode, together with everything else.
	f, perr := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if perr != nil {
		return nil, ErrorList{FromYAML(name, perr)}
	}
	d := &Doc{
		name:    name,
		src:     string(data),
		anchors: map[*ast.AliasNode]ast.Node{},
		fields:  map[string]field{},
		failed:  map[string]bool{},
	}
	for _, dn := range f.Docs {
		if dn == nil || dn.Body == nil {
			continue
		}
		if d.body == nil {
			d.body = dn.Body
			continue
		}
		line, col, _ := nodePos(dn.Body)
		d.extra = &Error{File: name, Line: line, Col: col, Msg: "a second YAML document; the file must hold one"}
		break
	}
	if opts != nil {
		d.lookupEnv = opts.LookupEnv
	}
	d.resolveAliases(d.body, map[string]ast.Node{}, 0)
	return d, nil
}

// Name returns the file name the Doc reports errors under.
func (d *Doc) Name() string { return d.name }

// Has reports whether the file gave a value for path when Decode ran; a
// key with a null value gave none. Paths look like "$.sensors[0].interval".
func (d *Doc) Has(path string) bool {
	if d == nil {
		return false
	}
	f, ok := d.fields[path]
	return ok && !isNull(f.val)
}

// Failed reports whether Decode already reported an error for path or
// for a path that contains it. Callers skip their semantic checks there:
// one mistake, one message.
func (d *Doc) Failed(path string) bool {
	if d == nil {
		return false
	}
	for p := path; p != ""; p = parent(p) {
		if d.failed[p] {
			return true
		}
	}
	return false
}

// Errorf returns an error about the value at path, prefixed by the path
// in its human form ("sensors[0].interval: ..."). It is positioned at the
// value when the file has it, else at the key of the closest enclosing
// field that is present, so "gateway.id is required" points at "gateway:".
// On a nil Doc the error has no position.
func (d *Doc) Errorf(path, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if l := Label(path); l != "" {
		msg = l + ": " + msg
	}
	if d == nil {
		return &Error{Msg: msg}
	}
	line, col := d.Pos(path)
	return &Error{File: d.name, Line: line, Col: col, Msg: msg}
}

// KeyErrorf is Errorf positioned at the key of the entry at path rather
// than at its value: for errors about the key itself, such as a bad label
// name.
func (d *Doc) KeyErrorf(path, format string, args ...any) *Error {
	e := d.Errorf(path, format, args...)
	if d != nil {
		if f, ok := d.fields[path]; ok && f.key != nil && f.key.Position != nil && f.key.Position.Line > 0 {
			e.Line, e.Col = f.key.Position.Line, max(f.key.Position.Column, 1)
		}
	}
	return e
}

// Pos returns the position Errorf uses for path. Decode must have run.
func (d *Doc) Pos(path string) (line, col int) {
	for p := path; p != ""; p = parent(p) {
		f, ok := d.fields[p]
		if !ok {
			continue
		}
		if p == path && !isNull(f.val) {
			if line, col, ok := nodePos(f.val); ok {
				return line, col
			}
		}
		if f.key != nil && f.key.Position != nil && f.key.Position.Line > 0 {
			return f.key.Position.Line, max(f.key.Position.Column, 1)
		}
		if line, col, ok := nodePos(f.val); ok {
			return line, col
		}
	}
	if line, col, ok := nodePos(d.body); ok {
		return line, col
	}
	return 1, 1
}

// Label turns a path into the form people read in messages:
// "$.sensors[0].id" becomes "sensors[0].id", and the root "$" becomes "".
func Label(path string) string {
	path = strings.TrimPrefix(path, "$")
	return strings.TrimPrefix(path, ".")
}

// parent returns the path that contains path: "$.a[1].b" → "$.a[1]" →
// "$.a" → "$" → "".
func parent(path string) string {
	if path == "$" || path == "" {
		return ""
	}
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i > 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i > 0 {
		return path[:i]
	}
	return "$"
}

// resolveAliases maps every alias to the node its anchor names. Anchors
// are registered after their own value is walked, so an alias can only
// name a node completed before it: alias chains cannot form cycles.
func (d *Doc) resolveAliases(n ast.Node, defs map[string]ast.Node, depth int) {
	if n == nil || depth > maxDepth {
		return
	}
	depth++
	switch t := n.(type) {
	case *ast.MappingNode:
		for _, kv := range t.Values {
			d.resolveAliases(kv, defs, depth)
		}
	case *ast.MappingValueNode:
		if t.Key != nil {
			d.resolveAliases(t.Key, defs, depth)
		}
		d.resolveAliases(t.Value, defs, depth)
	case *ast.SequenceNode:
		for _, v := range t.Values {
			d.resolveAliases(v, defs, depth)
		}
	case *ast.TagNode:
		d.resolveAliases(t.Value, defs, depth)
	case *ast.MappingKeyNode:
		d.resolveAliases(t.Value, defs, depth)
	case *ast.AnchorNode:
		d.resolveAliases(t.Value, defs, depth)
		if name := nodeText(t.Name); name != "" && t.Value != nil {
			defs[name] = t.Value
		}
	case *ast.AliasNode:
		if target, ok := defs[nodeText(t.Value)]; ok {
			d.anchors[t] = target
		}
	}
}

// nodePos returns where a node starts. For a block mapping that is its
// first key (go-yaml's token for it is the first ':').
func nodePos(n ast.Node) (line, col int, ok bool) {
	switch t := n.(type) {
	case nil:
		return 0, 0, false
	case *ast.MappingNode:
		if !t.IsFlowStyle && len(t.Values) > 0 && t.Values[0].Key != nil {
			return nodePos(t.Values[0].Key)
		}
	case *ast.MappingValueNode:
		if t.Key != nil {
			return nodePos(t.Key)
		}
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil || tk.Position.Line <= 0 {
		return 0, 0, false
	}
	return tk.Position.Line, max(tk.Position.Column, 1), true
}

func nodeText(n ast.Node) string {
	if n == nil {
		return ""
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}

func isNull(n ast.Node) bool {
	_, ok := n.(*ast.NullNode)
	return n == nil || ok
}
