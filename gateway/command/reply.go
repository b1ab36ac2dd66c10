package command

import (
	"crypto/hmac"
	"errors"
	"fmt"

	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost"
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
	// MAC is the reply's outpost.ReplyMAC with the gateway's key, which
	// a gateway with a key adds to every reply (VerifyReply checks it);
	// nil from a gateway without one.
	MAC []byte
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
// (binary), "ts" and, when r has a MAC, "mac" (binary).
func AppendReply(b []byte, r Reply) []byte {
	n := uint32(4)
	if len(r.MAC) > 0 {
		n++
	}
	b = msgp.AppendMapHeader(b, n)
	b = msgp.AppendString(b, "id")
	b = msgp.AppendString(b, r.ID)
	b = msgp.AppendString(b, "status")
	b = msgp.AppendString(b, string(r.Status))
	b = msgp.AppendString(b, "body")
	b = msgp.AppendBytes(b, r.Body)
	b = msgp.AppendString(b, "ts")
	b = msgp.AppendInt64(b, r.TS)
	if len(r.MAC) > 0 {
		b = msgp.AppendString(b, "mac")
		b = msgp.AppendBytes(b, r.MAC)
	}
	return b
}

// signReply sets r.MAC to its outpost.ReplyMAC with key, for gateway.
func signReply(r *Reply, gateway string, key *outpost.Key) {
	m := outpost.ReplyMAC(key, gateway, r.ID, string(r.Status), r.TS, r.Body)
	r.MAC = m[:]
}

// VerifyReply checks the MAC of r, a reply received on gateway's reply
// topic, with each of keys (the gateway's key and, while it is rotated,
// the next). Without keys there is nothing to check: it returns nil.
// With keys, a reply without a MAC, or one that no key verifies, is an
// error wrapping outpost.ErrBadMAC, which says which but quotes neither
// the MAC nor a key.
func VerifyReply(r *Reply, gateway string, keys []outpost.Key) error {
	if len(keys) == 0 {
		return nil
	}
	if len(r.MAC) == 0 {
		return fmt.Errorf("%w: the reply %q of %s carries no MAC", outpost.ErrBadMAC, trim([]byte(r.ID)), gateway)
	}
	for i := range keys {
		want := outpost.ReplyMAC(&keys[i], gateway, r.ID, string(r.Status), r.TS, r.Body)
		if hmac.Equal(r.MAC, want[:]) {
			return nil
		}
	}
	return fmt.Errorf("%w: the MAC of the reply %q does not verify with the keys of %s", outpost.ErrBadMAC, trim([]byte(r.ID)), gateway)
}

// DecodeReply decodes a reply (for tests and the cloud side): at most
// MaxReplyBytes, at most 8 keys, unknown keys skipped; "mac", when
// present, must be a binary of outpost.MACSize bytes. Body and MAC are
// copied. It does not check the MAC (VerifyReply does).
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
		case "mac":
			var m []byte
			if m, rest, err = msgp.ReadBytesZC(rest); err == nil && len(m) != outpost.MACSize {
				err = fmt.Errorf("%d bytes, want %d", len(m), outpost.MACSize)
			}
			r.MAC = append([]byte(nil), m...)
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
