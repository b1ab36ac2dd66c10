package command

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost"
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

// macs is a "mac" key with these MACs.
func macs(ms ...[]byte) func([]byte) []byte {
	return func(b []byte) []byte {
		b = msgp.AppendArrayHeader(msgp.AppendString(b, "mac"), uint32(len(ms)))
		for _, m := range ms {
			b = msgp.AppendBytes(b, m)
		}
		return b
	}
}

// mac32 is a MAC-sized slice of byte v.
func mac32(v byte) []byte { return bytes.Repeat([]byte{v}, outpost.MACSize) }

// A request's MACs round-trip, in any position of the map, and a
// request without them has none and no "mac" key.
func TestDecodeRequestMACs(t *testing.T) {
	in := Request{ID: "s1", Deadline: 5, Body: []byte{0x80}, MACs: [][]byte{mac32(1), mac32(2)}}
	r, err := DecodeRequest(AppendRequest(nil, in))
	if err != nil || len(r.MACs) != 2 || !bytes.Equal(r.MACs[0], mac32(1)) || !bytes.Equal(r.MACs[1], mac32(2)) {
		t.Fatalf("got %+v, %v", r, err)
	}
	r, err = DecodeRequest(reqMap(3, macs(mac32(7)), str("id", "s2"), i64("deadline", 5)))
	if err != nil || r.ID != "s2" || len(r.MACs) != 1 || !bytes.Equal(r.MACs[0], mac32(7)) {
		t.Fatalf("mac first: %+v, %v", r, err)
	}
	plain := AppendRequest(nil, Request{ID: "p", Deadline: 5})
	if bytes.Contains(plain, []byte("mac")) || plain[0] != 0x83 {
		t.Fatalf("unsigned request %x", plain)
	}
	if r, err := DecodeRequest(plain); err != nil || r.MACs != nil {
		t.Fatalf("unsigned: %+v, %v", r, err)
	}
}

// SignRequest signs with at most MaxMACs keys, each MAC the request's
// CommandMAC, and no keys leaves the request unsigned.
func TestSignRequest(t *testing.T) {
	keys := []outpost.Key{outpost.NewKey(), outpost.NewKey(), outpost.NewKey()}
	r := Request{ID: "s1", Deadline: 5, Body: []byte{0x80}}
	SignRequest(&r, "gw-1", "ping", keys)
	if len(r.MACs) != MaxMACs {
		t.Fatalf("%d MACs, want %d", len(r.MACs), MaxMACs)
	}
	for i, m := range r.MACs {
		if want := outpost.CommandMAC(&keys[i], "gw-1", "ping", "s1", 5, []byte{0x80}); !bytes.Equal(m, want[:]) {
			t.Errorf("MAC %d is not key %d's", i, i)
		}
	}
	SignRequest(&r, "gw-1", "ping", nil)
	if r.MACs != nil {
		t.Fatalf("no keys: %d MACs", len(r.MACs))
	}
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
		{"mac empty", reqMap(3, str("id", "a"), i64("deadline", 1), macs()), "a"},
		{"three macs", reqMap(3, str("id", "a"), i64("deadline", 1), macs(mac32(1), mac32(2), mac32(3))), "a"},
		{"mac of 31 bytes", reqMap(3, str("id", "a"), i64("deadline", 1), macs(mac32(1)[:31])), "a"},
		{"mac of 33 bytes", reqMap(3, str("id", "a"), i64("deadline", 1), macs(append(mac32(1), 0))), "a"},
		{"mac not an array", reqMap(3, str("id", "a"), i64("deadline", 1), bin("mac", mac32(1))), "a"},
		{"mac a string", reqMap(3, str("id", "a"), i64("deadline", 1), func(b []byte) []byte {
			return msgp.AppendString(msgp.AppendArrayHeader(msgp.AppendString(b, "mac"), 1), string(mac32(1)))
		}), "a"},
		{"mac twice", reqMap(4, str("id", "a"), i64("deadline", 1), macs(mac32(1)), macs(mac32(2))), "a"},
		{"bad mac before the id", reqMap(3, macs(mac32(1), mac32(2), mac32(3)), str("id", "a"), i64("deadline", 1)), "a"},
		{"mac array cut short", reqMap(3, str("id", "a"), i64("deadline", 1), func(b []byte) []byte {
			return msgp.AppendArrayHeader(msgp.AppendString(b, "mac"), 2)
		}), "a"},
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
	f.Add(AppendRequest(nil, Request{ID: "s", Deadline: 1, MACs: [][]byte{mac32(1), mac32(2)}}))
	f.Add(reqMap(3, macs(mac32(1), mac32(2), mac32(3)), str("id", "a"), i64("deadline", 1)))
	f.Add([]byte{0x81, 0xa3, 'm', 'a', 'c', 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := DecodeRequest(p)
		if r.ID != "" && !ValidID(r.ID) {
			t.Fatalf("invalid id %q returned", r.ID)
		}
		if err == nil {
			if len(r.MACs) > MaxMACs {
				t.Fatalf("%d MACs accepted", len(r.MACs))
			}
			for _, m := range r.MACs {
				if len(m) != outpost.MACSize {
					t.Fatalf("a MAC of %d bytes accepted", len(m))
				}
			}
			q, err := DecodeRequest(AppendRequest(nil, r))
			if err != nil || q.ID != r.ID || q.Deadline != r.Deadline || !bytes.Equal(q.Body, r.Body) ||
				!slices.EqualFunc(q.MACs, r.MACs, bytes.Equal) {
				t.Fatalf("re-encoded %+v decodes as %+v, %v", r, q, err)
			}
		}
	})
}
