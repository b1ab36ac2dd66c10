// Package sqlite is the embedded ingest store: SQLite in pure Go
// (modernc.org/sqlite), so the service cross-compiles without cgo. See
// package ingest for the tables.
//
// # Layout
//
// Readings are stored as series chunks, as ingest/postgres stores them
// (docs/storage.md): series (one row per series: its unit, the time of
// its first reading and its newest reading), chunks (the readings of one
// series within one UTC hour in one BLOB, format 1 of
// ingest/internal/chunk) and recent (as rows, the readings of a batch that
// holds fewer than 16 of a series in an hour). latest is a
// view over series; readings is a view too: the chunks unpacked by
// outpost_chunk_unpack(data), a table-valued function, UNION ALL recent.
// outpost_schema says 2.
//
// outpost_chunk_unpack is Go code: a virtual table module that this
// package registers in its init for every SQLite connection the process
// opens through modernc.org/sqlite (the driver's modules are
// process-wide), over a virtual table of that name in the file. Any other
// program, the sqlite3 shell among them, lacks it: there every table and
// the latest view read as usual, but a query of readings fails with "no
// such module: outpost_chunk_unpack". Plain SQL there can count readings
// (sum(n) of chunks, plus the rows of recent) but not read their values.
// The readings view knows a reading's ts only once its chunk is unpacked,
// so a query of a long series should also bound the chunks' t_min and
// t_max (docs/storage.md shows how).
//
// SQLite has no NaN: a NaN value is NULL in recent, series.last_value
// and both views, and reads back NaN; and a REAL column stores -0 as 0.
// A chunk keeps every value bit for bit, NaN and -0 included.
//
// # Writing
//
// The database runs in WAL mode with synchronous=NORMAL: a commit survives
// a process crash; a power loss can lose the last commits but never corrupts
// the file, and the gateway resends what was not acked. All writes go
// through one connection (SQLite has one writer at a time anyway), so
// Commit calls queue instead of failing with SQLITE_BUSY; reads use a pool
// of their own and never wait for writes. A commit is one transaction: the
// batches row, and unless that says the batch is a duplicate, its chunks,
// its recent rows and its series' first and newest readings (a later
// batch with older readings does not move the newest back; of equal
// timestamps the later committed wins). The chunks are encoded before the
// transaction begins, and series ids are cached (up to 2^20), so that the
// writer spends its time writing. CommitGroup does the same for many
// batches in one transaction.
//
// # Compacting
//
// Store is an ingest.Compactor, as the PostgreSQL store is: Compact
// folds the recent rows of closed windows, with the window's chunks of
// fewer than 4096 readings, into chunks, in write transactions of 256
// (series, window) pairs, and deletes by rowid the rows and chunks it
// read. A write transaction holds the file's one writer, so no commit
// runs while one does and what it read is what it deletes; processes
// sharing a file need no lock of their own.
//
// # Converting a row-layout file
//
// A file of an earlier release has the row layout (version 1): tables
// readings and latest. Open converts it before it returns, as
// ingest/postgres converts a database: the two tables are renamed
// readings_v1 and latest_v1 and the new schema is created, in one
// transaction; then one series at a time, in a transaction each, its rows
// become hourly chunks, its first and newest readings are set and the
// rows are deleted, so that a conversion interrupted resumes at the next
// Open; last the old tables are dropped. The file keeps its size (SQLite
// reuses the freed pages) until a VACUUM. A file of a later layout than
// version 2 is refused.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/layout"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

const (
	busyTimeoutMS = 10000
	readers       = 4
)

// Store is an ingest.Store in one SQLite file. It is safe for concurrent use.
type Store struct {
	w, r   *sql.DB // one writer connection; a pool of query_only readers
	log    zerolog.Logger
	now    func() time.Time
	series layout.SeriesCache
	// legacyUntil: batches made before it may be in the ledger under
	// their time of arrival (rebuilt from an older ledger), and are
	// looked up by key alone; math.MinInt64 when there were none.
	legacyUntil int64

	// Prepared on the writer connection, used inside its transactions.
	insBatch, newSeries, insChunk, insPending, insRecent, upSeries, insAlert, insGap *sql.Stmt
}

var (
	_ ingest.Store      = (*Store)(nil)
	_ ingest.GroupStore = (*Store)(nil)
)

// Open opens (creating if needed) the database file at path and creates the
// tables if they are missing. A file of the row layout (version 1) is
// converted to series chunks before Open returns (see the package doc).
// The Store owns the file's connections; Close closes them.
//
// On error Open returns a nil Store, having closed what it opened. A file
// that cannot be created or opened read-write is reported as
// "sqlite: open database PATH: REASON", wrapping the OS error
// (errors.Is(err, fs.ErrNotExist) for a missing directory,
// fs.ErrPermission for one not writable).
func Open(ctx context.Context, path string, logger zerolog.Logger) (*Store, error) {
	switch {
	case path == "":
		return nil, errors.New("sqlite: empty path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return nil, fmt.Errorf("sqlite: %q: give a file path (no :memory: or file: URIs)", path)
	case strings.ContainsRune(path, '?'):
		return nil, fmt.Errorf("sqlite: %q: a path must not contain '?'", path)
	}
	if err := checkFile(path); err != nil {
		return nil, err
	}
	common := fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeoutMS)
	w, err := sql.Open("sqlite", path+"?"+common+"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-65536)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, log: logger.With().Str("component", "sqlite").Logger(), now: time.Now}
	if err := s.init(ctx, path, common); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	s.log.Debug().Str("path", path).Msg("store open")
	return s, nil
}

// checkFile opens (creating) the file at path read-write and closes it
// again: SQLite says only "unable to open database file" when it cannot,
// the OS says why. An empty file is an empty database to SQLite.
func checkFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // name the path once
		}
		return fmt.Errorf("sqlite: open database %s: %w", path, err)
	}
	return nil
}

func (s *Store) init(ctx context.Context, path, common string) error {
	if err := s.migrate(ctx); err != nil {
		return fmt.Errorf("sqlite: create schema in %s: %w", path, err)
	}
	if err := s.convertV1(ctx); err != nil {
		return fmt.Errorf("sqlite: convert %s to series chunks: %w", path, err)
	}
	var err error
	r, err := sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	s.r = r
	prep := func(dst **sql.Stmt, q string) {
		if err != nil {
			return
		}
		*dst, err = s.w.PrepareContext(ctx, q)
	}
	prep(&s.insBatch, `INSERT INTO batches (gateway, epoch, seq, received_at, n, kind, bytes, created)
		SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
		WHERE ?8 >= ?9 OR NOT EXISTS (SELECT 1 FROM batches WHERE gateway = ?1 AND epoch = ?2 AND seq = ?3 AND created < ?9)
		ON CONFLICT DO NOTHING`)
	prep(&s.newSeries, sqlNewSeries)
	prep(&s.insChunk, sqlInsChunk)
	prep(&s.insPending, sqlInsPending)
	prep(&s.insRecent, sqlInsRecent)
	prep(&s.upSeries, sqlUpSeries)
	prep(&s.insAlert, `INSERT INTO alerts (gateway, rule, fingerprint, state, severity, value, labels, message, started_at, ts, seq, annotations)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	prep(&s.insGap, `INSERT INTO gaps (`+strings.Join(rows.GapColumns, ", ")+`)
		VALUES (?`+strings.Repeat(", ?", len(rows.GapColumns)-1)+`)`)
	if err != nil {
		return fmt.Errorf("sqlite: prepare: %w", err)
	}
	return nil
}

// tx runs f in a write transaction (BEGIN IMMEDIATE): committed if f
// returns nil, rolled back otherwise. f's error is returned as it is.
func (s *Store) tx(ctx context.Context, f func(tx *sql.Tx) error) (err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
				s.log.Debug().Err(rbErr).Msg("rollback")
			}
		}
	}()
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", classify(err))
	}
	return nil
}

// Commit implements ingest.Store.
func (s *Store) Commit(ctx context.Context, b *outpost.Batch, size int) (bool, error) {
	dup, err := s.commit(ctx, []*outpost.Batch{b}, []int{size})
	if err != nil {
		return false, err
	}
	return dup[0], nil
}

// CommitGroup implements ingest.GroupStore: the batches in one
// transaction, each deduplicated on its own. Batches of any kind are
// taken, as Commit takes them.
func (s *Store) CommitGroup(ctx context.Context, bs []*outpost.Batch, sizes []int) ([]bool, error) {
	if len(sizes) != len(bs) {
		return nil, fmt.Errorf("sqlite: commit group: %d sizes for %d batches", len(sizes), len(bs))
	}
	if len(bs) == 0 {
		return []bool{}, nil
	}
	return s.commit(ctx, bs, sizes)
}

// commit stores bs in one transaction and reports which were duplicates.
// The telemetry batches are cut into chunks and rows before it begins.
func (s *Store) commit(ctx context.Context, bs []*outpost.Batch, sizes []int) ([]bool, error) {
	bds := make([]*layout.Builder, len(bs))
	defer func() {
		for _, bd := range bds {
			if bd != nil {
				builders.Put(bd)
			}
		}
	}()
	for i, b := range bs {
		if err := rows.CheckLosses(b); err != nil {
			return nil, fmt.Errorf("sqlite: %w: %v", ingest.ErrInvalidData, err)
		}
		if b.Kind != outpost.KindTelemetry {
			continue
		}
		bds[i] = builders.Get().(*layout.Builder)
		bds[i].Reset()
		if err := bds[i].Add(b); err != nil {
			return nil, fmt.Errorf("sqlite: %w: %v", ingest.ErrInvalidData, err)
		}
	}
	now := s.now().UnixNano()
	dup := make([]bool, len(bs))
	made := make(map[ingest.SeriesKey]int64) // series new in this transaction
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for i, b := range bs {
			res, err := tx.StmtContext(ctx, s.insBatch).ExecContext(ctx,
				b.Gateway, int64(b.Epoch), int64(b.Seq), now, b.Len(), rows.Kind(b.Kind), sizes[i], b.Created, s.legacyUntil)
			if err != nil {
				return fmt.Errorf("insert batch: %w", classify(err))
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("insert batch: %w", err)
			} else if n == 0 {
				dup[i] = true
				continue
			}
			switch b.Kind {
			case outpost.KindTelemetry:
				err = s.writeTelemetry(ctx, tx, b, bds[i], made)
			case outpost.KindAlert:
				err = s.insertAlerts(ctx, tx, b)
			case outpost.KindLoss:
				err = s.insertGaps(ctx, tx, b, now)
			default:
				err = fmt.Errorf("%w: batch kind %d", ingest.ErrInvalidData, b.Kind)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	s.series.Put(made)
	return dup, nil
}

func (s *Store) insertAlerts(ctx context.Context, tx *sql.Tx, b *outpost.Batch) error {
	ins := tx.StmtContext(ctx, s.insAlert)
	for i := range b.Alerts {
		a := &b.Alerts[i]
		labels, err := rows.Labels(a.Labels)
		if err != nil {
			return fmt.Errorf("alert %d: %w: %v", i, ingest.ErrInvalidData, err)
		}
		annos, err := rows.Annotations(a.Annotations)
		if err != nil {
			return fmt.Errorf("alert %d: %w: %v", i, ingest.ErrInvalidData, err)
		}
		if _, err := ins.ExecContext(ctx, b.Gateway, a.Rule, a.Fingerprint, a.State.String(), a.Severity,
			value(a.Value), labels, a.Message, a.StartedAt, a.ChangedAt, int64(a.Seq), annos); err != nil {
			return fmt.Errorf("insert alert: %w", classify(err))
		}
	}
	return nil
}

func (s *Store) insertGaps(ctx context.Context, tx *sql.Tx, b *outpost.Batch, receivedAt int64) error {
	ins := tx.StmtContext(ctx, s.insGap)
	for i := range b.Losses {
		if _, err := ins.ExecContext(ctx, rows.GapRow(b, i, receivedAt)...); err != nil {
			return fmt.Errorf("insert gap: %w", classify(err))
		}
	}
	return nil
}

// DeadLetter implements ingest.Store.
func (s *Store) DeadLetter(ctx context.Context, topic, reason string, payload []byte) error {
	if payload == nil {
		payload = []byte{}
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO dead_letters (topic, received_at, reason, payload) VALUES (?, ?, ?, ?)`,
		topic, s.now().UnixNano(), reason, payload)
	if err != nil {
		return fmt.Errorf("sqlite: dead letter: %w", classify(err))
	}
	return nil
}

// SetGatewayStatus implements ingest.Store: RecordGatewayStatus,
// without its answer.
func (s *Store) SetGatewayStatus(ctx context.Context, gateway, state string, at time.Time, payload []byte, labels ingest.SensorLabels) error {
	_, _, err := s.RecordGatewayStatus(ctx, gateway, state, at, payload, labels)
	return err
}

// RecordGatewayStatus implements ingest.StatusRecorder. In one write
// transaction: the status, and if it is recorded and labels is not nil,
// the gateway's sensor_labels and the labels of its series. Commits take
// turns with it on the writer, so a series made at any time takes the
// labels of the newest status recorded before it. The row recorded
// comes back from the upsert itself (RETURNING): an upsert whose WHERE
// keeps the stored row returns none.
func (s *Store) RecordGatewayStatus(ctx context.Context, gateway, state string, at time.Time, payload []byte,
	labels ingest.SensorLabels) (ingest.GatewayStatus, bool, error) {
	sensors, texts, err := rows.SensorLabels(labels)
	if err != nil {
		return ingest.GatewayStatus{}, false, fmt.Errorf("sqlite: gateway status: %w: %v", ingest.ErrInvalidData, err)
	}
	var (
		rec        ingest.GatewayStatus
		recorded   bool
		updatedAt  int64
		storedText string
	)
	err = s.tx(ctx, func(tx *sql.Tx) error {
		recorded = false // a retried transaction starts again
		// An undated status (at zero: the broker's last will) comes
		// after the stored one, whatever its time: 1 ns later.
		err := tx.QueryRowContext(ctx, `INSERT INTO gateways (gateway, state, updated_at, payload)
			VALUES (?1, ?2, CASE WHEN ?5 THEN ?6 ELSE ?3 END, ?4)
			ON CONFLICT (gateway) DO UPDATE SET state = excluded.state, payload = excluded.payload,
				updated_at = CASE WHEN ?5 THEN gateways.updated_at + 1 ELSE excluded.updated_at END
			WHERE ?5 OR excluded.updated_at >= gateways.updated_at
			RETURNING updated_at, payload`,
			gateway, state, at.UnixNano(), string(payload), at.IsZero(), s.now().UnixNano()).Scan(&updatedAt, &storedText)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil // an older status: nothing recorded
		case err != nil:
			return classify(err)
		}
		recorded = true
		if labels == nil {
			return nil
		}
		return setSensorLabels(ctx, tx, gateway, sensors, texts)
	})
	if err != nil {
		return ingest.GatewayStatus{}, false, fmt.Errorf("sqlite: gateway status: %w", err)
	}
	if recorded {
		rec = ingest.GatewayStatus{Gateway: gateway, State: state, UpdatedAt: time.Unix(0, updatedAt).UTC(), Payload: []byte(storedText)}
	}
	return rec, recorded, nil
}

// setSensorLabels makes sensors (with labels, JSON objects) the
// gateway's sensor_labels, and relabels its series that change.
func setSensorLabels(ctx context.Context, tx *sql.Tx, gateway string, sensors, labels []string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM sensor_labels WHERE gateway = ?`, gateway); err != nil {
		return classify(err)
	}
	for i := range sensors {
		if _, err := tx.ExecContext(ctx, `INSERT INTO sensor_labels (gateway, sensor, labels) VALUES (?, ?, ?)`,
			gateway, sensors[i], labels[i]); err != nil {
			return classify(err)
		}
	}
	_, err := tx.ExecContext(ctx, `UPDATE series SET labels = l.labels FROM (
			SELECT s.id, coalesce(sl.labels, '{}') AS labels FROM series s
			LEFT JOIN sensor_labels sl ON sl.gateway = s.gateway AND sl.sensor = s.sensor
			WHERE s.gateway = ?1) l
		WHERE series.id = l.id AND series.labels IS NOT l.labels`, gateway)
	return classify(err)
}

// Gateways implements ingest.Store.
func (s *Store) Gateways(ctx context.Context) iter.Seq2[ingest.GatewayStatus, error] {
	return query(ctx, s, "gateways", `SELECT gateway, state, updated_at, payload FROM gateways ORDER BY gateway`, nil,
		func(r *sql.Rows) (ingest.GatewayStatus, error) {
			var g ingest.GatewayStatus
			var at int64
			var payload string
			err := r.Scan(&g.Gateway, &g.State, &at, &payload)
			g.UpdatedAt, g.Payload = time.Unix(0, at).UTC(), []byte(payload)
			return g, err
		})
}

// Latest implements ingest.Store.
func (s *Store) Latest(ctx context.Context, q ingest.LatestQuery) iter.Seq2[ingest.Point, error] {
	if err := rows.CheckLatest(q); err != nil {
		return rows.Failed[ingest.Point](fmt.Errorf("sqlite: latest: %w", err))
	}
	sqlText, args := rows.LatestQuery(q, placeholder)
	return query(ctx, s, "latest", sqlText, args, func(r *sql.Rows) (ingest.Point, error) {
		var p ingest.Point
		var v sql.NullFloat64
		var qual int64
		err := r.Scan(&p.Gateway, &p.Sensor, &p.Metric, &p.TS, &v, &qual, &p.Unit)
		p.Value, p.Quality = float(v), outpost.Quality(qual)
		return p, err
	})
}

// Series implements ingest.Store. Each label of the filter is one
// lookup in the series' labels (json_each).
func (s *Store) Series(ctx context.Context, q ingest.SeriesQuery) iter.Seq2[ingest.SeriesInfo, error] {
	if err := rows.CheckSeries(q); err != nil {
		return rows.Failed[ingest.SeriesInfo](fmt.Errorf("sqlite: series: %w", err))
	}
	sqlText, args := rows.SeriesQuery(q, placeholder, func(ls map[string]string, arg func(any) string) string {
		conds := make([]string, 0, len(ls))
		for _, k := range slices.Sorted(maps.Keys(ls)) {
			conds = append(conds, "EXISTS (SELECT 1 FROM json_each(labels) WHERE key = "+arg(k)+" AND value = "+arg(ls[k])+")")
		}
		return strings.Join(conds, " AND ")
	})
	return query(ctx, s, "series", sqlText, args, func(r *sql.Rows) (ingest.SeriesInfo, error) {
		return rows.ScanSeries(r.Scan)
	})
}

// Gaps implements ingest.Store.
func (s *Store) Gaps(ctx context.Context, q ingest.GapQuery) iter.Seq2[ingest.Gap, error] {
	if err := rows.CheckGaps(q); err != nil {
		return rows.Failed[ingest.Gap](fmt.Errorf("sqlite: gaps: %w", err))
	}
	sqlText, args := rows.GapsQuery(q, placeholder)
	return query(ctx, s, "gaps", sqlText, args, func(r *sql.Rows) (ingest.Gap, error) {
		return rows.ScanGap(r.Scan)
	})
}

func placeholder(int) string { return "?" }

// query runs sqlText on a reader connection when ranged over and yields
// each row as scan reads it, until the rows end, the loop breaks, or a
// failure, which it yields last, prefixed with what. The connection
// returns to the pool when the loop ends.
func query[T any](ctx context.Context, s *Store, what, sqlText string, args []any, scan func(*sql.Rows) (T, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		r, err := s.r.QueryContext(ctx, sqlText, args...)
		if err != nil {
			yield(zero, fmt.Errorf("sqlite: %s: %w", what, err))
			return
		}
		defer func() {
			if err := r.Close(); err != nil {
				s.log.Debug().Err(err).Str("query", what).Msg("close rows")
			}
		}()
		for r.Next() {
			v, err := scan(r)
			if err != nil {
				yield(zero, fmt.Errorf("sqlite: %s: %w", what, err))
				return
			}
			if !yield(v, nil) {
				return
			}
		}
		if err := r.Err(); err != nil {
			yield(zero, fmt.Errorf("sqlite: %s: %w", what, err))
		}
	}
}

// Counts implements ingest.Store. DistinctReadings unpacks every chunk;
// it is for tests and operators, not for a hot path.
func (s *Store) Counts(ctx context.Context) (ingest.Counts, error) {
	var c ingest.Counts
	err := s.r.QueryRowContext(ctx, `SELECT
		(SELECT coalesce(sum(n), 0) FROM chunks) + (SELECT count(*) FROM recent),
		(SELECT count(*) FROM (SELECT DISTINCT gateway, sensor, metric, ts FROM readings)),
		(SELECT count(*) FROM alerts),
		(SELECT count(*) FROM batches),
		(SELECT count(*) FROM dead_letters),
		(SELECT count(*) FROM gaps),
		(SELECT coalesce(sum(count), 0) FROM gaps WHERE kind = ?),
		(SELECT coalesce(sum(count), 0) FROM gaps WHERE kind = ?)`,
		rows.Kind(outpost.KindTelemetry), rows.Kind(outpost.KindAlert)).
		Scan(&c.Readings, &c.DistinctReadings, &c.Alerts, &c.Batches, &c.DeadLetters, &c.Gaps, &c.LostReadings, &c.LostAlerts)
	if err != nil {
		return c, fmt.Errorf("sqlite: counts: %w", err)
	}
	return c, nil
}

// Close closes the statements and the database. It is idempotent.
func (s *Store) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.insBatch, s.newSeries, s.insChunk, s.insPending, s.insRecent, s.upSeries, s.insAlert, s.insGap} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// value is how a float goes in: SQLite has no NaN (it would store NULL
// anyway), so NaN is NULL explicitly.
func value(v float64) any {
	if math.IsNaN(v) {
		return nil
	}
	return v
}

func float(v sql.NullFloat64) float64 {
	if !v.Valid {
		return math.NaN()
	}
	return v.Float64
}

// classify wraps err with ingest.ErrInvalidData when SQLite refused the
// data itself (constraint, too big, type mismatch).
func classify(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_MISMATCH:
			return fmt.Errorf("%w: %w", ingest.ErrInvalidData, err)
		}
	}
	return err
}
