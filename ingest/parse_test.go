package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
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
		{"no ts (a last will): undated", `{"state":"offline"}`, "offline", time.Time{}, ""},
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
		{"sensors not an object", `{"state":"online","sensors":[]}`, "", time.Time{}, "not a JSON object"},
		{"labels not strings", `{"state":"online","sensors":{"s":{"labels":{"a":1}}}}`, "", time.Time{}, "not a JSON object"},
		{"bad sensor id", `{"state":"online","sensors":{"a/b":{"labels":{}}}}`, "", time.Time{}, `status sensors: sensor id "a/b" is not a valid name`},
		{"empty label name", `{"state":"online","sensors":{"s":{"labels":{"":"x"}}}}`, "", time.Time{}, "sensor s: a label with an empty name"},
		{"long label name", `{"state":"online","sensors":{"s":{"labels":{"` + strings.Repeat("n", outpost.MaxLabelNameLen+1) + `":"x"}}}}`, "", time.Time{}, "longer than 128"},
		{"long label value", `{"state":"online","sensors":{"s":{"labels":{"a":"` + strings.Repeat("v", outpost.MaxLabelValueLen+1) + `"}}}}`, "", time.Time{}, "longer than 1024"},
		{"NUL in a label", `{"state":"online","sensors":{"s":{"labels":{"a":"x\u0000"}}}}`, "", time.Time{}, "NUL"},
		{"too many labels", `{"state":"online","sensors":{"s":{"labels":{` + manyLabels(outpost.MaxSensorLabels+1) + `}}}}`, "", time.Time{}, "65 labels, more than 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseStatus("p", "p/gw/status", []byte(tc.payload), now, DefaultMaxFutureSkew)
			gw, state, at := st.gateway, st.state, st.at
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

// manyLabels is n labels as the members of a JSON object.
func manyLabels(n int) string {
	ms := make([]string, n)
	for i := range ms {
		ms[i] = fmt.Sprintf(`"l%d":"v"`, i)
	}
	return strings.Join(ms, ",")
}

// A status's sensors become its labels: nil without the field, a
// sensor without labels left out, at the bounds accepted.
func TestParseStatusLabels(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	long := map[string]string{strings.Repeat("n", outpost.MaxLabelNameLen): strings.Repeat("v", outpost.MaxLabelValueLen)}
	longJSON, err := json.Marshal(long)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, payload string
		want          SensorLabels
	}{
		{"no sensors", `{"state":"online"}`, nil},
		{"null sensors", `{"state":"online","sensors":null}`, nil},
		{"no sensor", `{"state":"online","sensors":{}}`, SensorLabels{}},
		{"some", `{"state":"online","sensors":{"a":{"labels":{"room":"lab","floor":"2"}},"b":{"labels":{}},"c":{},"d":null}}`,
			SensorLabels{"a": {"room": "lab", "floor": "2"}}},
		{"at the bounds", `{"state":"online","sensors":{"a":{"labels":` + string(longJSON) + `}}}`, SensorLabels{"a": long}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseStatus("p", "p/gw/status", []byte(tc.payload), now, DefaultMaxFutureSkew)
			if err != nil {
				t.Fatal(err)
			}
			if (st.labels == nil) != (tc.want == nil) || !reflect.DeepEqual(map[string]map[string]string(st.labels), map[string]map[string]string(tc.want)) {
				t.Fatalf("labels = %#v, want %#v", st.labels, tc.want)
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
