package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/outposthq/outpost/ingest"
)

// expireRows bounds the rows one retention transaction deletes: the
// writer is held that long, and commits wait.
const expireRows = 10000

// expiry is a table the retention deletes from: the rows of one
// statement's turn, selected by their key (WITHOUT ROWID tables) or rowid.
type expiry struct {
	table, key, col string
	raw             bool // at the raw retention, else at the minute rollups'
}

var expiries = []expiry{
	{"chunks", "rowid", "t_min", true},
	{"recent", "rowid", "ts", true},
	{"pending", "series_id, win", "win", true},
	{"alerts", "rowid", "ts", true},
	{"gaps", "gateway, epoch, seq, idx", "received_at", true},
	{"dead_letters", "rowid", "received_at", true},
	{"batches", "gateway, epoch, seq", "created", true},
	{"rollup_1m", "series_id, bucket", "bucket", false},
}

var _ ingest.Maintainer = (*Store)(nil)

// Maintain implements ingest.Maintainer. SQLite has no partitions: it
// deletes what is dated before the retention's horizon (ingest.Horizon),
// as PostgreSQL drops whole partitions, a transaction per expireRows
// rows, so that commits go on between them.
func (s *Store) Maintain(ctx context.Context, now int64, r ingest.Retention) (ingest.MaintainStats, error) {
	st := ingest.MaintainStats{Leader: true}
	for _, e := range expiries {
		keep := r.Raw
		if !e.raw {
			keep = r.Minute
		}
		if keep <= 0 {
			continue
		}
		horizon := ingest.Horizon(now, time.Duration(keep))
		q := fmt.Sprintf(`DELETE FROM %s WHERE (%s) IN (SELECT %s FROM %s WHERE %s < ? LIMIT %d)`,
			e.table, e.key, e.key, e.table, e.col, expireRows)
		for {
			var n int64
			err := s.tx(ctx, func(tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, q, horizon)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return st, fmt.Errorf("sqlite: expire %s: %w", e.table, err)
			}
			st.Rows += n
			if n < expireRows {
				break
			}
		}
	}
	return st, nil
}
