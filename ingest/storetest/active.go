package storetest

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// activeOf is what ActiveAlerts must answer for the transitions all:
// each instance's newest (by ts, then seq as the int64 the stores keep),
// when active, by gateway, started_at and fingerprint.
func activeOf(all []ingest.AlertRow, gateway string) []ingest.AlertRow {
	type inst struct{ gateway, fingerprint string }
	newest := map[inst]ingest.AlertRow{}
	for _, a := range all {
		k := inst{a.Gateway, a.Fingerprint}
		n, ok := newest[k]
		if !ok || a.TS > n.TS || a.TS == n.TS && int64(a.Seq) > int64(n.Seq) {
			newest[k] = a
		}
	}
	var out []ingest.AlertRow
	for _, a := range newest {
		if ingest.ActiveState(a.State) && (gateway == "" || a.Gateway == gateway) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b ingest.AlertRow) int {
		return cmp.Or(cmp.Compare(a.Gateway, b.Gateway), cmp.Compare(a.StartedAt, b.StartedAt), cmp.Compare(a.Fingerprint, b.Fingerprint))
	})
	return out
}

// sameAlerts fails t unless got and want hold the same transitions, in
// the same order.
func sameAlerts(t *testing.T, what string, got, want []ingest.AlertRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d alerts, want %d:\n got %+v\nwant %+v", what, len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		sameValue := g.Value == w.Value || math.IsNaN(g.Value) && math.IsNaN(w.Value)
		if g.Gateway != w.Gateway || g.Rule != w.Rule || g.Fingerprint != w.Fingerprint || g.State != w.State ||
			g.Severity != w.Severity || !sameValue || g.Message != w.Message || g.StartedAt != w.StartedAt ||
			g.TS != w.TS || g.Seq != w.Seq || !maps.Equal(g.Labels, w.Labels) || !maps.Equal(g.Annotations, w.Annotations) {
			t.Fatalf("%s: alert %d = %+v, want %+v", what, i, g, w)
		}
	}
}

// testActiveAlerts: ActiveAlerts answers each instance's newest
// transition (by ts, then seq, whatever the order of the commits) when
// it is pending, firing or nodata, by gateway, started_at and
// fingerprint; instances are per gateway; the gateway filter and the
// limit hold; a limit below 1 is refused.
func testActiveAlerts(t *testing.T, s ingest.Store) {
	if got, err := Collect(s.ActiveAlerts(ctx(t), ingest.ActiveAlertQuery{Limit: 10})); err != nil || len(got) != 0 {
		t.Fatalf("no alerts stored: %+v, %v", got, err)
	}
	minute := int64(time.Minute)
	type tr struct {
		gw, fp  string
		st      outpost.AlertState
		at      int64 // minutes after T0
		started int64 // minutes after T0
		seq     uint64
	}
	trs := []tr{
		{"gw-a", "hot{room=a}", outpost.StatePending, 1, 1, 1},
		{"gw-a", "hot{room=a}", outpost.StateFiring, 2, 1, 2},
		{"gw-a", "cold{room=b}", outpost.StateFiring, 0, 0, 3},
		{"gw-a", "cold{room=b}", outpost.StateResolved, 3, 0, 4},
		{"gw-a", "stale{}", outpost.StateNoData, 4, -60, 5},
		{"gw-a", "sensor_health/dev1", outpost.StateFiring, 5, 5, 0},
		{"gw-a", "sensor_health/dev1", outpost.StateInactive, 6, 5, 0},
		// Committed newest first: the older transition, committed
		// later, does not win.
		{"gw-a", "late{}", outpost.StateFiring, 10, 10, 11},
		{"gw-a", "late{}", outpost.StateResolved, 9, 8, 10},
		// Two transitions at one ts: the greater seq is the newer.
		{"gw-a", "tie{}", outpost.StateResolved, 7, 7, 8},
		{"gw-a", "tie{}", outpost.StateFiring, 7, 7, 7},
		{"gw-a", "tie2{}", outpost.StateResolved, 7, 1, 9},
		{"gw-a", "tie2{}", outpost.StateFiring, 7, 1, 12}, // started with hot{room=a}: fingerprint decides
		{"gw-b", "hot{room=a}", outpost.StateFiring, 3, 2, 1},
		{"gw-b", "x{}", outpost.StatePending, 1, 1, 2},
		{"gw-b", "x{}", outpost.StateResolved, 2, 1, 3},
		{"gw-c", "y{}", outpost.StateResolved, 2, 1, 1},
	}
	// A flapping instance: many transitions, the newest pending.
	for i := range 20 {
		st := []outpost.AlertState{outpost.StateFiring, outpost.StateResolved}[i%2]
		trs = append(trs, tr{"gw-a", "flap{}", st, int64(11 + i), int64(11 + i - i%2), uint64(100 + i)})
	}
	trs = append(trs, tr{"gw-a", "flap{}", outpost.StatePending, 40, 40, 200})

	var all []ingest.AlertRow
	for i, x := range trs {
		rule, _, _ := strings.Cut(x.fp, "{")
		rule, _, _ = strings.Cut(rule, "/")
		a := outpost.Alert{Rule: rule, Fingerprint: x.fp, State: x.st, Severity: "warning",
			Value: float64(i), Labels: map[string]string{"n": fmt.Sprint(i)}, Message: fmt.Sprintf("transition %d", i),
			StartedAt: T0 + x.started*minute, ChangedAt: T0 + x.at*minute, Seq: x.seq, Annotations: map[string]string{"summary": x.fp}}
		if x.fp == "stale{}" {
			a.Value, a.Labels, a.Annotations = math.NaN(), nil, nil
		}
		commit(t, s, AlertBatch(x.gw, 5, uint64(i+1), a), false)
		all = append(all, ingest.AlertRow{Gateway: x.gw, Rule: a.Rule, Fingerprint: a.Fingerprint, State: a.State,
			Severity: a.Severity, Value: a.Value, Labels: a.Labels, Annotations: a.Annotations, Message: a.Message,
			StartedAt: a.StartedAt, TS: a.ChangedAt, Seq: a.Seq})
	}
	active := func(q ingest.ActiveAlertQuery) []ingest.AlertRow {
		t.Helper()
		got, err := Collect(s.ActiveAlerts(ctx(t), q))
		if err != nil {
			t.Fatalf("active alerts %+v: %v", q, err)
		}
		return got
	}
	want := activeOf(all, "")
	var names []string
	for _, a := range want {
		names = append(names, a.Gateway+"/"+a.Fingerprint+"/"+a.State.String())
	}
	// The model itself, spelt out.
	const order = "[gw-a/stale{}/nodata gw-a/hot{room=a}/firing gw-a/tie2{}/firing gw-a/late{}/firing gw-a/flap{}/pending gw-b/hot{room=a}/firing]"
	if fmt.Sprint(names) != order {
		t.Fatalf("the suite's model answers %v, want %s", names, order)
	}
	sameAlerts(t, "all", active(ingest.ActiveAlertQuery{Limit: 100}), want)
	sameAlerts(t, "gw-a", active(ingest.ActiveAlertQuery{Gateway: "gw-a", Limit: 100}), activeOf(all, "gw-a"))
	sameAlerts(t, "gw-b", active(ingest.ActiveAlertQuery{Gateway: "gw-b", Limit: 100}), activeOf(all, "gw-b"))
	sameAlerts(t, "gw-c (none active)", active(ingest.ActiveAlertQuery{Gateway: "gw-c", Limit: 100}), nil)
	sameAlerts(t, "unknown gateway", active(ingest.ActiveAlertQuery{Gateway: "gw-z", Limit: 100}), nil)
	sameAlerts(t, "limit", active(ingest.ActiveAlertQuery{Limit: 3}), want[:3])
	sameAlerts(t, "limit of one gateway", active(ingest.ActiveAlertQuery{Gateway: "gw-a", Limit: 1}), want[:1])

	// An instance that resolves leaves; one that comes back is active
	// again, from its new start.
	commit(t, s, AlertBatch("gw-b", 5, 1000, outpost.Alert{Rule: "hot", Fingerprint: "hot{room=a}", State: outpost.StateResolved,
		StartedAt: T0 + 2*minute, ChangedAt: T0 + 50*minute, Seq: 50}), false)
	commit(t, s, AlertBatch("gw-c", 5, 1001, outpost.Alert{Rule: "y", Fingerprint: "y{}", State: outpost.StatePending,
		StartedAt: T0 + 51*minute, ChangedAt: T0 + 51*minute, Seq: 2}), false)
	got := active(ingest.ActiveAlertQuery{Limit: 100})
	names = names[:0]
	for _, a := range got {
		names = append(names, a.Gateway+"/"+a.Fingerprint+"/"+a.State.String())
	}
	const after = "[gw-a/stale{}/nodata gw-a/hot{room=a}/firing gw-a/tie2{}/firing gw-a/late{}/firing gw-a/flap{}/pending gw-c/y{}/pending]"
	if fmt.Sprint(names) != after {
		t.Fatalf("after a resolution and a new pending: %v, want %s", names, after)
	}

	for _, q := range []ingest.ActiveAlertQuery{{}, {Gateway: "gw-a"}, {Limit: -1}} {
		n, errs := 0, 0
		for _, err := range s.ActiveAlerts(ctx(t), q) {
			n++
			if err != nil {
				errs++
			}
		}
		if n != 1 || errs != 1 {
			t.Errorf("active alerts %+v: %d pairs, %d errors; want one error alone", q, n, errs)
		}
	}
}

// testStatusRecorder: a store that says what SetGatewayStatus did
// (ingest.StatusRecorder) returns the row as Gateways then yields it,
// and nothing for an older status, which it does not record.
func testStatusRecorder(t *testing.T, s ingest.Store) {
	sr, ok := s.(ingest.StatusRecorder)
	if !ok {
		t.Skipf("%T is not an ingest.StatusRecorder", s)
	}
	at := time.Unix(0, T0).UTC()
	record := func(gw, state string, at time.Time, payload string) (ingest.GatewayStatus, bool) {
		t.Helper()
		st, ok, err := sr.RecordGatewayStatus(ctx(t), gw, state, at, []byte(payload), nil)
		if err != nil {
			t.Fatalf("record status: %v", err)
		}
		return st, ok
	}
	stored := func(gw string) ingest.GatewayStatus {
		t.Helper()
		gws, err := Collect(s.Gateways(ctx(t)))
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gws {
			if g.Gateway == gw {
				return g
			}
		}
		t.Fatalf("no status of %s in %+v", gw, gws)
		return ingest.GatewayStatus{}
	}
	same := func(what string, got, want ingest.GatewayStatus) {
		t.Helper()
		if got.Gateway != want.Gateway || got.State != want.State || !got.UpdatedAt.Equal(want.UpdatedAt) || string(got.Payload) != string(want.Payload) {
			t.Fatalf("%s: recorded %+v (payload %s), Gateways yields %+v (payload %s)", what, got, got.Payload, want, want.Payload)
		}
	}
	// Spaces and key order that jsonb would not keep: what comes back is
	// the stored text, whatever it is.
	st, ok := record("gw", "online", at, `{"state": "online",  "b": 1, "a": 2}`)
	if !ok {
		t.Fatal("the first status was not recorded")
	}
	same("first", st, stored("gw"))
	if st, ok := record("gw", "offline", at.Add(-time.Second), `{"state":"offline"}`); ok {
		t.Fatalf("an older status was recorded: %+v", st)
	}
	if g := stored("gw"); g.State != "online" {
		t.Fatalf("an older status replaced the stored one: %+v", g)
	}
	st, ok = record("gw", "online", at, `{"state":"online","again":true}`) // the same time: recorded again
	if !ok {
		t.Fatal("a status of the stored time was not recorded")
	}
	same("same time", st, stored("gw"))
	st, ok = record("gw", "offline", time.Time{}, `{"state":"offline"}`) // the will: 1 ns after
	if !ok || !st.UpdatedAt.Equal(at.Add(1)) {
		t.Fatalf("the will: %+v, %v; want it recorded at %v", st, ok, at.Add(1))
	}
	same("will", st, stored("gw"))
}
