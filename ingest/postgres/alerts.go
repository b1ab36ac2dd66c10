package postgres

import (
	"context"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

var _ ingest.StatusRecorder = (*Store)(nil)

// Alerts implements ingest.Store.
func (s *Store) Alerts(ctx context.Context, q ingest.AlertQuery) iter.Seq2[ingest.AlertRow, error] {
	if err := rows.CheckAlerts(q); err != nil {
		return rows.Failed[ingest.AlertRow](fmt.Errorf("postgres: alerts: %w", err))
	}
	sql, args := rows.AlertsQuery(q, placeholder)
	return query(ctx, s, "alerts", sql, args, func(r pgx.Rows) (ingest.AlertRow, error) {
		return rows.ScanAlert(r.Scan)
	})
}

// activeAlertsSQL walks the alert instances on the index alerts_instance
// (gateway, fingerprint, ts, seq) rather than reading every transition:
// gws, the gateways ($2 alone, or every one, a seek each, with
// rows.ActiveGatewaysAll); inst, each gateway's fingerprints, a seek each;
// then each instance's newest transition, a backward seek in the newest
// weekly partition (an ordered Append over the partitions, newest
// first, that stops at its first row: an older partition is read only
// when the newer ones hold none of the instance), kept if it is active.
// Finding the next gateway or fingerprint takes a seek per partition.
// Its cost grows with the instances and the partitions, not with the
// transitions (TestActiveAlertsPlan). $1 is the limit, $2 the gateway
// (if one).
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
	FROM inst i CROSS JOIN LATERAL (
		SELECT * FROM alerts WHERE gateway = i.gateway AND fingerprint = i.fingerprint ORDER BY ts DESC, seq DESC LIMIT 1) a
	WHERE i.fingerprint IS NOT NULL AND a.state IN ('pending', 'firing', 'nodata')
	ORDER BY a.gateway, a.started_at, a.fingerprint
	LIMIT $1`

// activeGatewayOne is activeAlertsSQL's gws for one gateway: its
// second argument.
const activeGatewayOne = `SELECT $2::text`

// activeAlertsQuery is the SQL and the arguments of q.
func activeAlertsQuery(q ingest.ActiveAlertQuery) (string, []any) {
	return rows.ActiveAlertsQuery(activeAlertsSQL, activeGatewayOne, q)
}

// ActiveAlerts implements ingest.Store.
func (s *Store) ActiveAlerts(ctx context.Context, q ingest.ActiveAlertQuery) iter.Seq2[ingest.AlertRow, error] {
	if q.Limit <= 0 {
		return rows.Failed[ingest.AlertRow](fmt.Errorf("postgres: active alerts: limit %d must be positive", q.Limit))
	}
	sql, args := activeAlertsQuery(q)
	return query(ctx, s, "active alerts", sql, args, func(r pgx.Rows) (ingest.AlertRow, error) {
		return rows.ScanAlert(r.Scan)
	})
}
