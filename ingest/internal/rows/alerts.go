package rows

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/outposthq/outpost/ingest"
)

// CheckAlerts reports an alerts query a store cannot answer.
func CheckAlerts(q ingest.AlertQuery) error {
	if q.Limit <= 0 {
		return fmt.Errorf("limit %d must be positive", q.Limit)
	}
	if q.State != "" {
		if _, ok := ingest.ParseAlertState(q.State); !ok {
			return fmt.Errorf("unknown state %q", q.State)
		}
	}
	return nil
}

// AlertsQuery is the SQL and arguments of q (which CheckAlerts accepts);
// param(n) writes the n-th placeholder, from 1. Only the filters q sets
// are in the WHERE clause; with a gateway the index on (gateway, ts)
// serves it, without one the index on ts.
func AlertsQuery(q ingest.AlertQuery, param func(n int) string) (string, []any) {
	var sb strings.Builder
	args := []any{q.From, q.To}
	sb.WriteString(`SELECT gateway, rule, fingerprint, state, severity, value, CAST(labels AS TEXT), CAST(annotations AS TEXT),
		message, started_at, ts, seq FROM alerts WHERE ts >= ` + param(1) + " AND ts < " + param(2))
	add := func(cond string, v any) {
		args = append(args, v)
		sb.WriteString(" AND " + cond + " " + param(len(args)))
	}
	if q.Gateway != "" {
		add("gateway =", q.Gateway)
	}
	if q.Rule != "" {
		add("rule =", q.Rule)
	}
	if q.State != "" {
		add("state =", q.State)
	}
	args = append(args, q.Limit)
	sb.WriteString(" ORDER BY ts, gateway, seq LIMIT " + param(len(args)))
	return sb.String(), args
}

// ScanAlert reads one row of AlertsQuery with scan (a Rows' Scan
// method). A NULL value (SQLite's NaN) reads as NaN.
func ScanAlert(scan func(dest ...any) error) (ingest.AlertRow, error) {
	var (
		a                    ingest.AlertRow
		state, labels, annos string
		value                *float64
		seq                  int64
	)
	if err := scan(&a.Gateway, &a.Rule, &a.Fingerprint, &state, &a.Severity, &value, &labels, &annos,
		&a.Message, &a.StartedAt, &a.TS, &seq); err != nil {
		return a, err
	}
	st, ok := ingest.ParseAlertState(state)
	if !ok {
		return a, fmt.Errorf("alert state %q", state)
	}
	a.State, a.Seq, a.Value = st, uint64(seq), math.NaN()
	if value != nil {
		a.Value = *value
	}
	if err := json.Unmarshal([]byte(labels), &a.Labels); err != nil {
		return a, fmt.Errorf("alert labels: %w", err)
	}
	if err := json.Unmarshal([]byte(annos), &a.Annotations); err != nil {
		return a, fmt.Errorf("alert annotations: %w", err)
	}
	return a, nil
}

// ActiveGatewaysAll is the gateways walk of both stores' active-alerts
// query: every gateway that has alerts, from the smallest up, a seek on
// the index (gateway, …) each, ending with a NULL row.
const ActiveGatewaysAll = `SELECT min(gateway) FROM alerts
		UNION ALL
		SELECT (SELECT min(gateway) FROM alerts WHERE gateway > g.gateway) FROM gws g WHERE g.gateway IS NOT NULL`

// ActiveAlertsQuery is a store's active-alerts SQL for q and its
// arguments: sqlFmt with its gateways walk (its %s) filled by one, the
// store's way of naming the second argument alone, for q's gateway, or
// by ActiveGatewaysAll; the limit is the first argument.
func ActiveAlertsQuery(sqlFmt, one string, q ingest.ActiveAlertQuery) (string, []any) {
	if q.Gateway != "" {
		return fmt.Sprintf(sqlFmt, one), []any{q.Limit, q.Gateway}
	}
	return fmt.Sprintf(sqlFmt, ActiveGatewaysAll), []any{q.Limit}
}
