package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/postgres"
	"github.com/outposthq/outpost/ingest/storetest"
)

// TestActiveAlertsPlan: over many transitions of few instances, in
// several weekly partitions, the active alerts are found by seeks on
// indexes, never by a scan of alerts: the rows the plan reads from
// alerts are about one per instance and partition, far fewer than the
// transitions. A schema made before alerts_instance gets it when
// opened.
func TestActiveAlertsPlan(t *testing.T) {
	d := dsn(t)
	c := connect(t, d)
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	open(t, d).Close()
	if _, err := c.Exec(ctx, `DROP INDEX alerts_instance`); err != nil {
		t.Fatal(err)
	}
	s := open(t, d)
	defer s.Close()

	const (
		gateways  = 10
		instances = 20
		per       = 60 // transitions per instance, over three weeks
	)
	week := int64(7 * 24 * time.Hour)
	seq := uint64(0)
	for g := range gateways {
		gw := fmt.Sprintf("gw-%02d", g)
		var as []outpost.Alert
		for i := range instances {
			for k := range per {
				st := []outpost.AlertState{outpost.StatePending, outpost.StateFiring, outpost.StateResolved}[(k+i)%3]
				at := storetest.T0 + int64(k)*3*week/per + int64(i)
				as = append(as, outpost.Alert{Rule: "r", Fingerprint: fmt.Sprintf("r{i=%d}", i), State: st, Severity: "warning",
					Value: 1, StartedAt: at, ChangedAt: at, Seq: uint64(k + 1)})
			}
		}
		for len(as) > 0 {
			n := min(len(as), outpost.MaxBatchAlerts)
			seq++
			if _, err := s.Commit(ctx, storetest.AlertBatch(gw, 1, seq, as[:n]...), 100); err != nil {
				t.Fatal(err)
			}
			as = as[n:]
		}
	}
	if _, err := c.Exec(ctx, `ANALYZE alerts`); err != nil {
		t.Fatal(err)
	}
	var parts int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'alerts'::regclass`).Scan(&parts); err != nil {
		t.Fatal(err)
	}
	total := gateways * instances * per
	// An instance i's newest state is (per-1+i)%3: resolved for i%3 == 0.
	wantActive := gateways * (instances - (instances+2)/3)
	if got, err := storetest.Collect(s.ActiveAlerts(ctx, ingest.ActiveAlertQuery{Limit: 1000})); err != nil || len(got) != wantActive {
		t.Fatalf("%d active alerts, %v; want %d", len(got), err, wantActive)
	}
	for _, tc := range []struct {
		gateway string
		seeks   int // instances (each: a seek per partition for its newest transition, and one for the next fingerprint)
	}{{"", gateways * instances}, {"gw-03", instances}} {
		q, args := postgres.ActiveAlertsQuery(ingest.ActiveAlertQuery{Gateway: tc.gateway, Limit: 100})
		rs, err := c.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := pgx.CollectRows(rs, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		p := strings.Join(plan, "\n")
		t.Logf("gateway %q, %d transitions in %d partitions:\n%s", tc.gateway, total, parts, p)
		if strings.Contains(p, "Seq Scan") || strings.Contains(p, "Bitmap Heap Scan") {
			t.Errorf("gateway %q: the plan scans alerts", tc.gateway)
		}
		// The partitions' indexes of alerts_instance are named by their
		// columns.
		if !strings.Contains(p, "_gateway_fingerprint_ts_seq_idx") {
			t.Errorf("gateway %q: the plan does not use alerts_instance", tc.gateway)
		}
		// Every row read from an index of alerts: the actual rows of
		// each index scan, times its loops.
		read := 0
		for _, l := range plan {
			if !strings.Contains(l, "Index") || !strings.Contains(l, " on alerts_") || strings.Contains(l, "(never executed)") {
				continue
			}
			var rows, loops int
			i := strings.Index(l, "(actual rows=")
			if i < 0 {
				t.Fatalf("no actual rows in %q", l)
			}
			var fr float64
			if _, err := fmt.Sscanf(l[i:], "(actual rows=%g loops=%d)", &fr, &loops); err != nil {
				t.Fatalf("%q: %v", l[i:], err)
			}
			rows = int(fr + 0.5)
			read += rows * loops
		}
		t.Logf("gateway %q: read %d index entries of alerts", tc.gateway, read)
		if limit := 4 * tc.seeks * (parts + 2); read > limit || read >= total/4 {
			t.Errorf("gateway %q: the plan read %d rows of %d transitions, want at most %d", tc.gateway, read, total, limit)
		}
	}
}
