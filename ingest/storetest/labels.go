package storetest

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// seriesLabels reads every series' labels back with SQL, by
// gateway/sensor/metric.
func seriesLabels(t *testing.T, s ingest.Store) map[string]map[string]string {
	t.Helper()
	q, ok := s.(Querier)
	if !ok {
		t.Fatal("the store is not a Querier")
	}
	rows, err := q.QueryStrings(ctx(t), `SELECT gateway || '/' || sensor || '/' || metric || ' ' || CAST(labels AS TEXT) FROM series`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, r := range rows {
		key, text, _ := strings.Cut(r, " ")
		var ls map[string]string
		if err := json.Unmarshal([]byte(text), &ls); err != nil {
			t.Fatalf("series %s: labels %q: %v", key, text, err)
		}
		out[key] = ls
	}
	return out
}

// setStatus records a status of gw at T0 + sec seconds with labels.
func setStatus(t *testing.T, s ingest.Store, gw string, sec int64, labels ingest.SensorLabels) {
	t.Helper()
	at := time.Unix(0, T0+sec*int64(time.Second)).UTC()
	p := fmt.Sprintf(`{"state":"online","ts":%q}`, at.Format(time.RFC3339Nano))
	if err := s.SetGatewayStatus(ctx(t), gw, "online", at, []byte(p), labels); err != nil {
		t.Fatalf("set status at %d s: %v", sec, err)
	}
}

// testSensorLabels: a status's sensor labels label every series of its
// gateway's sensors, those made after it too; a newer status replaces
// them (a sensor it leaves out has none), an older one changes nothing,
// and one without labels leaves them as they are.
func testSensorLabels(t *testing.T, s ingest.Store) {
	seq := uint64(0)
	add := func(gw string, series ...string) {
		t.Helper()
		var rs []outpost.Reading
		for _, sm := range series {
			sensor, metric, _ := strings.Cut(sm, "/")
			rs = append(rs, Series(sensor, metric, T0, time.Second, 2, 0)...)
		}
		seq++
		commit(t, s, Telemetry(gw, 1, seq, rs...), false)
	}
	lab := map[string]string{"room": "lab", "site": "hq"}
	store := map[string]string{"room": "store"}
	none := map[string]string{}
	check := func(what string, want map[string]map[string]string) {
		t.Helper()
		got := seriesLabels(t, s)
		if len(got) != len(want) {
			t.Fatalf("%s: %d series, want %d: %v", what, len(got), len(want), got)
		}
		for k, w := range want {
			if g, ok := got[k]; !ok || !maps.Equal(g, w) {
				t.Fatalf("%s: series %s has labels %v, want %v", what, k, g, w)
			}
		}
	}

	add("gw", "s1/t", "s1/h", "s2/t")
	add("gw2", "s1/t")
	want := map[string]map[string]string{"gw/s1/t": none, "gw/s1/h": none, "gw/s2/t": none, "gw2/s1/t": none}
	check("before any status", want)

	setStatus(t, s, "gw", 10, ingest.SensorLabels{"s1": lab, "s9": store})
	want["gw/s1/t"], want["gw/s1/h"] = lab, lab
	check("after a status", want)

	add("gw", "s1/co2", "s3/t", "s9/t")
	want["gw/s1/co2"], want["gw/s3/t"], want["gw/s9/t"] = lab, none, store
	check("series made after the status", want)

	setStatus(t, s, "gw", 5, ingest.SensorLabels{"s2": store})
	add("gw", "s2/h")
	want["gw/s2/h"] = none
	check("after an older status", want)

	setStatus(t, s, "gw", 20, ingest.SensorLabels{"s2": store, "s3": {}})
	want["gw/s1/t"], want["gw/s1/h"], want["gw/s1/co2"], want["gw/s9/t"] = none, none, none, none
	want["gw/s2/t"], want["gw/s2/h"] = store, store
	check("after a newer status", want)

	setStatus(t, s, "gw", 30, nil)
	add("gw", "s2/co2", "s1/x")
	want["gw/s2/co2"], want["gw/s1/x"] = store, none
	check("after a status without labels", want)

	setStatus(t, s, "gw", 40, ingest.SensorLabels{})
	for k := range want {
		want[k] = none
	}
	check("after a status of no labels", want)

	gws, err := Collect(s.Gateways(ctx(t)))
	if err != nil || len(gws) != 1 || !gws[0].UpdatedAt.Equal(time.Unix(0, T0+40*int64(time.Second))) {
		t.Fatalf("gateways = %+v, %v; want gw's status of 40 s", gws, err)
	}
}

// testSensorLabelsConcurrent: statuses that relabel a sensor while
// commits make its series, all at once: every series ends with the
// labels of the newest status, whichever came first.
func testSensorLabelsConcurrent(t *testing.T, s ingest.Store) {
	const series, statuses = 120, 40
	var wg sync.WaitGroup
	errs := make(chan error, series+statuses)
	wg.Go(func() {
		for i := range series {
			b := Telemetry("gw", 1, uint64(i+1), Series("s", fmt.Sprint("m", i), T0, time.Second, 1, 0)...)
			if _, err := s.Commit(ctx(t), b, 1); err != nil {
				errs <- fmt.Errorf("commit %d: %w", i, err)
			}
		}
	})
	wg.Go(func() {
		for i := range statuses {
			at := time.Unix(0, T0+int64(i)*int64(time.Second))
			if err := s.SetGatewayStatus(ctx(t), "gw", "online", at, []byte(`{"state":"online"}`),
				ingest.SensorLabels{"s": {"v": fmt.Sprint(i)}}); err != nil {
				errs <- fmt.Errorf("status %d: %w", i, err)
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := seriesLabels(t, s)
	if len(got) != series {
		t.Fatalf("%d series, want %d", len(got), series)
	}
	for k, ls := range got {
		if want := fmt.Sprint(statuses - 1); len(ls) != 1 || ls["v"] != want {
			t.Fatalf("series %s has labels %v, want v=%s", k, ls, want)
		}
	}
}
