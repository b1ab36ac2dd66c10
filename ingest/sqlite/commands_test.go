package sqlite_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

// TestCommandsIndexes: a file made before the commands table gets it,
// with its indexes, when opened; each query of the table seeks on its
// index, in the index's order (no sort), and the updates and the
// retention's delete find their rows on an index too.
func TestCommandsIndexes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	open(t, path).Close()
	w := writeDB(t, path)
	exec(t, w, `DROP TABLE commands`)
	w.Close()
	s := open(t, path)
	defer s.Close()
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	c := &ingest.Command{ID: "c1", Gateway: "gw", Name: "ping", CreatedAt: at, ExpiresAt: at.Add(time.Hour), State: ingest.CommandQueued}
	if err := s.AddCommand(context.Background(), c); err != nil {
		t.Fatalf("add a command to a file from before the table: %v", err)
	}
	db := readDB(t, path)
	defer db.Close()
	param := func(int) string { return "?" }
	page := ingest.CommandQuery{Before: at, BeforeID: "c9", Limit: 10}
	type check struct {
		name, index string
		q           string
		args        []any
	}
	var checks []check
	add := func(name, index, q string, args []any) { checks = append(checks, check{name, index, q, args}) }
	for _, tc := range []struct {
		name, index string
		q           ingest.CommandQuery
	}{
		{"all", "commands_created", ingest.CommandQuery{Limit: 10}},
		{"all, a page", "commands_created", page},
		{"a gateway", "commands_gateway_created", ingest.CommandQuery{Gateway: "gw", Limit: 10}},
		{"a gateway, a page", "commands_gateway_created", ingest.CommandQuery{Gateway: "gw", Before: at, BeforeID: "c9", Limit: 10}},
		{"a push", "commands_push_created", ingest.CommandQuery{Push: "p", Limit: 10}},
	} {
		q, args := rows.CommandsQuery(tc.q, param)
		add(tc.name, tc.index, q, args)
	}
	q, args := rows.PendingCommandsQuery("gw", at, at, 10, param)
	add("pending", "commands_pending", q, args)
	q, args = rows.PendingGatewaysQuery(at, at, 10, param)
	add("pending gateways", "commands_pending|commands_expiring", q, args) // either partial index: pending rows only
	add("lapse", "commands_expiring", rows.LapseSQL(param), rows.LapseArgs(at))
	add("sent", "sqlite_autoindex_commands_1", rows.CommandSentSQL(param), rows.CommandSentArgs("c1", at, at))
	add("retention", "commands_created", `DELETE FROM commands WHERE `+rows.ExpiredCommands(param), []any{int64(0)})
	for _, tc := range checks {
		plan := strings.Join(queryPlan(t, db, tc.q, tc.args), "; ")
		t.Logf("%s: %s", tc.name, plan)
		found := false
		for _, index := range strings.Split(tc.index, "|") {
			found = found || strings.Contains(plan+" ", " INDEX "+index+" ") || strings.Contains(plan, " INDEX "+index+";")
		}
		if !found {
			t.Errorf("%s: plan %q, want index %s", tc.name, plan, tc.index)
		}
		if strings.Contains(plan, "TEMP B-TREE") && tc.name != "pending gateways" {
			t.Errorf("%s: plan %q sorts", tc.name, plan)
		}
	}
}
