// Package command carries the gateway's remote commands: the request and
// reply encodings (docs/wire-format.md, "Commands"), and the Dispatcher
// that checks each request (size, id, deadline, a repeated id and, with
// the gateway's key, its MAC), runs the known ones one at a time on its
// own goroutine and publishes their replies, signed with the key. The commands themselves are the gateway's (gateway/commands_*.go,
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

	"github.com/outposthq/outpost"
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
	// MaxMACs is the most MACs a request may carry: one of the gateway's
	// key and, while the key is rotated, one of the next.
	MaxMACs = 2
)

// Request is one decoded command request. Body and MACs alias the
// payload it was decoded from: copy them to keep them past the payload's
// life.
type Request struct {
	ID       string // 1–MaxIDLen bytes of [A-Za-z0-9_.-]
	Deadline int64  // unix ns, by the gateway's clock
	Body     []byte // MessagePack, the command's arguments; may be empty
	// MACs are the request's outpost.CommandMACs (SignRequest), each
	// outpost.MACSize bytes; none (nil) in an unsigned request.
	MACs [][]byte
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
// nil) holding exactly one MessagePack value, or nothing; "mac", when
// present, an array of 1 to MaxMACs binaries of outpost.MACSize bytes
// each. It does not check the MACs (the Dispatcher does). A payload over
// MaxRequestBytes is refused, but its id is still read (the payload is
// not copied: decoding allocates nothing but the id and the list of
// MACs) so that the refusal can be answered. On an error the returned
// Request carries the id when one valid id was read, else "": a refused
// body or mac is skipped whole, so an id after it is read too. Errors
// wrap ErrRequest. It never panics, whatever p holds.
func DecodeRequest(p []byte) (Request, error) {
	var r Request
	n, rest, err := msgp.ReadMapHeaderBytes(p)
	if err != nil {
		return r, fmt.Errorf("%w: not a MessagePack map: %v", ErrRequest, err)
	}
	if n > MaxRequestKeys {
		return r, fmt.Errorf("%w: %d keys, more than %d", ErrRequest, n, MaxRequestKeys)
	}
	var haveDeadline, haveID, haveMAC bool
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
		case "mac":
			if haveMAC {
				return r, fmt.Errorf("%w: mac given twice", ErrRequest)
			}
			haveMAC = true
			// A refused mac is skipped whole, so that an id after it is
			// still read and the refusal answered.
			macs, merr := readMACs(rest)
			if rest, err = msgp.Skip(rest); err != nil {
				return r, fmt.Errorf("%w: mac: %v", ErrRequest, err)
			}
			if merr != nil && fail == nil {
				fail = merr
			}
			r.MACs = macs
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

// readMACs reads the value of "mac" at the start of p: an array of 1 to
// MaxMACs binaries of outpost.MACSize bytes, aliasing p. The caller
// skips the value.
func readMACs(p []byte) ([][]byte, error) {
	n, rest, err := msgp.ReadArrayHeaderBytes(p)
	if err != nil {
		return nil, fmt.Errorf("%w: mac: want an array of MACs: %v", ErrRequest, err)
	}
	if n == 0 || n > MaxMACs {
		return nil, fmt.Errorf("%w: mac: %d MACs, want 1 to %d", ErrRequest, n, MaxMACs)
	}
	macs := make([][]byte, n)
	for i := range macs {
		if macs[i], rest, err = msgp.ReadBytesZC(rest); err != nil {
			return nil, fmt.Errorf("%w: mac %d: want binary: %v", ErrRequest, i, err)
		}
		if len(macs[i]) != outpost.MACSize {
			return nil, fmt.Errorf("%w: mac %d: %d bytes, want %d", ErrRequest, i, len(macs[i]), outpost.MACSize)
		}
	}
	return macs, nil
}

// trim shortens b for an error message.
func trim(b []byte) string {
	if len(b) > MaxIDLen+8 {
		return string(b[:MaxIDLen]) + "…"
	}
	return string(b)
}

// AppendRequest appends r's encoding to b (for tests and the cloud
// side): a map of "id", "deadline", "body" (binary) and, when r has
// MACs, "mac".
func AppendRequest(b []byte, r Request) []byte {
	n := uint32(3)
	if len(r.MACs) > 0 {
		n++
	}
	b = msgp.AppendMapHeader(b, n)
	b = msgp.AppendString(b, "id")
	b = msgp.AppendString(b, r.ID)
	b = msgp.AppendString(b, "deadline")
	b = msgp.AppendInt64(b, r.Deadline)
	b = msgp.AppendString(b, "body")
	b = msgp.AppendBytes(b, r.Body)
	if len(r.MACs) > 0 {
		b = msgp.AppendString(b, "mac")
		b = msgp.AppendArrayHeader(b, uint32(len(r.MACs)))
		for _, m := range r.MACs {
			b = msgp.AppendBytes(b, m)
		}
	}
	return b
}

// SignRequest sets r.MACs to the request's outpost.CommandMAC for
// command name on gateway with each of keys: the gateway's key and,
// while it is rotated, the next. Keys beyond MaxMACs are ignored; no
// keys leaves r unsigned (MACs nil). Sign the request as it is sent:
// a change to its id, deadline or body after it voids the MACs.
func SignRequest(r *Request, gateway, name string, keys []outpost.Key) {
	r.MACs = nil
	for i := range keys[:min(len(keys), MaxMACs)] {
		m := outpost.CommandMAC(&keys[i], gateway, name, r.ID, r.Deadline, r.Body)
		r.MACs = append(r.MACs, m[:])
	}
}
