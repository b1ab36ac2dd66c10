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
		{"gateway labels", `{"state":"online","labels":{"site":"plant-3","ring":"canary"}}`, "online", time.Time{}, ""},
		{"gateway labels not strings", `{"state":"online","labels":{"site":3}}`, "", time.Time{}, "not a JSON object"},
		{"gateway label with an empty name", `{"state":"online","labels":{"":"x"}}`, "", time.Time{}, "status labels: a label with an empty name"},
		{"long gateway label value", `{"state":"online","labels":{"a":"` + strings.Repeat("v", outpost.MaxLabelValueLen+1) + `"}}`, "", time.Time{}, "status labels: label \"a\": value of 1025 bytes"},
		{"NUL in a gateway label", `{"state":"online","labels":{"a\u0000":"x"}}`, "", time.Time{}, "status labels: label name"},
		{"too many gateway labels", `{"state":"online","labels":{` + manyLabels(outpost.MaxSensorLabels+1) + `}}`, "", time.Time{}, "status labels: 65 labels, more than 64"},
		{"with health", `{"state":"online","ts":"2025-01-02T03:00:00Z","version":"outpost v1.2.3","started_at":"2025-01-02T02:00:00Z",` +
			`"health":{"outbox_batches":1,"outbox_bytes":10,"readings_per_s":0.5,"alerts_firing":0,"alerts_pending":0,"sensors_failing":{}}}`,
			"online", time.Date(2025, 1, 2, 3, 0, 0, 0, time.UTC), ""},
		{"long version", `{"state":"online","version":"` + strings.Repeat("v", outpost.MaxStatusVersionLen+1) + `"}`, "", time.Time{}, "status version of 257 bytes, longer than 256"},
		{"NUL in version", `{"state":"online","version":"v\u0000"}`, "", time.Time{}, "status version contains a NUL byte"},
		{"version not a string", `{"state":"online","version":1}`, "", time.Time{}, "not a JSON object"},
		{"bad started_at", `{"state":"online","started_at":"at dawn"}`, "", time.Time{}, `status started_at "at dawn" is not an RFC 3339 time`},
		{"health not an object", `{"state":"online","health":[]}`, "", time.Time{}, "not a JSON object"},
		{"fractional count", `{"state":"online","health":{"outbox_batches":1.5}}`, "", time.Time{}, "not a JSON object"},
		{"count too large", `{"state":"online","health":{"outbox_bytes":1e30}}`, "", time.Time{}, "not a JSON object"},
		{"rate too large", `{"state":"online","health":{"readings_per_s":1e400}}`, "", time.Time{}, "not a JSON object"},
		{"negative count", `{"state":"online","health":{"alerts_firing":-1,"sensors_failing":{}}}`, "", time.Time{}, "status health: alerts_firing is negative (-1)"},
		{"negative rate", `{"state":"online","health":{"readings_per_s":-0.5}}`, "", time.Time{}, "status health: readings_per_s is -0.5"},
		{"bad oldest", `{"state":"online","health":{"outbox_oldest":"1 min ago"}}`, "", time.Time{}, `status health: outbox_oldest "1 min ago" is not an RFC 3339 time`},
		{"bad failing sensor", `{"state":"online","health":{"sensors_failing":{"../etc":["failing"]}}}`, "", time.Time{}, `status health: sensors_failing: sensor id "../etc" is not a valid name`},
		{"failing without conditions", `{"state":"online","health":{"sensors_failing":{"s":[]}}}`, "", time.Time{}, "sensors_failing: sensor s: no conditions"},
		{"bad condition", `{"state":"online","health":{"sensors_failing":{"s":["on fire"]}}}`, "", time.Time{}, `condition "on fire" is not a valid name`},
		{"condition not a string", `{"state":"online","health":{"sensors_failing":{"s":[1]}}}`, "", time.Time{}, "not a JSON object"},
		{"too many failing sensors", `{"state":"online","health":{"sensors_failing":{` + manyFailing(outpost.MaxStatusSensors+1) + `}}}`, "", time.Time{}, "sensors_failing: 4097 sensors, more than 4096"},
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

// manyFailing is n failing sensors as the members of a JSON object.
func manyFailing(n int) string {
	ms := make([]string, n)
	for i := range ms {
		ms[i] = fmt.Sprintf(`"s%d":["bad"]`, i)
	}
	return strings.Join(ms, ",")
}

// A status's version, start time and health are read as it says them,
// and a status from a gateway of an earlier release, or a last will,
// without them.
func TestParseStatusHealth(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 1, 0, time.UTC)
	// What a gateway publishes (uplink.TestStatusDocument).
	const current = `{"state":"online","gateway":"gw-1","ts":"2026-12-06T10:00:00.123Z",` +
		`"version":"outpost v1.2.3 go1.26.8 linux/arm","started_at":"2026-12-06T09:00:00Z",` +
		`"sensors":{"bme-1":{"labels":{"room":"lab"}}},` +
		`"health":{"outbox_batches":12,"outbox_bytes":34567,"outbox_oldest":"2026-12-06T09:55:00Z","readings_per_s":6,` +
		`"alerts_firing":1,"alerts_pending":0,"sensors_failing":{"bme-1":["failing"]}}}`
	st, err := parseStatus("p", "p/gw-1/status", []byte(current), now, DefaultMaxFutureSkew)
	if err != nil {
		t.Fatal(err)
	}
	want := &outpost.StatusHealth{OutboxBatches: 12, OutboxBytes: 34567, OutboxOldest: "2026-12-06T09:55:00Z", ReadingsPerS: 6,
		AlertsFiring: 1, SensorsFailing: map[string][]string{"bme-1": {"failing"}}}
	switch {
	case st.version != "outpost v1.2.3 go1.26.8 linux/arm":
		t.Errorf("version %q", st.version)
	case !st.startedAt.Equal(time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)):
		t.Errorf("started at %v", st.startedAt)
	case !reflect.DeepEqual(st.health, want):
		t.Errorf("health %+v, want %+v", st.health, want)
	case st.state != "online" || st.labels["bme-1"]["room"] != "lab":
		t.Errorf("status %+v", st)
	}
	for _, old := range []string{
		`{"state":"online","gateway":"gw-1","ts":"2026-12-06T10:00:00Z","sensors":{"bme-1":{"labels":{}}}}`, // earlier release
		`{"state":"offline","gateway":"gw-1"}`, // last will
		`{"state":"online","health":null,"version":"","started_at":""}`,
	} {
		st, err := parseStatus("p", "p/gw-1/status", []byte(old), now, DefaultMaxFutureSkew)
		if err != nil {
			t.Fatalf("%s: %v", old, err)
		}
		if st.health != nil || st.version != "" || !st.startedAt.IsZero() {
			t.Errorf("%s: read %+v", old, st)
		}
	}
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
