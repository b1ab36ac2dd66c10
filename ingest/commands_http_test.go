package ingest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost/ingest"
)

// commandsAPI is the HTTP API over a new SQLite store that keeps
// commands, and that store.
func commandsAPI(t *testing.T, opts func(*ingest.Options)) (*api, ingest.CommandStore) {
	t.Helper()
	st := openStore(t, "sqlite:"+filepath.Join(t.TempDir(), "ingest.db"))
	cs, ok := st.(ingest.CommandStore)
	if !ok {
		t.Fatalf("the SQLite store is no CommandStore")
	}
	return newAPI(t, st, opts), cs
}

// commandsAnswer is an answer of /api/v1/commands, each command's keys
// kept apart to see which are there.
type commandsAnswer struct {
	Commands  []map[string]json.RawMessage `json:"commands"`
	Limit     int                          `json:"limit"`
	Truncated bool                         `json:"truncated"`
	Next      *string                      `json:"next"`
}

func (c commandsAnswer) ids(t *testing.T) []string {
	t.Helper()
	ids := make([]string, len(c.Commands))
	for i, m := range c.Commands {
		if err := json.Unmarshal(m["id"], &ids[i]); err != nil {
			t.Fatalf("command %d: id %s: %v", i, m["id"], err)
		}
	}
	return ids
}

// compactJSON is s without insignificant space, to compare JSON texts.
func compactJSON(t *testing.T, s []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, s); err != nil {
		t.Fatalf("not JSON: %s: %v", s, err)
	}
	return b.String()
}

// TestHTTPCommands: /api/v1/commands answers every field of a command
// (times in RFC 3339 with nanoseconds, UTC; body and reply as JSON;
// what is unset left out), filters by each parameter, and pages newest
// first with next, also across commands created at the same time.
func TestHTTPCommands(t *testing.T) {
	a, cs := commandsAPI(t, nil)
	ctx := context.Background()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)

	body := msgp.AppendMapHeader(nil, 2)
	body = msgp.AppendString(body, "content")
	body = msgp.AppendBytes(body, []byte{1, 2, 3})
	body = msgp.AppendString(body, "n")
	body = msgp.AppendInt(body, 1)
	reply := msgp.AppendMapHeader(nil, 2)
	reply = msgp.AppendString(reply, "hash")
	reply = msgp.AppendString(reply, "abc")
	reply = msgp.AppendString(reply, "rules")
	reply = msgp.AppendArrayHeader(reply, 1)
	reply = msgp.AppendString(reply, "hot")

	full := &ingest.Command{ID: "push-1.1", Gateway: "gw-a", Name: "rules.set", Sender: "ops@host", Push: "push-1", Body: body,
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), State: ingest.CommandQueued}
	if err := cs.AddCommand(ctx, full); err != nil {
		t.Fatal(err)
	}
	sentAt, repliedAt, replyTS := t0.Add(time.Second+1), t0.Add(2*time.Second+2), t0.Add(2*time.Second-3)
	if ok, err := cs.CommandSent(ctx, full.ID, sentAt, sentAt); !ok || err != nil {
		t.Fatalf("sent: %v, %v", ok, err)
	}
	if ok, err := cs.CommandReplied(ctx, "gw-a", full.ID, "ok", repliedAt, replyTS, reply, ""); !ok || err != nil {
		t.Fatalf("replied: %v, %v", ok, err)
	}
	bare := &ingest.Command{ID: "bare", Gateway: "gw-b", Name: "ping", CreatedAt: t0.Add(-time.Minute),
		ExpiresAt: t0.Add(time.Hour), State: ingest.CommandQueued}
	if err := cs.AddCommand(ctx, bare); err != nil {
		t.Fatal(err)
	}

	var ans commandsAnswer
	a.getJSON(t, "/api/v1/commands", http.StatusOK, &ans)
	if got := ans.ids(t); !slices.Equal(got, []string{"push-1.1", "bare"}) || ans.Limit != ingest.DefaultCommandsLimit || ans.Truncated || ans.Next != nil {
		t.Fatalf("all commands: %v, limit %d, truncated %v, next %v", got, ans.Limit, ans.Truncated, ans.Next)
	}
	want := map[string]string{
		"id": `"push-1.1"`, "gateway": `"gw-a"`, "name": `"rules.set"`, "sender": `"ops@host"`, "push": `"push-1"`,
		"created_at": `"2025-06-01T12:00:00.123456789Z"`, "expires_at": `"2025-06-01T13:00:00.123456789Z"`,
		"state": `"ok"`, "attempts": `1`, "sent_at": `"2025-06-01T12:00:01.12345679Z"`,
		"replied_at": `"2025-06-01T12:00:02.123456791Z"`, "reply_ts": `"2025-06-01T12:00:02.123456786Z"`,
		"body": `{"content":"AQID","n":1}`, "reply": `{"hash":"abc","rules":["hot"]}`,
	}
	checkKeys(t, "the replied command", ans.Commands[0], want)
	checkKeys(t, "the bare command", ans.Commands[1], map[string]string{
		"id": `"bare"`, "gateway": `"gw-b"`, "name": `"ping"`, "sender": `""`, "created_at": `"2025-06-01T11:59:00.123456789Z"`,
		"expires_at": `"2025-06-01T13:00:00.123456789Z"`, "state": `"queued"`, "attempts": `0`,
	})

	// Filters: each parameter alone, and together.
	for target, wantIDs := range map[string][]string{
		"gateway=gw-a":             {"push-1.1"},
		"gateway=gw-c":             {},
		"push=push-1":              {"push-1.1"},
		"name=ping":                {"bare"},
		"state=queued":             {"bare"},
		"state=ok&gateway=gw-a":    {"push-1.1"},
		"id=bare":                  {"bare"},
		"id=bare&gateway=gw-a":     {},
		"gateway=gw-b&name=ping":   {"bare"},
		"push=push-1&state=queued": {},
	} {
		var ans commandsAnswer
		a.getJSON(t, "/api/v1/commands?"+target, http.StatusOK, &ans)
		if got := ans.ids(t); !slices.Equal(got, wantIDs) {
			t.Errorf("%s: %v, want %v", target, got, wantIDs)
		}
	}
}

// checkKeys fails t unless m holds exactly the keys of want, each with
// the JSON value given.
func checkKeys(t *testing.T, what string, m map[string]json.RawMessage, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("%s: no %q", what, k)
			continue
		}
		if compactJSON(t, got) != v {
			t.Errorf("%s: %q is %s, want %s", what, k, got, v)
		}
	}
	for k := range m {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %q is there (%s), want it left out", what, k, m[k])
		}
	}
}

// TestHTTPCommandsPages walks the commands a page at a time with next:
// every command comes once, newest first, then by id descending among
// those created at the same time, whatever the page size and filter.
func TestHTTPCommandsPages(t *testing.T) {
	a, cs := commandsAPI(t, nil)
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var all []string // newest first
	for i := range 23 {
		id := fmt.Sprintf("cmd-%02d", i)
		c := &ingest.Command{ID: id, Gateway: []string{"gw-a", "gw-b"}[i%2], Name: "ping", CreatedAt: t0.Add(time.Duration(i/5) * time.Second),
			ExpiresAt: t0.Add(time.Hour), State: ingest.CommandQueued}
		if err := cs.AddCommand(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		all = append(all, id)
	}
	slices.SortFunc(all, func(x, y string) int {
		var i, j int
		fmt.Sscanf(x, "cmd-%d", &i)
		fmt.Sscanf(y, "cmd-%d", &j)
		if i/5 != j/5 {
			return j/5 - i/5
		}
		return strings.Compare(y, x)
	})
	for _, filter := range []string{"", "&gateway=gw-a"} {
		var want []string
		for _, id := range all {
			var i int
			fmt.Sscanf(id, "cmd-%d", &i)
			if filter == "" || i%2 == 0 {
				want = append(want, id)
			}
		}
		for _, limit := range []int{1, 3, 5, 100} {
			var got []string
			target := fmt.Sprintf("/api/v1/commands?limit=%d%s", limit, filter)
			for range len(all) + 1 {
				var ans commandsAnswer
				a.getJSON(t, target, http.StatusOK, &ans)
				got = append(got, ans.ids(t)...)
				if ans.Truncated != (ans.Next != nil) || ans.Limit != limit {
					t.Fatalf("%s: truncated %v, next %v, limit %d", target, ans.Truncated, ans.Next, ans.Limit)
				}
				if ans.Next == nil {
					break
				}
				target = fmt.Sprintf("/api/v1/commands?limit=%d%s&before=%s", limit, filter, url.QueryEscape(*ans.Next))
			}
			if !slices.Equal(got, want) {
				t.Errorf("pages of %d%s:\n got %v\nwant %v", limit, filter, got, want)
			}
		}
	}
}

// TestHTTPCommandsConversion: a body or reply that is not exactly one
// MessagePack value JSON can hold comes as its bytes in base64, and the
// answer is still 200 with every command.
func TestHTTPCommandsConversion(t *testing.T) {
	a, cs := commandsAPI(t, nil)
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	deep := append(bytes.Repeat([]byte{0x91}, 100), 0xc0) // [[[…nil…]]], 100 deep
	cases := []struct {
		name string
		body []byte
		want string
	}{
		{"nil", []byte{0xc0}, `null`},
		{"a string", msgp.AppendString(nil, "héllo <&>"), `"héllo \u003c\u0026\u003e"`},
		{"a float", msgp.AppendFloat64(nil, 21.5), `21.5`},
		{"not MessagePack", []byte{0xc1}, ""},
		{"cut short", msgp.AppendString(nil, "hello")[:3], ""},
		{"two values", []byte{0x01, 0x02}, ""},
		{"NaN", msgp.AppendFloat64(nil, math.NaN()), ""},
		{"too deep", deep, ""},
		{"a huge array header", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, ""},
	}
	for i, tc := range cases {
		c := &ingest.Command{ID: fmt.Sprintf("c%02d", i), Gateway: "gw", Name: "ping", Body: tc.body, CreatedAt: t0.Add(time.Duration(i)),
			ExpiresAt: t0.Add(time.Hour), State: ingest.CommandQueued}
		if err := cs.AddCommand(context.Background(), c); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ok, err := cs.CommandReplied(context.Background(), "gw", c.ID, "error", t0.Add(time.Minute), t0, tc.body, "boom"); !ok || err != nil {
			t.Fatalf("%s: reply: %v, %v", tc.name, ok, err)
		}
	}
	var ans commandsAnswer
	a.getJSON(t, "/api/v1/commands", http.StatusOK, &ans)
	if len(ans.Commands) != len(cases) {
		t.Fatalf("%d commands, want %d", len(ans.Commands), len(cases))
	}
	for i, tc := range cases {
		m := ans.Commands[len(cases)-1-i] // newest first
		want := tc.want
		if want == "" {
			want = `{"msgpack_base64":"` + base64.StdEncoding.EncodeToString(tc.body) + `"}`
		}
		for _, key := range []string{"body", "reply"} {
			if got := compactJSON(t, m[key]); got != compactJSON(t, []byte(want)) {
				t.Errorf("%s: %s is %s, want %s", tc.name, key, got, want)
			}
		}
		if got := compactJSON(t, m["error"]); got != `"boom"` {
			t.Errorf("%s: error %s", tc.name, got)
		}
	}
}

// TestHTTPCommandsRefused: bad parameters answer 400 with the API's
// JSON error, without a query; a store without commands 501.
func TestHTTPCommandsRefused(t *testing.T) {
	a, cs := commandsAPI(t, nil)
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	if err := cs.AddCommand(context.Background(), &ingest.Command{ID: "c1", Gateway: "gw", Name: "ping", CreatedAt: t0,
		ExpiresAt: t0.Add(time.Hour), State: ingest.CommandQueued}); err != nil {
		t.Fatal(err)
	}
	cursor := func(s string) string { return url.QueryEscape(base64.RawURLEncoding.EncodeToString([]byte(s))) }
	for _, q := range []string{
		"limit=0", "limit=1001", "limit=x", "limit=1&limit=2", "gateway=a&gateway=b", "gateways=gw", "label=a:b",
		"gateway=" + url.QueryEscape("gw\x00"), "id=" + url.QueryEscape("\xff"), "push=" + strings.Repeat("p", 129),
		"state=not+a+state", "state=" + strings.Repeat("s", 65), "name=" + url.QueryEscape("a\x00"),
		"before=garbage!", "before=" + cursor("1748779200000000000"), "before=" + cursor("1748779200000000000,"),
		"before=" + cursor("01748779200000000000,c1"), "before=" + cursor("+1,c1"), "before=" + cursor("x,c1"),
		"before=" + cursor("99999999999999999999,c1"), "before=" + cursor("1,c\x00"),
		"before=" + url.QueryEscape(base64.URLEncoding.EncodeToString([]byte("1,c1x"))),  // padded
		"before=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("1,c1?>"))), // not URL-safe
		"before=" + strings.Repeat("A", 300),
	} {
		resp, body := a.get(t, "/api/v1/commands?"+q)
		var e struct{ Error string }
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%s: %d %s, want 400 with an error", q, resp.StatusCode, body)
		}
	}
	// A cursor of the right shape that names no command is a page
	// like any other.
	var ans commandsAnswer
	a.getJSON(t, "/api/v1/commands?before="+cursor(fmt.Sprint(t0.UnixNano()+1)+",a"), http.StatusOK, &ans)
	if got := ans.ids(t); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("before a time after c1: %v", got)
	}
	a.getJSON(t, "/api/v1/commands?before="+cursor(fmt.Sprint(t0.UnixNano())+",c1"), http.StatusOK, &ans)
	if got := ans.ids(t); len(got) != 0 {
		t.Errorf("before c1 itself: %v", got)
	}

	plain := newAPI(t, plainStore{openStore(t, "sqlite:"+filepath.Join(t.TempDir(), "plain.db"))}, nil)
	var e struct{ Error string }
	plain.getJSON(t, "/api/v1/commands", http.StatusNotImplemented, &e)
	if e.Error == "" {
		t.Errorf("501 without an error text")
	}
}

// plainStore is a store with no more than the Store methods: no
// CommandStore.
type plainStore struct{ ingest.Store }

// TestHTTPCommandsToken: the endpoint is behind the API's token.
func TestHTTPCommandsToken(t *testing.T) {
	a, _ := commandsAPI(t, func(o *ingest.Options) { o.HTTPToken = "s3cret" })
	if resp, body := a.get(t, "/api/v1/commands"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %d %s, want 401", resp.StatusCode, body)
	}
	if resp, body := a.get(t, "/api/v1/commands", "Authorization", "Bearer s3cret"); resp.StatusCode != http.StatusOK {
		t.Errorf("with the token: %d %s, want 200", resp.StatusCode, body)
	}
}

// FuzzHTTPCommandsBody: whatever bytes a body or reply holds, the
// answer is 200 and JSON, the body either converted or its bytes in
// base64.
func FuzzHTTPCommandsBody(f *testing.F) {
	for _, seed := range [][]byte{{0xc0}, {0x81, 0xa1, 'k', 0x01}, {0xc1}, {0x91, 0x91}, {0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1},
		{0x81, 0x01, 0x02}, {0x81, 0xc0, 0x02}, {0xd6, 0xff, 0, 0, 0, 1}, {0xa3, 0xff, 0xfe, 0x00}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if len(p) > ingest.MaxCommandBodyBytes {
			return
		}
		a, cs := commandsAPI(t, nil)
		t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		c := &ingest.Command{ID: "c", Gateway: "gw", Name: "ping", Body: p, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), State: ingest.CommandQueued}
		if err := cs.AddCommand(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		var ans commandsAnswer
		a.getJSON(t, "/api/v1/commands", http.StatusOK, &ans)
		if len(ans.Commands) != 1 {
			t.Fatalf("%d commands", len(ans.Commands))
		}
		got, ok := ans.Commands[0]["body"]
		if len(p) == 0 {
			if ok {
				t.Fatalf("an empty body given as %s", got)
			}
			return
		}
		var fallback struct {
			B64 []byte `json:"msgpack_base64"`
		}
		if json.Unmarshal(got, &fallback) == nil && fallback.B64 != nil && !bytes.Equal(fallback.B64, p) {
			t.Fatalf("msgpack_base64 %s of %x", got, p)
		}
	})
}
