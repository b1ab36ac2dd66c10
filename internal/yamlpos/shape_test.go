package yamlpos

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

func TestShapeLimits(t *testing.T) {
	keys := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "k%d: v\n", i)
		}
		return b.String()
	}
	nest := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(strings.Repeat(" ", i) + "a:\n")
		}
		return b.String()
	}
	for _, tc := range []struct {
		name, src string
		want      string // "" for accepted, else "line:col: message"
	}{
		// The top level is one: the first [ opens the second.
		{"flow at the limit", strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1), ""},
		{"flow past it", strings.Repeat("[", MaxDepth), "1:64: nested deeper than 64 levels"},
		{"deep flow, unclosed", strings.Repeat("[", 40000), "1:64: nested deeper than 64 levels"},
		{"flow maps", "a: " + strings.Repeat("{a: ", 70), "1:256: nested deeper than 64 levels"},
		{"under a key", "a:\n  b: " + strings.Repeat("[", 63), "2:68: nested deeper than 64 levels"},
		{"block at the limit", nest(MaxDepth), ""},
		{"block past it", nest(MaxDepth + 1), "65:65: nested deeper than 64 levels"},
		{"dashes", strings.Repeat("- ", 100) + "x\n", "1:129: nested deeper than 64 levels"},
		{"complex keys", strings.Repeat("? ", 100) + "x\n", "1:129: nested deeper than 64 levels"},
		{"keys at the limit", keys(MaxKeys), ""},
		{"keys past it", keys(MaxKeys + 1), "1001:1: a mapping with more than 1000 keys"},
		{"keys in a sequence item", "- " + strings.ReplaceAll(strings.TrimSuffix(keys(MaxKeys+1), "\n"), "\n", "\n  ") + "\n", "1001:3: a mapping with more than 1000 keys"},
		{"keys in a flow sequence", "[\n" + keys(MaxKeys+1) + "]\n", "1002:1: a mapping with more than 1000 keys"},
		{"many mappings", strings.Repeat("- "+strings.ReplaceAll(strings.TrimSuffix(keys(10), "\n"), "\n", "\n  ")+"\n", 200), ""},
		{"long sequence", strings.Repeat("- a: 1\n", 5000), ""},
		{"documents", strings.Repeat("---\na\n", MaxDocMarkers+1), "33:1: more than 16 document markers (--- or ...); the file must hold one document"},
		{"tabs in double quotes", "a: \"" + strings.Repeat("\tx", 8000) + "\"\n", "1:2259: too many tabs in double-quoted text to parse; write them as \\t"},
		{"brackets in quotes", "a: '" + strings.Repeat("[", 100) + "'\nb: \"" + strings.Repeat("{", 100) + "\"\n", ""},
		{"brackets in comments", "a: 1 # " + strings.Repeat("[", 100) + "\n# " + strings.Repeat("{", 100) + "\n", ""},
		{"brackets in a block scalar", "a: |\n  " + strings.Repeat("[", 100) + "\n  " + strings.Repeat("- ", 100) + "\nb: >-\n  " + strings.Repeat("{", 100) + "\n", ""},
		{"brackets in plain text", "a: x" + strings.Repeat("[", 100) + "\n", ""},
		{"past a block scalar", "a: |\n  text\n" + strings.Repeat("[", 65), "3:64: nested deeper than 64 levels"},
		{"quote escapes", `a: 'it''s [' ` + "\nb: \"\\\"[\"\n" + strings.Repeat("[", 65), "3:64: nested deeper than 64 levels"},
		{"a quote inside a word", "a: it's\nb: " + strings.Repeat("[", 65), "2:67: nested deeper than 64 levels"},
		{"a hash inside a word", "a: x#" + strings.Repeat("[", 65) + "\n", ""},
		{"a hash inside a word, then brackets", "a: x#y\nb: " + strings.Repeat("[", 65), "2:67: nested deeper than 64 levels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkShape("f.yaml", []byte(tc.src))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want %s", tc.want)
			case tc.want != "" && err.Error() != "f.yaml:"+tc.want:
				t.Fatalf("got %v, want f.yaml:%s", err, tc.want)
			}
		})
	}
}

// TestParseRefusesShape checks that Parse reports the shape's error as it
// reports a syntax error.
func TestParseRefusesShape(t *testing.T) {
	_, err := Parse("deep.yaml", []byte("rules:\n  - name: "+strings.Repeat("[", 40000)))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 || list[0].Error() != "deep.yaml:2:72: nested deeper than 64 levels" {
		t.Fatalf("got %v", err)
	}
}

// TestShapeRealFiles checks that every YAML file of the repository, and
// every YAML block of its documentation, passes far from the limits, and
// that the scan sees the tokens go-yaml does.
func TestShapeRealFiles(t *testing.T) {
	root := filepath.Join("..", "..")
	var files []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if ext := filepath.Ext(path); ext == ".yaml" || ext == ".yml" || ext == ".md" {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"examples/gateway.yaml", "examples/rules.yaml", "examples/cookbook/rules.yaml", "examples/cookbook/rules.test.yaml"} {
		if !slices.Contains(files, filepath.Join(root, want)) {
			t.Fatalf("%s not found among %v", want, files)
		}
	}
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs := [][]byte{data}
		if filepath.Ext(f) == ".md" {
			docs = yamlBlocks(data)
		}
		for i, data := range docs {
			name := fmt.Sprintf("%s[%d]", f, i)
			s := scanShape(data)
			if s.msg != "" {
				t.Errorf("%s: refused: %d:%d: %s", name, s.errLine, s.errCol, s.msg)
			}
			if s.maxDepth > 16 || s.maxKeys > 100 {
				t.Errorf("%s: depth %d, keys %d: closer to the limits than a real file should be", name, s.maxDepth, s.maxKeys)
			}
			compareTokens(t, name, data)
			n++
		}
	}
	t.Logf("%d files and blocks", n)
}

// yamlBlocks returns the ```yaml blocks of a Markdown file.
func yamlBlocks(md []byte) [][]byte {
	var blocks [][]byte
	var cur []byte
	in := false
	for line := range strings.SplitSeq(string(md), "\n") {
		switch {
		case !in && strings.HasPrefix(line, "```yaml"):
			in, cur = true, nil
		case in && strings.HasPrefix(line, "```"):
			in = false
			blocks = append(blocks, cur)
		case in:
			cur = append(cur, line+"\n"...)
		}
	}
	return blocks
}

// TestShapeTokens compares the scan with go-yaml's scanner on inputs
// that exercise its rules.
func TestShapeTokens(t *testing.T) {
	for _, src := range shapeSeeds {
		compareTokens(t, fmt.Sprintf("%q", src), []byte(src))
	}
}

var shapeSeeds = []string{
	"a: 1\nb: [x, {y: z}]\n",
	"- a\n- - b\n  - c\n- {d: e}\n",
	"a: 'it''s'\nb: \"q\\\"[\" # c [\nc: x#y\n",
	"a: |\n  [text\n  - x\nb: >-\n    {more\n  c: d\n",
	"a: |2\n   x\n  y\nz: 1\n",
	"? a\n: b\n? [c]\n: d\n",
	"&x a: *y\n<<: *x\nb: !t [1]\n",
	"%YAML 1.2\n---\na: 1\n...\n--- |\n text\n",
	"a: b\n  - c\n  d\n",
	"a: \"x\ty\tz\"[\nb: 1\n",
	"a: \"\\x41\\u00e9\\U0001F600\\\n  b\"\n",
	"a: \"\\ud83d\\ude00\" [\n",
	"{a: 1,\n b: 2,\n c: [3,\n 4]}\n",
	"[\na: 1\nb:\n  c: 2\n]\n",
	"a:\r\n  b: 1 # c\r\n  c: 'x\r\n  y'\r\n",
	"a: b\n\tc: d\n",
	"key with spaces  : v\nmulti\n line: v\n",
	"- !!str x\n- !t, y\n- [!t, z]\n",
	"a: é[\nb: ü\n",
	"a: {b: c: d}\n",
	"'a': 1\n\"b\" : 2\n",
	"- |\n x\n- >\n y\n-\n - z\n",
	"a: |\n",
	"a: |-",
	"--- >\n  folded\n---\n",
	"a: [b, 'c]', \"d]\", e#f, # g\n  h]\n",
	"]\n[\n- x\n",
	"a\n[b\n",
	"x: \"a\tb\" c\n",
	"<<:: x\n<< : y\n<<<: z\n",
	"a: @b\nc: `d\n",
	"-\t- x\n- \t- y\n",
}

// compareTokens checks that the scan and go-yaml's scanner see the same
// tokens (but plain scalars and comments) where go-yaml finds no error.
func compareTokens(t *testing.T, name string, data []byte) {
	t.Helper()
	want, ok := goTokens(data)
	if !ok {
		return
	}
	s := shapeScan{src: data, line: 1, col: 1, lineStart: true, fresh: true}
	var got []string
	s.event = func(kind byte, line, col int) {
		if kind != '#' {
			got = append(got, fmt.Sprintf("%c@%d:%d", kind, line, col))
		}
	}
	s.run()
	if s.msg != "" {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: tokens differ\n got %v\nwant %v", name, got, want)
	}
}

var tokenKinds = map[token.Type]byte{
	token.SequenceStartType: '[', token.SequenceEndType: ']',
	token.MappingStartType: '{', token.MappingEndType: '}',
	token.CollectEntryType: ',', token.SequenceEntryType: '-',
	token.MappingKeyType: '?', token.MappingValueType: ':',
	token.SingleQuoteType: '\'', token.DoubleQuoteType: '"',
	token.LiteralType: '|', token.FoldedType: '>',
	token.DocumentHeaderType: 'D', token.DocumentEndType: 'E',
	token.AnchorType: '&', token.AliasType: '*', token.TagType: '!',
	token.DirectiveType: '%', token.MergeKeyType: '<',
}

// goTokens returns the tokens of go-yaml's scanner in compareTokens'
// form, and false when it finds an error (then it parses nothing).
func goTokens(data []byte) (toks []string, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	for _, tk := range lexer.Tokenize(string(data)) {
		if tk.Type == token.InvalidType {
			return nil, false
		}
		kind, ok := tokenKinds[tk.Type]
		if !ok && tk.Indicator == token.NodePropertyIndicator && strings.HasPrefix(tk.Value, "!") {
			kind, ok = '!', true // tags go-yaml knows get their own types
		}
		if ok {
			toks = append(toks, fmt.Sprintf("%c@%d:%d", kind, tk.Position.Line, tk.Position.Column))
		}
	}
	return toks, true
}

// scanShape runs the scan, keeping the deepest nesting and the most keys
// it saw.
func scanShape(data []byte) *shapeScan {
	s := &shapeScan{src: data, line: 1, col: 1, lineStart: true, fresh: true}
	s.run()
	return s
}

// astShape returns the deepest nesting of collections in a parsed file
// and the most keys of a block mapping: what the scan must not see less
// of.
func astShape(f *ast.File) (depth, keys int) {
	var walk func(n ast.Node, d int)
	walk = func(n ast.Node, d int) {
		switch t := n.(type) {
		case *ast.MappingNode:
			d++
			if !t.IsFlowStyle {
				keys = max(keys, len(t.Values))
			}
			for _, v := range t.Values {
				walk(v, d)
			}
		case *ast.MappingValueNode:
			walk(t.Key, d)
			walk(t.Value, d)
		case *ast.MappingKeyNode:
			walk(t.Value, d)
		case *ast.SequenceNode:
			d++
			for _, v := range t.Values {
				walk(v, d)
			}
		case *ast.TagNode:
			walk(t.Value, d)
		case *ast.AnchorNode:
			walk(t.Value, d)
		case *ast.DocumentNode:
			walk(t.Body, d)
		}
		depth = max(depth, d)
	}
	for _, d := range f.Docs {
		walk(d, 0)
	}
	return depth, keys
}

// checkAgainstParser parses data with go-yaml when the scan accepts it,
// and checks that the parser found no deeper nesting and no larger
// mapping than the scan, give or take slack.
//
// The scan follows go-yaml's scanner token by token (TestShapeTokens),
// but not every leniency of its parser: a plain key spanning two lines,
// say, can nest a mapping one level deeper than the lines' indentation
// says. Missing a level there moves the limit by one, which costs
// nothing; what the limits rest on is that a miss never compounds, so
// the fuzz target allows a slack of two levels and two keys and also
// checks the parse's cost (checkParseCost).
func checkAgainstParser(t *testing.T, data []byte, slack int) {
	t.Helper()
	s := scanShape(data)
	if s.msg != "" {
		return
	}
	f, err := func() (f *ast.File, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	}()
	if err != nil {
		return
	}
	depth, keys := astShape(f)
	if depth > s.maxDepth+slack || keys > s.maxKeys+slack {
		t.Errorf("%q: the parser found depth %d and %d keys, the scan %d and %d", data, depth, keys, s.maxDepth, s.maxKeys)
	}
}

func TestShapeAgainstParser(t *testing.T) {
	for _, src := range shapeSeeds {
		checkAgainstParser(t, []byte(src), 0)
	}
}

// FuzzShape checks that the scan never panics, sees the tokens go-yaml's
// scanner sees, and never less nesting or fewer keys than its parser
// builds.
func FuzzShape(f *testing.F) {
	for _, s := range shapeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkShape("f.yaml", data)
		if len(data) > 4<<10 {
			return
		}
		compareTokens(t, "input", data)
		checkAgainstParser(t, data, 2)
		checkParseCost(t, data)
	})
}

// checkParseCost checks what the limits are for: a file the scan accepts
// costs go-yaml memory in proportion to its size. A flat file costs some
// 600 bytes per byte, a file at the limits no more than twice that
// (TestLimitsBoundParse); 1000 levels of [ cost 2 MiB, 2000 levels 7 MiB.
func checkParseCost(t *testing.T, data []byte) {
	t.Helper()
	if checkShape("f.yaml", data) != nil {
		return
	}
	const fixed, perByte = 64 << 10, 1536
	if got := allocated(func() { _, _ = Parse("f.yaml", data) }); got > fixed+perByte*uint64(len(data)) {
		t.Errorf("%q: accepted, and parsing it allocated %d bytes, over %d + %d per byte", data, got, fixed, perByte)
	}
}

// TestShapeAllocs checks that refusing a deep file costs a scan, not a
// parse: a few KiB, where parsing 4000 levels already costs tens of MiB
// and grows with the square of the depth.
func TestShapeAllocs(t *testing.T) {
	deep := []byte(strings.Repeat("[", 40000))
	if err := checkShape("deep.yaml", deep); err == nil {
		t.Fatal("accepted")
	}
	refuse := allocated(func() { _, _ = Parse("deep.yaml", deep) })
	t.Logf("refusing %d levels: %d bytes allocated", len(deep), refuse)
	if refuse > 1<<20 {
		t.Errorf("refusing %d levels allocated %d bytes, want < 1 MiB", len(deep), refuse)
	}
	if testing.Short() {
		return
	}
	// What the limit saves: go-yaml's cost, about four times as much for
	// twice the depth (should that change, the limits can be revisited).
	var prev uint64
	for _, n := range []int{1000, 2000, 4000} {
		parse := allocated(func() { _, _ = parser.ParseBytes([]byte(strings.Repeat("[", n)), 0) })
		if prev == 0 {
			t.Logf("go-yaml parsing %d levels: %d KiB allocated", n, parse>>10)
		} else {
			t.Logf("go-yaml parsing %d levels: %d KiB allocated, %.1f times %d levels'", n, parse>>10, float64(parse)/float64(prev), n/2)
		}
		prev = parse
	}
}

func allocated(f func()) uint64 {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	f()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc
}

// TestLimitsBoundParse checks that files at the limits cost go-yaml no
// more per byte than a flat one: what the limits leave is linear.
func TestLimitsBoundParse(t *testing.T) {
	const size = 64 << 10
	tile := func(unit string) string { return strings.Repeat(unit, size/len(unit)+1) }
	var keys, block strings.Builder
	keys.WriteString("- k0: v\n")
	for i := 1; i < MaxKeys; i++ {
		fmt.Fprintf(&keys, "  k%d: v\n", i)
	}
	for i := range MaxDepth/2 - 1 {
		block.WriteString(strings.Repeat(" ", 2*i) + "- a:\n")
	}
	flat := "[" + tile("1,") + "1]"
	base := allocated(func() { _, _ = Parse("flat.yaml", []byte(flat)) }) / uint64(len(flat))
	for _, tc := range []struct{ name, src string }{
		{"deep flow", tile("- " + strings.Repeat("[", MaxDepth-2) + strings.Repeat("]", MaxDepth-2) + "\n")},
		{"deep flow maps", tile("- " + strings.Repeat("{a: ", MaxDepth-2) + "1" + strings.Repeat("}", MaxDepth-2) + "\n")},
		{"deep block", tile(block.String())},
		{"wide mappings", tile(keys.String())},
		{"documents", strings.Repeat("---\n"+strings.Repeat("- 1\n", size/64), MaxDocMarkers)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkShape("f.yaml", []byte(tc.src)); err != nil {
				t.Fatalf("refused: %v", err)
			}
			perByte := allocated(func() { _, _ = Parse("f.yaml", []byte(tc.src)) }) / uint64(len(tc.src))
			t.Logf("%d bytes allocated per byte of YAML; a flat sequence: %d", perByte, base)
			if perByte > 2*base {
				t.Errorf("%d bytes allocated per byte, more than twice a flat sequence's %d", perByte, base)
			}
		})
	}
}

// TestShapeLinear checks that the scan allocates nothing as it goes, on
// inputs that make go-yaml's scanner read ahead (BenchmarkShape times it).
func TestShapeLinear(t *testing.T) {
	const size = 256 << 10
	tile := func(unit string) []byte { return []byte(strings.Repeat(unit, size/len(unit)+1)) }
	for _, src := range [][]byte{
		tile("<"), tile("<< "), tile("<<:"), tile("-"), tile("."), tile("a:b:"), tile("'a' "), tile("\"\\x\" "),
		tile("&a "), tile("!a "), tile("# c\n"), tile("x#"), tile("[1,"), tile("a: |\n"), tile("\t"), tile("\"\t\n"),
	} {
		s := &shapeScan{src: src, line: 1, col: 1, lineStart: true, fresh: true}
		allocs := testing.AllocsPerRun(1, func() { *s = shapeScan{src: src, line: 1, col: 1, lineStart: true, fresh: true}; s.run() })
		if allocs > 5 { // the error message, if any
			t.Errorf("%.8q…: %v allocations", src, allocs)
		}
	}
}

func BenchmarkShape(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "gateway.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := checkShape("gateway.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
