package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/outposthq/outpost/ingest/internal/chunk"
	"github.com/outposthq/outpost/ingest/internal/layout"
)

// migrate creates the schema, or brings an older file to this version,
// in one write transaction: processes opening the file at once wait for
// the one that does it. A row-layout file (version 1) has its readings
// and latest tables renamed readings_v1 and latest_v1 for convertV1.
func (s *Store) migrate(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var v sql.NullInt64
		if ok, err := hasTable(ctx, tx, "outpost_schema"); err != nil {
			return err
		} else if ok {
			if err := tx.QueryRowContext(ctx, `SELECT max(version) FROM outpost_schema`).Scan(&v); err != nil {
				return err
			}
		}
		if v.Int64 > schemaVersion {
			return fmt.Errorf("the file's layout is version %d, newer than this release's (%d)", v.Int64, schemaVersion)
		}
		if ok, err := hasTable(ctx, tx, "readings"); err != nil {
			return err
		} else if ok {
			// Version 1: its tables step aside for the views of the
			// same names, and are converted by convertV1.
			s.log.Warn().Msg("database has the row layout (version 1): converting it to series chunks")
			if _, err := tx.ExecContext(ctx, `ALTER TABLE readings RENAME TO readings_v1`); err != nil {
				return err
			}
			if ok, err := hasTable(ctx, tx, "latest"); err != nil {
				return err
			} else if ok {
				if _, err := tx.ExecContext(ctx, `ALTER TABLE latest RENAME TO latest_v1`); err != nil {
					return err
				}
			}
		}
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return err
		}
		for _, c := range addedColumns {
			var n int
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, c.table, c.column).Scan(&n)
			if err != nil {
				return fmt.Errorf("%s.%s: %w", c.table, c.column, err)
			}
			if n > 0 {
				continue
			}
			if _, err := tx.ExecContext(ctx, `ALTER TABLE `+c.table+` ADD COLUMN `+c.column+` `+c.def); err != nil {
				return fmt.Errorf("add %s.%s: %w", c.table, c.column, err)
			}
			if c.fill != "" {
				if _, err := tx.ExecContext(ctx, c.fill); err != nil {
					return fmt.Errorf("fill %s.%s: %w", c.table, c.column, err)
				}
			}
			s.log.Info().Str("table", c.table).Str("column", c.column).Msg("column added")
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO outpost_schema (version) SELECT ?1 WHERE NOT EXISTS (SELECT 1 FROM outpost_schema)`, schemaVersion); err != nil {
			return err
		}
		if err := s.ledgerV3(ctx, tx); err != nil {
			return fmt.Errorf("batches: %w", err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(legacy_until), ?) FROM outpost_schema`, int64(math.MinInt64)).Scan(&s.legacyUntil); err != nil {
			return err
		}
		if v.Valid && v.Int64 == schemaVersion {
			return nil
		}
		_, err := tx.ExecContext(ctx, `UPDATE outpost_schema SET version = ?`, schemaVersion)
		return err
	})
}

// ledgerV3 rebuilds a ledger keyed by (gateway, epoch, seq) alone, of a
// file before version 3, as the schema's: keyed by the batch's creation
// time too. The old rows do not know it: their time of arrival stands in,
// and legacy_until records when, so that a commit of a batch made before
// then also looks it up by its key alone (as PostgreSQL does).
func (s *Store) ledgerV3(ctx context.Context, tx *sql.Tx) error {
	var keyed int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('batches') WHERE name = 'created' AND pk > 0`).Scan(&keyed); err != nil {
		return err
	}
	if keyed > 0 {
		return nil
	}
	var hasCreated int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('batches') WHERE name = 'created'`).Scan(&hasCreated); err != nil {
		return err
	}
	created := "received_at"
	if hasCreated > 0 {
		created = "created"
	}
	for _, q := range []string{
		`ALTER TABLE batches RENAME TO batches_old`,
		ledgerTable,
		`INSERT INTO batches (gateway, epoch, seq, received_at, n, kind, bytes, created)
			SELECT gateway, epoch, seq, received_at, n, kind, bytes, ` + created + ` FROM batches_old`,
		`DROP TABLE batches_old`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, `UPDATE outpost_schema SET legacy_until = ?`, s.now().UnixNano())
	return err
}

// hasTable reports whether the database has a table (not a view) of
// that name.
func hasTable(ctx context.Context, tx *sql.Tx, name string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, name).Scan(&n)
	return n > 0, err
}

// convertV1 moves the readings of a version 1 table into chunks, one
// series per write transaction, deleting each series' rows as it goes, so
// that an interrupted conversion resumes where it stopped at the next
// open; then drops the old tables.
func (s *Store) convertV1(ctx context.Context) error {
	var v1 bool
	if err := s.tx(ctx, func(tx *sql.Tx) (err error) {
		v1, err = hasTable(ctx, tx, "readings_v1")
		return err
	}); err != nil || !v1 {
		return err
	}
	start := time.Now()
	var series, readings int64
	for {
		var g, sn, m string
		var converted int64
		done := false
		// The series is picked in its transaction: another process
		// converting the same file at once takes the next one.
		err := s.tx(ctx, func(tx *sql.Tx) error {
			err := tx.QueryRowContext(ctx, `SELECT gateway, sensor, metric FROM readings_v1 LIMIT 1`).Scan(&g, &sn, &m)
			if errors.Is(err, sql.ErrNoRows) {
				done = true
				return nil
			}
			if err != nil {
				return err
			}
			converted, err = convertSeries(ctx, tx, g, sn, m)
			return err
		})
		if err != nil {
			if g != "" {
				return fmt.Errorf("series %s/%s/%s: %w", g, sn, m, err)
			}
			return err
		}
		if done {
			break
		}
		series++
		readings += converted
		if series%1000 == 0 {
			s.log.Info().Int64("series", series).Int64("readings", readings).Msg("converting to series chunks")
		}
	}
	if err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS readings_v1; DROP TABLE IF EXISTS latest_v1`)
		return err
	}); err != nil {
		return err
	}
	s.log.Warn().Int64("series", series).Int64("readings", readings).Dur("took", time.Since(start)).
		Msg("converted the row layout to series chunks; the file keeps its size until a VACUUM")
	return nil
}

// convertSeries writes one series' rows as chunks, a window each (at
// most chunk.MaxReadings readings), sets its first and newest reading,
// and deletes the rows. It returns how many readings it moved.
func convertSeries(ctx context.Context, tx *sql.Tx, g, sn, m string) (int64, error) {
	var id int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO series (gateway, sensor, metric) VALUES (?, ?, ?)
		ON CONFLICT (gateway, sensor, metric) DO UPDATE SET gateway = excluded.gateway RETURNING id`, g, sn, m).Scan(&id); err != nil {
		return 0, err
	}
	rs, err := tx.QueryContext(ctx, `SELECT ts, value, quality FROM readings_v1 WHERE gateway = ? AND sensor = ? AND metric = ? ORDER BY ts`, g, sn, m)
	if err != nil {
		return 0, err
	}
	defer rs.Close()
	var run layout.Run
	var data []byte
	var total, first, last int64
	var lastV float64
	var lastQ int64
	flush := func() error {
		if len(run.TS) == 0 {
			return nil
		}
		var err error
		if data, err = chunk.Append(data[:0], run.TS, run.Values, run.Quality); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, sqlInsChunk, id, run.TS[0], run.TS[len(run.TS)-1], len(run.TS), data); err != nil {
			return err
		}
		run.TS, run.Values, run.Quality = run.TS[:0], run.Values[:0], run.Quality[:0]
		return nil
	}
	for rs.Next() {
		var ts, q int64
		var v sql.NullFloat64
		if err := rs.Scan(&ts, &v, &q); err != nil {
			return 0, err
		}
		if q < 0 || q > 2 {
			return 0, fmt.Errorf("reading at %d: quality %d", ts, q)
		}
		if n := len(run.TS); n > 0 && (layout.WindowOf(run.TS[0]) != layout.WindowOf(ts) || n == chunk.MaxReadings) {
			if err := flush(); err != nil {
				return 0, err
			}
		}
		if total == 0 {
			first = ts
		}
		total++
		last, lastV, lastQ = ts, float(v), q
		run.TS, run.Values, run.Quality = append(run.TS, ts), append(run.Values, float(v)), append(run.Quality, byte(q))
	}
	if err := rs.Err(); err != nil {
		return 0, err
	}
	if err := rs.Close(); err != nil {
		return 0, err
	}
	if err := flush(); err != nil {
		return 0, err
	}
	if total > 0 {
		if _, err := tx.ExecContext(ctx, sqlUpSeries, id, nil, first, last, value(lastV), lastQ); err != nil {
			return 0, err
		}
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM readings_v1 WHERE gateway = ? AND sensor = ? AND metric = ?`, g, sn, m)
	return total, err
}
