package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/rows"
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
// as PostgreSQL drops whole partitions, and the final commands created
// more than ingest.CommandRetention before now, whatever r says, a
// transaction per expireRows rows, so that commits go on between them.
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
		n, err := s.expire(ctx, e.table, e.key, e.col+" < ?", ingest.Horizon(now, time.Duration(keep)))
		st.Rows += n
		if err != nil {
			return st, err
		}
	}
	n, err := s.expire(ctx, "commands", "rowid", rows.ExpiredCommands(placeholder), rows.CommandsHorizon(now))
	st.Rows += n
	return st, err
}

// expire deletes the rows of table (selected by key) where cond holds of
// arg, expireRows at a time, and returns how many.
func (s *Store) expire(ctx context.Context, table, key, cond string, arg int64) (int64, error) {
	q := fmt.Sprintf(`DELETE FROM %s WHERE (%s) IN (SELECT %s FROM %s WHERE %s LIMIT %d)`,
		table, key, key, table, cond, expireRows)
	var total int64
	for {
		var n int64
		err := s.tx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, q, arg)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("sqlite: expire %s: %w", table, err)
		}
		total += n
		if n < expireRows {
			return total, nil
		}
	}
}
