package yamlpos

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

type envDoc struct {
	S    string            `yaml:"s"`
	N    int               `yaml:"n"`
	B    bool              `yaml:"b"`
	D    time.Duration     `yaml:"d"`
	F    float64           `yaml:"f"`
	Size size              `yaml:"size"`
	P    *int              `yaml:"p"`
	L    []string          `yaml:"l"`
	M    map[string]string `yaml:"m"`
	One  *item             `yaml:"one"`
}

// testEnv is the environment of these tests: a lookup on a map, so no
// test touches the process's environment.
var testEnv = map[string]string{
	"A":      "a",
	"EMPTY":  "",
	"NUM":    "16",
	"SPACED": " 16 ",
	"T":      "true",
	"NL":     "x\nfoo: bar",
	"REF":    "${A}",
	"SECRET": "hunter2",
	"BIG":    strings.Repeat("x", 40<<10),
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func decodeEnv(t *testing.T, src string, v any) (*Doc, ErrorList) {
	t.Helper()
	d, err := ParseWith("t.yaml", []byte(src), &Options{LookupEnv: lookup(testEnv)})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d, d.Decode(v)
}

func ptr[T any](v T) *T { return &v }

func TestEnvExpand(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      envDoc
	}{
		{"plain", "s: ${A}\n", envDoc{S: "a"}},
		{"inside text", "s: pre-${A}-${A}post\n", envDoc{S: "pre-a-apost"}},
		{"single quoted", "s: '${A}'\n", envDoc{S: "a"}},
		{"double quoted", "s: \"${A}\"\n", envDoc{S: "a"}},
		{"block", "s: |\n  a ${A}\n", envDoc{S: "a a\n"}},
		{"default when unset", "s: ${UNSET:-def ault}\n", envDoc{S: "def ault"}},
		{"default when empty", "s: ${EMPTY:-def}\n", envDoc{S: "def"}},
		{"empty without default", "s: ${EMPTY}\n", envDoc{S: ""}},
		{"empty default", "s: x${UNSET:-}\n", envDoc{S: "x"}},
		{"dollars", "s: $$${A}$$ $${A}\n", envDoc{S: "$a$ ${A}"}},
		{"lone dollars", "s: cost $5, $ and $\n", envDoc{S: "cost $5, $ and $"}},
		{"no second expansion", "s: ${REF}\n", envDoc{S: "${A}"}},
		{"no injection", "s: ${NL}\n", envDoc{S: "x\nfoo: bar"}},
		{"comment", "s: x # ${UNSET} $HOME ${\n", envDoc{S: "x"}},
		{"int", "n: ${NUM}\n", envDoc{N: 16}},
		{"int quoted", "n: \"${NUM}\"\n", envDoc{N: 16}},
		{"int spaced", "n: ${SPACED}\n", envDoc{N: 16}},
		{"int default", "n: ${UNSET:-7}\n", envDoc{N: 7}},
		{"int in flow", "one: {n: \"${NUM}\", name: \"${A}\"}\n", envDoc{One: &item{N: 16, Name: "a"}}},
		{"bool", "b: ${T}\n", envDoc{B: true}},
		{"duration", "d: ${UNSET:-1m}\n", envDoc{D: time.Minute}},
		{"float", "f: ${UNSET:-1.5}\n", envDoc{F: 1.5}},
		{"custom", "size: ${UNSET:-2k}\n", envDoc{Size: 2000}},
		{"custom int", "size: ${NUM}\n", envDoc{Size: 16}},
		{"pointer", "p: ${NUM}\n", envDoc{P: ptr(16)}},
		{"sequence", "l: [\"${A}\", b, '$$']\n", envDoc{L: []string{"a", "b", "$"}}},
		{"map values, not keys", "m:\n  ${A}: ${A}\n", envDoc{M: map[string]string{"${A}": "a"}}},
		{"alias", "l: [&x \"${A}\", *x]\n", envDoc{L: []string{"a", "a"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v envDoc
			if _, errs := decodeEnv(t, tc.src, &v); len(errs) != 0 {
				t.Fatal(errs.Err())
			}
			if !reflect.DeepEqual(v, tc.want) {
				t.Fatalf("got %+v, want %+v", v, tc.want)
			}
		})
	}
}

// An empty result is a null for a typed field: the field keeps what it
// had, and the file does not count as giving it.
func TestEnvEmptyIsNull(t *testing.T) {
	v := envDoc{N: 3}
	d, errs := decodeEnv(t, "n: ${EMPTY}\ns: ${EMPTY}\n", &v)
	if len(errs) != 0 {
		t.Fatal(errs.Err())
	}
	if v.N != 3 || d.Has("$.n") {
		t.Errorf("n = %d, Has = %v; want 3 and false", v.N, d.Has("$.n"))
	}
	if !d.Has("$.s") {
		t.Error("an empty string is a value")
	}

	v = envDoc{}
	d, errs = decodeEnv(t, "n: &e ${EMPTY}\np: *e\n", &v)
	if len(errs) != 0 || v.P != nil || d.Has("$.n") || d.Has("$.p") {
		t.Errorf("through an alias: p = %v, Has = %v, %v; errors %v", v.P, d.Has("$.n"), d.Has("$.p"), errs.Err())
	}
}

func TestEnvErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"unset", "s: ${UNSET}\n", []string{
			`t.yaml:1:4: s: environment variable UNSET is not set and ${UNSET} has no default`,
		}},
		{"every unset one", "s: x ${U1} y ${U2:-ok} ${U3}\n", []string{
			`t.yaml:1:6: s: environment variable U1 is not set and ${U1} has no default`,
			`t.yaml:1:24: s: environment variable U3 is not set and ${U3} has no default`,
		}},
		{"after dollars", "s: $$ $${A} ${U}\n", []string{
			`t.yaml:1:13: s: environment variable U is not set and ${U} has no default`,
		}},
		{"runes", "s: \"é${U}\"\n", []string{
			`t.yaml:1:6: s: environment variable U is not set and ${U} has no default`,
		}},
		{"tab", "s:\t${U}\n", []string{
			`t.yaml:1:4: s: environment variable U is not set and ${U} has no default`,
		}},
		{"crlf", "n: 1\r\ns: ${U}\r\n", []string{
			`t.yaml:2:4: s: environment variable U is not set and ${U} has no default`,
		}},
		{"folded plain", "s: a\n  b ${U}\n", []string{
			`t.yaml:2:5: s: environment variable U is not set and ${U} has no default`,
		}},
		{"block", "s: | # ${NOT_THIS}\n  a\n  b ${U}\n", []string{
			`t.yaml:3:5: s: environment variable U is not set and ${U} has no default`,
		}},
		{"sequence item", "l:\n  - ok\n  - \"${U}\"\n", []string{
			`t.yaml:3:6: l[1]: environment variable U is not set and ${U} has no default`,
		}},
		{"anchor used twice: one error", "l: [&x \"${U}\", *x]\n", []string{
			`t.yaml:1:9: l[0]: environment variable U is not set and ${U} has no default`,
		}},
		{"unterminated", "s: ab${A\n", []string{
			`t.yaml:1:6: s: "${A": no closing "}" (write $$ for a literal $)`,
		}},
		{"lone brace", "s: ${\n", []string{
			`t.yaml:1:4: s: "${": no closing "}" (write $$ for a literal $)`,
		}},
		{"empty name", "s: ${}\n", []string{
			`t.yaml:1:4: s: "${}": no variable name`,
		}},
		{"digit", "s: ${1X}\n", []string{
			`t.yaml:1:4: s: "${1X}": not a variable name (letters, digits and _, not starting with a digit)`,
		}},
		{"other form", "s: ${A-x}\n", []string{
			`t.yaml:1:4: s: "${A-x}": unsupported form: write ${A} or ${A:-default}`,
		}},
		{"nested", "s: ${A:-${B}}\n", []string{
			`t.yaml:1:4: s: "${A:-${B}": a default is taken as written and may not hold $ (references do not nest)`,
		}},
		{"no braces", "s: $HOME/x\n", []string{
			`t.yaml:1:4: s: "$HOME": write ${HOME} for a variable, or $$HOME for a literal $`,
		}},
		{"type after expansion", "n: ${A}\n", []string{
			`t.yaml:1:4: n: expected an integer, got "a"`,
		}},
		{"not a scalar field", "l: ${A}\n", []string{
			`t.yaml:1:4: l: expected a sequence, got "${A}"`,
		}},
		{"too long", "s: ${BIG}${BIG}\n", []string{
			`t.yaml:1:4: s: longer than 64 KiB after expanding variables`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v envDoc
			_, errs := decodeEnv(t, tc.src, &v)
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

// The messages about references never show a variable's value.
func TestEnvErrorsHideValues(t *testing.T) {
	for _, src := range []string{
		"s: ${SECRET}${\n", "s: ${SECRET}${U}\n", "s: ${SECRET}$X\n", "s: ${SECRET}${1}\n",
	} {
		var v envDoc
		_, errs := decodeEnv(t, src, &v)
		if err := errs.Err(); err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: %v", src, err)
		}
	}
}

// Without LookupEnv, a $ is just a $.
func TestEnvOff(t *testing.T) {
	var v envDoc
	if _, errs := decode(t, "s: ${UNSET} $HOME ${\n", &v); len(errs) != 0 || v.S != "${UNSET} $HOME ${" {
		t.Fatalf("got %q, %v", v.S, errs.Err())
	}
}

// Expansions are bounded in all, and an anchor is expanded once however
// often aliases use it.
func TestEnvBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString("l:\n")
	for range 200 {
		b.WriteString("  - ${BIG}\n")
	}
	var v envDoc
	_, errs := decodeEnv(t, b.String(), &v)
	if err := errs.Err(); err == nil || !strings.Contains(err.Error(), "variables expand to more than 4 MiB in the whole file") {
		t.Fatalf("got %v", err)
	}

	b.Reset()
	b.WriteString("a0: &a0 [" + strings.Repeat(`"${BIG}", `, 9) + "\"${BIG}\"]\n")
	for i := 1; i < 5; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	var w struct {
		A0 []string         `yaml:"a0"`
		A1 [][]string       `yaml:"a1"`
		A2 [][][]string     `yaml:"a2"`
		A3 [][][][]string   `yaml:"a3"`
		A  [][][][][]string `yaml:"a4"`
	}
	d, err := ParseWith("t.yaml", []byte(b.String()), &Options{LookupEnv: lookup(testEnv)})
	if err != nil {
		t.Fatal(err)
	}
	// Expanded once per alias, the 10^5 values would take gigabytes.
	var derrs ErrorList
	got := allocated(func() { derrs = d.Decode(&w) })
	if len(derrs) != 0 {
		t.Fatal(derrs.Err())
	}
	t.Logf("decoding 10^5 aliases of one expanded value allocated %d MiB", got>>20)
	if got > 256<<20 {
		t.Errorf("decoding allocated %d MiB: the anchor was expanded more than once", got>>20)
	}
	if got := w.A[9][9][9][9][9]; got != testEnv["BIG"] {
		t.Errorf("got %d bytes", len(got))
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{
		"${A}", "$$", "${", "${}", "${1X}", "${A:-d}", "${A:-${B}}", "$A", "a$", "é${U}x", "${A-}", "$${A}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		refs := scanRefs(s)
		last := 0
		for i, r := range refs {
			if r.start < last || r.end <= r.start || r.end > len(s) || s[r.start] != '$' {
				t.Fatalf("%q: ref %d: %+v", s, i, r)
			}
			if at, ok := refStart(s, i); !ok || at != r.start {
				t.Fatalf("%q: refStart(%d) = %d, %v; want %d", s, i, at, ok, r.start)
			}
			last = r.end
		}
		if _, ok := refStart(s, len(refs)); ok {
			t.Fatalf("%q: refStart finds more than scanRefs", s)
		}
		// A scalar of s decodes or fails, without panicking, and its
		// errors are positioned in the file.
		src := "s: '" + strings.ReplaceAll(s, "'", "''") + "'\n"
		d, err := ParseWith("f.yaml", []byte(src), &Options{LookupEnv: lookup(testEnv)})
		if err != nil {
			return
		}
		var v envDoc
		for _, e := range d.Decode(&v) {
			if e.Line < 1 || e.Col < 1 {
				t.Fatalf("%q: unpositioned %v", s, e)
			}
			// On one line, an error about a reference points at its $.
			line := []rune(src)
			if !strings.ContainsAny(s, "\r\n") && utf8.ValidString(s) && !strings.Contains(e.Msg, "KiB") &&
				(e.Line != 1 || e.Col > len(line) || line[e.Col-1] != '$') {
				t.Fatalf("%q: %v does not point at a $", s, e)
			}
		}
	})
}
