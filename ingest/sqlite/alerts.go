package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"iter"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

var _ ingest.StatusRecorder = (*Store)(nil)

// Alerts implements ingest.Store.
func (s *Store) Alerts(ctx context.Context, q ingest.AlertQuery) iter.Seq2[ingest.AlertRow, error] {
	if err := rows.CheckAlerts(q); err != nil {
		return rows.Failed[ingest.AlertRow](fmt.Errorf("sqlite: alerts: %w", err))
	}
	sqlText, args := rows.AlertsQuery(q, placeholder)
	return query(ctx, s, "alerts", sqlText, args, func(r *sql.Rows) (ingest.AlertRow, error) {
		return rows.ScanAlert(r.Scan)
	})
}

// activeAlertsSQL walks the alert instances on the index alerts_instance
// (gateway, fingerprint, ts, seq) rather than reading every transition:
// gws, the gateways (?2 alone, or every one, a seek each, with
// rows.ActiveGatewaysAll); inst, each gateway's fingerprints, a seek each;
// then each instance's newest transition, one backward seek, kept if it
// is active. Its cost grows with the instances, not with their
// transitions. ?1 is the limit, ?2 the gateway (if one).
const activeAlertsSQL = `WITH RECURSIVE
	gws(gateway) AS (%s),
	inst(gateway, fingerprint) AS (
		SELECT g.gateway, (SELECT min(fingerprint) FROM alerts WHERE gateway = g.gateway) FROM gws g
		WHERE g.gateway IS NOT NULL
		UNION ALL
		SELECT i.gateway, (SELECT min(fingerprint) FROM alerts WHERE gateway = i.gateway AND fingerprint > i.fingerprint)
		FROM inst i WHERE i.fingerprint IS NOT NULL)
	SELECT a.gateway, a.rule, a.fingerprint, a.state, a.severity, a.value, CAST(a.labels AS TEXT), CAST(a.annotations AS TEXT),
		a.message, a.started_at, a.ts, a.seq
	FROM inst i JOIN alerts a ON a.rowid = (
		SELECT rowid FROM alerts WHERE gateway = i.gateway AND fingerprint = i.fingerprint ORDER BY ts DESC, seq DESC LIMIT 1)
	WHERE i.fingerprint IS NOT NULL AND a.state IN ('pending', 'firing', 'nodata')
	ORDER BY a.gateway, a.started_at, a.fingerprint
	LIMIT ?1`

// activeGatewayOne is activeAlertsSQL's gws for one gateway: its
// second argument.
const activeGatewayOne = `SELECT ?2`

// activeAlertsQuery is the SQL and the arguments of q.
func activeAlertsQuery(q ingest.ActiveAlertQuery) (string, []any) {
	return rows.ActiveAlertsQuery(activeAlertsSQL, activeGatewayOne, q)
}

// ActiveAlerts implements ingest.Store.
func (s *Store) ActiveAlerts(ctx context.Context, q ingest.ActiveAlertQuery) iter.Seq2[ingest.AlertRow, error] {
	if q.Limit <= 0 {
		return rows.Failed[ingest.AlertRow](fmt.Errorf("sqlite: active alerts: limit %d must be positive", q.Limit))
	}
	sqlText, args := activeAlertsQuery(q)
	return query(ctx, s, "active alerts", sqlText, args, func(r *sql.Rows) (ingest.AlertRow, error) {
		return rows.ScanAlert(r.Scan)
	})
}
