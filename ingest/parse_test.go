package ingest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSplitTopic(t *testing.T) {
	for _, tc := range []struct {
		topic, gw, kind string
		ok              bool
	}{
		{"outpost/v1/gw1/batch", "gw1", "batch", true},
		{"outpost/v1/gw1/status", "gw1", "status", true},
		{"outpost/v1//batch", "", "", false},
		{"outpost/v1/gw1", "", "", false},
		{"outpost/v1/gw1/live/s/m", "", "", false},
		{"outpost/v2/gw1/batch", "", "", false},
		{"outpost/v1x/gw1/batch", "", "", false},
	} {
		gw, kind, ok := splitTopic("outpost/v1", tc.topic)
		if gw != tc.gw || kind != tc.kind || ok != tc.ok {
			t.Errorf("splitTopic(%q) = %q, %q, %v; want %q, %q, %v", tc.topic, gw, kind, ok, tc.gw, tc.kind, tc.ok)
		}
	}
}

func TestParseStatus(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name, payload, state string
		at                   time.Time
		err                  string // "" ok, "skip", or a reason fragment
	}{
		{"online", `{"state":"online","ts":"2024-06-01T12:00:00.5Z","uptime":3}`, "online", time.Date(2024, 6, 1, 12, 0, 0, 5e8, time.UTC), ""},
		{"no ts", `{"state":"offline"}`, "offline", now, ""},
		{"bad ts", `{"state":"offline","ts":"soon"}`, "offline", now, ""},
		{"ts before 1970", `{"state":"offline","ts":"1969-01-01T00:00:00Z"}`, "offline", now, ""},
		{"ts far ahead", `{"state":"online","ts":"9999-01-01T00:00:00Z"}`, "", time.Time{}, "from the future"},
		{"ts in 2261", `{"state":"online","ts":"2261-01-01T00:00:00Z"}`, "", time.Time{}, "from the future"},
		{"ts 11 minutes ahead", `{"state":"online","ts":"2025-01-02T03:15:05Z"}`, "", time.Time{}, "max skew 10m0s"},
		{"ts 9 minutes ahead", `{"state":"online","ts":"2025-01-02T03:13:05Z"}`, "online", now.Add(9 * time.Minute), ""},
		{"cleared", ``, "", time.Time{}, "skip"},
		{"not json", `online`, "", time.Time{}, "not a JSON object"},
		{"array", `["online"]`, "", time.Time{}, "not a JSON object"},
		{"no state", `{"ts":"2025-06-01T12:00:00Z"}`, "", time.Time{}, "no state"},
		{"nul state", `{"state":"on\u0000line"}`, "", time.Time{}, "NUL"},
		{"bad utf8", "{\"state\":\"\xff\"}", "", time.Time{}, "UTF-8"},
		{"huge", `{"state":"x","pad":"` + strings.Repeat("a", maxStatusPayload) + `"}`, "", time.Time{}, "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw, state, at, err := parseStatus("p", "p/gw/status", []byte(tc.payload), now, DefaultMaxFutureSkew)
			switch {
			case tc.err == "skip":
				if !errors.Is(err, errSkip) {
					t.Fatalf("err = %v, want errSkip", err)
				}
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one about %q", err, tc.err)
				}
			case err != nil:
				t.Fatal(err)
			case gw != "gw" || state != tc.state || !at.Equal(tc.at):
				t.Fatalf("got %q %q %v, want gw %q %v", gw, state, at, tc.state, tc.at)
			}
		})
	}
}

func TestParseBatchTopic(t *testing.T) {
	p := seedBatches(t)[0]
	ctx := context.Background()
	if _, _, err := testRules(1<<20).parseBatch(ctx, "outpost/v1/gw/status", p, fuzzNow); err == nil || !strings.Contains(err.Error(), "unexpected topic") {
		t.Fatalf("batch on a status topic: %v", err)
	}
	if _, _, err := testRules(1<<20).parseBatch(ctx, "outpost/v1/gw/batch", p, fuzzNow); err != nil {
		t.Fatalf("valid batch: %v", err)
	}
	if _, _, err := testRules(len(p)-1).parseBatch(ctx, "outpost/v1/gw/batch", p, fuzzNow); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversize: %v", err)
	}
}

func TestDeadLetterReason(t *testing.T) {
	if got := deadLetterReason("a\x00b\xffc"); got != "a\\x00b\uFFFDc" {
		t.Fatalf("got %q", got)
	}
}
