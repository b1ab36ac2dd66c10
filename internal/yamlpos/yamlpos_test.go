package yamlpos

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

type item struct {
	Name  string            `yaml:"name"`
	N     int               `yaml:"n"`
	D     time.Duration     `yaml:"d"`
	F     float64           `yaml:"f"`
	P     *float64          `yaml:"p"`
	B     bool              `yaml:"b"`
	U     uint8             `yaml:"u"`
	Size  size              `yaml:"size"`
	Tags  map[string]string `yaml:"tags"`
	Note  string            // untagged: never decoded
	inner int
}

func (i *item) SetDefaults() { i.N = 7 }

type top struct {
	Items []item   `yaml:"items"`
	One   item     `yaml:"one"`
	Ptr   *item    `yaml:"ptr"`
	List  []string `yaml:"list"`
}

// size is a ScalarUnmarshaler: a number or a string ending in "k".
type size int64

func (s *size) UnmarshalYAMLScalar(v any) error {
	switch x := v.(type) {
	case int64:
		*s = size(x)
		return nil
	case string:
		if n, err := strconv.Atoi(strings.TrimSuffix(x, "k")); err == nil && strings.HasSuffix(x, "k") {
			*s = size(n * 1000)
			return nil
		}
	}
	return fmt.Errorf("invalid size %v", v)
}

func decode(t *testing.T, src string, v any) (*Doc, ErrorList) {
	t.Helper()
	d, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d, d.Decode(v)
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Col: 5, Msg: "bad"}, "a.yaml:3:5: bad"},
		{Error{File: "a.yaml", Msg: "bad"}, "a.yaml: bad"},
		{Error{Line: 1, Col: 2, Msg: "bad"}, "1:2: bad"},
		{Error{Msg: "bad"}, "bad"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.e, got, tc.want)
		}
	}
}

func TestErrorList(t *testing.T) {
	if err := (ErrorList{}).Err(); err != nil {
		t.Fatalf("empty list: Err() = %v", err)
	}
	l := ErrorList{
		{File: "f", Line: 9, Col: 1, Msg: "c"},
		{File: "f", Line: 2, Col: 7, Msg: "b"},
		{File: "f", Line: 2, Col: 3, Msg: "a"},
		{File: "f", Line: 2, Col: 3, Msg: "a"},
	}
	err := l.Err()
	want := "f:2:3: a\nf:2:7: b\nf:9:1: c"
	if err.Error() != want {
		t.Fatalf("got\n%s\nwant\n%s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Msg != "a" {
		t.Fatalf("errors.As: got %v", e)
	}
	if l[0].Msg != "c" {
		t.Fatal("Err must not reorder the receiver")
	}
}

func TestFromYAML(t *testing.T) {
	_, err := Parse("s.yaml", []byte("a: [1, 2\n"))
	if got, want := fmt.Sprint(err), "s.yaml:1:4: sequence end token ']' not found"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	var v struct{ A int }
	err = yaml.UnmarshalWithOptions([]byte("b: 1\n"), &v, yaml.DisallowUnknownField())
	if got, want := FromYAML("u.yaml", err).Error(), `u.yaml:1:1: unknown field "b"`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := FromYAML("x", errors.New("plain")).Error(); got != "x: plain" {
		t.Fatalf("got %q", got)
	}
}

func TestDecode(t *testing.T) {
	src := `
base: &base
  d: 2s
  f: 1.5
items:
  - name: a
    <<: *base
    f: 3
  - name: 007
    n: 0
    p: 4
    b: true
    u: 255
    size: 2k
    tags: {x: y}
  -
one:
  size: 10
ptr:
  name: p
list: [a, b]
`
	var v struct {
		Base struct {
			D time.Duration `yaml:"d"`
			F float64       `yaml:"f"`
		} `yaml:"base"`
		Items []item   `yaml:"items"`
		One   item     `yaml:"one"`
		Ptr   *item    `yaml:"ptr"`
		List  []string `yaml:"list"`
	}
	_, errs := decode(t, src, &v)
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs.Err())
	}
	if len(v.Items) != 3 {
		t.Fatalf("items: %+v", v.Items)
	}
	a, b, c := v.Items[0], v.Items[1], v.Items[2]
	if a.Name != "a" || a.D != 2*time.Second || a.F != 3 || a.N != 7 {
		t.Errorf("item 0 (merge, explicit key wins, default kept): %+v", a)
	}
	if b.Name != "007" || b.N != 0 || b.P == nil || *b.P != 4 || !b.B || b.U != 255 || b.Size != 2000 || b.Tags["x"] != "y" {
		t.Errorf("item 1: %+v", b)
	}
	if c.N != 7 {
		t.Errorf("null item must be defaulted: %+v", c)
	}
	if v.One.Size != 10 || v.One.N != 0 {
		t.Errorf("one (not allocated by Decode, so no defaults): %+v", v.One)
	}
	if v.Ptr == nil || v.Ptr.Name != "p" || v.Ptr.N != 7 {
		t.Errorf("ptr: %+v", v.Ptr)
	}
	if strings.Join(v.List, ",") != "a,b" {
		t.Errorf("list: %v", v.List)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"unknown field", "items:\n  - nmae: x\n    bogus: 1\n", []string{
			`t.yaml:2:5: items[0]: unknown field "nmae" (did you mean "name"?)`,
			`t.yaml:3:5: items[0]: unknown field "bogus"`,
		}},
		{"types", "items:\n  - n: many\n    f: [1]\n    b: yes\n    name: {a: b}\n    u: 256\n    tags: [x]\n", []string{
			`t.yaml:2:8: items[0].n: expected an integer, got "many"`,
			`t.yaml:3:8: items[0].f: expected a number, got a sequence`,
			`t.yaml:4:8: items[0].b: expected true or false, got "yes"`,
			`t.yaml:5:11: items[0].name: expected a string, got a mapping`,
			`t.yaml:6:8: items[0].u: 256 is out of range`,
			`t.yaml:7:11: items[0].tags: expected a mapping, got a sequence`,
		}},
		{"durations", "items:\n  - d: 1x\n  - d: 5\n  - d: 0\n", []string{
			`t.yaml:2:8: items[0].d: invalid duration "1x" (want a number with a unit, like 500ms, 1s or 10m)`,
			`t.yaml:3:8: items[1].d: duration 5 has no unit (write it like 500ms, 1s or 10m)`,
		}},
		{"floats", "one: {f: .nan}\nptr: {f: 1.5, n: 1.5}\n", []string{
			`t.yaml:1:10: one.f: expected a finite number, got .nan`,
			`t.yaml:2:18: ptr.n: expected an integer, got 1.5`,
		}},
		{"custom", "one:\n  size: huge\n", []string{
			`t.yaml:2:9: one.size: invalid size huge`,
		}},
		{"duplicate key", "one:\n  name: a\n  name: b\n", []string{
			`t.yaml:3:3: one: duplicate key "name" (first at line 2)`,
		}},
		{"root type", "- a\n", []string{
			`t.yaml:1:1: expected a mapping, got a sequence`,
		}},
		{"sequence type", "items: {a: 1}\n", []string{
			`t.yaml:1:8: items: expected a sequence, got a mapping`,
		}},
		{"unknown anchor", "one: *nope\n", []string{
			`t.yaml:1:6: one: unknown anchor "nope"`,
		}},
		{"self alias", "list: &x [*x]\n", []string{
			`t.yaml:1:11: list[0]: unknown anchor "x"`,
		}},
		{"custom tag", "one: {name: !env HOME}\n", []string{
			`t.yaml:1:13: one.name: unsupported tag !env`,
		}},
		{"bad merge", "one:\n  <<: 3\n", []string{
			`t.yaml:2:7: one: a merge key (<<) takes a mapping or a sequence of mappings`,
		}},
		{"two documents", "one: {}\n---\nlist: []\n", []string{
			`t.yaml:3:1: a second YAML document; the file must hold one`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v top
			_, errs := decode(t, tc.src, &v)
			var got []string
			if err := errs.Err(); err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestPos(t *testing.T) {
	src := "one:\n  name: a\n  n:\nitems:\n  - name: x\n  - {name: y}\n"
	var v top
	d, errs := decode(t, src, &v)
	if len(errs) != 0 {
		t.Fatal(errs.Err())
	}
	for _, tc := range []struct {
		path      string
		line, col int
		has       bool
	}{
		{"$.one.name", 2, 9, true},
		{"$.one.n", 3, 3, false}, // null value: at its key, and not given
		{"$.one.f", 1, 1, false}, // missing: at the enclosing key
		{"$.items[1].name", 6, 12, true},
		{"$.items[1].n", 6, 5, false}, // missing in a flow mapping: at the item
		{"$.items[0]", 5, 5, true},
		{"$.ptr.name", 1, 1, false}, // nothing of it: at the root
	} {
		line, col := d.Pos(tc.path)
		if line != tc.line || col != tc.col || d.Has(tc.path) != tc.has {
			t.Errorf("%s: got %d:%d has=%v, want %d:%d has=%v", tc.path, line, col, d.Has(tc.path), tc.line, tc.col, tc.has)
		}
	}
	if got, want := d.Errorf("$.one.name", "bad %s", "name").Error(), "t.yaml:2:9: one.name: bad name"; got != want {
		t.Errorf("Errorf: got %q, want %q", got, want)
	}
	if got, want := d.KeyErrorf("$.one.name", "bad key").Error(), "t.yaml:2:3: one.name: bad key"; got != want {
		t.Errorf("KeyErrorf: got %q, want %q", got, want)
	}
	if got, want := d.KeyErrorf("$.items[0]", "no key").Error(), "t.yaml:5:5: items[0]: no key"; got != want {
		t.Errorf("KeyErrorf on a sequence item: got %q, want %q", got, want)
	}
	var nilDoc *Doc
	if got, want := nilDoc.Errorf("$.one.name", "bad").Error(), "one.name: bad"; got != want {
		t.Errorf("nil Doc Errorf: got %q, want %q", got, want)
	}
	if nilDoc.Failed("$.one") || nilDoc.Has("$.one") {
		t.Error("nil Doc has nothing")
	}
}

func TestFailed(t *testing.T) {
	var v top
	d, errs := decode(t, "one: [1]\nitems:\n  - n: x\n", &v)
	if len(errs) != 2 {
		t.Fatalf("want 2 errors, got %v", errs.Err())
	}
	for path, want := range map[string]bool{
		"$.one": true, "$.one.name": true, "$.items[0].n": true,
		"$.items[0]": false, "$.items[0].name": false, "$": false,
	} {
		if got := d.Failed(path); got != want {
			t.Errorf("Failed(%s) = %v, want %v", path, got, want)
		}
	}
}

func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 8; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	b.WriteString("one:\n  tags:\n    <<: [*a7]\n")
	d, err := Parse("bomb.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	var w struct {
		One struct {
			Tags map[string]string `yaml:"tags"`
		} `yaml:"one"`
		A [][][][][][][][]string `yaml:"a7"`
	}
	// Expanded, a7 is 10^8 strings: gigabytes. Refusing it must cost a
	// bounded amount of memory, whatever the machine's speed.
	var errs ErrorList
	got := allocated(func() { errs = d.Decode(&w) })
	t.Logf("refusing the bomb allocated %d KiB", got>>10)
	if got > 96<<20 {
		t.Errorf("refusing the bomb allocated %d MiB, want < 96 MiB", got>>20)
	}
	if err := errs.Err(); err == nil || !strings.Contains(err.Error(), "document too large") {
		t.Fatalf("want a too-large error, got %v", err)
	}
}

func TestDecodeNeedsPointer(t *testing.T) {
	d, err := Parse("t.yaml", []byte("a: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if errs := d.Decode(top{}); len(errs) != 1 {
		t.Fatalf("got %v", errs)
	}
}

func TestEmpty(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "---\n"} {
		v := top{List: []string{"keep"}}
		if _, errs := decode(t, src, &v); len(errs) != 0 || len(v.List) != 1 {
			t.Errorf("%q: errs %v, v %+v", src, errs, v)
		}
	}
}
