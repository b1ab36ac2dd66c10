package yamlpos

import "fmt"

// Limits on the shape of a file, checked before the YAML parser sees it.
// github.com/goccy/go-yaml takes time and memory that grow with the square
// of each of these (a line of 40000 '[' asks it for gigabytes), so a small
// file could otherwise exhaust the gateway. The configs and rules files
// people write stay far below them: under 10 levels, a few dozen keys in
// a mapping, one document.
const (
	// MaxDepth is the deepest nesting a file may have: block levels (each
	// deeper indentation, each "- " or "? " that opens a node) plus the
	// flow collections ([ and {) open around a value.
	MaxDepth = 64
	// MaxKeys is the most keys one mapping may have.
	MaxKeys = 1000
	// MaxDocMarkers is the most document markers (--- and ...) a file may
	// have; Decode reads one document.
	MaxDocMarkers = 16
	// maxTabScan bounds the bytes go-yaml reads ahead for tabs inside
	// double-quoted text: it reads to the end of the line for each one.
	maxTabScan = 1 << 24
)

// checkShape refuses data whose parse would cost more than its size
// warrants (see MaxDepth), positioned at the first byte past a limit. It
// runs in time linear in len(data) and allocates nothing but its error.
//
// It scans as go-yaml's scanner does, token by token, so that it sees the
// structure the parser will: brackets inside quoted text, comments, block
// scalars and plain text such as a[0] are not structure, and go-yaml's
// own rules for where a quote, a comment or a bracket starts are followed
// even where they differ from the YAML spec. Where the two could still
// disagree it counts more rather than less.
func checkShape(name string, data []byte) *Error {
	s := shapeScan{src: data, line: 1, col: 1, lineStart: true, fresh: true}
	s.run()
	if s.msg == "" {
		return nil
	}
	return &Error{File: name, Line: s.errLine, Col: s.errCol, Msg: s.msg}
}

// shapeScan is the state of checkShape. The fields up to multiFirst
// mirror go-yaml's scanner (scanner.Scanner and its Context).
type shapeScan struct {
	src       []byte
	i         int // the byte being scanned
	line, col int // its position as go-yaml counts it (col in runes, from 1)

	lineStart    bool // no token yet on this line (go-yaml's isFirstCharAtLine)
	indent       int  // indentation of this line (indentNum)
	state        indentState
	buf          bool // plain text is pending (existsBuffer)
	bufCol       int  // where it starts
	lastNonSpace int  // column of its last character that is not a space
	savedCol     int  // where pending text that spans lines starts (savedPos)
	lastDelim    int  // lastDelimColumn
	lastTok      tokKind
	quotedCol    int // where the last quoted scalar starts
	seqN, mapN   int // startedFlowSequenceNum, startedFlowMapNum
	anchor       bool
	alias        bool
	directive    bool
	multi        bool // in a block scalar or raw folded text (mstate)
	multiFirst   int  // firstLineIndentColumn of the block scalar
	multiKeep    bool // its header says + (keep the final line breaks)
	multiText    bool // it holds more than line breaks
	multiNL      bool // it holds a line break

	fresh  bool // this line has had no token and did not start inside one
	expect bool // the next token opens a node (after "- " or "? ")
	// A tag or anchor, "- " or "? " with no value after it on its line
	// takes the next node as its value, at any column: that node is a
	// level deeper.
	tagged, tagChild bool
	// A key after a value indicator on its line, with no ',' between
	// ("a: b:"), is a mapping in that value: go-yaml accepts some.
	afterValue bool
	opened     bool // the character being scanned opened a node
	// A node opens at its first token, which plain text is only once it
	// ends: go-yaml may yet drop it (before a merge key).
	pend     pendKind
	pendSeq  bool // the node is a sequence entry
	pendLine int  // the line of the token that made it pending
	// A key is the token before ':' with the anchor or tag before it.
	prop      propKind
	afterName propKind          // prop after the name of an anchor or alias
	bufLine   int               // the line where pending text starts
	flow      int               // open flow collections
	group     [MaxDepth + 2]int // where the last token's group starts, per flow level
	groupLine [MaxDepth + 2]int
	kind      [MaxDepth + 2]byte // [ or { at each flow level
	levels    [2*MaxDepth + 2]shapeLevel
	n         int // levels in use
	nodes     int // levels that are nodes, not only key columns
	docs      int
	tabs      int // bytes go-yaml reads ahead for tabs in double quotes
	nextNL    int // index of the next line break at or after i, for tabs
	lastText  int // index of the last byte before it that is not blank

	maxDepth, maxKeys int // the most seen, for tests

	msg             string
	errLine, errCol int

	// event, when not nil, is told each token that go-yaml would emit,
	// but for plain scalars: tests compare the two scanners.
	event func(kind byte, line, col int)
}

type indentState uint8

const (
	stateKeep indentState = iota
	stateUp
	stateDown
)

type pendKind uint8

const (
	pendNone  pendKind = iota
	pendNode           // a node at the next token: nodeAt
	pendChild          // a tag's or "- "'s value on a later line: a level deeper
)

type propKind uint8

const (
	propNone  propKind = iota
	propName           // the next plain text names an anchor or alias
	propAfter          // the next token belongs to the same node
)

type tokKind uint8

const (
	tokOther tokKind = iota
	tokQuoted
	tokValue
)

// shapeLevel is one open level: a node (a block collection or an entry
// of one) or a column of mapping keys, at a flow nesting level.
type shapeLevel struct {
	col, flow, keys int
	node            bool
	seq             bool // a sequence at the column of its mapping's keys
}

func (s *shapeScan) fail(line, col int, format string, args ...any) {
	if s.msg == "" {
		s.msg = fmt.Sprintf(format, args...)
		s.errLine, s.errCol = line, col
	}
}

func (s *shapeScan) run() {
	for s.i < len(s.src) && s.msg == "" {
		c := s.src[s.i]
		s.updateIndent(c)
		if s.state == stateDown {
			s.flush()
		}
		if s.multi {
			if s.state != stateDown {
				s.multiLine(c)
				continue
			}
			s.multi = false
			if s.multiNL && !s.multiText && !s.multiKeep {
				// go-yaml drops a block scalar of line breaks only but
				// keeps its count of them: it has pending text, as if
				// it started here.
				s.buf, s.bufCol, s.bufLine = true, s.col, s.line
			}
		}
		s.step(c)
	}
	if s.msg == "" {
		s.flush()
	}
}

// mark notes a character that starts or continues a token: it may open a
// node, and it may be the first of an entry.
func (s *shapeScan) mark() {
	if s.fresh {
		s.fresh = false
		if !s.buf {
			s.expect = true
			s.prop = propNone
		}
	}
	switch {
	case s.tagChild:
		s.tagChild, s.expect = false, false
		s.pend, s.pendLine = pendChild, s.line
	case s.pend == pendChild:
		s.expect = false // the value the child waits for may be a key yet
	case s.expect:
		s.expect = false
		s.pend, s.pendSeq, s.pendLine = pendNode, s.entrySign(), s.line
	}
}

// grouped notes a token of kind ('s' for plain text) at col.
func (s *shapeScan) grouped(kind byte, col int) {
	same := false
	switch s.prop {
	case propName:
		if kind == 's' {
			s.prop = s.afterName
			return
		}
		same, s.prop = true, propNone
	case propAfter:
		same, s.prop = true, propNone
	}
	if !same {
		s.group[s.flow], s.groupLine[s.flow] = col, s.line
	}
	switch kind {
	case '&':
		s.prop, s.afterName = propName, propAfter
	case '*':
		s.prop, s.afterName = propName, propNone
	case '!':
		s.prop = propAfter
	}
}

// begin opens the pending node, if any, at a token at line:col.
func (s *shapeScan) begin(line, col int) {
	switch s.pend {
	case pendNone:
		return
	case pendNode:
		s.nodeAt(line, col, s.pendSeq)
	case pendChild:
		s.child(line, col)
	}
	s.pend = pendNone
	s.opened = true
}

// child records a node at col that is a child of the last level whatever
// its column: the levels under it stay. Should go-yaml take it for a
// sibling after all (of the last level, or of one at its column), their
// keys go on counting.
func (s *shapeScan) child(line, col int) {
	l := shapeLevel{col: col, flow: s.flow, node: true}
	for j := s.n - 1; j >= 0 && s.levels[j].flow == s.flow; j-- {
		if j == s.n-1 || s.levels[j].col == col {
			l.keys = max(l.keys, s.levels[j].keys)
		}
	}
	s.push(l)
	s.checkDepth(line, col)
}

// indicator follows a "- " or "? ": what comes next on the line is a node
// inside it. Where no node opened before it on its line (after a tag, a
// key), it opens one itself.
func (s *shapeScan) indicator(c byte) {
	if !s.opened {
		s.nodeAt(s.line, s.col-1, c == '-')
	}
	s.expect, s.afterValue = true, false
	s.group[s.flow] = 0
	s.buf, s.multi = false, false
}

// entrySign reports whether the character at i is a "-" that go-yaml
// takes for a sequence entry.
func (s *shapeScan) entrySign() bool {
	return s.src[s.i] == '-' && !s.buf && (s.i+1 == len(s.src) || isBlank(s.src[s.i+1]) || s.src[s.i+1] == 0)
}

// nodeAt records a node starting at col: a sibling of the node at col,
// else a child of the deepest one left of col. A sequence entry at the
// column of a mapping's keys is in a sequence one level deeper, the value
// of the last key; it ends at the next key.
func (s *shapeScan) nodeAt(line, col int, entry bool) {
	s.pop(col)
	top := func() *shapeLevel {
		if s.n > 0 && s.levels[s.n-1].flow == s.flow && s.levels[s.n-1].col == col {
			return &s.levels[s.n-1]
		}
		return nil
	}
	if l := top(); l != nil && l.seq && !entry {
		s.drop()
	}
	l := top()
	switch {
	case l == nil:
		s.push(shapeLevel{col: col, flow: s.flow, node: true})
	case entry && !l.seq && l.keys > 0:
		s.push(shapeLevel{col: col, flow: s.flow, node: true, seq: true})
	case !l.node:
		l.node = true
		s.nodes++
	}
	s.checkDepth(line, col)
}

// key records a mapping key at col and counts it.
func (s *shapeScan) key(col int) {
	s.pop(col)
	if s.n > 0 && s.levels[s.n-1].flow == s.flow && s.levels[s.n-1].col == col {
		l := &s.levels[s.n-1]
		l.keys++
		s.maxKeys = max(s.maxKeys, l.keys)
		if l.keys > MaxKeys {
			s.fail(s.line, col, "a mapping with more than %d keys", MaxKeys)
		}
		return
	}
	s.push(shapeLevel{col: col, flow: s.flow, keys: 1})
	s.maxKeys = max(s.maxKeys, 1)
}

// pop ends the levels of the current flow collection right of col.
func (s *shapeScan) pop(col int) {
	for s.n > 0 && s.levels[s.n-1].flow == s.flow && s.levels[s.n-1].col > col {
		s.drop()
	}
}

func (s *shapeScan) drop() {
	s.n--
	if s.levels[s.n].node {
		s.nodes--
	}
}

// push adds a level. Nodes are at most MaxDepth+1 (checkDepth stops the
// scan), so when levels run out the rest are key columns: a node takes
// the place of the last of them, and a key column that of the last level
// if it is a key column of the same flow collection, else it is not kept.
// Only the columns at or left of the next line's indentation gather keys
// from several lines, and those are kept.
func (s *shapeScan) push(l shapeLevel) {
	if s.n == len(s.levels) {
		j := s.n - 1
		for l.node && s.levels[j].node {
			j--
		}
		if last := s.levels[j]; last.node || last.flow != l.flow {
			return
		}
		copy(s.levels[j:], s.levels[j+1:s.n])
		s.n--
	}
	s.levels[s.n] = l
	s.n++
	if l.node {
		s.nodes++
	}
}

func (s *shapeScan) checkDepth(line, col int) {
	s.maxDepth = max(s.maxDepth, s.nodes+s.flow)
	if s.nodes+s.flow > MaxDepth {
		s.fail(line, col, "nested deeper than %d levels", MaxDepth)
	}
}

// open and close follow the flow collections.
func (s *shapeScan) open(kind byte) {
	s.afterValue = false
	s.flow++
	s.checkDepth(s.line, s.col)
	if s.flow < len(s.group) {
		s.group[s.flow], s.kind[s.flow] = 0, kind
	}
}

func (s *shapeScan) close() {
	for s.n > 0 && s.levels[s.n-1].flow == s.flow {
		s.drop()
	}
	s.flow--
}

func (s *shapeScan) doc() {
	s.docs++
	if s.docs > MaxDocMarkers {
		s.fail(s.line, s.col, "more than %d document markers (--- or ...); the file must hold one document", MaxDocMarkers)
	}
}
