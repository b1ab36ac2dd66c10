package command

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

func TestDecodeRequest(t *testing.T) {
	body := msgp.AppendMapHeader(nil, 1)
	body = msgp.AppendString(body, "level")
	body = msgp.AppendString(body, "debug")
	p := AppendRequest(nil, Request{ID: "a-1.B_2", Deadline: 42, Body: body})
	r, err := DecodeRequest(p)
	if err != nil || r.ID != "a-1.B_2" || r.Deadline != 42 || !bytes.Equal(r.Body, body) {
		t.Fatalf("got %+v, %v", r, err)
	}

	// Unknown keys are skipped; body may be missing or nil.
	q := msgp.AppendMapHeader(nil, 4)
	q = msgp.AppendString(q, "extra")
	q = msgp.AppendArrayHeader(q, 2)
	q = msgp.AppendInt(q, 1)
	q = msgp.AppendString(q, "x")
	q = msgp.AppendString(q, "id")
	q = msgp.AppendString(q, "x")
	q = msgp.AppendString(q, "deadline")
	q = msgp.AppendInt64(q, 7)
	q = msgp.AppendString(q, "body")
	q = msgp.AppendNil(q)
	if r, err := DecodeRequest(q); err != nil || r.ID != "x" || r.Body != nil {
		t.Fatalf("got %+v, %v", r, err)
	}
}

// entry builds a request map from key/value appenders.
func reqMap(n uint32, kv ...func([]byte) []byte) []byte {
	b := msgp.AppendMapHeader(nil, n)
	for _, f := range kv {
		b = f(b)
	}
	return b
}

func str(k, v string) func([]byte) []byte {
	return func(b []byte) []byte { return msgp.AppendString(msgp.AppendString(b, k), v) }
}

func i64(k string, v int64) func([]byte) []byte {
	return func(b []byte) []byte { return msgp.AppendInt64(msgp.AppendString(b, k), v) }
}

func bin(k string, v []byte) func([]byte) []byte {
	return func(b []byte) []byte { return msgp.AppendBytes(msgp.AppendString(b, k), v) }
}

func TestDecodeRequestRefuses(t *testing.T) {
	tooMany := msgp.AppendMapHeader(nil, MaxRequestKeys+1)
	for i := range MaxRequestKeys + 1 {
		tooMany = msgp.AppendString(tooMany, strings.Repeat("k", i+1))
		tooMany = msgp.AppendInt(tooMany, i)
	}
	huge := AppendRequest(nil, Request{ID: "big", Deadline: 1, Body: msgp.AppendBytes(nil, make([]byte, MaxRequestBytes))})
	for _, c := range []struct {
		name   string
		p      []byte
		wantID string // the id read despite the error
	}{
		{"empty", nil, ""},
		{"garbage", []byte("hello"), ""},
		{"array", msgp.AppendArrayHeader(nil, 0), ""},
		{"too many keys", tooMany, ""},
		{"header claims more keys than there are", reqMap(3, str("id", "a")), "a"},
		{"no id", reqMap(1, i64("deadline", 1)), ""},
		{"no deadline", reqMap(1, str("id", "a")), "a"},
		{"id empty", reqMap(2, str("id", ""), i64("deadline", 1)), ""},
		{"id too long", reqMap(2, str("id", strings.Repeat("a", MaxIDLen+1)), i64("deadline", 1)), ""},
		{"id with slash", reqMap(2, str("id", "a/b"), i64("deadline", 1)), ""},
		{"id wildcard", reqMap(2, str("id", "+"), i64("deadline", 1)), ""},
		{"id dotdot", reqMap(2, str("id", ".."), i64("deadline", 1)), ""},
		{"id twice", reqMap(3, str("id", "a"), str("id", "b"), i64("deadline", 1)), "a"},
		{"id not a string", reqMap(2, i64("id", 5), i64("deadline", 1)), ""},
		{"deadline a string", reqMap(2, str("id", "a"), str("deadline", "soon")), "a"},
		{"body a string", reqMap(3, str("id", "a"), i64("deadline", 1), str("body", "x")), "a"},
		{"body not msgpack", reqMap(3, str("id", "a"), i64("deadline", 1), bin("body", []byte{0xc1})), "a"},
		{"body two values", reqMap(3, str("id", "a"), i64("deadline", 1), bin("body", []byte{0x01, 0x02})), "a"},
		{"trailing bytes", append(reqMap(2, str("id", "a"), i64("deadline", 1)), 0), "a"},
		{"too large", huge, "big"},
	} {
		r, err := DecodeRequest(c.p)
		if err == nil || !errors.Is(err, ErrRequest) {
			t.Errorf("%s: err %v, want an ErrRequest", c.name, err)
		}
		if r.ID != c.wantID {
			t.Errorf("%s: id %q, want %q", c.name, r.ID, c.wantID)
		}
	}
}

func TestReplyRoundTrip(t *testing.T) {
	in := Reply{ID: "r1", Status: StatusError, Body: ErrorBody(errors.Join(errors.New("a"), errors.New("b"))), TS: 9}
	out, err := DecodeReply(AppendReply(nil, in))
	if err != nil || out.ID != in.ID || out.Status != in.Status || !bytes.Equal(out.Body, in.Body) || out.TS != 9 {
		t.Fatalf("got %+v, %v", out, err)
	}
	var m map[string]any
	if m, _, err = msgp.ReadMapStrIntfBytes(out.Body, nil); err != nil {
		t.Fatal(err)
	}
	if m["error"] != "a\nb" || len(m["errors"].([]any)) != 2 {
		t.Fatalf("error body %v", m)
	}
	inv := Invalid(errors.New("bad level"))
	if !errors.Is(inv, ErrInvalid) {
		t.Fatal("Invalid is not ErrInvalid")
	}
	if m, _, _ = msgp.ReadMapStrIntfBytes(ErrorBody(inv), nil); m["error"] != "bad level" {
		t.Fatalf("invalid error body %v", m)
	}
}

// A hostile payload is refused with an error, never a panic, and an id it
// yields is always valid.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(AppendRequest(nil, Request{ID: "a", Deadline: 1, Body: []byte{0x80}}))
	f.Add(reqMap(3, str("id", "a"), i64("deadline", 1), bin("body", []byte{0xc1})))
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x81, 0xa4, 'b', 'o', 'd', 'y', 0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := DecodeRequest(p)
		if r.ID != "" && !ValidID(r.ID) {
			t.Fatalf("invalid id %q returned", r.ID)
		}
		if err == nil {
			q, err := DecodeRequest(AppendRequest(nil, r))
			if err != nil || q.ID != r.ID || q.Deadline != r.Deadline || !bytes.Equal(q.Body, r.Body) {
				t.Fatalf("re-encoded %+v decodes as %+v, %v", r, q, err)
			}
		}
	})
}
