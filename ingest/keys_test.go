package ingest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
)

func TestParseKeys(t *testing.T) {
	k1, k2, k3 := outpost.NewKey(), outpost.NewKey(), outpost.NewKey()
	src := "# gateway keys\n\ngw-01 " + k1.Hex() + "\n  gw-01\t" + k2.Hex() + "   # the next, while rotating\ngw-02 " + k3.Hex() + "\n"
	m, err := ParseKeys(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || len(m["gw-01"]) != 2 || !m["gw-01"][0].Equal(k1) || !m["gw-01"][1].Equal(k2) || !m["gw-02"][0].Equal(k3) {
		t.Fatalf("parsed %v", m)
	}
	secret := k1.Hex()
	for _, c := range []struct{ src, want string }{
		{"gw-01\n", "line 1: 1 fields, want 2: GATEWAY-ID KEY"},
		{"gw-01 " + secret + " extra\n", "line 1: 3 fields"},
		{"\ngw/01 " + secret + "\n", `line 2: gateway id "gw/01" is not`},
		{"gw-01 " + secret[:60] + "\n", "line 1: outpost: key: 60 characters"},
		{"gw-01 " + secret + "\ngw-01 " + secret + "\n", "line 2: gateway gw-01: key " + k1.Fingerprint() + " listed twice"},
		{"gw-01 " + secret + "\ngw-02 " + secret + "\n", "line 2: gateway gw-02: key " + k1.Fingerprint() + " is gw-01's too"},
		{"gw-01 " + secret + "\ngw-01 " + k2.Hex() + "\ngw-01 " + k3.Hex() + "\n", "line 3: gateway gw-01: more than 2 keys"},
		{"gw-01 " + strings.Repeat("a", 5000) + "\n", "a line longer than 4 KiB"},
	} {
		_, err := ParseKeys(strings.NewReader(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseKeys(%.30q…) = %v, want %q", c.src, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), secret[:12]) {
			t.Errorf("error %q shows a key", err)
		}
	}
	if _, err := NewKeys(map[string][]outpost.Key{"gw-01": {k1}, "gw-02": {k1}}); err == nil {
		t.Error("NewKeys took one key for two gateways")
	}
}

func TestKeysReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	k1, k2 := outpost.NewKey(), outpost.NewKey()
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("gw-01 " + k1.Hex() + "\n")
	k, err := LoadKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	k.now = func() time.Time { return now }
	if ks := k.Lookup("gw-01"); len(ks) != 1 || !ks[0].Equal(k1) || k.Lookup("gw-02") != nil {
		t.Fatalf("lookup %v", ks)
	}
	// A bad file keeps the keys loaded before.
	write("gw-01 nonsense\n")
	if err := k.Reload(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("Reload of a bad file: %v", err)
	}
	if len(k.Lookup("gw-01")) != 1 {
		t.Fatal("a bad file dropped the keys")
	}
	write("gw-01 " + k1.Hex() + "\ngw-02 " + k2.Hex() + "\n")
	if err := k.Reload(); err != nil {
		t.Fatal(err)
	}
	if g, n := k.Len(); g != 2 || n != 2 {
		t.Fatalf("Len %d, %d", g, n)
	}
	// refresh looks at the file at most once a second, and reloads it
	// only when it changed.
	if reloaded, err := k.refresh(); reloaded || err != nil {
		t.Fatalf("refresh of an unchanged file: %v, %v", reloaded, err)
	}
	write("gw-02 " + k2.Hex() + "\n")
	if reloaded, _ := k.refresh(); reloaded {
		t.Fatal("refresh within a second of the last look")
	}
	now = now.Add(time.Second)
	if reloaded, err := k.refresh(); !reloaded || err != nil || k.Lookup("gw-01") != nil {
		t.Fatalf("refresh of a changed file: %v, %v", reloaded, err)
	}
	if (*Keys)(nil).Lookup("gw-01") != nil {
		t.Fatal("nil Keys has keys")
	}
	if _, err := LoadKeys(filepath.Join(dir, "none")); err == nil {
		t.Fatal("LoadKeys of no file")
	}
}

// TestAuthenticate: what each mode takes, from a gateway with keys and
// from one without, and why it refuses.
func TestAuthenticate(t *testing.T) {
	k1, k2, other := outpost.NewKey(), outpost.NewKey(), outpost.NewKey()
	keys, err := NewKeys(map[string][]outpost.Key{"gw": {k1, k2}, "gw2": {other}})
	if err != nil {
		t.Fatal(err)
	}
	plain := seedBatches(t)[0] // gateway gw
	plainNew := func(gw string) []byte {
		b, err := outpost.DecodeBatch(plain)
		if err != nil {
			t.Fatal(err)
		}
		b.Gateway = gw
		p, err := b.MarshalMsg(nil)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ghost := plainNew("ghost")
	type want struct {
		ok     bool
		key    *outpost.Key
		reason string
	}
	for _, mode := range []AuthMode{AuthOptional, AuthRequired} {
		o := Options{TopicPrefix: "outpost/v1", MaxPayload: 1 << 20, Auth: mode, Keys: keys}
		o.setLimits()
		r := newBatchRules(&o)
		for _, c := range []struct {
			name          string
			topic         string
			payload       []byte
			optional, req want
		}{
			{"signed with its key", "gw", outpost.SignBatch(nil, &k1, "gw", plain), want{ok: true, key: &k1}, want{ok: true, key: &k1}},
			{"signed with its next key", "gw", outpost.SignBatch(nil, &k2, "gw", plain), want{ok: true, key: &k2}, want{ok: true, key: &k2}},
			{"unsigned, from a gateway with a key", "gw", plain,
				want{reason: `auth: unsigned batch from gateway "gw", which has a registered key`}, want{reason: "auth: unsigned batch"}},
			{"signed with another key", "gw", outpost.SignBatch(nil, &other, "gw", plain),
				want{reason: `auth: bad MAC: no registered key of gateway "gw" (` + fingerprints([]outpost.Key{k1, k2}) + ") verifies it"}, want{reason: "auth: bad MAC"}},
			{"replayed under another gateway's topic", "gw2", outpost.SignBatch(nil, &k1, "gw", plain),
				want{reason: `auth: bad MAC: no registered key of gateway "gw2"`}, want{reason: "auth: bad MAC"}},
			{"a gateway's own, replayed by a gateway without a key", "ghost", outpost.SignBatch(nil, &k1, "gw", plain),
				want{reason: "gateway mismatch"}, want{reason: `auth: gateway "ghost" has no registered key`}},
			{"unsigned, from a gateway without a key", "ghost", ghost,
				want{ok: true}, want{reason: `auth: gateway "ghost" has no registered key, and the service requires one`}},
			{"signed, from a gateway without a key", "ghost", outpost.SignBatch(nil, &other, "ghost", ghost),
				want{ok: true}, want{reason: `auth: gateway "ghost" has no registered key`}},
			{"a broken envelope", "gw", outpost.SignBatch(nil, &k1, "gw", plain)[:40],
				want{reason: "auth: invalid signed batch"}, want{reason: "auth: invalid signed batch"}},
		} {
			w := c.optional
			if mode == AuthRequired {
				w = c.req
			}
			b, key, err := r.parseBatch(context.Background(), "outpost/v1/"+c.topic+"/batch", c.payload, fuzzNow)
			var rej *rejectError
			switch {
			case w.ok && (err != nil || b == nil):
				t.Errorf("%s, %s: refused: %v", mode, c.name, err)
			case w.ok && (key == nil) != (w.key == nil), w.ok && key != nil && !key.Equal(*w.key):
				t.Errorf("%s, %s: verified by %v, want %v", mode, c.name, key, w.key)
			case !w.ok && !errors.As(err, &rej):
				t.Errorf("%s, %s: %v, want a refusal", mode, c.name, err)
			case !w.ok && (!strings.Contains(rej.reason, w.reason) || rej.ack != nil):
				t.Errorf("%s, %s: refused for %q (ack %v), want %q and no ack", mode, c.name, rej.reason, rej.ack != nil, w.reason)
			case !w.ok && rej.auth != strings.HasPrefix(w.reason, "auth:"):
				t.Errorf("%s, %s: counted as auth %v", mode, c.name, rej.auth)
			}
		}
	}
}
