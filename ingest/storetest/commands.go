package storetest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// cT0 is the base time of the commands tests: nanoseconds set, which
// both stores keep (they keep every time as unix nanoseconds).
var cT0 = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)

// commandStore is s as an ingest.CommandStore, or skips t.
func commandStore(t *testing.T, s ingest.Store) ingest.CommandStore {
	t.Helper()
	cs, ok := s.(ingest.CommandStore)
	if !ok {
		t.Skip("the store does not keep commands")
	}
	return cs
}

// newCommand is a queued ping of gateway, created at, expiring an hour
// later.
func newCommand(id, gateway string, at time.Time) *ingest.Command {
	return &ingest.Command{ID: id, Gateway: gateway, Name: "ping", Sender: "ops@host", CreatedAt: at,
		ExpiresAt: at.Add(time.Hour), State: ingest.CommandQueued}
}

func addCommand(t *testing.T, cs ingest.CommandStore, c *ingest.Command) {
	t.Helper()
	if err := cs.AddCommand(ctx(t), c); err != nil {
		t.Fatalf("add command %s: %v", c.ID, err)
	}
}

// commandsOf is what q answers, failing t on an error.
func commandsOf(t *testing.T, cs ingest.CommandStore, q ingest.CommandQuery) []ingest.Command {
	t.Helper()
	got, err := Collect(cs.Commands(ctx(t), q))
	if err != nil {
		t.Fatalf("commands %+v: %v", q, err)
	}
	return got
}

// commandByID is the stored command id, failing t if there is none.
func commandByID(t *testing.T, cs ingest.CommandStore, id string) ingest.Command {
	t.Helper()
	got := commandsOf(t, cs, ingest.CommandQuery{ID: id, Limit: 10})
	if len(got) != 1 {
		t.Fatalf("command %s: %d stored, want 1: %+v", id, len(got), got)
	}
	return got[0]
}

func commandIDs(cs []ingest.Command) []string {
	ids := make([]string, len(cs))
	for i := range cs {
		ids[i] = cs[i].ID
	}
	return ids
}

// sameTime: both zero, or the same instant in UTC.
func sameTime(got, want time.Time) bool {
	if want.IsZero() {
		return got.IsZero()
	}
	return got.Equal(want) && got.Location() == time.UTC
}

// sameCommand fails t unless got is want as stored: every field, times
// to the nanosecond and in UTC, an empty Body as nil, Reply nil exactly
// when there is no reply.
func sameCommand(t *testing.T, what string, got, want ingest.Command) {
	t.Helper()
	if got.ID != want.ID || got.Gateway != want.Gateway || got.Name != want.Name || got.Sender != want.Sender ||
		got.Push != want.Push || !bytes.Equal(got.Body, want.Body) || (len(want.Body) == 0) != (got.Body == nil) ||
		!sameTime(got.CreatedAt, want.CreatedAt) || !sameTime(got.ExpiresAt, want.ExpiresAt) ||
		got.State != want.State || got.Attempts != want.Attempts || !sameTime(got.SentAt, want.SentAt) ||
		!sameTime(got.RepliedAt, want.RepliedAt) || !sameTime(got.ReplyTS, want.ReplyTS) ||
		!bytes.Equal(got.Reply, want.Reply) || (want.Reply == nil) != (got.Reply == nil) || got.Error != want.Error {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// oneError fails t unless seq yields one error alone.
func oneError[T any](t *testing.T, what string, seq iter.Seq2[T, error]) {
	t.Helper()
	n, errs := 0, 0
	for _, err := range seq {
		n++
		if err != nil {
			errs++
		}
	}
	if n != 1 || errs != 1 {
		t.Errorf("%s: %d pairs, %d errors; want one error alone", what, n, errs)
	}
}

// testCommands: a command comes back as it was stored, every field (the
// times to the nanosecond, in UTC); a second one of an id is
// ErrDuplicateCommand and changes nothing; one out of bounds is
// ErrInvalidData and is not stored; one at the bounds is.
func testCommands(t *testing.T, s ingest.Store) {
	cs := commandStore(t, s)
	full := &ingest.Command{ID: "01J9Z3K2.a-b_c", Gateway: "gw-01", Name: "rules.set", Sender: "ops@host ☃",
		Push: "push-7", Body: []byte{0x81, 0xa1, 'k', 0xc4, 2, 0, 0xff}, CreatedAt: cT0, ExpiresAt: cT0.Add(time.Hour + 1),
		State: ingest.CommandSent, Attempts: 1, SentAt: cT0.Add(5)}
	bare := newCommand("bare", "gw-02", cT0.Add(-time.Nanosecond))
	bare.Sender = ""
	for _, c := range []*ingest.Command{full, bare} {
		addCommand(t, cs, c)
		sameCommand(t, "read back "+c.ID, commandByID(t, cs, c.ID), *c)
	}
	if got := commandsOf(t, cs, ingest.CommandQuery{Limit: 10}); !slices.Equal(commandIDs(got), []string{full.ID, bare.ID}) {
		t.Fatalf("all commands: %v", commandIDs(got))
	}

	other := *bare
	other.Gateway, other.Name = "gw-03", "stats"
	err := cs.AddCommand(ctx(t), &other)
	if !errors.Is(err, ingest.ErrDuplicateCommand) || errors.Is(err, ingest.ErrInvalidData) {
		t.Fatalf("an id stored again: %v, want ErrDuplicateCommand", err)
	}
	sameCommand(t, "after the duplicate", commandByID(t, cs, bare.ID), *bare)

	long := strings.Repeat("x", outpost.MaxIDLen+1)
	for _, tc := range []struct {
		name string
		edit func(c *ingest.Command)
	}{
		{"no id", func(c *ingest.Command) { c.ID = "" }},
		{"no gateway", func(c *ingest.Command) { c.Gateway = "" }},
		{"no name", func(c *ingest.Command) { c.Name = "" }},
		{"long id", func(c *ingest.Command) { c.ID = long }},
		{"long gateway", func(c *ingest.Command) { c.Gateway = long }},
		{"long name", func(c *ingest.Command) { c.Name = long }},
		{"long push", func(c *ingest.Command) { c.Push = long }},
		{"NUL in the id", func(c *ingest.Command) { c.ID = "a\x00b" }},
		{"gateway not UTF-8", func(c *ingest.Command) { c.Gateway = "gw\xff" }},
		{"long sender", func(c *ingest.Command) { c.Sender = strings.Repeat("s", ingest.MaxCommandSenderLen+1) }},
		{"sender not UTF-8", func(c *ingest.Command) { c.Sender = "ops\xc3" }},
		{"NUL in the sender", func(c *ingest.Command) { c.Sender = "ops\x00" }},
		{"long body", func(c *ingest.Command) { c.Body = make([]byte, ingest.MaxCommandBodyBytes+1) }},
		{"state ok", func(c *ingest.Command) { c.State = "ok" }},
		{"state lapsed", func(c *ingest.Command) { c.State = ingest.CommandLapsed }},
		{"no state", func(c *ingest.Command) { c.State = "" }},
		{"sent, never", func(c *ingest.Command) { c.State = ingest.CommandSent }},
		{"expires as created", func(c *ingest.Command) { c.ExpiresAt = c.CreatedAt }},
		{"expires before created", func(c *ingest.Command) { c.ExpiresAt = c.CreatedAt.Add(-time.Second) }},
		{"no created_at", func(c *ingest.Command) { c.CreatedAt = time.Time{} }},
		{"created in 1500", func(c *ingest.Command) { c.CreatedAt = time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"expires in 2300", func(c *ingest.Command) { c.ExpiresAt = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"attempts -1", func(c *ingest.Command) { c.Attempts = -1 }},
		{"with a reply", func(c *ingest.Command) { c.Reply = []byte{0xc0} }},
		{"with an error", func(c *ingest.Command) { c.Error = "boom" }},
		{"replied", func(c *ingest.Command) { c.RepliedAt = cT0 }},
	} {
		c := newCommand("refused", "gw-01", cT0)
		tc.edit(c)
		if err := cs.AddCommand(ctx(t), c); !errors.Is(err, ingest.ErrInvalidData) {
			t.Errorf("%s: %v, want ErrInvalidData", tc.name, err)
		}
	}
	if got := commandsOf(t, cs, ingest.CommandQuery{Limit: 10}); len(got) != 2 {
		t.Fatalf("after the refused commands: %v, want the two stored before", commandIDs(got))
	}

	edge := newCommand(strings.Repeat("e", outpost.MaxIDLen), strings.Repeat("g", outpost.MaxIDLen), cT0)
	edge.Sender = strings.Repeat("é", ingest.MaxCommandSenderLen/2)
	edge.Body = bytes.Repeat([]byte{0xc0}, ingest.MaxCommandBodyBytes)
	edge.Push = strings.Repeat("p", outpost.MaxIDLen)
	addCommand(t, cs, edge)
	sameCommand(t, "a command at the bounds", commandByID(t, cs, edge.ID), *edge)
}

// testCommandsReplies: CommandSent makes a command sent and counts its
// attempts, and changes a final one no more; CommandReplied records a
// reply once, of the command's gateway only, keeps the error text
// within its bound as valid UTF-8, and refuses a body over its bound
// and a status that is no reply's.
func testCommandsReplies(t *testing.T, s ingest.Store) {
	cs := commandStore(t, s)
	c := newCommand("c1", "gw-a", cT0)
	addCommand(t, cs, c)
	want := *c
	for i, at := range []time.Time{cT0.Add(time.Second + 1), cT0.Add(2*time.Second + 3)} {
		if ok, err := cs.CommandSent(ctx(t), c.ID, at, at); !ok || err != nil {
			t.Fatalf("sent %d: %v, %v", i+1, ok, err)
		}
		want.State, want.Attempts, want.SentAt = ingest.CommandSent, i+1, at
		sameCommand(t, fmt.Sprintf("after sent %d", i+1), commandByID(t, cs, c.ID), want)
	}
	for _, id := range []string{"unknown", "", "a\x00b", strings.Repeat("x", outpost.MaxIDLen+1)} {
		if ok, err := cs.CommandSent(ctx(t), id, cT0, cT0); ok || err != nil {
			t.Errorf("sent %q: %v, %v; want false, nil", id, ok, err)
		}
	}
	if _, err := cs.CommandSent(ctx(t), c.ID, time.Time{}, cT0); !errors.Is(err, ingest.ErrInvalidData) {
		t.Errorf("sent at the zero time: %v, want ErrInvalidData", err)
	}
	if _, err := cs.CommandSent(ctx(t), c.ID, cT0, time.Time{}); !errors.Is(err, ingest.ErrInvalidData) {
		t.Errorf("resend before the zero time: %v, want ErrInvalidData", err)
	}
	// A command sent after resendBefore is another's claim: not taken.
	last := want.SentAt
	if ok, err := cs.CommandSent(ctx(t), c.ID, last.Add(time.Minute), last.Add(-1)); ok || err != nil {
		t.Errorf("claim of a command sent after resendBefore: %v, %v; want false, nil", ok, err)
	}
	sameCommand(t, "after a claim refused", commandByID(t, cs, c.ID), want)

	at, ts := cT0.Add(3*time.Second+7), cT0.Add(3*time.Second-11)
	body := []byte{0x81, 0xa2, 'o', 'k', 0xc3}
	for _, tc := range []struct{ gateway, id string }{{"gw-b", "c1"}, {"gw-a", "nope"}, {"", "c1"}, {"gw-a\x00", "c1"}} {
		if ok, err := cs.CommandReplied(ctx(t), tc.gateway, tc.id, "ok", at, ts, body, ""); ok || err != nil {
			t.Errorf("reply to %q of %q: %v, %v; want false, nil", tc.id, tc.gateway, ok, err)
		}
	}
	sameCommand(t, "after replies to no command", commandByID(t, cs, c.ID), want)
	for _, st := range []string{"", ingest.CommandQueued, ingest.CommandSent, ingest.CommandLapsed, "not ok", strings.Repeat("s", 65), "ok\x00"} {
		if _, err := cs.CommandReplied(ctx(t), "gw-a", c.ID, st, at, ts, body, ""); !errors.Is(err, ingest.ErrInvalidData) {
			t.Errorf("reply of status %q: %v, want ErrInvalidData", st, err)
		}
	}
	if _, err := cs.CommandReplied(ctx(t), "gw-a", c.ID, "ok", at, ts, make([]byte, ingest.MaxCommandReplyBytes+1), ""); !errors.Is(err, ingest.ErrInvalidData) {
		t.Errorf("a reply over its bound: %v, want ErrInvalidData", err)
	}
	sameCommand(t, "after refused replies", commandByID(t, cs, c.ID), want)

	if ok, err := cs.CommandReplied(ctx(t), "gw-a", c.ID, "ok", at, ts, body, ""); !ok || err != nil {
		t.Fatalf("reply: %v, %v", ok, err)
	}
	want.State, want.RepliedAt, want.ReplyTS, want.Reply = "ok", at, ts, body
	sameCommand(t, "after the reply", commandByID(t, cs, c.ID), want)
	if ok, err := cs.CommandReplied(ctx(t), "gw-a", c.ID, "error", at.Add(time.Second), ts, nil, "late"); ok || err != nil {
		t.Errorf("a second reply: %v, %v; want false, nil", ok, err)
	}
	if ok, err := cs.CommandSent(ctx(t), c.ID, at.Add(time.Second), at.Add(time.Second)); ok || err != nil {
		t.Errorf("sent after the reply: %v, %v; want false, nil", ok, err)
	}
	sameCommand(t, "after a second reply and a send", commandByID(t, cs, c.ID), want)

	// A queued command answered at once, with an error text over its
	// bound, holding bytes that are not UTF-8 and a NUL, no ts and no
	// body.
	q := newCommand("c2", "gw-a", cT0)
	addCommand(t, cs, q)
	errText := "\xff\x00" + strings.Repeat("€", ingest.MaxCommandErrorBytes)
	if ok, err := cs.CommandReplied(ctx(t), "gw-a", q.ID, "error", at, time.Time{}, nil, errText); !ok || err != nil {
		t.Fatalf("reply with a long error: %v, %v", ok, err)
	}
	got := commandByID(t, cs, q.ID)
	wantErr := "\uFFFD\uFFFD" + strings.Repeat("€", (ingest.MaxCommandErrorBytes-6)/3)
	if got.Error != wantErr || !utf8.ValidString(got.Error) || len(got.Error) > ingest.MaxCommandErrorBytes {
		t.Errorf("error text of %d bytes kept as %d bytes, want %d: %.40q…", len(errText), len(got.Error), len(wantErr), got.Error)
	}
	if got.State != "error" || !sameTime(got.RepliedAt, at) || !got.ReplyTS.IsZero() || len(got.Reply) != 0 ||
		got.Reply == nil || got.Attempts != 0 || !got.SentAt.IsZero() {
		t.Errorf("a queued command answered: %+v", got)
	}

	// A reply at its bound is kept whole.
	b := newCommand("c3", "gw-a", cT0)
	addCommand(t, cs, b)
	big := bytes.Repeat([]byte{0xc2}, ingest.MaxCommandReplyBytes)
	if ok, err := cs.CommandReplied(ctx(t), "gw-a", b.ID, "ok", at, ts, big, ""); !ok || err != nil {
		t.Fatalf("a reply at its bound: %v, %v", ok, err)
	}
	if got := commandByID(t, cs, b.ID); !bytes.Equal(got.Reply, big) {
		t.Errorf("a reply at its bound read back as %d bytes", len(got.Reply))
	}
}

// testCommandsPending: PendingCommands yields a gateway's queued
// commands and those sent at or before resendBefore fewer than
// MaxCommandAttempts times, expiring after now, none final, oldest first (then by id), at most limit;
// PendingGateways their gateways, each once.
func testCommandsPending(t *testing.T, s ingest.Store) {
	cs := commandStore(t, s)
	now := cT0.Add(time.Hour)
	resend := now.Add(-5 * time.Minute)
	add := func(id, gateway string, created time.Time, edit func(c *ingest.Command)) {
		t.Helper()
		c := newCommand(id, gateway, created)
		c.ExpiresAt = now.Add(time.Hour)
		if edit != nil {
			edit(c)
		}
		addCommand(t, cs, c)
	}
	sentAt := func(at time.Time) func(c *ingest.Command) {
		return func(c *ingest.Command) { c.State, c.SentAt, c.Attempts = ingest.CommandSent, at, 1 }
	}
	add("a-queued", "gw-a", cT0.Add(time.Minute), nil)
	add("a-sent-long-ago", "gw-a", cT0.Add(2*time.Minute), sentAt(now.Add(-10*time.Minute)))
	add("a-sent-just-now", "gw-a", cT0.Add(3*time.Minute), sentAt(now.Add(-time.Minute)))
	add("a-sent-at-resend", "gw-a", cT0.Add(4*time.Minute), sentAt(resend))
	add("a-expires-now", "gw-a", cT0.Add(5*time.Minute), func(c *ingest.Command) { c.ExpiresAt = now })
	add("a-expired", "gw-a", cT0.Add(-time.Hour), func(c *ingest.Command) { c.ExpiresAt = now.Add(-time.Minute) })
	add("a-replied", "gw-a", cT0.Add(6*time.Minute), nil)
	add("a-tie-2", "gw-a", cT0, nil)
	add("a-tie-1", "gw-a", cT0, nil)
	add("a-sent-too-often", "gw-a", cT0.Add(7*time.Minute), func(c *ingest.Command) {
		sentAt(now.Add(-10 * time.Minute))(c)
		c.Attempts = ingest.MaxCommandAttempts
	})
	add("b-queued", "gw-b", cT0.Add(time.Minute), nil)
	add("c-replied", "gw-c", cT0, nil)
	for _, r := range []struct{ gw, id string }{{"gw-a", "a-replied"}, {"gw-c", "c-replied"}} {
		if ok, err := cs.CommandReplied(ctx(t), r.gw, r.id, "ok", cT0.Add(10*time.Minute), cT0, nil, ""); !ok || err != nil {
			t.Fatalf("reply to %s: %v, %v", r.id, ok, err)
		}
	}

	pending := func(gateway string, limit int) []string {
		t.Helper()
		got, err := Collect(cs.PendingCommands(ctx(t), gateway, now, resend, limit))
		if err != nil {
			t.Fatalf("pending of %s: %v", gateway, err)
		}
		for _, c := range got {
			if c.Gateway != gateway {
				t.Fatalf("pending of %s: %+v", gateway, c)
			}
		}
		return commandIDs(got)
	}
	wantA := []string{"a-tie-1", "a-tie-2", "a-queued", "a-sent-long-ago", "a-sent-at-resend"}
	if got := pending("gw-a", 100); !slices.Equal(got, wantA) {
		t.Errorf("pending of gw-a: %v, want %v", got, wantA)
	}
	if got := pending("gw-a", 2); !slices.Equal(got, wantA[:2]) {
		t.Errorf("pending of gw-a, limit 2: %v, want %v", got, wantA[:2])
	}
	if got := pending("gw-b", 100); !slices.Equal(got, []string{"b-queued"}) {
		t.Errorf("pending of gw-b: %v", got)
	}
	for _, gw := range []string{"gw-c", "gw-none", ""} {
		if got := pending(gw, 100); len(got) != 0 {
			t.Errorf("pending of %q: %v, want none", gw, got)
		}
	}
	full := commandByID(t, cs, "a-sent-long-ago")
	got, err := Collect(cs.PendingCommands(ctx(t), "gw-a", now, resend, 100))
	if err != nil || len(got) != len(wantA) {
		t.Fatalf("pending of gw-a: %v, %v", got, err)
	}
	sameCommand(t, "a pending command", got[3], full)
	oneError(t, "pending, limit 0", cs.PendingCommands(ctx(t), "gw-a", now, resend, 0))

	gws, err := Collect(cs.PendingGateways(ctx(t), now, resend, 10))
	slices.Sort(gws)
	if err != nil || !slices.Equal(gws, []string{"gw-a", "gw-b"}) {
		t.Errorf("pending gateways: %v, %v; want gw-a and gw-b", gws, err)
	}
	if gws, err := Collect(cs.PendingGateways(ctx(t), now, resend, 1)); err != nil || len(gws) != 1 {
		t.Errorf("pending gateways, limit 1: %v, %v", gws, err)
	}
	// An hour and a half later only the commands that expire after it
	// are due; every sent one is due again.
	later := now.Add(90 * time.Minute)
	if gws, err := Collect(cs.PendingGateways(ctx(t), later, later, 10)); err != nil || len(gws) != 0 {
		t.Errorf("pending gateways once all expired: %v, %v", gws, err)
	}
	oneError(t, "pending gateways, limit 0", cs.PendingGateways(ctx(t), now, resend, 0))
}

// testCommandsLapse: LapseCommands makes the commands not final whose
// ExpiresAt is at or before now lapsed, with an error text, returns how
// many, and leaves the others; a lapsed command takes no reply.
func testCommandsLapse(t *testing.T, s ingest.Store) {
	cs := commandStore(t, s)
	now := cT0.Add(time.Hour)
	expiring := func(id string, expires time.Time, sent bool) {
		t.Helper()
		c := newCommand(id, "gw", cT0)
		c.ExpiresAt = expires
		if sent {
			c.State, c.SentAt, c.Attempts = ingest.CommandSent, cT0.Add(time.Second), 1
		}
		addCommand(t, cs, c)
	}
	expiring("queued-expired", now.Add(-1), false)
	expiring("sent-expires-now", now, true)
	expiring("queued-expires-later", now.Add(1), false)
	expiring("replied-expired", now.Add(-time.Minute), true)
	if ok, err := cs.CommandReplied(ctx(t), "gw", "replied-expired", "ok", cT0.Add(time.Minute), cT0, nil, ""); !ok || err != nil {
		t.Fatalf("reply: %v, %v", ok, err)
	}
	before := map[string]ingest.Command{}
	for _, c := range commandsOf(t, cs, ingest.CommandQuery{Limit: 10}) {
		before[c.ID] = c
	}
	if n, err := cs.LapseCommands(ctx(t), now); n != 2 || err != nil {
		t.Fatalf("lapse: %d, %v; want 2", n, err)
	}
	for _, id := range []string{"queued-expired", "sent-expires-now"} {
		got, want := commandByID(t, cs, id), before[id]
		if got.Error == "" {
			t.Errorf("%s lapsed without an error text", id)
		}
		want.State, want.Error = ingest.CommandLapsed, got.Error
		sameCommand(t, id+" lapsed", got, want)
		if ok, err := cs.CommandReplied(ctx(t), "gw", id, "ok", now, now, nil, ""); ok || err != nil {
			t.Errorf("reply to lapsed %s: %v, %v; want false, nil", id, ok, err)
		}
		if ok, err := cs.CommandSent(ctx(t), id, now, now); ok || err != nil {
			t.Errorf("sent lapsed %s: %v, %v; want false, nil", id, ok, err)
		}
	}
	for _, id := range []string{"queued-expires-later", "replied-expired"} {
		sameCommand(t, id+" after the lapse", commandByID(t, cs, id), before[id])
	}
	if n, err := cs.LapseCommands(ctx(t), now); n != 0 || err != nil {
		t.Errorf("lapse again: %d, %v; want 0", n, err)
	}
}

// testCommandsQuery: Commands answers newest first (CreatedAt, then ID
// byte by byte, descending), filtered by each field, a page at a time
// after (Before, BeforeID) also across commands of equal CreatedAt;
// a limit below 1 is an error.
func testCommandsQuery(t *testing.T, s ingest.Store) {
	cs := commandStore(t, s)
	var all []ingest.Command
	gws, pushes, names := []string{"gw-a", "gw-b"}, []string{"", "push-1", "push-2"}, []string{"ping", "rules.set", "stats"}
	ids := []string{"c-10", "c-2", "C-1", "c-03", "c-1", "b", "c-1a", "Z", "a.b", "a_b", "a-b", "c-11", "d", "e", "f", "g"}
	for i, id := range ids {
		c := newCommand(id, gws[i%2], cT0.Add(time.Duration(i/4)*time.Second)) // four at each created_at
		c.Push, c.Name = pushes[i%3], names[i%len(names)]
		addCommand(t, cs, c)
		switch i % 4 {
		case 1:
			if ok, err := cs.CommandSent(ctx(t), id, cT0.Add(time.Minute), cT0.Add(time.Minute)); !ok || err != nil {
				t.Fatalf("sent %s: %v, %v", id, ok, err)
			}
		case 2:
			if ok, err := cs.CommandReplied(ctx(t), c.Gateway, id, "ok", cT0.Add(time.Minute), cT0, nil, ""); !ok || err != nil {
				t.Fatalf("reply to %s: %v, %v", id, ok, err)
			}
		}
		all = append(all, commandByID(t, cs, id))
	}
	slices.SortFunc(all, func(a, b ingest.Command) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
	})
	selects := func(q ingest.CommandQuery, c ingest.Command) bool {
		return (q.ID == "" || c.ID == q.ID) && (q.Gateway == "" || c.Gateway == q.Gateway) && (q.Push == "" || c.Push == q.Push) &&
			(q.Name == "" || c.Name == q.Name) && (q.State == "" || c.State == q.State) &&
			(q.Before.IsZero() || c.CreatedAt.Before(q.Before) || c.CreatedAt.Equal(q.Before) && c.ID < q.BeforeID)
	}
	for _, q := range []ingest.CommandQuery{
		{},
		{ID: "c-1"},
		{ID: "none"},
		{Gateway: "gw-a"},
		{Gateway: "gw-b", State: ingest.CommandQueued},
		{Push: "push-1"},
		{Push: "push-2", Gateway: "gw-a"},
		{Name: "rules.set"},
		{State: "ok"},
		{State: ingest.CommandSent, Name: "stats"},
		{Before: cT0.Add(2 * time.Second)},
		{Before: cT0.Add(2 * time.Second), BeforeID: "a_b"},
		{Before: cT0.Add(time.Second), BeforeID: "c-03", Gateway: "gw-b"},
	} {
		var want []ingest.Command
		for _, c := range all {
			if selects(q, c) {
				want = append(want, c)
			}
		}
		q.Limit = 100
		got := commandsOf(t, cs, q)
		if !slices.Equal(commandIDs(got), commandIDs(want)) {
			t.Errorf("commands %+v:\n got %v\nwant %v", q, commandIDs(got), commandIDs(want))
			continue
		}
		for i := range got {
			sameCommand(t, fmt.Sprintf("commands %+v, #%d", q, i), got[i], want[i])
		}
		// Page by page, each after the last of the one before.
		for _, limit := range []int{1, 2, 3, 5} {
			var paged []ingest.Command
			p := q
			p.Limit = limit
			for range len(all) + 1 {
				page := commandsOf(t, cs, p)
				paged = append(paged, page...)
				if len(page) < limit {
					break
				}
				last := page[len(page)-1]
				p.Before, p.BeforeID = last.CreatedAt, last.ID
			}
			if !slices.Equal(commandIDs(paged), commandIDs(want)) {
				t.Errorf("commands %+v in pages of %d:\n got %v\nwant %v", q, limit, commandIDs(paged), commandIDs(want))
			}
		}
	}
	oneError(t, "commands, limit 0", cs.Commands(ctx(t), ingest.CommandQuery{}))
	oneError(t, "commands, limit -1", cs.Commands(ctx(t), ingest.CommandQuery{Gateway: "gw-a", Limit: -1}))
}

// testCommandsRetention: Maintain deletes the final commands created
// more than ingest.CommandRetention before now, whatever the retention
// (none here), and keeps those not final however old, until they lapse.
func testCommandsRetention(t *testing.T, s ingest.Store) {
	cs := commandStore(t, s)
	m, ok := s.(ingest.Maintainer)
	if !ok {
		t.Skip("the store does not maintain itself")
	}
	now := time.Now().UTC()
	old := now.Add(-ingest.CommandRetention - time.Hour)
	young := now.Add(-ingest.CommandRetention + time.Hour)
	add := func(id string, created time.Time, final bool) {
		t.Helper()
		c := newCommand(id, "gw", created)
		c.ExpiresAt = now.Add(time.Hour)
		addCommand(t, cs, c)
		if final {
			if ok, err := cs.CommandReplied(ctx(t), "gw", id, "ok", created.Add(time.Second), created, nil, ""); !ok || err != nil {
				t.Fatalf("reply to %s: %v, %v", id, ok, err)
			}
		}
	}
	add("old-final", old, true)
	add("older-final", old.Add(-30*24*time.Hour), true)
	add("old-queued", old, false)
	add("young-final", young, true)
	add("young-queued", young, false)
	remaining := func() []string {
		t.Helper()
		ids := commandIDs(commandsOf(t, cs, ingest.CommandQuery{Limit: 10}))
		slices.Sort(ids)
		return ids
	}
	st, err := m.Maintain(ctx(t), now.UnixNano(), ingest.Retention{})
	if err != nil || st.Rows != 2 {
		t.Fatalf("maintain: %+v, %v; want 2 rows deleted", st, err)
	}
	if got, want := remaining(), []string{"old-queued", "young-final", "young-queued"}; !slices.Equal(got, want) {
		t.Fatalf("after the retention: %v, want %v", got, want)
	}
	// The old queued one ends when it expires, and goes at the next pass.
	if n, err := cs.LapseCommands(ctx(t), now.Add(2*time.Hour)); n != 2 || err != nil {
		t.Fatalf("lapse: %d, %v", n, err)
	}
	if st, err := m.Maintain(ctx(t), now.UnixNano(), ingest.Retention{}); err != nil || st.Rows != 1 {
		t.Fatalf("maintain again: %+v, %v; want 1 row deleted", st, err)
	}
	if got, want := remaining(), []string{"young-final", "young-queued"}; !slices.Equal(got, want) {
		t.Fatalf("after the lapse and the retention: %v, want %v", got, want)
	}
}
