package main

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/rs/zerolog"
)

// maxTokenFile bounds the token file: a token is one short line.
const maxTokenFile = 4 << 10

// readToken reads the HTTP API's bearer token from the file name: its
// content with one trailing newline removed, which must be visible ASCII
// (what an Authorization header carries). A file every user may read is
// worth a warning.
func readToken(name string, log zerolog.Logger) (string, error) {
	fail := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("http token file %s: "+format, append([]any{name}, args...)...)
	}
	// Stat first: opening a FIFO would wait for a writer.
	fi, err := os.Stat(name)
	switch {
	case err != nil:
		return fail("%w", unwrapPath(err))
	case !fi.Mode().IsRegular():
		return fail("not a regular file")
	case fi.Size() > maxTokenFile:
		return fail("larger than %d bytes; it should hold one line, the token", maxTokenFile)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return fail("%w", unwrapPath(err))
	}
	tok := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if tok == "" {
		return fail("empty")
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c > '~' {
			return fail("the token must be one line of visible ASCII characters, without spaces")
		}
	}
	if fi.Mode().Perm()&0o004 != 0 {
		log.Warn().Str("file", name).Msg("the http token file is readable by every user (chmod o-r)")
	}
	return tok, nil
}

// unwrapPath is err without its *PathError: the path is said once.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// loopback reports whether addr is a loopback address, which only this
// machine reaches.
func loopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
