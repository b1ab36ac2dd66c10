package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/rows"
	"github.com/outposthq/outpost/ingest/sqlite"
)

// The alerts of every gateway in a window are read through an index on
// ts, not by scanning the table; those of one gateway through (gateway,
// ts). A file made before alerts_ts existed gets it when opened.
func TestAlertsIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	open(t, path).Close()
	w := writeDB(t, path)
	exec(t, w, `DROP INDEX alerts_ts`)
	w.Close()
	s := open(t, path)
	defer s.Close()
	db := readDB(t, path)
	defer db.Close()
	for _, tc := range []struct {
		gateway, index string
	}{{"", "alerts_ts"}, {"gw", "alerts_gateway_ts"}} {
		q, args := rows.AlertsQuery(ingest.AlertQuery{Gateway: tc.gateway, From: 0, To: int64(time.Hour), Limit: 10},
			func(int) string { return "?" })
		plan := queryPlan(t, db, q, args)
		if p := strings.Join(plan, "; "); !strings.Contains(p, "USING INDEX "+tc.index+" ") {
			t.Errorf("gateway %q: plan %q, want index %s", tc.gateway, p, tc.index)
		}
	}
}

// TestActiveAlertsIndex: the active alerts are found by seeks on
// indexes (the gateways on alerts_gateway_ts or alerts_instance, the
// fingerprints and each one's newest transition on alerts_instance),
// never by a scan of alerts, with a gateway and without; a file made
// before alerts_instance gets it when opened.
func TestActiveAlertsIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	open(t, path).Close()
	w := writeDB(t, path)
	exec(t, w, `DROP INDEX alerts_instance`)
	w.Close()
	s := open(t, path)
	defer s.Close()
	db := readDB(t, path)
	defer db.Close()
	for _, gw := range []string{"", "gw"} {
		q, args := sqlite.ActiveAlertsQuery(ingest.ActiveAlertQuery{Gateway: gw, Limit: 10})
		plan := queryPlan(t, db, q, args)
		t.Logf("gateway %q:\n%s", gw, strings.Join(plan, "\n"))
		reads := 0
		for _, l := range plan {
			if !strings.Contains(l, " alerts") {
				continue
			}
			reads++
			if !strings.HasPrefix(l, "SEARCH ") || !strings.Contains(l, " INDEX ") && !strings.Contains(l, "INTEGER PRIMARY KEY") {
				t.Errorf("gateway %q: %q reads alerts without a seek on an index (or by rowid)", gw, l)
			}
		}
		if p := strings.Join(plan, "; "); !strings.Contains(p, "INDEX alerts_instance (gateway=? AND fingerprint=?)") {
			t.Errorf("gateway %q: the newest transition is not a seek on alerts_instance: %q", gw, p)
		}
		if reads == 0 {
			t.Errorf("gateway %q: the plan reads no alerts: %q", gw, plan)
		}
	}
}

// queryPlan is the detail of each step of q's EXPLAIN QUERY PLAN.
func queryPlan(t *testing.T, db *sql.DB, q string, args []any) []string {
	t.Helper()
	rs, err := db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rs.Next() {
		var id, parent, unused int
		var detail string
		if err := rs.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rs.Close(); err != nil {
		t.Fatal(err)
	}
	return plan
}
