package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outposthq/outpost/ingest/internal/chunk"
	"github.com/outposthq/outpost/ingest/internal/layout"
)

// schemaVersion is the layout this code writes: 1 was a row per
// reading (readings and latest tables), 2 series chunks, 3 series chunks
// with the big tables partitioned by week, 4 the readings to fold staged
// a row per batch (staged) rather than a row per reading (recent).
const schemaVersion = 4

// migrate creates the schema, or brings an older one to this version,
// holding the schema lock so that ingest processes starting together
// wait for the one that does it (docs/storage.md, "Migrating").
func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(schemaLock)); err != nil {
		return fmt.Errorf("postgres: schema lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(schemaLock)); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) // a closed session drops its locks
		}
	}()
	var plain []int // partTables that exist as plain tables, renamed to _old
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var rowTable bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND c.relname = 'readings' AND c.relkind = 'r')`).Scan(&rowTable); err != nil {
			return err
		}
		if rowTable {
			// Version 1: its tables step aside for the views of the
			// same names, and are converted below.
			s.log.Warn().Msg("database has the row layout (version 1): converting it to series chunks; other ingest processes wait")
			if _, err := tx.Exec(ctx, `ALTER TABLE readings RENAME TO readings_v1;
				ALTER INDEX IF EXISTS readings_series_ts RENAME TO readings_v1_series_ts;
				ALTER TABLE latest RENAME TO latest_v1`); err != nil {
				return err
			}
		}
		var recentTable bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND c.relname = 'recent' AND c.relkind = 'r')`).Scan(&recentTable); err != nil {
			return err
		}
		if recentTable {
			// Versions 2 and 3: the row table steps aside for the view
			// of its name; its rows are staged below.
			if _, err := tx.Exec(ctx, `ALTER TABLE recent RENAME TO recent_v3;
				ALTER INDEX IF EXISTS recent_series_ts RENAME TO recent_v3_series_ts`); err != nil {
				return err
			}
		}
		var err error
		if plain, err = setAsidePlain(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, chunk.UnpackSQL); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, schema); err != nil {
			return err
		}
		if recentTable {
			// A staged row per gateway and window, as commits write
			// them; the readings view no longer reads the old table.
			tag, err := tx.Exec(ctx, `INSERT INTO staged (gateway, win, series, ts, value, quality)
				SELECT s.gateway, `+windowSQL("r.ts", "$1", "$2")+`,
					array_agg(r.series_id), array_agg(r.ts), array_agg(r.value), array_agg(r.quality)
				FROM recent_v3 r JOIN series s ON s.id = r.series_id
				GROUP BY 1, 2`, layout.Window, int64(math.MinInt64))
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DROP TABLE recent_v3`); err != nil {
				return err
			}
			s.log.Info().Int64("rows", tag.RowsAffected()).Msg("the row table of readings to fold is now staged, a row per gateway and hour")
		}
		if _, err := tx.Exec(ctx, `INSERT INTO outpost_schema (version) SELECT $1 WHERE NOT EXISTS (SELECT FROM outpost_schema)`, schemaVersion); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE outpost_schema SET version = $1`, schemaVersion)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create schema: %w", err)
	}
	if err := s.loadPartitions(ctx); err != nil {
		return err
	}
	for _, t := range plain {
		if err := s.convertPlain(ctx, conn, t); err != nil {
			return fmt.Errorf("postgres: partition %s: %w", partTables[t].name, err)
		}
	}
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(legacy_until), $1) FROM outpost_schema`, int64(math.MinInt64)).Scan(&s.legacyUntil); err != nil {
		return fmt.Errorf("postgres: schema: %w", err)
	}
	return s.convertV1(ctx, conn)
}

// setAsidePlain renames each table of partTables that exists unpartitioned
// (a database of version 1 or 2), and its indexes, to <name>_old, so that
// the schema creates the partitioned table in its place; convertPlain
// then moves the rows. It returns those it renamed.
func setAsidePlain(ctx context.Context, tx pgx.Tx) ([]int, error) {
	var plain []int
	for i, t := range partTables {
		var kind string
		err := tx.QueryRow(ctx, `SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND c.relname = $1`, t.name).Scan(&kind)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && kind != "r" {
			continue
		}
		if err != nil {
			return nil, err
		}
		rs, err := tx.Query(ctx, `SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1`, t.name)
		if err != nil {
			return nil, err
		}
		idx, err := pgx.CollectRows(rs, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		for _, name := range idx {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER INDEX %s RENAME TO %s`, pgx.Identifier{name}.Sanitize(), pgx.Identifier{name + "_old"}.Sanitize())); err != nil {
				return nil, err
			}
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s RENAME TO %s`, pgx.Identifier{t.name}.Sanitize(), pgx.Identifier{t.name + "_old"}.Sanitize())); err != nil {
			return nil, err
		}
		plain = append(plain, i)
	}
	if len(plain) > 0 {
		// The views over the old tables are made anew by the schema.
		if _, err := tx.Exec(ctx, `DROP VIEW IF EXISTS readings; DROP VIEW IF EXISTS latest`); err != nil {
			return nil, err
		}
	}
	return plain, nil
}

// copyColumns is, per partitioned table, the columns convertPlain copies
// and what it selects for them from the old table.
var copyColumns = [...]struct{ cols, sel string }{
	tChunks:      {"series_id, t_min, t_max, n, data", "series_id, t_min, t_max, n, data"},
	tAlerts:      {"gateway, rule, fingerprint, state, severity, value, labels, message, started_at, ts, seq, annotations", "gateway, rule, fingerprint, state, severity, value, labels, message, started_at, ts, seq, annotations"},
	tGaps:        {"gateway, epoch, seq, idx, reason, kind, sensor, metric, rule, from_ts, to_ts, count, lost_epoch, first_seq, last_seq, dropped_at, received_at", "gateway, epoch, seq, idx, reason, kind, sensor, metric, rule, from_ts, to_ts, count, lost_epoch, first_seq, last_seq, dropped_at, received_at"},
	tDeadLetters: {"id, topic, received_at, reason, payload", "id, topic, received_at, reason, payload"},
	// The old ledger does not know when a batch was made: its time of
	// arrival stands in, and commits look up those rows by key alone
	// (Store.legacyUntil).
	tBatches:  {"gateway, epoch, seq, received_at, n, kind, bytes, created", "gateway, epoch, seq, received_at, n, kind, bytes, received_at"},
	tRollup1m: {"series_id, bucket, n, count, min, max, sum, last_ts, last", "series_id, bucket, n, count, min, max, sum, last_ts, last"},
}

// convertPlain moves the rows of an old unpartitioned table into the
// partitioned one, in one transaction, and drops it.
func (s *Store) convertPlain(ctx context.Context, conn *pgxpool.Conn, t int) error {
	pt := partTables[t]
	old := pgx.Identifier{pt.name + "_old"}.Sanitize()
	key := pt.key
	if t == tBatches {
		key = "received_at"
	}
	start := time.Now()
	rs, err := conn.Query(ctx, fmt.Sprintf(`SELECT DISTINCT %s - ((%s %% $1) + $1) %% $1 FROM %s`, key, key, old), span)
	if err != nil {
		return err
	}
	days, err := pgx.CollectRows(rs, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	need := make([]part, len(days))
	for i, d := range days {
		need[i] = part{t, d}
	}
	if err := s.ensure(ctx, need); err != nil {
		return err
	}
	var n int64
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if t == tAlerts {
			// Older tables lack the column (wire version 1).
			if _, err := tx.Exec(ctx, `ALTER TABLE alerts_old ADD COLUMN IF NOT EXISTS annotations jsonb NOT NULL DEFAULT '{}'`); err != nil {
				return err
			}
		}
		override := ""
		if t == tDeadLetters {
			override = "OVERRIDING SYSTEM VALUE"
		}
		tag, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (%s) %s SELECT %s FROM %s`,
			pgx.Identifier{pt.name}.Sanitize(), copyColumns[t].cols, override, copyColumns[t].sel, old))
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		switch t {
		case tDeadLetters:
			_, err = tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('dead_letters', 'id'), coalesce(max(id), 0) + 1, false) FROM dead_letters`)
		case tBatches:
			_, err = tx.Exec(ctx, `UPDATE outpost_schema SET legacy_until = $1`, s.now().UnixNano())
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DROP TABLE `+old)
		return err
	})
	if err != nil {
		return err
	}
	s.log.Warn().Str("table", pt.name).Int64("rows", n).Int("days", len(days)).Dur("took", time.Since(start)).
		Msg("moved an unpartitioned table into weekly partitions")
	return nil
}

// convertV1 moves the readings of a version 1 table into chunks, one
// series per transaction, deleting each series' rows as it goes, so that
// an interrupted conversion resumes where it stopped; then drops the old
// tables.
func (s *Store) convertV1(ctx context.Context, conn *pgxpool.Conn) error {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('readings_v1') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: convert: %w", err)
	}
	if !exists {
		return nil
	}
	start := time.Now()
	var series, readings int64
	for {
		var g, sn, m string
		err := conn.QueryRow(ctx, `SELECT gateway, sensor, metric FROM readings_v1 LIMIT 1`).Scan(&g, &sn, &m)
		if errors.Is(err, pgx.ErrNoRows) {
			break
		}
		if err != nil {
			return fmt.Errorf("postgres: convert: %w", err)
		}
		var n int64
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var err error
			n, err = s.convertSeries(ctx, tx, g, sn, m)
			return err
		}); err != nil {
			return fmt.Errorf("postgres: convert %s/%s/%s: %w", g, sn, m, err)
		}
		series++
		readings += n
		if series%1000 == 0 {
			s.log.Info().Int64("series", series).Int64("readings", readings).Msg("converting to series chunks")
		}
	}
	if _, err := conn.Exec(ctx, `DROP TABLE readings_v1; DROP TABLE IF EXISTS latest_v1`); err != nil {
		return fmt.Errorf("postgres: convert: %w", err)
	}
	s.log.Warn().Int64("series", series).Int64("readings", readings).Dur("took", time.Since(start)).
		Msg("converted the row layout to series chunks")
	return nil
}

// convertSeries writes one series' rows as chunks, a window each (at
// most chunk.MaxReadings readings), sets its first and newest reading,
// and deletes the rows.
func (s *Store) convertSeries(ctx context.Context, tx pgx.Tx, g, sn, m string) (int64, error) {
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO series (gateway, sensor, metric) VALUES ($1, $2, $3)
		ON CONFLICT (gateway, sensor, metric) DO UPDATE SET gateway = excluded.gateway RETURNING id`, g, sn, m).Scan(&id); err != nil {
		return 0, err
	}
	rs, err := tx.Query(ctx, `SELECT ts, value, quality FROM readings_v1 WHERE gateway = $1 AND sensor = $2 AND metric = $3 ORDER BY ts`, g, sn, m)
	if err != nil {
		return 0, err
	}
	var run layout.Run
	var total int64
	var first, last int64
	var lastV float64
	var lastQ int16
	var ids, mins, maxs []int64
	var ns []int32
	var datas [][]byte
	flush := func() error {
		if len(run.TS) == 0 {
			return nil
		}
		data, err := chunk.Append(nil, run.TS, run.Values, run.Quality)
		if err != nil {
			return err
		}
		ids, mins, maxs = append(ids, id), append(mins, run.TS[0]), append(maxs, run.TS[len(run.TS)-1])
		ns, datas = append(ns, int32(len(run.TS))), append(datas, data)
		run = layout.Run{}
		return nil
	}
	for rs.Next() {
		var ts int64
		var v float64
		var q int16
		if err := rs.Scan(&ts, &v, &q); err != nil {
			rs.Close()
			return 0, err
		}
		if n := len(run.TS); n > 0 && (layout.WindowOf(run.TS[0]) != layout.WindowOf(ts) || n == chunk.MaxReadings) {
			if err := flush(); err != nil {
				rs.Close()
				return 0, err
			}
		}
		if total == 0 {
			first = ts
		}
		total++
		last, lastV, lastQ = ts, v, q
		run.TS, run.Values, run.Quality = append(run.TS, ts), append(run.Values, v), append(run.Quality, byte(q))
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return 0, err
	}
	if err := flush(); err != nil {
		return 0, err
	}
	need := make([]part, len(mins))
	for i, t := range mins {
		need[i] = part{tChunks, dayOf(t)}
	}
	if err := s.ensure(ctx, need); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO chunks (series_id, t_min, t_max, n, data)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::integer[], $5::bytea[])`, ids, mins, maxs, ns, datas); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `UPDATE series SET first_ts = least(first_ts, $2),
		last_value = CASE WHEN last_ts IS NULL OR $3 >= last_ts THEN $4 ELSE last_value END,
		last_quality = CASE WHEN last_ts IS NULL OR $3 >= last_ts THEN $5 ELSE last_quality END,
		last_ts = greatest(last_ts, $3) WHERE id = $1`, id, first, last, lastV, lastQ); err != nil {
		return 0, err
	}
	_, err = tx.Exec(ctx, `DELETE FROM readings_v1 WHERE gateway = $1 AND sensor = $2 AND metric = $3`, g, sn, m)
	return total, err
}

// windowSQL is layout.WindowOf in SQL: the start of the window of width
// size holding the bigint ts, min (math.MinInt64) for the part of the
// first window that a bigint cannot start. It never overflows: CASE
// computes only the branch taken.
func windowSQL(ts, size, min string) string {
	r := "((" + ts + " % " + size + ") + " + size + ") % " + size
	return "CASE WHEN " + ts + " < " + min + "::bigint + " + r + " THEN " + min + "::bigint ELSE " + ts + " - " + r + " END"
}
