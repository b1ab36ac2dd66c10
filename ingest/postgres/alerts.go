package postgres

import (
	"context"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

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
