package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/rollup"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

// span is the time one partition covers (ingest.RetentionSpan).
const span = int64(ingest.RetentionSpan)

// partLock is the advisory lock key that serialises the creation of
// partitions (as a transaction lock) and, held for a session, elects the
// process that drops them.
const partLock = schemaLock + 2

// ahead is how far past now Maintain creates partitions, so that
// commits seldom have to.
const ahead = 2 * 24 * time.Hour

// partTable is a table partitioned by span on a column of unix ns.
type partTable struct {
	name, key string
	raw       bool // dropped at the raw retention, else at the minute rollups'
}

// partTables are the partitioned tables (docs/storage.md, "Partitions").
var partTables = [...]partTable{
	{"chunks", "t_min", true},
	{"alerts", "ts", true},
	{"gaps", "received_at", true},
	{"dead_letters", "received_at", true},
	{"batches", "created", true},
	{"rollup_1m", "bucket", false},
}

// Indexes in partTables.
const (
	tChunks = iota
	tAlerts
	tGaps
	tDeadLetters
	tBatches
	tRollup1m
)

// part names one partition: a table and the start of its span.
type part struct {
	table int
	day   int64
}

// dayOf returns the start of the partition's span holding ts.
func dayOf(ts int64) int64 { return rollup.Floor(ts, span) }

// name is the partition's table name, after the first day it covers:
// chunks_p20261203.
func (p part) name() string {
	return partTables[p.table].name + "_p" + time.Unix(0, p.day).UTC().Format("20060102")
}

// parseDay reads the first day of a partition's name suffix.
func parseDay(suffix string) (int64, bool) {
	t, err := time.Parse("20060102", suffix)
	if err != nil {
		return 0, false
	}
	return t.UnixNano(), true
}

// partitions caches the partitions known to exist.
type partitions struct {
	mu   sync.RWMutex
	have map[part]bool
}

func (ps *partitions) missing(need []part) []part {
	ps.mu.RLock()
	defer ps.mu.RUnlock()
	var out []part
	for _, p := range need {
		if !ps.have[p] && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func (ps *partitions) set(p part, ok bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.have == nil {
		ps.have = map[part]bool{}
	}
	if ok {
		ps.have[p] = true
	} else {
		delete(ps.have, p)
	}
}

func (ps *partitions) reset() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	clear(ps.have)
}

// listPartitions reads the partitions of the tables in the current schema.
func listPartitions(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) ([]part, error) {
	rs, err := q.Query(ctx, `SELECT p.relname::text, c.relname::text FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
		JOIN pg_namespace n ON n.oid = p.relnamespace WHERE n.nspname = current_schema()`)
	if err != nil {
		return nil, err
	}
	var out []part
	var parent, child string
	_, err = pgx.ForEachRow(rs, []any{&parent, &child}, func() error {
		for i, t := range partTables {
			if t.name != parent {
				continue
			}
			if day, ok := parseDay(strings.TrimPrefix(child, t.name+"_p")); ok && strings.HasPrefix(child, t.name+"_p") {
				out = append(out, part{i, day})
			}
		}
		return nil
	})
	return out, err
}

// loadPartitions fills the cache from the catalog.
func (s *Store) loadPartitions(ctx context.Context) error {
	ps, err := listPartitions(ctx, s.pool)
	if err != nil {
		return fmt.Errorf("postgres: partitions: %w", err)
	}
	s.parts.reset()
	for _, p := range ps {
		s.parts.set(p, true)
	}
	return nil
}

// ensure creates the partitions of need that do not exist yet, in one
// transaction holding partLock. Each is made as a table of its own and
// then attached, which locks the parent only against other DDL (SHARE
// UPDATE EXCLUSIVE), not against commits and queries.
func (s *Store) ensure(ctx context.Context, need []part) error {
	miss := s.parts.missing(need)
	if len(miss) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(partLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '10s'`); err != nil {
			return err
		}
		return createPartitions(ctx, tx, miss)
	})
	if err != nil {
		return fmt.Errorf("postgres: create partitions: %w", err)
	}
	for _, p := range miss {
		s.parts.set(p, true)
	}
	return nil
}

// createPartitions creates and attaches each partition of ps that does
// not exist, in tx.
func createPartitions(ctx context.Context, tx pgx.Tx, ps []part) error {
	for _, p := range ps {
		name := p.name()
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgx.Identifier{name}.Sanitize()).Scan(&exists); err != nil {
			return err
		}
		if exists {
			continue
		}
		t := partTables[p.table]
		id, parent := pgx.Identifier{name}.Sanitize(), pgx.Identifier{t.name}.Sanitize()
		if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)`,
			id, parent)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%d) TO (%d)`,
			parent, id, p.day, rollup.End(p.day, span))); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// noPartition reports PostgreSQL's refusal of a row for which no
// partition exists: one was dropped since the cache was filled.
func noPartition(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23514" && strings.HasPrefix(pe.Message, "no partition of relation")
}

// partitionGone reports a commit refused for want of a partition that the
// cache said exists (another process dropped it), and forgets the cache,
// so that the next ensure looks again.
func (s *Store) partitionGone(err error) bool {
	if !noPartition(err) {
		return false
	}
	s.parts.reset()
	if err := s.loadPartitions(context.Background()); err != nil {
		s.log.Debug().Err(err).Msg("reload partitions")
	}
	return true
}

// appendPart appends p to ps unless the last is p: rows of a batch mostly
// share their days.
func appendPart(ps []part, p part) []part {
	if n := len(ps); n > 0 && ps[n-1] == p {
		return ps
	}
	return append(ps, p)
}

// Maintain implements ingest.Maintainer: it creates the partitions from
// now to ahead past it, and drops those wholly before the retention's
// horizon (ingest.Horizon), each after detaching it CONCURRENTLY so that neither
// commits nor queries wait. Among processes sharing a database one
// maintains at a time (a session advisory lock); the others return at
// once with Leader false. Every process first deletes the final
// commands created more than ingest.CommandRetention before now,
// whatever r says (Rows counts them).
func (s *Store) Maintain(ctx context.Context, now int64, r ingest.Retention) (ingest.MaintainStats, error) {
	var st ingest.MaintainStats
	var need []part
	for i := range partTables {
		for d := dayOf(now); d <= now+int64(ahead); d += span {
			need = append(need, part{i, d})
		}
	}
	if err := s.ensure(ctx, need); err != nil {
		return st, err
	}
	// The commands table is not partitioned, and keeps its final
	// commands for ingest.CommandRetention whatever r says. A DELETE
	// needs no leader: processes that run it at once delete each row
	// once.
	tag, err := s.pool.Exec(ctx, `DELETE FROM commands WHERE `+rows.ExpiredCommands(placeholder), rows.CommandsHorizon(now))
	if err != nil {
		return st, fmt.Errorf("postgres: maintain: expire commands: %w", err)
	}
	st.Rows += tag.RowsAffected()
	if r.Raw <= 0 && r.Minute <= 0 {
		return st, nil
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return st, fmt.Errorf("postgres: maintain: %w", err)
	}
	defer conn.Release()
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", int64(partLock)+1).Scan(&st.Leader); err != nil || !st.Leader {
		return st, err
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(partLock)+1); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) // a closed session drops its locks
		}
	}()
	ps, err := listPartitions(ctx, conn)
	if err != nil {
		return st, fmt.Errorf("postgres: maintain: %w", err)
	}
	for _, p := range ps {
		keep := r.Raw
		if !partTables[p.table].raw {
			keep = r.Minute
		}
		if keep <= 0 || rollup.End(p.day, span) > ingest.Horizon(now, time.Duration(keep)) {
			continue
		}
		if err := dropPartition(ctx, conn, p); err != nil {
			return st, fmt.Errorf("postgres: maintain: drop %s: %w", p.name(), err)
		}
		s.parts.set(p, false)
		st.Dropped++
		s.log.Info().Str("partition", p.name()).Msg("dropped: older than the retention")
	}
	if r.Raw > 0 {
		// The staged rows and the pending list are not partitioned:
		// they hold only what the compactor has yet to fold. A window
		// is older than the horizon, aligned to windows, or not.
		horizon := ingest.Horizon(now, time.Duration(r.Raw))
		var n int64
		err := conn.QueryRow(ctx, `WITH d AS (DELETE FROM staged WHERE win < $1 RETURNING cardinality(ts) AS n)
			SELECT coalesce(sum(n), 0)::bigint FROM d`, horizon).Scan(&n)
		if err != nil {
			return st, fmt.Errorf("postgres: maintain: %w", err)
		}
		st.Rows += n
		if _, err := conn.Exec(ctx, `DELETE FROM pending WHERE win < $1`, horizon); err != nil {
			return st, fmt.Errorf("postgres: maintain: %w", err)
		}
	}
	return st, nil
}

// dropPartition detaches p without blocking its table's users, then drops
// it. A detach that an earlier run left half done is finished first.
func dropPartition(ctx context.Context, conn interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, p part) error {
	id, parent := pgx.Identifier{p.name()}.Sanitize(), pgx.Identifier{partTables[p.table].name}.Sanitize()
	if _, err := conn.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s DETACH PARTITION %s CONCURRENTLY`, parent, id)); err != nil {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || !strings.Contains(pe.Message, "pending detach") {
			return err
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s DETACH PARTITION %s FINALIZE`, parent, id)); err != nil {
			return err
		}
	}
	_, err := conn.Exec(ctx, fmt.Sprintf(`DROP TABLE %s`, id))
	return err
}
