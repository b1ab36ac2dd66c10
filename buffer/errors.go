package buffer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// ErrCorrupt is wrapped by every error about damaged stored data: an entry
// whose CRC does not match, a malformed key or value, or a panic inside bbolt
// while reading a damaged page. Use errors.As with *CorruptError to learn
// which entry, so it can be deleted and reported as lost.
var ErrCorrupt = errors.New("buffer: corrupt data")

// ErrReadOnly is wrapped by the error of a write to an outbox opened with
// Options.ReadOnly.
var ErrReadOnly = errors.New("opened read-only")

// ErrLocked is wrapped by the error of Open on an outbox file that another
// Outbox holds (in another process, or in this one): bbolt locks the file
// for as long as it is open. Use errors.As with *LockedError to learn the
// holder's pid.
var ErrLocked = errors.New("buffer: outbox in use by another process")

// LockedError is Open's error for a file another Outbox holds. It wraps
// ErrLocked. Its message is
//
//	buffer: outbox PATH is in use by another process (pid PID)
//	buffer: outbox PATH is in use by another process
//	buffer: outbox PATH is already open in this process (pid PID)
//
// the second when the holder is not known (the lock is not listed in
// /proc/locks, or not on Linux).
type LockedError struct {
	Path string
	PID  int // the holder's process id; 0 when unknown
}

func (e *LockedError) Error() string {
	switch {
	case e.PID <= 0:
		return fmt.Sprintf("buffer: outbox %s is in use by another process", e.Path)
	case e.PID == os.Getpid():
		return fmt.Sprintf("buffer: outbox %s is already open in this process (pid %d)", e.Path, e.PID)
	}
	return fmt.Sprintf("buffer: outbox %s is in use by another process (pid %d)", e.Path, e.PID)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// pathError is the error of an OS operation on the outbox file at path:
// "buffer: OP outbox PATH: REASON", the path named once (an error of
// package os is cut down to its reason, and the system call when it is
// not the one op says), wrapping the reason. ENOTDIR (a file where a
// directory should be) also matches fs.ErrNotExist, and EROFS (a
// read-only file system) fs.ErrPermission, so that callers can tell a
// missing data directory from one they may not write with errors.Is alone.
func pathError(op, path string, err error) error {
	call, err := osReason(err)
	err = matchMore(err)
	switch call {
	case "", op, "open", "stat", "lstat":
		return fmt.Errorf("buffer: %s outbox %s: %w", op, path, err)
	}
	return fmt.Errorf("buffer: %s outbox %s: %s: %w", op, path, call, err)
}

// osReason splits an error of package os (*fs.PathError, *os.LinkError,
// *os.SyscallError) into the call that failed and the OS's reason,
// dropping the paths it names. Any other error is returned whole.
func osReason(err error) (call string, reason error) {
	switch e := err.(type) {
	case *fs.PathError:
		return e.Op, e.Err
	case *os.LinkError:
		return e.Op, e.Err
	case *os.SyscallError:
		return e.Syscall, e.Err
	}
	return "", err
}

// matchMore makes an ENOTDIR match fs.ErrNotExist too, and an EROFS
// fs.ErrPermission (see pathError).
func matchMore(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOTDIR:
			return alsoError{err, fs.ErrNotExist}
		case syscall.EROFS:
			return alsoError{err, fs.ErrPermission}
		}
	}
	return err
}

// alsoError is err that also matches another sentinel, with err's text.
type alsoError struct {
	err, also error
}

func (e alsoError) Error() string   { return e.err.Error() }
func (e alsoError) Unwrap() []error { return []error{e.err, e.also} }

// ErrNewerFormat is wrapped by Open's error for an outbox file written in
// a newer format than this build reads (a newer release ran on the data
// dir, then an older one was installed). Use errors.As with *FormatError
// for the versions.
var ErrNewerFormat = errors.New("buffer: outbox file of a newer format")

// FormatError is Open's error for a file whose format version is newer
// than this build's. It wraps ErrNewerFormat. Such a file is refused and
// left as it is, never moved aside nor written: the release that wrote it
// can still send what it holds. Its message is
//
//	buffer: outbox PATH has format version V, newer than this build's S (written by a newer outpost)
type FormatError struct {
	Path      string
	Version   uint64 // the file's format version
	Supported uint64 // the highest this build reads
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("buffer: outbox %s has format version %d, newer than this build's %d (written by a newer outpost)",
		e.Path, e.Version, e.Supported)
}

func (e *FormatError) Unwrap() error { return ErrNewerFormat }

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
