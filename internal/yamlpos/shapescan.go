package yamlpos

// The scan of checkShape follows go-yaml's scanner (scanner/scanner.go,
// v1.19) character by character: where a quote, a comment, a block
// scalar, a bracket or an indicator starts, which column it is at, and its
// quirks (a tab in double quotes that makes it skip a character after the
// closing one, a CRLF after a comment counted as two lines). What it must
// agree on is checked against go-yaml's own scanner in the tests
// (compareTokens, FuzzShape).

import (
	"bytes"
	"unicode/utf8"
)

// updateIndent is go-yaml's Scanner.updateIndent: the first character of
// a line decides whether the line is deeper than the last delimiter.
func (s *shapeScan) updateIndent(c byte) {
	if !s.lineStart {
		s.state = stateKeep
		return
	}
	switch c {
	case '\n', '\r', '\t':
		return
	case ' ':
		s.indent++
		return
	}
	if s.lastDelim != 0 {
		if s.lastDelim < s.col {
			s.state = stateUp
		} else {
			s.state = stateDown
		}
	}
	s.lineStart = false
}

// step scans one character outside block scalars (go-yaml's scan loop).
func (s *shapeScan) step(c byte) {
	s.opened = false
	if c != ' ' && c != '\t' && c != '\n' && c != '\r' && !(c == '#' && s.isComment()) {
		if s.tagged && !s.anchor && (c != '&' || s.buf) {
			s.tagged = false // the tag's value starts on its line
		}
		s.mark()
	}
	switch c {
	case '{':
		if !s.buf || s.flowMode() {
			s.flush()
			s.emit('{')
			s.mapN++
			s.open('{')
			s.advance(1)
			return
		}
	case '}':
		if s.mapN > 0 {
			s.flush()
			s.emit('}')
			s.mapN--
			s.close()
			s.advance(1)
			return
		}
	case '[':
		if !s.buf || s.flowMode() {
			s.flush()
			s.emit('[')
			s.seqN++
			s.open('[')
			s.advance(1)
			return
		}
	case ']':
		if !s.buf || s.seqN > 0 {
			s.flush()
			s.emit(']')
			if s.seqN > 0 {
				s.close()
			}
			// A stray ']' takes go-yaml's count below zero.
			s.seqN--
			s.advance(1)
			return
		}
	case ',':
		if s.flowMode() {
			s.flush()
			s.emit(',')
			s.advance(1)
			s.group[s.flow] = 0
			s.afterValue = false
			for s.n > 0 && s.levels[s.n-1].flow == s.flow {
				s.drop() // the entry ends
			}
			return
		}
	case '.':
		if s.indent == 0 && s.col == 1 && s.repeat('.', 3) {
			s.flush()
			s.emit('E')
			s.doc()
			s.advance(3)
			s.buf, s.multi = false, false
			return
		}
	case '<':
		if s.mergeKey() {
			if s.buf {
				// go-yaml drops the pending text: the key starts a node.
				if s.pend == pendNone {
					s.pend, s.pendSeq, s.pendLine = pendNode, false, s.line
				}
			}
			s.lastDelim = s.col
			s.emit('<')
			s.advance(2)
			s.buf, s.multi = false, false
			return
		}
	case '-':
		if s.indent == 0 && s.col == 1 && s.repeat('-', 3) && (s.i+3 == len(s.src) || isBlank(s.src[s.i+3])) {
			s.flush()
			s.emit('D')
			s.doc()
			s.advance(3)
			s.buf, s.multi = false, false
			s.lastDelim, s.indent = 0, 0
			return
		}
		if s.buf && s.state == stateUp {
			// Raw folded text: a "-" that starts a line inside plain text.
			s.multi, s.multiFirst, s.multiText = true, s.col, true
			s.addBuf(c)
			return
		}
		if !s.buf && (s.i+1 == len(s.src) || isBlank(s.src[s.i+1]) || s.src[s.i+1] == 0) {
			s.flush()
			s.emit('-')
			s.lastDelim = s.col
			s.advance(1)
			s.indicator('-')
			return
		}
	case ':':
		if s.mapDelim() {
			return
		}
	case '|', '>':
		if !s.buf {
			s.header(c)
			return
		}
	case '!':
		if !s.buf && !s.directive {
			s.tag()
			return
		}
	case '%':
		if !s.buf && s.indent == 0 {
			s.emit('%')
			s.directive = true
			s.advance(1)
			return
		}
	case '?':
		if !s.buf && s.i+1 < len(s.src) && (s.src[s.i+1] == ' ' || s.src[s.i+1] == '\t') {
			s.emit('?')
			s.lastDelim = s.col
			s.key(s.col)
			s.advance(1)
			s.indicator('?')
			return
		}
	case '&', '*':
		if !s.buf {
			s.emit(c)
			s.anchor, s.alias = c == '&', c == '*'
			s.tagged = s.tagged || s.anchor // an anchor is a property too
			s.advance(1)
			return
		}
	case '#':
		if s.isComment() {
			s.flush()
			s.emit('#')
			s.comment()
			return
		}
	case '\'', '"':
		if !s.buf {
			s.quoted(c)
			return
		}
	case '\r', '\n':
		s.newLine(c)
		return
	case ' ':
		switch {
		case s.lineStart:
			s.advance(1)
			return
		case s.directive:
			s.flush()
			s.advance(1)
			return
		case s.anchor || s.alias:
			// go-yaml ends the name and scans the space again.
			s.flush()
			s.anchor, s.alias = false, false
			return
		}
	case '\t':
		if s.buf && s.lastDelim == 0 || s.lastDelim < s.col {
			// go-yaml counts such a tab as indentation and no column.
			s.indent++
			s.i++
			return
		}
	}
	s.addBuf(c)
}

func (s *shapeScan) flowMode() bool { return s.seqN > 0 || s.mapN > 0 }

// isComment reports whether a # here starts a comment.
func (s *shapeScan) isComment() bool {
	if !s.buf {
		return true
	}
	if s.i == 0 {
		return false
	}
	p := s.src[s.i-1]
	return p == ' ' || p == '\t' || p == '\n' || p == '\r'
}

// mapDelim scans a ':' that may be a mapping value indicator
// (go-yaml's scanMapDelim) and reports whether it was one.
func (s *shapeScan) mapDelim() bool {
	if s.directive || s.anchor || s.alias {
		return false
	}
	var next byte
	if s.i+1 < len(s.src) {
		next = s.src[s.i+1]
	}
	if s.mapN <= 0 && next != ' ' && next != '\t' && next != '\n' && next != '\r' && s.i+1 < len(s.src) {
		return false
	}
	if s.mapN > 0 && (next == '/' || s.lastTok == tokValue) {
		return false
	}
	if s.buf {
		s.lastDelim = s.bufCol
		if s.savedCol != 0 {
			s.lastDelim = s.savedCol
		}
	} else if s.lastTok == tokQuoted {
		s.lastDelim = s.quotedCol
	}
	s.flush()
	k := s.group[s.flow]
	if k == 0 {
		k = s.col
	}
	if s.pend != pendNone && s.groupLine[s.flow] != s.pendLine {
		// The key is on a line before: this line goes on with its pair.
		s.pend = pendNone
	}
	s.begin(s.line, k)
	s.emit(':')
	s.lastTok = tokValue
	switch {
	case s.group[s.flow] != 0 && s.groupLine[s.flow] < s.line:
		// A key on a line before its ':' opens a mapping in the value
		// before it, whatever its column.
		s.child(s.line, k)
	case s.flow == 0 || s.afterValue || s.kind[s.flow] == '[':
		// A key opens a mapping, unless it is at the column of one; in
		// flow, a pair in a sequence or a mapping in a value does.
		s.nodeAt(s.line, k, false)
	}
	s.afterValue = true
	s.key(k)
	s.advance(1)
	s.group[s.flow], s.prop = 0, propNone
	s.buf, s.multi = false, false
	return true
}

// mergeKey reports whether a "<<" here is a merge key: "<<" then spaces
// and a ':' before a space or a line break.
func (s *shapeScan) mergeKey() bool {
	if !s.repeat('<', 2) {
		return false
	}
	for j := s.i + 2; j < len(s.src); j++ {
		switch s.src[j] {
		case ' ':
			continue
		case ':':
			if j+1 < len(s.src) && (s.src[j+1] == ' ' || s.src[j+1] == '\n' || s.src[j+1] == '\r') {
				return true
			}
			continue
		}
		return false
	}
	return false
}

// header scans a block scalar header (| or >) with the rest of its line;
// the lines after it are text, up to one that is not indented deeper than
// the key or "-" before it (or than the text's first line).
func (s *shapeScan) header(c byte) {
	s.emit(c)
	if s.col == 1 {
		s.lastDelim = 1
	}
	end := s.i + 1
	for end < len(s.src) && s.src[end] != '\n' && s.src[end] != '\r' {
		end++
	}
	opt := s.src[s.i+1 : end]
	if h := bytes.IndexByte(opt, '#'); h > 0 {
		opt = opt[:h]
	}
	opt = bytes.TrimRight(opt, " \t")
	s.multi, s.multiFirst = true, 0
	s.multiText, s.multiNL = false, false
	s.multiKeep = bytes.HasPrefix(opt, []byte("+")) || bytes.HasSuffix(opt, []byte("+"))
	if d := headerIndent(opt); d > 0 {
		s.multiFirst = s.lastDelim + d
	}
	s.state = stateKeep
	s.buf = false
	// go-yaml steps over the line break (the \n of a CRLF) as it starts
	// the next line, or over the last character.
	if end+1 < len(s.src) && s.src[end] == '\r' && s.src[end+1] == '\n' {
		end++
	}
	s.i = end
	if end < len(s.src) {
		s.nextLine()
	}
}

// headerIndent returns the indentation indicator of a block scalar
// header's options, as go-yaml reads it; 0 for none.
func headerIndent(opt []byte) int {
	opt = bytes.TrimPrefix(opt, []byte("-"))
	opt = bytes.TrimPrefix(opt, []byte("+"))
	opt = bytes.TrimSuffix(opt, []byte("-"))
	opt = bytes.TrimSuffix(opt, []byte("+"))
	if len(opt) != 1 || opt[0] < '1' || opt[0] > '9' {
		return 0
	}
	return int(opt[0] - '0')
}

// multiLine scans one character of a block scalar or raw folded text
// (go-yaml's scanMultiLine); only line breaks and indentation matter.
func (s *shapeScan) multiLine(c byte) {
	if c == '\r' && s.i+1 < len(s.src) && s.src[s.i+1] == '\n' {
		s.i++
		c = '\n'
	}
	switch {
	case s.i == len(s.src)-1:
		s.advance(1)
		s.multi = false
	case c == '\n' || c == '\r':
		s.multiNL = true
		s.nextLine()
		if s.docMarkerAt(s.i) {
			s.multi = false
			s.lastTok = tokOther
		}
	case s.lineStart && c == ' ':
		if s.multiFirst != 0 && s.col >= s.multiFirst {
			s.multiText = true
		}
		s.advance(1)
	case s.lineStart && c == '\t' && s.indentColumn():
		s.advance(1) // an error for go-yaml
	case c == '\t' && !s.indentColumn():
		s.multiText = true
		s.advance(1)
	default:
		s.fresh = false
		s.multiText = true
		if s.multiFirst == 0 {
			s.multiFirst = s.col
		}
		if s.multiFirst > 0 {
			s.lastDelim = s.multiFirst - 1
		}
		s.advance(1)
	}
}

func (s *shapeScan) indentColumn() bool {
	if s.multiFirst == 0 {
		return s.col == 1
	}
	return s.multiFirst > s.col
}

// docMarkerAt reports whether a line starting at i starts with --- or
// ... as go-yaml's foundDocumentSeparatorMarker sees it.
func (s *shapeScan) docMarkerAt(i int) bool {
	rest := s.src[i:]
	if len(rest) < 3 {
		return false
	}
	m := rest[:3]
	if len(rest) > 3 && !isBlank(rest[3]) {
		return false
	}
	return string(m) == "---" || string(m) == "..."
}

// tag scans a tag (go-yaml's scanTag), which runs to a space, a line
// break, or a ',' in a flow collection; go-yaml then counts one column
// less than there are. A tag that runs to the end is no token.
func (s *shapeScan) tag() {
	j, skip := s.i+1, 0
loop:
	for ; j < len(s.src); j++ {
		switch s.src[j] {
		case ' ':
			skip = 1
			break loop
		case ',':
			if s.flowMode() {
				break loop
			}
		case '\n', '\r':
			break loop
		}
	}
	if j < len(s.src) {
		s.emit('!')
		s.tagged = true
	}
	s.col += s.runes(s.i, j) - 1 + skip
	s.i = j + skip
	s.buf, s.multi = false, false
}

// comment skips a comment and its line break.
func (s *shapeScan) comment() {
	j := s.i + 1
	for j < len(s.src) && s.src[j] != '\n' && s.src[j] != '\r' {
		j++
	}
	s.i = j
	s.buf, s.multi = false, false
	if j < len(s.src) {
		// go-yaml steps over one byte of the line break, so a CRLF after
		// a comment counts as two lines.
		s.nextLine()
	}
}

// quoted scans a quoted scalar (go-yaml's scanSingleQuote and
// scanDoubleQuote).
func (s *shapeScan) quoted(q byte) {
	s.emit(q)
	col := s.col
	s.advance(1)
	firstLineChar := false
	// go-yaml steps one character further for each tab followed by text
	// in double quotes: after the closing quote it skips them, and the
	// columns of the last line are off by those on it.
	skew, skewCol := 0, 0
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == '\n' || c == '\r':
			// go-yaml counts a CRLF inside quotes as two lines.
			s.nextLineIn()
			firstLineChar, skewCol = true, 0
			continue
		case firstLineChar && (c == ' ' || c == '\t'):
			s.advance(1)
			continue
		case q == '\'' && c == '\'':
			if s.i+1 < len(s.src) && s.src[s.i+1] == '\'' {
				s.advance(2)
				continue
			}
		case q == '"' && c == '\\':
			firstLineChar = s.escape()
			if firstLineChar {
				skewCol = 0
			}
			continue
		case q == '"' && c == '\t':
			if s.tabAhead() {
				s.advance(1)
				if s.i < len(s.src) && s.src[s.i] != '"' {
					skew++
					skewCol++
				}
				continue
			}
			// Only blanks to the line break: go-yaml steps over them.
			for s.i < len(s.src) && (s.src[s.i] == ' ' || s.src[s.i] == '\t') {
				s.advance(1)
			}
			continue
		case c != q:
			firstLineChar = false
			s.advance(1)
			continue
		}
		s.advance(1)
		s.lastTok, s.quotedCol = tokQuoted, col
		s.buf, s.multi = false, false
		c0 := s.col
		s.advance(skew)
		s.col = c0 + skewCol
		return
	}
	// Unterminated: an error for go-yaml, which then parses nothing.
}

// tabAhead reports whether text other than blanks follows the tab at i on
// its line, and adds the bytes go-yaml reads to find out to its budget.
func (s *shapeScan) tabAhead() bool {
	if s.nextNL <= s.i {
		s.nextNL = len(s.src)
		if j := bytes.IndexAny(s.src[s.i:], "\r\n"); j >= 0 {
			s.nextNL = s.i + j
		}
		s.lastText = s.nextNL - 1
		for s.lastText > s.i && (s.src[s.lastText] == ' ' || s.src[s.lastText] == '\t') {
			s.lastText--
		}
	}
	s.tabs += s.nextNL - s.i
	if s.tabs > maxTabScan {
		s.fail(s.line, s.col, "too many tabs in double-quoted text to parse; write them as \\t")
	}
	return s.lastText > s.i
}

// escape steps over an escape sequence in double-quoted text as go-yaml
// does: a fixed number of characters, whatever they are. It reports
// whether the escape was a line break.
func (s *shapeScan) escape() bool {
	if s.i+1 >= len(s.src) {
		s.advance(1)
		return false
	}
	n := 1
	switch s.src[s.i+1] {
	case '\n':
		s.advance(1)
		s.nextLineIn()
		return true
	case '\r':
		s.advance(1)
		s.nextLineIn()
		s.col++
		if s.i < len(s.src) && s.src[s.i] == '\n' {
			s.i++
			s.col++
		}
		return true
	case 'x':
		if s.runesAfter(3) {
			n = 3
		}
	case 'u':
		n = 5
		if s.runesAfter(11) && s.highSurrogate() {
			n = 11
		}
	case 'U':
		n = 9
	}
	s.advance(1 + n)
	return false
}

// highSurrogate reports whether the \u escape at i names a high surrogate,
// computed as go-yaml's hexRunesToInt does, digits or not.
func (s *shapeScan) highSurrogate() bool {
	sum, j := 0, s.i+2
	for k := 0; k < 4; k++ {
		r, size := utf8.DecodeRune(s.src[j:])
		j += size
		switch {
		case 'A' <= r && r <= 'F':
			r = r - 'A' + 10
		case 'a' <= r && r <= 'f':
			r = r - 'a' + 10
		default:
			r -= '0'
		}
		sum += int(r) << (uint(3-k) * 4)
	}
	return sum >= 0xD800 && sum <= 0xDBFF
}

// runesAfter reports whether at least n runes follow the one at i.
func (s *shapeScan) runesAfter(n int) bool {
	j := s.i
	for k := 0; k <= n; k++ {
		if j >= len(s.src) {
			return false
		}
		_, size := utf8.DecodeRune(s.src[j:])
		j += size
	}
	return true
}

// newLine scans a line break outside quotes and block scalars
// (go-yaml's scanNewLine).
func (s *shapeScan) newLine(c byte) {
	if s.buf && s.savedCol == 0 {
		s.savedCol = s.col - (s.lastNonSpace - s.bufCol + 1)
	}
	if c == '\r' && s.i+1 < len(s.src) && s.src[s.i+1] == '\n' {
		s.i++
	}
	if s.i == len(s.src)-1 || s.anchor || s.alias || s.directive {
		s.flush()
	}
	s.nextLine()
}

// nextLine steps over one line-break byte and starts a line.
func (s *shapeScan) nextLine() {
	s.nextLineIn()
	s.fresh, s.afterValue = true, false
	if s.tagged || s.expect {
		s.tagged, s.tagChild = false, true
	}
	s.expect = false
}

// nextLineIn is nextLine inside a quoted scalar: the line that starts
// there is no new line of structure.
func (s *shapeScan) nextLineIn() {
	s.i++
	s.line++
	s.col = 1
	s.indent = 0
	s.lineStart = true
	s.anchor, s.alias, s.directive = false, false, false
	s.fresh = false
}

// flush ends pending plain text (go-yaml's addBufferedTokenIfExists).
func (s *shapeScan) flush() {
	if s.buf {
		s.grouped('s', s.bufCol)
		s.groupLine[s.flow] = s.bufLine
		s.buf = false
		s.lastTok = tokOther
	}
	s.savedCol = 0
}

func (s *shapeScan) addBuf(c byte) {
	if c != ' ' && c != '\t' {
		if !s.buf {
			s.buf, s.bufCol, s.bufLine = true, s.col, s.line
		}
		s.lastNonSpace = s.col
	}
	s.advance(1)
}

// advance steps over n characters (runes) of one line.
func (s *shapeScan) advance(n int) {
	for ; n > 0 && s.i < len(s.src); n-- {
		if s.src[s.i] < utf8.RuneSelf {
			s.i++
		} else {
			_, size := utf8.DecodeRune(s.src[s.i:])
			s.i += size
		}
		s.col++
	}
}

// runes counts the runes of src[i:j].
func (s *shapeScan) runes(i, j int) int {
	n := 0
	for i < j {
		if s.src[i] < utf8.RuneSelf {
			i++
		} else {
			_, size := utf8.DecodeRune(s.src[i:])
			i += size
		}
		n++
	}
	return n
}

// repeat reports whether exactly n bytes equal to c start at i.
func (s *shapeScan) repeat(c byte, n int) bool {
	for j := s.i; j < s.i+n; j++ {
		if j == len(s.src) || s.src[j] != c {
			return false
		}
	}
	return s.i+n == len(s.src) || s.src[s.i+n] != c
}

func (s *shapeScan) emit(kind byte) {
	switch kind {
	case '-', '?', '[', '{', '|', '>', '<', 'D', 'E', '%':
		s.begin(s.line, s.col)
	}
	if kind != '#' && kind != ':' && kind != ',' {
		s.grouped(kind, s.col)
	}
	s.lastTok = tokOther
	if s.event != nil {
		s.event(kind, s.line, s.col)
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
