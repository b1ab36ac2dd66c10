package ingest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost"
)

// Bounds of /api/v1/commands.
const (
	// DefaultCommandsLimit and MaxCommandsLimit bound its limit: a
	// command may hold a body and a reply of hundreds of KiB.
	DefaultCommandsLimit = 100
	MaxCommandsLimit     = 1000
	// maxCommandJSON bounds the JSON of one body or reply: a larger
	// one is given as msgpack_base64.
	maxCommandJSON = 1 << 20
	// maxCommandDepth bounds the nesting of the MessagePack converted:
	// the converter recurses.
	maxCommandDepth = 64
)

// maxCommandCursor bounds the before parameter: the base64 of the
// longest cursor (a signed int64, a comma, an id).
var maxCommandCursor = base64.RawURLEncoding.EncodedLen(20 + 1 + outpost.MaxIDLen)

// serveCommands answers GET /api/v1/commands from a CommandStore: the
// commands newest first, filtered, a page at a time.
func (s *Service) serveCommands(w http.ResponseWriter, r *http.Request, id string) {
	cs, ok := s.store.(CommandStore)
	if !ok {
		s.api.writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "this store keeps no commands"})
		return
	}
	v, err := strictParams(r.URL.RawQuery, nil, "gateway", "push", "name", "state", "id", "limit", "before")
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	q, err := commandQuery(v)
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	s.api.run(w, r, id, func(ctx context.Context, st *stream) error {
		limit := q.Limit
		q.Limit++ // one more than asked says whether the answer is cut
		st.buf = append(st.buf, `{"commands":[`...)
		pg, err := writeItems(st, cs.Commands(ctx, q), limit, appendCommand)
		if err != nil {
			return err
		}
		var next *string // left out when the answer is whole
		if pg.more {
			n := formatCommandCursor(pg.last.CreatedAt, pg.last.ID)
			next = &n
		}
		st.buf = appendTail(st.buf, limit, pg.more, next)
		return nil
	})
}

// commandQuery reads and checks the parameters of /api/v1/commands.
func commandQuery(v url.Values) (CommandQuery, error) {
	var q CommandQuery
	var err error
	for _, p := range []struct {
		key string
		dst *string
	}{{"gateway", &q.Gateway}, {"push", &q.Push}, {"name", &q.Name}, {"id", &q.ID}} {
		if *p.dst, err = name(v, p.key, false); err != nil {
			return q, err
		}
	}
	if st := v.Get("state"); st != "" {
		if !outpost.ValidName(st) {
			return q, fmt.Errorf("parameter \"state\" must be a command's state (queued, sent, lapsed) or a reply's status (ok, error, expired, unknown, invalid)")
		}
		q.State = st
	}
	if b := v.Get("before"); b != "" {
		if q.Before, q.BeforeID, err = parseCommandCursor(b); err != nil {
			return q, err
		}
	}
	q.Limit = DefaultCommandsLimit
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxCommandsLimit {
			return q, fmt.Errorf("parameter \"limit\" must be an integer from 1 to %d", MaxCommandsLimit)
		}
		q.Limit = n
	}
	return q, nil
}

// formatCommandCursor is the before value that continues
// /api/v1/commands after the command (createdAt, id): the base64url,
// without padding, of its created_at in unix ns, a comma and its id.
func formatCommandCursor(createdAt time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(createdAt.UnixNano(), 10) + "," + id))
}

// parseCommandCursor is the inverse of formatCommandCursor; it takes
// nothing but what formatCommandCursor makes of a stored command.
func parseCommandCursor(s string) (time.Time, string, error) {
	bad := func(why string) (time.Time, string, error) {
		return time.Time{}, "", fmt.Errorf("parameter \"before\" %s: give the \"next\" of the page before as it is", why)
	}
	if len(s) > maxCommandCursor {
		return bad(fmt.Sprintf("is longer than %d bytes", maxCommandCursor))
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return bad("is not base64url without padding")
	}
	ns, cid, ok := strings.Cut(string(raw), ",")
	if !ok {
		return bad("has no id")
	}
	t, err := strconv.ParseInt(ns, 10, 64)
	if err != nil || strconv.FormatInt(t, 10) != ns {
		return bad("has no time")
	}
	if cid == "" {
		return bad("has an empty id")
	}
	if err := CheckID(cid); err != nil {
		return bad("has an id that " + err.Error())
	}
	return time.Unix(0, t).UTC(), cid, nil
}

// commandJSON is a command as /api/v1/commands answers it.
type commandJSON struct {
	ID        string          `json:"id"`
	Gateway   string          `json:"gateway"`
	Name      string          `json:"name"`
	Sender    string          `json:"sender"`
	Push      string          `json:"push,omitempty"`
	CreatedAt string          `json:"created_at"`
	ExpiresAt string          `json:"expires_at"`
	State     string          `json:"state"`
	Attempts  int             `json:"attempts"`
	SentAt    string          `json:"sent_at,omitempty"`
	RepliedAt string          `json:"replied_at,omitempty"`
	ReplyTS   string          `json:"reply_ts,omitempty"`
	Body      json.RawMessage `json:"body,omitempty"`
	Reply     json.RawMessage `json:"reply,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// appendCommand appends c as commandJSON.
func appendCommand(b []byte, c Command) ([]byte, error) {
	return appendJSON(b, commandJSON{
		ID: c.ID, Gateway: c.Gateway, Name: c.Name, Sender: c.Sender, Push: c.Push,
		CreatedAt: formatCommandTime(c.CreatedAt), ExpiresAt: formatCommandTime(c.ExpiresAt), State: c.State, Attempts: c.Attempts,
		SentAt: formatCommandTime(c.SentAt), RepliedAt: formatCommandTime(c.RepliedAt), ReplyTS: formatCommandTime(c.ReplyTS),
		Body: msgpackJSON(c.Body), Reply: msgpackJSON(c.Reply), Error: c.Error,
	})
}

// formatCommandTime is t in RFC 3339 with nanoseconds, UTC; "" for the zero
// time.
func formatCommandTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// msgpackJSON is one MessagePack value as JSON (binary values as
// base64 strings, as msgp writes them); nil for none. What does not
// convert (not exactly one value, nested deeper than maxCommandDepth,
// a NaN, a map key JSON has no string for, a JSON answer over
// maxCommandJSON) is {"msgpack_base64": its bytes in base64}.
func msgpackJSON(p []byte) json.RawMessage {
	if len(p) == 0 {
		return nil
	}
	if oneMsgpackValue(p, maxCommandDepth) {
		out := &cappedBuffer{max: maxCommandJSON}
		if rest, err := msgp.UnmarshalAsJSON(out, p); err == nil && len(rest) == 0 && json.Valid(out.Bytes()) && utf8.Valid(out.Bytes()) {
			return out.Bytes()
		}
	}
	j, err := json.Marshal(map[string][]byte{"msgpack_base64": p})
	if err != nil { // cannot happen: bytes always marshal
		return nil
	}
	return j
}

// oneMsgpackValue reports whether p is exactly one MessagePack value, nested
// at most maxDepth deep. It walks p without recursion.
func oneMsgpackValue(p []byte, maxDepth int) bool {
	var open []uint64 // items left in each container entered
	for {
		switch msgp.NextType(p) {
		case msgp.InvalidType:
			return false
		case msgp.ArrayType, msgp.MapType:
			var n uint32
			var err error
			items := uint64(1)
			if msgp.NextType(p) == msgp.ArrayType {
				n, p, err = msgp.ReadArrayHeaderBytes(p)
			} else {
				n, p, err = msgp.ReadMapHeaderBytes(p)
				items = 2
			}
			if err != nil {
				return false
			}
			if n > 0 {
				if open = append(open, uint64(n)*items); len(open) > maxDepth {
					return false
				}
				continue
			}
		default:
			var err error
			if p, err = msgp.Skip(p); err != nil {
				return false
			}
		}
		// One value ended: so do the containers it was the last of.
		for len(open) > 0 {
			open[len(open)-1]--
			if open[len(open)-1] > 0 {
				break
			}
			open = open[:len(open)-1]
		}
		if len(open) == 0 {
			return len(p) == 0
		}
	}
}

// errJSONTooLong ends a conversion whose JSON outgrows its cappedBuffer.
var errJSONTooLong = errors.New("too long")

// cappedBuffer is a bytes.Buffer that refuses to grow past max bytes.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		return 0, errJSONTooLong
	}
	return b.Buffer.Write(p)
}

func (b *cappedBuffer) WriteString(s string) (int, error) {
	if b.Len()+len(s) > b.max {
		return 0, errJSONTooLong
	}
	return b.Buffer.WriteString(s)
}

func (b *cappedBuffer) WriteByte(c byte) error {
	if b.Len()+1 > b.max {
		return errJSONTooLong
	}
	return b.Buffer.WriteByte(c)
}
