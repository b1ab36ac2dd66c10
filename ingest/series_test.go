package ingest_test

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/storetest"
)

func TestSeriesJSON(t *testing.T) {
	si := ingest.SeriesInfo{Gateway: "gw", Sensor: "s", Metric: "m", Unit: "Cel", FirstTS: storetest.T0, LastTS: storetest.T0 + 5e8}
	b, err := json.Marshal(si)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"gateway":"gw","sensor":"s","metric":"m","unit":"Cel","labels":{},` +
		`"first_ts":"2025-06-01T12:00:00Z","first_ts_ns":1748779200000000000,"last_ts":"2025-06-01T12:00:00.5Z","last_ts_ns":1748779200500000000}`
	if string(b) != want {
		t.Fatalf("json = %s, want %s", b, want)
	}
	si.Labels = map[string]string{"room": "lab"}
	b, err = json.Marshal(si)
	if err != nil {
		t.Fatal(err)
	}
	var back ingest.SeriesInfo
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Key() != si.Key() || back.Unit != si.Unit || back.FirstTS != si.FirstTS || back.LastTS != si.LastTS || !maps.Equal(back.Labels, si.Labels) {
		t.Fatalf("round trip = %+v, want %+v", back, si)
	}
	bad := strings.Replace(want, `"last_ts_ns":1748779200500000000`, `"last_ts_ns":1`, 1)
	if err := json.Unmarshal([]byte(bad), &back); err == nil || !strings.Contains(err.Error(), "last_ts") {
		t.Fatalf("times that disagree: %v", err)
	}
}
