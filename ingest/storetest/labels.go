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

// testSeries: Series lists the series that hold readings, in key order,
// with their unit, labels and first and newest times; filtered by
// gateway, sensor, metric and labels (all must match), and walked a page
// at a time from each page's last key, every series once.
func testSeries(t *testing.T, s ingest.Store) {
	sec := int64(time.Second)
	unit := func(u string, rs []outpost.Reading) []outpost.Reading {
		for i := range rs {
			rs[i].Unit = u
		}
		return rs
	}
	var rs []outpost.Reading
	rs = append(rs, Series("s1", "t", T0, time.Second, 3, 20)...)
	rs = append(rs, unit("%RH", Series("s1", "h", T0, time.Second, 2, 40))...)
	rs = append(rs, unit("", Series("s2", "t", T0+10*sec, time.Second, 1, 5))...)
	first := Telemetry("gw-a", 1, 1, rs...)
	commit(t, s, first, false)
	commit(t, s, Telemetry("gw-a", 1, 2, Series("s1", "t", T0-100*sec, time.Second, 1, 19)...), false) // older: first_ts moves back
	rs = append(Series("s1", "t", T0+sec, time.Second, 1, 1), unit("ppm", Series("s3", "co2", T0, time.Second, 5, 400))...)
	commit(t, s, Telemetry("gw-b", 1, 1, rs...), false)
	// A duplicate of a stored batch, holding a series of its own: if the
	// store makes its row, the series has no reading and is not listed.
	ghost := Telemetry("gw-a", 1, 1, Series("ghost", "t", T0, time.Second, 1, 0)...)
	ghost.Created = first.Created
	commit(t, s, ghost, true)
	setStatus(t, s, "gw-a", 0, ingest.SensorLabels{"s1": {"room": "lab", "site": "hq"}, "s2": {"room": "store", "site": "hq"}})
	setStatus(t, s, "gw-b", 0, ingest.SensorLabels{"s1": {"room": "lab"}})

	lab, hq := map[string]string{"room": "lab", "site": "hq"}, map[string]string{"room": "store", "site": "hq"}
	all := []ingest.SeriesInfo{
		{Gateway: "gw-a", Sensor: "s1", Metric: "h", Unit: "%RH", Labels: lab, FirstTS: T0, LastTS: T0 + sec},
		{Gateway: "gw-a", Sensor: "s1", Metric: "t", Unit: "Cel", Labels: lab, FirstTS: T0 - 100*sec, LastTS: T0 + 2*sec},
		{Gateway: "gw-a", Sensor: "s2", Metric: "t", Unit: "", Labels: hq, FirstTS: T0 + 10*sec, LastTS: T0 + 10*sec},
		{Gateway: "gw-b", Sensor: "s1", Metric: "t", Unit: "Cel", Labels: map[string]string{"room": "lab"}, FirstTS: T0 + sec, LastTS: T0 + sec},
		{Gateway: "gw-b", Sensor: "s3", Metric: "co2", Unit: "ppm", Labels: map[string]string{}, FirstTS: T0, LastTS: T0 + 4*sec},
	}
	pick := func(is ...int) []ingest.SeriesInfo {
		out := []ingest.SeriesInfo{}
		for _, i := range is {
			out = append(out, all[i])
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    ingest.SeriesQuery
		want []ingest.SeriesInfo
	}{
		{"all", ingest.SeriesQuery{}, all},
		{"gateway", ingest.SeriesQuery{Gateway: "gw-b"}, pick(3, 4)},
		{"sensor", ingest.SeriesQuery{Sensor: "s1"}, pick(0, 1, 3)},
		{"metric", ingest.SeriesQuery{Metric: "t"}, pick(1, 2, 3)},
		{"gateway, sensor and metric", ingest.SeriesQuery{Gateway: "gw-a", Sensor: "s1", Metric: "t"}, pick(1)},
		{"a label", ingest.SeriesQuery{Labels: map[string]string{"room": "lab"}}, pick(0, 1, 3)},
		{"two labels", ingest.SeriesQuery{Labels: map[string]string{"room": "lab", "site": "hq"}}, pick(0, 1)},
		{"another value", ingest.SeriesQuery{Labels: map[string]string{"site": "hq", "room": "store"}}, pick(2)},
		{"a label and a gateway", ingest.SeriesQuery{Gateway: "gw-b", Labels: map[string]string{"room": "lab"}}, pick(3)},
		{"no such label", ingest.SeriesQuery{Labels: map[string]string{"room": "attic"}}, pick()},
		{"an empty value", ingest.SeriesQuery{Labels: map[string]string{"room": ""}}, pick()},
		{"unknown gateway", ingest.SeriesQuery{Gateway: "gw-z"}, pick()},
		{"after", ingest.SeriesQuery{After: all[1].Key()}, pick(2, 3, 4)},
		{"after, in a gateway", ingest.SeriesQuery{Gateway: "gw-a", After: all[0].Key()}, pick(1, 2)},
		{"after another gateway", ingest.SeriesQuery{Gateway: "gw-a", After: all[3].Key()}, pick()},
		{"limit", ingest.SeriesQuery{Limit: 2}, pick(0, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.q.Limit == 0 {
				tc.q.Limit = 100
			}
			got, err := Collect(s.Series(ctx(t), tc.q))
			if err != nil {
				t.Fatal(err)
			}
			equalSeries(t, "series", got, tc.want)
		})
	}
	for _, q := range []ingest.SeriesQuery{{}, {Labels: map[string]string{"site": "hq"}}, {Gateway: "gw-a"}, {Metric: "t"}} {
		want, err := Collect(s.Series(ctx(t), ingest.SeriesQuery{Gateway: q.Gateway, Metric: q.Metric, Labels: q.Labels, Limit: 100}))
		if err != nil {
			t.Fatal(err)
		}
		for page := 1; page <= len(want)+1; page++ {
			var got []ingest.SeriesInfo
			q.Limit, q.After = page, ingest.SeriesKey{}
			for range len(want) + 2 {
				pg, err := Collect(s.Series(ctx(t), q))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, pg...)
				if len(pg) < page {
					break
				}
				q.After = pg[len(pg)-1].Key()
			}
			equalSeries(t, fmt.Sprintf("%+v walked %d at a time", q, page), got, want)
		}
	}
}

func equalSeries(t *testing.T, what string, got, want []ingest.SeriesInfo) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s = %+v, want %+v", what, got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Key() != w.Key() || g.Unit != w.Unit || g.FirstTS != w.FirstTS || g.LastTS != w.LastTS || g.Labels == nil || !maps.Equal(g.Labels, w.Labels) {
			t.Fatalf("%s[%d] = %+v, want %+v", what, i, g, w)
		}
	}
}
