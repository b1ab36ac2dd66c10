package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outposthq/outpost/ingest/internal/chunk"
	"github.com/outposthq/outpost/ingest/internal/layout"
)

// schemaVersion is the layout this code writes: 1 was a row per
// reading (readings and latest tables), 2 is series chunks.
const schemaVersion = 2

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
		if _, err := tx.Exec(ctx, chunk.UnpackSQL); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM outpost_schema`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO outpost_schema (version) VALUES ($1)`, schemaVersion)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create schema: %w", err)
	}
	return s.convertV1(ctx, conn)
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
			n, err = convertSeries(ctx, tx, g, sn, m)
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
func convertSeries(ctx context.Context, tx pgx.Tx, g, sn, m string) (int64, error) {
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
