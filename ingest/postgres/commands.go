package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

var _ ingest.CommandStore = (*Store)(nil)

var insCommandSQL = func() string {
	ps := make([]string, len(rows.CommandColumns))
	for i := range ps {
		ps[i] = placeholder(i + 1)
	}
	return `INSERT INTO commands (` + strings.Join(rows.CommandColumns, ", ") + `) VALUES (` + strings.Join(ps, ", ") + `)`
}()

// AddCommand implements ingest.CommandStore: one INSERT.
func (s *Store) AddCommand(ctx context.Context, c *ingest.Command) error {
	if err := rows.CheckCommand(c); err != nil {
		return fmt.Errorf("postgres: add command: %w: %v", ingest.ErrInvalidData, err)
	}
	if _, err := s.pool.Exec(ctx, insCommandSQL, rows.CommandRow(c)...); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "commands_pkey" {
			return fmt.Errorf("postgres: add command %s: %w", c.ID, ingest.ErrDuplicateCommand)
		}
		return fmt.Errorf("postgres: add command: %w", classify(err))
	}
	return nil
}

// CommandSent implements ingest.CommandStore: one conditional UPDATE.
func (s *Store) CommandSent(ctx context.Context, id string, at, resendBefore time.Time) (bool, error) {
	if err := errors.Join(rows.CheckSentAt(at), rows.CheckSentAt(resendBefore)); err != nil {
		return false, fmt.Errorf("postgres: command sent: %w: %v", ingest.ErrInvalidData, err)
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
		return false, fmt.Errorf("postgres: command replied: %w: %v", ingest.ErrInvalidData, err)
	}
	if !rows.ValidRef(id) || !rows.ValidRef(gateway) {
		return false, nil
	}
	return s.updated(ctx, "command replied", rows.CommandRepliedSQL(placeholder), rows.ReplyArgs(gateway, id, r)...)
}

// updated runs an UPDATE of one row and reports whether it changed it.
func (s *Store) updated(ctx context.Context, what, q string, args ...any) (bool, error) {
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("postgres: %s: %w", what, classify(err))
	}
	return tag.RowsAffected() > 0, nil
}

// PendingCommands implements ingest.CommandStore.
func (s *Store) PendingCommands(ctx context.Context, gateway string, now, resendBefore time.Time, limit int) iter.Seq2[ingest.Command, error] {
	if err := rows.CheckPending(limit); err != nil {
		return rows.Failed[ingest.Command](fmt.Errorf("postgres: pending commands: %w", err))
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
		return rows.Failed[string](fmt.Errorf("postgres: pending gateways: %w", err))
	}
	q, args := rows.PendingGatewaysQuery(now, resendBefore, limit, placeholder)
	return query(ctx, s, "pending gateways", q, args, func(r pgx.Rows) (string, error) {
		var g string
		err := r.Scan(&g)
		return g, err
	})
}

// LapseCommands implements ingest.CommandStore: one UPDATE.
func (s *Store) LapseCommands(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, rows.LapseSQL(placeholder), rows.LapseArgs(now)...)
	if err != nil {
		return 0, fmt.Errorf("postgres: lapse commands: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Commands implements ingest.CommandStore.
func (s *Store) Commands(ctx context.Context, q ingest.CommandQuery) iter.Seq2[ingest.Command, error] {
	if err := rows.CheckCommands(q); err != nil {
		return rows.Failed[ingest.Command](fmt.Errorf("postgres: commands: %w", err))
	}
	sql, args := rows.CommandsQuery(q, placeholder)
	return query(ctx, s, "commands", sql, args, scanCommand)
}

func scanCommand(r pgx.Rows) (ingest.Command, error) { return rows.ScanCommand(r.Scan) }
