package command

import (
	"errors"
	"fmt"

	"github.com/tinylib/msgp/msgp"
)

// Status is a reply's outcome.
type Status string

const (
	StatusOK      Status = "ok"      // the command ran; Body is its result
	StatusError   Status = "error"   // it ran and failed, or could not be queued (busy); Body is an error map
	StatusExpired Status = "expired" // its deadline passed before it could run: it never ran
	StatusUnknown Status = "unknown" // no command of that name: nothing ran
	StatusInvalid Status = "invalid" // the request or its body was refused: nothing ran
)

// Reply is one reply, as published to {prefix}/{gateway}/reply/{id}.
type Reply struct {
	ID     string
	Status Status
	Body   []byte // MessagePack: the result for ok, else an error map (ErrorBody)
	TS     int64  // unix ns, by the gateway's clock, when the reply was made
}

// Bounds of a reply, for the commands and for DecodeReply.
const (
	// MaxReplyBytes is the largest reply; a command's result that would
	// make a larger one is replaced by an error.
	MaxReplyBytes = 256 << 10
	// maxErrors is the most messages an error map's "errors" carries, and
	// maxErrorLen the longest of them (and of "error"), in bytes.
	maxErrors   = 16
	maxErrorLen = 1024
)

// AppendReply appends r's encoding to b: a map of "id", "status", "body"
// (binary) and "ts".
func AppendReply(b []byte, r Reply) []byte {
	b = msgp.AppendMapHeader(b, 4)
	b = msgp.AppendString(b, "id")
	b = msgp.AppendString(b, r.ID)
	b = msgp.AppendString(b, "status")
	b = msgp.AppendString(b, string(r.Status))
	b = msgp.AppendString(b, "body")
	b = msgp.AppendBytes(b, r.Body)
	b = msgp.AppendString(b, "ts")
	return msgp.AppendInt64(b, r.TS)
}

// DecodeReply decodes a reply (for tests and the cloud side): at most
// MaxReplyBytes, at most 8 keys, unknown keys skipped. Body is copied.
func DecodeReply(p []byte) (Reply, error) {
	var r Reply
	if len(p) > MaxReplyBytes {
		return r, fmt.Errorf("command reply: %d bytes, more than %d", len(p), MaxReplyBytes)
	}
	n, rest, err := msgp.ReadMapHeaderBytes(p)
	if err != nil {
		return r, fmt.Errorf("command reply: %w", err)
	}
	if n > MaxRequestKeys {
		return r, fmt.Errorf("command reply: %d keys", n)
	}
	for range n {
		var key []byte
		if key, rest, err = msgp.ReadMapKeyZC(rest); err != nil {
			return r, fmt.Errorf("command reply: %w", err)
		}
		switch string(key) {
		case "id":
			r.ID, rest, err = msgp.ReadStringBytes(rest)
		case "status":
			var s string
			s, rest, err = msgp.ReadStringBytes(rest)
			r.Status = Status(s)
		case "body":
			r.Body, rest, err = msgp.ReadBytesBytes(rest, nil)
		case "ts":
			r.TS, rest, err = msgp.ReadInt64Bytes(rest)
		default:
			rest, err = msgp.Skip(rest)
		}
		if err != nil {
			return r, fmt.Errorf("command reply: %q: %w", key, err)
		}
	}
	return r, nil
}

// ErrInvalid is what a command's Run wraps (Invalid) when its body does
// not decode or its arguments are refused: the reply is then invalid,
// not error, and says why.
var ErrInvalid = errors.New("invalid")

// Invalid wraps err as ErrInvalid.
func Invalid(err error) error { return invalidError{err} }

type invalidError struct{ err error }

func (e invalidError) Error() string        { return e.err.Error() }
func (e invalidError) Unwrap() []error      { return []error{ErrInvalid, e.err} }
func (e invalidError) Is(target error) bool { return target == ErrInvalid }

// ErrorBody encodes err as an error map: {"error": its message, "errors":
// the messages it joins (errors.Join), or [its message]}. Each message is
// cut to 1024 bytes, and at most 16 are listed.
func ErrorBody(err error) []byte {
	msgs := []string{err.Error()}
	var ie invalidError
	if errors.As(err, &ie) {
		err = ie.err
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		msgs = msgs[:0]
		for _, e := range j.Unwrap() {
			if e != nil && len(msgs) < maxErrors {
				msgs = append(msgs, e.Error())
			}
		}
	}
	b := msgp.AppendMapHeader(nil, 2)
	b = msgp.AppendString(b, "error")
	b = msgp.AppendString(b, cut(err.Error()))
	b = msgp.AppendString(b, "errors")
	b = msgp.AppendArrayHeader(b, uint32(len(msgs)))
	for _, m := range msgs {
		b = msgp.AppendString(b, cut(m))
	}
	return b
}

func cut(s string) string {
	if len(s) <= maxErrorLen {
		return s
	}
	return s[:maxErrorLen]
}
