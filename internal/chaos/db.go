package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// db reads what ingest wrote, straight from the tables of the ingest
// contract (readings, batches, gaps, dead_letters), through the DSN the
// ingest service was given.
type db struct {
	sql *sql.DB
}

func openDB(dsn string) (*db, error) {
	var d *sql.DB
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		d, err = sql.Open("pgx", dsn)
	default:
		path := strings.TrimPrefix(dsn, "sqlite:")
		d, err = sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	}
	if err != nil {
		return nil, fmt.Errorf("chaos: open database: %w", err)
	}
	d.SetMaxOpenConns(2)
	return &db{sql: d}, nil
}

func (d *db) close() error { return d.sql.Close() }

// lit quotes an id as an SQL string literal. Gateway ids are
// [A-Za-z0-9_.-], so this never needs escaping, but stay correct anyway.
func lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Row is one stored reading.
type Row struct {
	Sensor, Metric string
	TS             int64
	Value          float64
	Null           bool // value NULL (SQLite stores NaN as NULL)
}

// BatchRow is one row of the batches table.
type BatchRow struct {
	Epoch, Seq uint64
	N          int64
	Kind       string
}

// epochSeqs returns, per epoch, how many batches are stored and the
// highest seq: the drain's progress.
func (d *db) epochSeqs(ctx context.Context, gateway string) (map[uint64][2]uint64, error) {
	rows, err := d.sql.QueryContext(ctx, "SELECT epoch, count(*), max(seq) FROM batches WHERE gateway = "+lit(gateway)+" GROUP BY epoch")
	if err != nil {
		return nil, fmt.Errorf("chaos: query batches: %w", err)
	}
	defer rows.Close()
	out := make(map[uint64][2]uint64)
	for rows.Next() {
		var e, n, m int64
		if err := rows.Scan(&e, &n, &m); err != nil {
			return nil, fmt.Errorf("chaos: scan batches: %w", err)
		}
		out[uint64(e)] = [2]uint64{uint64(n), uint64(m)}
	}
	return out, rows.Err()
}

// batches returns every batch row of the gateway.
func (d *db) batches(ctx context.Context, gateway string) ([]BatchRow, error) {
	rows, err := d.sql.QueryContext(ctx, "SELECT epoch, seq, n, kind FROM batches WHERE gateway = "+lit(gateway)+" ORDER BY epoch, seq")
	if err != nil {
		return nil, fmt.Errorf("chaos: query batches: %w", err)
	}
	defer rows.Close()
	var out []BatchRow
	for rows.Next() {
		var e, s int64
		var b BatchRow
		if err := rows.Scan(&e, &s, &b.N, &b.Kind); err != nil {
			return nil, fmt.Errorf("chaos: scan batches: %w", err)
		}
		b.Epoch, b.Seq = uint64(e), uint64(s)
		out = append(out, b)
	}
	return out, rows.Err()
}

// readings returns every reading of the gateway, ordered by series and ts.
func (d *db) readings(ctx context.Context, gateway string) ([]Row, error) {
	rows, err := d.sql.QueryContext(ctx, "SELECT sensor, metric, ts, value FROM readings WHERE gateway = "+lit(gateway)+" ORDER BY sensor, metric, ts")
	if err != nil {
		return nil, fmt.Errorf("chaos: query readings: %w", err)
	}
	defer rows.Close()
	names := make(map[string]string) // interned sensor and metric names
	intern := func(b []byte) string {
		if s, ok := names[string(b)]; ok {
			return s
		}
		s := string(b)
		names[s] = s
		return s
	}
	var out []Row
	var sensor, metric sql.RawBytes
	var v sql.NullFloat64
	for rows.Next() {
		var r Row
		if err := rows.Scan(&sensor, &metric, &r.TS, &v); err != nil {
			return nil, fmt.Errorf("chaos: scan readings: %w", err)
		}
		r.Sensor, r.Metric = intern(sensor), intern(metric)
		r.Value, r.Null = v.Float64, !v.Valid
		out = append(out, r)
	}
	return out, rows.Err()
}

// count runs a count query.
func (d *db) count(ctx context.Context, q string) (int64, error) {
	var n int64
	if err := d.sql.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("chaos: %s: %w", q, err)
	}
	return n, nil
}
