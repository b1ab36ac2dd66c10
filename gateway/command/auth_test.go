package command

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost"
)

const authGW = "gw-auth"

// authClock is a gateway clock that moves only when told.
type authClock struct{ ns atomic.Int64 }

func (c *authClock) now() time.Time           { return time.Unix(0, c.ns.Load()) }
func (c *authClock) add(d time.Duration)      { c.ns.Add(int64(d)) }
func (c *authClock) in(d time.Duration) int64 { return c.ns.Load() + int64(d) }

// syncBuffer is a log sink safe for the dispatcher's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// authDispatcher is a started Dispatcher with key for gateway authGW
// whose commands ping and stats count their runs.
func authDispatcher(t *testing.T, key *outpost.Key, clk *authClock, log *syncBuffer) (*Dispatcher, *published, *atomic.Int64) {
	t.Helper()
	pub := newPublished()
	runs := new(atomic.Int64)
	run := func(context.Context, []byte) ([]byte, error) { runs.Add(1); return []byte{0xc3}, nil }
	d, err := New(Options{Publish: pub.publish, Key: key, Gateway: authGW, Now: clk.now, Logger: zerolog.New(log),
		Commands: []Command{{Name: "ping", Run: run}, {Name: "stats", Run: run}}})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(d.Close)
	return d, pub, runs
}

// signed is a request for name on gateway authGW, expiring in a minute,
// signed with keys.
func signed(clk *authClock, id, name string, keys ...outpost.Key) Request {
	r := Request{ID: id, Deadline: clk.in(time.Minute), Body: []byte{0x80}}
	SignRequest(&r, authGW, name, keys)
	return r
}

func errorText(t *testing.T, r Reply) string {
	t.Helper()
	m, _, err := msgp.ReadMapStrIntfBytes(r.Body, nil)
	if err != nil {
		t.Fatalf("reply body %x: %v", r.Body, err)
	}
	return fmt.Sprint(m["error"])
}

// With a key, only a request that one of its MACs authenticates runs:
// for this gateway, this command, id, deadline and body. The others are
// answered invalid, say why without a MAC or the key, and are counted
// and logged once a minute; every reply is signed.
func TestDispatcherAuth(t *testing.T) {
	key, next, other := outpost.NewKey(), outpost.NewKey(), outpost.NewKey()
	clk := &authClock{}
	clk.ns.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	var log syncBuffer
	d, pub, runs := authDispatcher(t, &key, clk, &log)

	otherGW := signed(clk, "r-gw", "ping")
	m := outpost.CommandMAC(&key, "gw-other", "ping", otherGW.ID, otherGW.Deadline, otherGW.Body)
	otherGW.MACs = [][]byte{m[:]}
	otherName := signed(clk, "r-name", "stats", key)
	otherID := signed(clk, "r-id", "ping", key)
	otherID.ID = "r-id2"
	otherDeadline := signed(clk, "r-deadline", "ping", key)
	otherDeadline.Deadline++
	otherBody := signed(clk, "r-body", "ping", key)
	otherBody.Body = []byte{0x81, 0xa1, 'a', 0x01}
	three := signed(clk, "r-three", "ping", key, next)
	three.MACs = append(three.MACs, three.MACs[0])

	var sent [][]byte
	for _, c := range []struct {
		name   string
		req    Request
		want   Status
		unauth bool   // counted in Unauthenticated
		text   string // in the error
	}{
		{"signed", signed(clk, "r-ok", "ping", key), StatusOK, false, ""},
		{"unsigned", Request{ID: "r-plain", Deadline: clk.in(time.Minute)}, StatusInvalid, true, "carries no MAC"},
		{"another key", signed(clk, "r-key", "ping", other), StatusInvalid, true, "does not verify"},
		{"another gateway", otherGW, StatusInvalid, true, "does not verify"},
		{"another name", otherName, StatusInvalid, true, "does not verify"},
		{"another id", otherID, StatusInvalid, true, "does not verify"},
		{"another deadline", otherDeadline, StatusInvalid, true, "does not verify"},
		{"another body", otherBody, StatusInvalid, true, "does not verify"},
		{"the second of two MACs", signed(clk, "r-second", "ping", other, key), StatusOK, false, ""},
		{"the first of two MACs", signed(clk, "r-first", "ping", key, next), StatusOK, false, ""},
		{"three MACs", three, StatusInvalid, false, "3 MACs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, beforeRuns := d.Stats(), runs.Load()
			p := AppendRequest(nil, c.req)
			sent = append(sent, c.req.MACs...)
			d.Submit("ping", p)
			r := pub.wait(t, c.req.ID, 1)[0]
			if r.Status != c.want {
				t.Fatalf("%s, want %s: %s", r.Status, c.want, errorText(t, r))
			}
			if err := VerifyReply(&r, authGW, []outpost.Key{key}); err != nil {
				t.Fatalf("reply: %v", err)
			}
			after := d.Stats()
			if c.want != StatusOK {
				if txt := errorText(t, r); !strings.Contains(txt, c.text) {
					t.Fatalf("error %q, want %q", txt, c.text)
				}
				if runs.Load() != beforeRuns || after.Refused != before.Refused+1 {
					t.Fatalf("refused request ran or was not counted: %+v", after)
				}
			}
			if got := after.Unauthenticated - before.Unauthenticated; got != map[bool]int64{true: 1}[c.unauth] {
				t.Fatalf("Unauthenticated +%d", got)
			}
		})
	}
	// Two MACs, only the second of them verifying, is the wire form of a
	// key rotation: the first one is the next key's, which this gateway
	// does not have yet.
	if got := runs.Load(); got != 3 {
		t.Fatalf("%d runs, want 3", got)
	}
	logged := log.String()
	if n := strings.Count(logged, "not signed with the gateway's key"); n != 1 {
		t.Fatalf("%d log lines of unauthenticated requests, want 1 a minute:\n%s", n, logged)
	}
	for _, s := range []string{key.Hex(), other.Hex(), next.Hex()} {
		if strings.Contains(logged, s) {
			t.Fatal("a key in the log")
		}
	}
	for _, m := range sent {
		if strings.Contains(logged, hex.EncodeToString(m)) || bytes.Contains([]byte(logged), m) {
			t.Fatalf("a MAC in the log:\n%s", logged)
		}
	}
	clk.add(time.Minute)
	d.Submit("ping", AppendRequest(nil, Request{ID: "r-later", Deadline: clk.in(time.Minute)}))
	pub.wait(t, "r-later", 1)
	if n := strings.Count(log.String(), "not signed with the gateway's key"); n != 2 {
		t.Fatalf("%d log lines a minute later, want 2", n)
	}
}

// An unsigned request does not take the id of the signed one it copies:
// it is not kept, so the signed one runs, and its redelivery gets the
// kept reply.
func TestDispatcherAuthNotCached(t *testing.T) {
	key := outpost.NewKey()
	clk := &authClock{}
	clk.ns.Store(1e18)
	d, pub, runs := authDispatcher(t, &key, clk, &syncBuffer{})
	req := signed(clk, "same", "ping", key)
	forged := req
	forged.MACs = nil
	d.Submit("ping", AppendRequest(nil, forged))
	d.Submit("ping", AppendRequest(nil, forged))
	d.Submit("ping", AppendRequest(nil, req))
	pub.wait(t, "same", 3)
	d.Submit("ping", AppendRequest(nil, req))
	r := pub.wait(t, "same", 4)
	if r[0].Status != StatusInvalid || r[1].Status != StatusInvalid || r[2].Status != StatusOK || r[3].TS != r[2].TS {
		t.Fatalf("replies %+v", r)
	}
	if runs.Load() != 1 || d.Stats().Repeats != 1 || d.Stats().Unauthenticated != 2 {
		t.Fatalf("runs %d, stats %+v", runs.Load(), d.Stats())
	}
}

// A signed request may be at most MaxSignedAhead ahead, so that it has
// expired before its id leaves the cache; an unsigned one (no key) may
// be up to MaxAhead ahead.
func TestDispatcherSignedDeadline(t *testing.T) {
	key := outpost.NewKey()
	clk := &authClock{}
	clk.ns.Store(1e18)
	d, pub, runs := authDispatcher(t, &key, clk, &syncBuffer{})
	far := Request{ID: "far", Deadline: clk.in(MaxSignedAhead + time.Second)}
	SignRequest(&far, authGW, "ping", []outpost.Key{key})
	d.Submit("ping", AppendRequest(nil, far))
	r := pub.wait(t, "far", 1)[0]
	if txt := errorText(t, r); r.Status != StatusInvalid || !strings.Contains(txt, "deadline too far ahead for a signed request") {
		t.Fatalf("%s: %s", r.Status, txt)
	}
	near := Request{ID: "near", Deadline: clk.in(MaxSignedAhead)}
	SignRequest(&near, authGW, "ping", []outpost.Key{key})
	d.Submit("ping", AppendRequest(nil, near))
	if r := pub.wait(t, "near", 1)[0]; r.Status != StatusOK || runs.Load() != 1 {
		t.Fatalf("%+v, %d runs", r, runs.Load())
	}

	plain, ppub, pruns := authDispatcher(t, nil, clk, &syncBuffer{})
	plain.Submit("ping", AppendRequest(nil, Request{ID: "far", Deadline: clk.in(MaxSignedAhead + time.Hour)}))
	if r := ppub.wait(t, "far", 1)[0]; r.Status != StatusOK || r.MAC != nil || pruns.Load() != 1 {
		t.Fatalf("without a key: %+v, %d runs", r, pruns.Load())
	}
}

// With a key, the cache never lets go of the id of a request that has
// not expired: while every id it holds is such, a new request is
// answered busy; once the oldest has expired, it makes room.
func TestDispatcherSignedCacheFull(t *testing.T) {
	key := outpost.NewKey()
	clk := &authClock{}
	clk.ns.Store(1e18)
	d, pub, runs := authDispatcher(t, &key, clk, &syncBuffer{})
	for i := range CacheLen {
		id := fmt.Sprint("c", i)
		d.Submit("ping", AppendRequest(nil, signed(clk, id, "ping", key)))
		pub.wait(t, id, 1)
	}
	d.Submit("ping", AppendRequest(nil, signed(clk, "one-more", "ping", key)))
	if r := pub.wait(t, "one-more", 1)[0]; r.Status != StatusError || !strings.Contains(errorText(t, r), "busy") {
		t.Fatalf("%+v", r)
	}
	// The first request replayed is still known: not run again.
	d.Submit("ping", AppendRequest(nil, signed(clk, "c0", "ping", key)))
	pub.wait(t, "c0", 2)
	if runs.Load() != CacheLen {
		t.Fatalf("%d runs, want %d", runs.Load(), CacheLen)
	}
	clk.add(time.Minute + time.Nanosecond)
	d.Submit("ping", AppendRequest(nil, signed(clk, "one-more", "ping", key)))
	if r := pub.wait(t, "one-more", 2)[1]; r.Status != StatusOK {
		t.Fatalf("after the oldest expired: %+v", r)
	}
}

// Replies are signed with the key; VerifyReply accepts them with the
// key among others, and refuses a changed one, one without a MAC, and
// one of another gateway.
func TestVerifyReply(t *testing.T) {
	key, other := outpost.NewKey(), outpost.NewKey()
	r := Reply{ID: "r1", Status: StatusOK, Body: []byte{0x80}, TS: 42}
	signReply(&r, authGW, &key)
	got, err := DecodeReply(AppendReply(nil, r))
	if err != nil || !bytes.Equal(got.MAC, r.MAC) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if err := VerifyReply(&got, authGW, []outpost.Key{other, key}); err != nil {
		t.Fatal(err)
	}
	if err := VerifyReply(&Reply{ID: "x"}, authGW, nil); err != nil {
		t.Fatalf("no keys: %v", err)
	}
	for name, change := range map[string]func(*Reply){
		"body":      func(r *Reply) { r.Body = []byte{0x81, 0xa1, 'a', 0x01} },
		"status":    func(r *Reply) { r.Status = StatusError },
		"id":        func(r *Reply) { r.ID = "r2" },
		"ts":        func(r *Reply) { r.TS++ },
		"no MAC":    func(r *Reply) { r.MAC = nil },
		"MAC":       func(r *Reply) { r.MAC = bytes.Repeat([]byte{1}, outpost.MACSize) },
		"short MAC": func(r *Reply) { r.MAC = r.MAC[:16] },
	} {
		c := got
		c.MAC = bytes.Clone(got.MAC)
		change(&c)
		if err := VerifyReply(&c, authGW, []outpost.Key{key}); !errors.Is(err, outpost.ErrBadMAC) {
			t.Errorf("another %s: %v", name, err)
		}
	}
	if err := VerifyReply(&got, "gw-other", []outpost.Key{key}); !errors.Is(err, outpost.ErrBadMAC) {
		t.Errorf("another gateway: %v", err)
	}
	if err := VerifyReply(&got, authGW, []outpost.Key{other}); !errors.Is(err, outpost.ErrBadMAC) || strings.Contains(err.Error(), hex.EncodeToString(got.MAC)) {
		t.Errorf("another key: %v", err)
	}
	// A "mac" that is not a MAC does not decode.
	for _, mac := range [][]byte{make([]byte, outpost.MACSize-1), make([]byte, outpost.MACSize+1)} {
		p := msgp.AppendMapHeader(nil, 2)
		p = msgp.AppendBytes(msgp.AppendString(p, "mac"), mac)
		p = msgp.AppendString(msgp.AppendString(p, "id"), "r1")
		if _, err := DecodeReply(p); err == nil {
			t.Errorf("a mac of %d bytes decoded", len(mac))
		}
	}
}

func TestNewKeyNeedsGateway(t *testing.T) {
	key := outpost.NewKey()
	if _, err := New(Options{Publish: func(string, []byte) {}, Key: &key}); err == nil {
		t.Fatal("a Key without a Gateway accepted")
	}
}
