package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"iter"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

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
