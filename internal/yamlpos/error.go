// Package yamlpos decodes YAML files into Go structs and reports every
// problem it finds as file:line:col: message, the way a compiler does.
//
// It exists because the decoders of YAML libraries stop at the first error,
// and a person fixing a config file wants all of them at once. The YAML is
// lexed and parsed by github.com/goccy/go-yaml, which keeps token positions;
// yamlpos walks the resulting AST itself (Doc.Decode), strictly: unknown
// fields, wrong types and bad durations are errors, each with its position,
// and decoding goes on past them. After decoding, Doc.Errorf positions
// semantic errors by field path ("$.sensors[0].interval"). On request
// (ParseWith), values may hold ${NAME} references to environment
// variables, expanded value by value, so that a position stays exact and
// a value cannot change the document's shape.
//
// go-yaml's cost grows with the square of a file's nesting and of its
// mappings' sizes, so Parse first checks a file's shape in one pass
// (MaxDepth, MaxKeys) and refuses what would cost more than its size
// warrants; ReadFile reads a file with a bound on its size, and refuses
// what is not a regular file. A hostile file costs a scan, not the
// process's memory.
//
// Both the config and rules packages use it; it imports only the standard
// library and go-yaml.
package yamlpos

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
)

// Error is one problem in one file. Line and Col are 1-based; Line 0 means
// the error has no position (for example a value set by a command-line
// flag rather than read from the file).
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
}

// Error formats e as file:line:col: msg, leaving out the parts it lacks.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteByte(':')
		} else {
			b.WriteString(": ")
		}
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Col))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in a file. Its Error method sorts the
// list by file, line and column and puts one error on each line.
type ErrorList []*Error

// Error implements error.
func (l ErrorList) Error() string {
	s := slices.Clone(l)
	s.Sort()
	msgs := make([]string, len(s))
	for i, e := range s {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap lets errors.As reach the individual *Error values.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Sort sorts l in place by file, line and column; errors at the same place
// keep the order they were found in.
func (l ErrorList) Sort() {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
}

// Err returns nil for an empty list, else the list sorted, with exact
// duplicates removed (an anchor merged in two places can yield the same
// error twice).
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	s := slices.Clone(l)
	s.Sort()
	s = slices.CompactFunc(s, func(a, b *Error) bool { return *a == *b })
	return s
}

// FromYAML turns an error from go-yaml (a syntax error from its parser, or a
// decode error) into an *Error positioned at the token the error carries.
// Other errors keep their text and get no position.
func FromYAML(file string, err error) *Error {
	var ye yaml.Error
	if errors.As(err, &ye) {
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			return &Error{File: file, Line: tk.Position.Line, Col: max(tk.Position.Column, 1), Msg: ye.GetMessage()}
		}
		return &Error{File: file, Msg: ye.GetMessage()}
	}
	return &Error{File: file, Msg: err.Error()}
}
