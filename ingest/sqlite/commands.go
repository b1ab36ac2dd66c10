package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

var _ ingest.CommandStore = (*Store)(nil)

var insCommandSQL = `INSERT INTO commands (` + strings.Join(rows.CommandColumns, ", ") + `)
	VALUES (?` + strings.Repeat(", ?", len(rows.CommandColumns)-1) + `)`

// AddCommand implements ingest.CommandStore: one INSERT on the writer.
func (s *Store) AddCommand(ctx context.Context, c *ingest.Command) error {
	if err := rows.CheckCommand(c); err != nil {
		return fmt.Errorf("sqlite: add command: %w: %v", ingest.ErrInvalidData, err)
	}
	if _, err := s.w.ExecContext(ctx, insCommandSQL, rows.CommandRow(c)...); err != nil {
		if duplicateKey(err) {
			return fmt.Errorf("sqlite: add command %s: %w", c.ID, ingest.ErrDuplicateCommand)
		}
		return fmt.Errorf("sqlite: add command: %w", classify(err))
	}
	return nil
}

// duplicateKey reports whether err is SQLite's refusal of a row whose
// primary key or unique key is taken.
func duplicateKey(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code()
	return c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || c == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// CommandSent implements ingest.CommandStore: one conditional UPDATE.
func (s *Store) CommandSent(ctx context.Context, id string, at, resendBefore time.Time) (bool, error) {
	if err := errors.Join(rows.CheckSentAt(at), rows.CheckSentAt(resendBefore)); err != nil {
		return false, fmt.Errorf("sqlite: command sent: %w: %v", ingest.ErrInvalidData, err)
	}
	if !rows.ValidRef(id) {
		return false, nil
	}
	return s.updated(ctx, "command sent", rows.CommandSentSQL(placeholder), rows.CommandSentArgs(id, at, resendBefore)...)
}

// CommandReplied implements ingest.CommandStore: one conditional UPDATE.
func (s *Store) CommandReplied(ctx context.Context, gateway, id, status string, at, replyTS time.Time, body []byte, errText string) (bool, error) {
	r, err := rows.CheckReply(status, at, replyTS, body, errText)
	if err != nil {
		return false, fmt.Errorf("sqlite: command replied: %w: %v", ingest.ErrInvalidData, err)
	}
	if !rows.ValidRef(id) || !rows.ValidRef(gateway) {
		return false, nil
	}
	return s.updated(ctx, "command replied", rows.CommandRepliedSQL(placeholder), rows.ReplyArgs(gateway, id, r)...)
}

// updated runs an UPDATE of one row on the writer and reports whether
// it changed it.
func (s *Store) updated(ctx context.Context, what, q string, args ...any) (bool, error) {
	res, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("sqlite: %s: %w", what, classify(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: %s: %w", what, err)
	}
	return n > 0, nil
}

// PendingCommands implements ingest.CommandStore.
func (s *Store) PendingCommands(ctx context.Context, gateway string, now, resendBefore time.Time, limit int) iter.Seq2[ingest.Command, error] {
	if err := rows.CheckPending(limit); err != nil {
		return rows.Failed[ingest.Command](fmt.Errorf("sqlite: pending commands: %w", err))
	}
	if !rows.ValidRef(gateway) {
		return rows.Empty[ingest.Command]() // no command of it is stored
	}
	q, args := rows.PendingCommandsQuery(gateway, now, resendBefore, limit, placeholder)
	return query(ctx, s, "pending commands", q, args, scanCommand)
}

// PendingGateways implements ingest.CommandStore.
func (s *Store) PendingGateways(ctx context.Context, now, resendBefore time.Time, limit int) iter.Seq2[string, error] {
	if err := rows.CheckPending(limit); err != nil {
		return rows.Failed[string](fmt.Errorf("sqlite: pending gateways: %w", err))
	}
	q, args := rows.PendingGatewaysQuery(now, resendBefore, limit, placeholder)
	return query(ctx, s, "pending gateways", q, args, func(r *sql.Rows) (string, error) {
		var g string
		err := r.Scan(&g)
		return g, err
	})
}

// LapseCommands implements ingest.CommandStore: one UPDATE.
func (s *Store) LapseCommands(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, rows.LapseSQL(placeholder), rows.LapseArgs(now)...)
	if err != nil {
		return 0, fmt.Errorf("sqlite: lapse commands: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: lapse commands: %w", err)
	}
	return n, nil
}

// Commands implements ingest.CommandStore.
func (s *Store) Commands(ctx context.Context, q ingest.CommandQuery) iter.Seq2[ingest.Command, error] {
	if err := rows.CheckCommands(q); err != nil {
		return rows.Failed[ingest.Command](fmt.Errorf("sqlite: commands: %w", err))
	}
	sqlText, args := rows.CommandsQuery(q, placeholder)
	return query(ctx, s, "commands", sqlText, args, scanCommand)
}

func scanCommand(r *sql.Rows) (ingest.Command, error) { return rows.ScanCommand(r.Scan) }
