// Package command carries the gateway's remote commands: the request and
// reply encodings (docs/wire-format.md, "Commands"), and the Dispatcher
// that checks each request (size, id, deadline, a repeated id), runs the
// known ones one at a time on its own goroutine and publishes their
// replies. The commands themselves are the gateway's (gateway/commands_*.go,
// one file each): a Command is a name and a Run function.
//
// Requests and replies are MessagePack maps read and written with msgp's
// runtime functions rather than generated code: the decoder must count a
// map's keys and skip unknown ones within fixed bounds before it keeps
// anything, and nothing in a request is copied (Body aliases the payload).
package command

import (
	"errors"
	"fmt"

	"github.com/tinylib/msgp/msgp"
)

// Bounds of a request.
const (
	// MaxRequestBytes is the largest request payload: a larger one is
	// refused (answered invalid when its id can be read) and never run.
	MaxRequestBytes = 64 << 10
	// MaxRequestKeys is the most keys a request map may have, unknown
	// ones included.
	MaxRequestKeys = 8
	// MaxIDLen is the longest request id, in bytes.
	MaxIDLen = 64
)

// Request is one decoded command request. Body aliases the payload it was
// decoded from: copy it to keep it past the payload's life.
type Request struct {
	ID       string // 1–MaxIDLen bytes of [A-Za-z0-9_.-]
	Deadline int64  // unix ns, by the gateway's clock
	Body     []byte // MessagePack, the command's arguments; may be empty
}

// ErrRequest is wrapped by every error DecodeRequest returns.
var ErrRequest = errors.New("command request")

// ValidID reports whether id may name a request (and so a reply topic):
// 1–MaxIDLen bytes of [A-Za-z0-9_.-], and not "." or "..".
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen || id == "." || id == ".." {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// DecodeRequest decodes a request payload. It reads at most
// MaxRequestKeys keys, skips unknown ones, and requires "id" (ValidID)
// and "deadline"; "body", when present, must be MessagePack binary (or
// nil) holding exactly one MessagePack value, or nothing. A payload over
// MaxRequestBytes is refused, but its id is still read (the payload is
// not copied: decoding allocates nothing but the id) so that the refusal
// can be answered. On an error the returned Request carries the id when
// one valid id was read before it, else "". Errors wrap ErrRequest. It
// never panics, whatever p holds.
func DecodeRequest(p []byte) (Request, error) {
	var r Request
	n, rest, err := msgp.ReadMapHeaderBytes(p)
	if err != nil {
		return r, fmt.Errorf("%w: not a MessagePack map: %v", ErrRequest, err)
	}
	if n > MaxRequestKeys {
		return r, fmt.Errorf("%w: %d keys, more than %d", ErrRequest, n, MaxRequestKeys)
	}
	var haveDeadline, haveID bool
	var fail error
	for i := uint32(0); i < n; i++ {
		var key []byte
		key, rest, err = msgp.ReadMapKeyZC(rest)
		if err != nil {
			return r, fmt.Errorf("%w: key %d: %v", ErrRequest, i, err)
		}
		switch string(key) {
		case "id":
			var id []byte
			id, rest, err = msgp.ReadStringZC(rest)
			if err != nil {
				return r, fmt.Errorf("%w: id: %v", ErrRequest, err)
			}
			if haveID {
				return r, fmt.Errorf("%w: id given twice", ErrRequest)
			}
			haveID = true
			if len(id) > MaxIDLen || !ValidID(string(id)) {
				return r, fmt.Errorf("%w: id %q: want 1-%d bytes of [A-Za-z0-9_.-]", ErrRequest, trim(id), MaxIDLen)
			}
			r.ID = string(id)
		case "deadline":
			r.Deadline, rest, err = msgp.ReadInt64Bytes(rest)
			if err != nil {
				return r, fmt.Errorf("%w: deadline: %v", ErrRequest, err)
			}
			haveDeadline = true
		case "body":
			if msgp.IsNil(rest) {
				rest, err = msgp.ReadNilBytes(rest)
				r.Body = nil
			} else {
				r.Body, rest, err = msgp.ReadBytesZC(rest)
			}
			if err != nil {
				return r, fmt.Errorf("%w: body: %v", ErrRequest, err)
			}
			if len(r.Body) > 0 && fail == nil {
				if tail, err := msgp.Skip(r.Body); err != nil || len(tail) != 0 {
					fail = fmt.Errorf("%w: body is not one MessagePack value", ErrRequest)
				}
			}
		default:
			rest, err = msgp.Skip(rest)
			if err != nil {
				return r, fmt.Errorf("%w: value of key %q: %v", ErrRequest, trim(key), err)
			}
		}
	}
	switch {
	case len(p) > MaxRequestBytes:
		return r, fmt.Errorf("%w: %d bytes, more than %d", ErrRequest, len(p), MaxRequestBytes)
	case len(rest) != 0:
		return r, fmt.Errorf("%w: %d bytes after the map", ErrRequest, len(rest))
	case !haveID:
		return r, fmt.Errorf("%w: no id", ErrRequest)
	case !haveDeadline:
		return r, fmt.Errorf("%w: no deadline", ErrRequest)
	case fail != nil:
		return r, fail
	}
	return r, nil
}

// trim shortens b for an error message.
func trim(b []byte) string {
	if len(b) > MaxIDLen+8 {
		return string(b[:MaxIDLen]) + "…"
	}
	return string(b)
}

// AppendRequest appends r's encoding to b (for tests and the cloud side).
func AppendRequest(b []byte, r Request) []byte {
	b = msgp.AppendMapHeader(b, 3)
	b = msgp.AppendString(b, "id")
	b = msgp.AppendString(b, r.ID)
	b = msgp.AppendString(b, "deadline")
	b = msgp.AppendInt64(b, r.Deadline)
	b = msgp.AppendString(b, "body")
	return msgp.AppendBytes(b, r.Body)
}
