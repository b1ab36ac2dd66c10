package buffer

import (
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every error about damaged stored data: an entry
// whose CRC does not match, a malformed key or value, or a panic inside bbolt
// while reading a damaged page. Use errors.As with *CorruptError to learn
// which entry, so it can be deleted and reported as lost.
var ErrCorrupt = errors.New("buffer: corrupt data")

// ErrReadOnly is wrapped by the error of a write to an outbox opened with
// Options.ReadOnly.
var ErrReadOnly = errors.New("opened read-only")

// CorruptError names one damaged entry. It wraps ErrCorrupt.
type CorruptError struct {
	Lane   Lane
	Seq    uint64 // 0 when the damage is not tied to one entry (a bbolt panic)
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Seq == 0 {
		return fmt.Sprintf("buffer: corrupt %s lane: %s", e.Lane, e.Reason)
	}
	return fmt.Sprintf("buffer: corrupt entry seq %d in %s lane: %s", e.Seq, e.Lane, e.Reason)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// fileError says the outbox file as a whole cannot be used; Open moves such
// a file aside and starts a new one. It never leaves this package.
type fileError struct{ reason string }

func (e *fileError) Error() string { return "invalid outbox file: " + e.reason }

func badFile(format string, args ...any) error {
	return &fileError{reason: fmt.Sprintf(format, args...)}
}
