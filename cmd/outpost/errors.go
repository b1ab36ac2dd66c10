package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"

	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/gateway"
)

// startError turns a failure to build or start the gateway into one line
// that names what failed and, where it can tell, what to do about it.
func startError(err error) error {
	var se *gateway.StartError
	if !errors.As(err, &se) {
		return fmt.Errorf("outpost: cannot start: %w", err)
	}
	detail := se.Err.Error()
	var le *buffer.LockedError
	var fe *buffer.FormatError
	switch {
	case errors.As(se.Err, &fe):
		detail = fmt.Sprintf("format version %d, newer than this outpost reads (up to %d)", fe.Version, fe.Supported)
	case errors.As(se.Err, &le) && le.PID > 0:
		detail = fmt.Sprintf("in use by another process (pid %d)", le.PID)
	case le != nil:
		detail = "in use by another process"
	case se.Name != "":
		// The path is named once, up front: keep what the cause says
		// after it ("mkdir /x: permission denied" → "permission denied").
		if i := strings.LastIndex(detail, se.Name+": "); i >= 0 {
			detail = detail[i+len(se.Name)+2:]
		}
	}
	what := se.Part
	if se.Name != "" {
		what += " " + se.Name
	}
	msg := fmt.Sprintf("outpost: cannot open %s: %s", what, detail)
	if h := hint(se); h != "" {
		msg += " (" + h + ")"
	}
	return &startFailure{msg: msg, err: err}
}

// startFailure is startError's error: its text is the one line, and it
// wraps the cause for errors.Is.
type startFailure struct {
	msg string
	err error
}

func (e *startFailure) Error() string { return e.msg }
func (e *startFailure) Unwrap() error { return e.err }

// hint says what an operator can do about se, or "".
func hint(se *gateway.StartError) string {
	err := se.Err
	switch se.Part {
	case gateway.PartDataDir, gateway.PartOutbox:
		switch {
		case errors.Is(err, buffer.ErrNewerFormat):
			return "a newer outpost wrote it: run that release or a later one to send what it holds, " +
				"or move the file out of the data dir to start a new outbox without its batches; the file was left untouched"
		case errors.Is(err, buffer.ErrLocked):
			return "another gateway runs on this data dir: stop it, or give each gateway its own --data-dir"
		case errors.Is(err, fs.ErrPermission):
			return "run as a user that owns the data dir, or pass --data-dir"
		case errors.Is(err, syscall.EROFS):
			return "the file system is read-only: pass a --data-dir on a writable one"
		case errors.Is(err, syscall.ENOSPC):
			return "the disk is full: free space, or pass a --data-dir on another disk"
		case errors.Is(err, syscall.ENOTDIR), errors.Is(err, fs.ErrNotExist):
			return "data_dir or --data-dir must name a directory that can be created"
		}
	case gateway.PartSensor:
		if errors.Is(err, fs.ErrPermission) {
			return "run as a user in the groups that own the device (i2c, gpio), or fix the device's permissions"
		}
	case gateway.PartKey:
		switch {
		case errors.Is(err, fs.ErrPermission):
			return "the gateway's user must be able to read the key file, and to write its directory for the first start"
		case errors.Is(err, fs.ErrNotExist):
			return "uplink.auth_key_file must be in the data dir or a directory that exists: the key is created there at the first start"
		}
	case gateway.PartUplink:
		if errors.Is(err, fs.ErrPermission) {
			return "the gateway's user must be able to read the TLS and password files"
		}
	case gateway.PartMetrics:
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			return "another process listens there: choose another metrics.listen port, or stop it"
		case errors.Is(err, syscall.EACCES):
			return "ports below 1024 need privileges: choose a higher metrics.listen port"
		case errors.Is(err, syscall.EADDRNOTAVAIL):
			return "no interface of this machine has that address: fix metrics.listen"
		}
	}
	return ""
}
