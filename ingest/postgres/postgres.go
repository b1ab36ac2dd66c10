// Package postgres is the PostgreSQL ingest store, over a pgx connection
// pool. Readings and gaps go in with COPY; see package ingest for the
// tables.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/layout"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

// minConns is the pool size used unless the DSN sets pool_max_conns: the
// service's workers plus the HTTP API.
const minConns = 8

// Store is an ingest.Store in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	log    zerolog.Logger
	now    func() time.Time
	series layout.SeriesCache
	parts  partitions
	// legacyUntil: batches made before it may be in the ledger under
	// their time of arrival (moved from an unpartitioned ledger), and are
	// looked up by key alone; math.MinInt64 when there were none.
	legacyUntil int64
}

var _ ingest.Store = (*Store)(nil)

// Open connects to the database at dsn (a postgres:// URL or key=value
// string, with pgxpool's pool_* parameters allowed) and creates the tables
// if they are missing. The Store owns the pool; Close closes it.
//
// On error Open returns a nil Store, having closed the pool. The error
// names the user, database and host but never the password (pgx redacts
// it), and wraps pgx's: *pgconn.ConnectError when the server cannot be
// reached or refuses the login, *pgconn.PgError (SQLSTATE 3D000) for a
// database that does not exist.
func Open(ctx context.Context, dsn string, logger zerolog.Logger) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse dsn: %w", err)
	}
	if !strings.Contains(dsn, "pool_max_conns") && cfg.MaxConns < minConns {
		cfg.MaxConns = minConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, log: logger.With().Str("component", "postgres").Logger(), now: time.Now}
	// The pool connects lazily: connect now, so that an unreachable
	// server or a missing database reads as such, not as a failed BEGIN.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	s.log.Debug().Str("host", cfg.ConnConfig.Host).Str("database", cfg.ConnConfig.Database).Msg("store open")
	return s, nil
}

// inTx runs f in a transaction: committed if f returns nil, rolled back
// otherwise.
func (s *Store) inTx(ctx context.Context, f func(tx pgx.Tx) error) (err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	defer func() {
		if err != nil {
			// The error that matters is f's; a failed rollback on a
			// broken connection is expected and discards the conn.
			if rbErr := tx.Rollback(context.WithoutCancel(ctx)); rbErr != nil && !errors.Is(rbErr, pgx.ErrTxClosed) {
				s.log.Debug().Err(rbErr).Msg("rollback")
			}
		}
	}()
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", classify(err))
	}
	return nil
}

// errDup ends a transaction whose batch is already stored.
var errDup = errors.New("duplicate batch")

// Commit implements ingest.Store.
func (s *Store) Commit(ctx context.Context, b *outpost.Batch, size int) (bool, error) {
	if err := rows.CheckLosses(b); err != nil {
		return false, fmt.Errorf("postgres: %w: %v", ingest.ErrInvalidData, err)
	}
	now := s.now().UnixNano()
	if b.Kind == outpost.KindTelemetry {
		dup, err := s.commitTelemetry(ctx, []*outpost.Batch{b}, []int{size}, now)
		if err != nil {
			return false, err
		}
		return dup[0], nil
	}
	need := []part{{tBatches, dayOf(b.Created)}}
	switch b.Kind {
	case outpost.KindAlert:
		for i := range b.Alerts {
			need = appendPart(need, part{tAlerts, dayOf(b.Alerts[i].ChangedAt)})
		}
	case outpost.KindLoss:
		need = append(need, part{tGaps, dayOf(now)})
	}
	var err error
	for attempt := 1; attempt <= 2; attempt++ {
		if err = s.ensure(ctx, need); err != nil {
			return false, err
		}
		err = s.commitOther(ctx, b, size, now)
		if !s.partitionGone(err) {
			break
		}
	}
	if errors.Is(err, errDup) {
		return true, nil
	}
	return false, err
}

// commitOther stores an alert or loss batch in one transaction, or
// returns errDup.
func (s *Store) commitOther(ctx context.Context, b *outpost.Batch, size int, now int64) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO batches (gateway, epoch, seq, received_at, n, kind, bytes, created)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8
			WHERE CASE WHEN $8::bigint < $9::bigint
				THEN NOT EXISTS (SELECT FROM batches o WHERE o.created < $9 AND o.gateway = $1 AND o.epoch = $2 AND o.seq = $3)
				ELSE true END
			ON CONFLICT DO NOTHING`,
			b.Gateway, int64(b.Epoch), int64(b.Seq), now, b.Len(), rows.Kind(b.Kind), size, b.Created, s.legacyUntil)
		if err != nil {
			return fmt.Errorf("postgres: insert batch: %w", classify(err))
		}
		if tag.RowsAffected() == 0 {
			return errDup
		}
		switch b.Kind {
		case outpost.KindAlert:
			return s.insertAlerts(ctx, tx, b)
		case outpost.KindLoss:
			return s.insertGaps(ctx, tx, b, now)
		}
		return fmt.Errorf("postgres: %w: batch kind %d", ingest.ErrInvalidData, b.Kind)
	})
}

func (s *Store) insertAlerts(ctx context.Context, tx pgx.Tx, b *outpost.Batch) error {
	var batch pgx.Batch
	for i := range b.Alerts {
		a := &b.Alerts[i]
		labels, err := rows.Labels(a.Labels)
		if err != nil {
			return fmt.Errorf("postgres: alert %d: %w: %v", i, ingest.ErrInvalidData, err)
		}
		annos, err := rows.Annotations(a.Annotations)
		if err != nil {
			return fmt.Errorf("postgres: alert %d: %w: %v", i, ingest.ErrInvalidData, err)
		}
		batch.Queue(`INSERT INTO alerts (gateway, rule, fingerprint, state, severity, value, labels, message, started_at, ts, seq, annotations)
			VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12::jsonb)`,
			b.Gateway, a.Rule, a.Fingerprint, a.State.String(), a.Severity, a.Value, labels, a.Message,
			a.StartedAt, a.ChangedAt, int64(a.Seq), annos)
	}
	if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
		return fmt.Errorf("postgres: insert alerts: %w", classify(err))
	}
	return nil
}

func (s *Store) insertGaps(ctx context.Context, tx pgx.Tx, b *outpost.Batch, receivedAt int64) error {
	src := pgx.CopyFromFunc(func() func() ([]any, error) {
		i := 0
		return func() ([]any, error) {
			if i == len(b.Losses) {
				return nil, nil
			}
			i++
			return rows.GapRow(b, i-1, receivedAt), nil
		}
	}())
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"gaps"}, rows.GapColumns, src); err != nil {
		return fmt.Errorf("postgres: copy gaps: %w", classify(err))
	}
	return nil
}

// DeadLetter implements ingest.Store.
func (s *Store) DeadLetter(ctx context.Context, topic, reason string, payload []byte) error {
	if payload == nil {
		payload = []byte{}
	}
	now := s.now().UnixNano()
	if err := s.ensure(ctx, []part{{tDeadLetters, dayOf(now)}}); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO dead_letters (topic, received_at, reason, payload) VALUES ($1, $2, $3, $4)`,
		topic, now, reason, payload)
	if err != nil {
		return fmt.Errorf("postgres: dead letter: %w", classify(err))
	}
	return nil
}

// SetGatewayStatus implements ingest.Store: RecordGatewayStatus,
// without its answer.
func (s *Store) SetGatewayStatus(ctx context.Context, gateway, state string, at time.Time, payload []byte, labels ingest.SensorLabels) error {
	_, _, err := s.RecordGatewayStatus(ctx, gateway, state, at, payload, labels)
	return err
}

// RecordGatewayStatus implements ingest.StatusRecorder. payload must be
// JSON. In one transaction: the status, and if it is recorded and
// labels is not nil, the gateway's sensor_labels and the labels of its
// series. It holds its gateway's labels lock (labelsLock) exclusively,
// so that a series made meanwhile is either made after it, with the new
// labels, or before its update of series, which then relabels it. The
// row recorded comes back from the upsert itself (RETURNING, the
// payload as jsonb gives it back, as Gateways reads it): an upsert whose
// WHERE keeps the stored row returns none.
func (s *Store) RecordGatewayStatus(ctx context.Context, gateway, state string, at time.Time, payload []byte,
	labels ingest.SensorLabels) (ingest.GatewayStatus, bool, error) {
	sensors, texts, err := rows.SensorLabels(labels)
	if err != nil {
		return ingest.GatewayStatus{}, false, fmt.Errorf("postgres: gateway status: %w: %v", ingest.ErrInvalidData, err)
	}
	var (
		recorded   bool
		updatedAt  int64
		storedText string
	)
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		recorded = false // a retried transaction starts again
		if labels != nil {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, int32(labelsLock), gateway); err != nil {
				return err
			}
		}
		// An undated status (at zero: the broker's last will) comes
		// after the stored one, whatever its time: 1 ns later.
		err := tx.QueryRow(ctx, `INSERT INTO gateways (gateway, state, updated_at, payload)
			VALUES ($1, $2, CASE WHEN $5::boolean THEN $6::bigint ELSE $3::bigint END, $4::jsonb)
			ON CONFLICT (gateway) DO UPDATE SET state = excluded.state, payload = excluded.payload,
				updated_at = CASE WHEN $5::boolean THEN gateways.updated_at + 1 ELSE excluded.updated_at END
			WHERE $5::boolean OR gateways.updated_at <= excluded.updated_at
			RETURNING updated_at, payload::text`,
			gateway, state, at.UnixNano(), string(payload), at.IsZero(), s.now().UnixNano()).Scan(&updatedAt, &storedText)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil // an older status: nothing recorded
		case err != nil:
			return err
		}
		recorded = true
		if labels == nil {
			return nil
		}
		return setSensorLabels(ctx, tx, gateway, sensors, texts)
	})
	if err != nil {
		return ingest.GatewayStatus{}, false, fmt.Errorf("postgres: gateway status: %w", classify(err))
	}
	if !recorded {
		return ingest.GatewayStatus{}, false, nil
	}
	return ingest.GatewayStatus{Gateway: gateway, State: state, UpdatedAt: time.Unix(0, updatedAt).UTC(), Payload: []byte(storedText)}, true, nil
}

// setSensorLabels makes sensors (with labels, JSON objects) the
// gateway's sensor_labels, and relabels its series that change, locked
// in id order as commits lock them.
func setSensorLabels(ctx context.Context, tx pgx.Tx, gateway string, sensors, labels []string) error {
	_, err := tx.Exec(ctx, `DELETE FROM sensor_labels WHERE gateway = $1`, gateway)
	if err == nil {
		_, err = tx.Exec(ctx, `INSERT INTO sensor_labels (gateway, sensor, labels)
			SELECT $1, u.sensor, u.labels::jsonb FROM unnest($2::text[], $3::text[]) AS u(sensor, labels)`,
			gateway, sensors, labels)
	}
	if err == nil {
		_, err = tx.Exec(ctx, `UPDATE series s SET labels = c.labels FROM (
				SELECT s.id, coalesce(l.labels, '{}') AS labels FROM series s
				LEFT JOIN sensor_labels l ON l.gateway = s.gateway AND l.sensor = s.sensor
				WHERE s.gateway = $1 AND s.labels IS DISTINCT FROM coalesce(l.labels, '{}')
				ORDER BY s.id FOR UPDATE OF s) c
			WHERE s.id = c.id`, gateway)
	}
	return err
}

// Gateways implements ingest.Store.
func (s *Store) Gateways(ctx context.Context) iter.Seq2[ingest.GatewayStatus, error] {
	return query(ctx, s, "gateways", `SELECT gateway, state, updated_at, payload::text FROM gateways ORDER BY gateway`, nil,
		func(r pgx.Rows) (ingest.GatewayStatus, error) {
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
		return rows.Failed[ingest.Point](fmt.Errorf("postgres: latest: %w", err))
	}
	sql, args := rows.LatestQuery(q, placeholder)
	return query(ctx, s, "latest", sql, args, func(r pgx.Rows) (ingest.Point, error) {
		var p ingest.Point
		var qual int16
		err := r.Scan(&p.Gateway, &p.Sensor, &p.Metric, &p.TS, &p.Value, &qual, &p.Unit)
		p.Quality = outpost.Quality(qual)
		return p, err
	})
}

// Series implements ingest.Store. The label filter is one jsonb
// containment (labels @> the filter's object).
func (s *Store) Series(ctx context.Context, q ingest.SeriesQuery) iter.Seq2[ingest.SeriesInfo, error] {
	if err := rows.CheckSeries(q); err != nil {
		return rows.Failed[ingest.SeriesInfo](fmt.Errorf("postgres: series: %w", err))
	}
	filter, err := rows.Labels(q.Labels)
	if err != nil {
		return rows.Failed[ingest.SeriesInfo](fmt.Errorf("postgres: series: %w", err))
	}
	sql, args := rows.SeriesQuery(q, placeholder, func(_ map[string]string, arg func(any) string) string {
		return "labels @> " + arg(filter) + "::jsonb"
	})
	return query(ctx, s, "series", sql, args, func(r pgx.Rows) (ingest.SeriesInfo, error) {
		return rows.ScanSeries(r.Scan)
	})
}

// Gaps implements ingest.Store.
func (s *Store) Gaps(ctx context.Context, q ingest.GapQuery) iter.Seq2[ingest.Gap, error] {
	if err := rows.CheckGaps(q); err != nil {
		return rows.Failed[ingest.Gap](fmt.Errorf("postgres: gaps: %w", err))
	}
	sql, args := rows.GapsQuery(q, placeholder)
	return query(ctx, s, "gaps", sql, args, func(r pgx.Rows) (ingest.Gap, error) {
		return rows.ScanGap(r.Scan)
	})
}

func placeholder(n int) string { return "$" + strconv.Itoa(n) }

// query runs sql when ranged over and yields each row as scan reads it,
// until the rows end, the loop breaks, or a failure, which it yields
// last, prefixed with what. Breaking early closes the rows, which reads
// and discards what the server still sends of them (the callers' LIMIT
// keeps that small; a cancelled ctx ends it at once).
func query[T any](ctx context.Context, s *Store, what, sql string, args []any, scan func(pgx.Rows) (T, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		r, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			yield(zero, fmt.Errorf("postgres: %s: %w", what, err))
			return
		}
		defer r.Close()
		for r.Next() {
			v, err := scan(r)
			if err != nil {
				yield(zero, fmt.Errorf("postgres: %s: %w", what, err))
				return
			}
			if !yield(v, nil) {
				return
			}
		}
		if err := r.Err(); err != nil {
			yield(zero, fmt.Errorf("postgres: %s: %w", what, err))
		}
	}
}

// Counts implements ingest.Store. It unpacks every chunk; it is for tests
// and operators, not for a hot path.
func (s *Store) Counts(ctx context.Context) (ingest.Counts, error) {
	var c ingest.Counts
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT coalesce(sum(n), 0)::bigint FROM chunks) + (SELECT coalesce(sum(cardinality(ts)), 0)::bigint FROM staged),
		(SELECT count(*) FROM (SELECT DISTINCT gateway, sensor, metric, ts FROM readings) d),
		(SELECT count(*) FROM alerts),
		(SELECT count(*) FROM batches),
		(SELECT count(*) FROM dead_letters),
		(SELECT count(*) FROM gaps),
		(SELECT coalesce(sum(count), 0)::bigint FROM gaps WHERE kind = $1),
		(SELECT coalesce(sum(count), 0)::bigint FROM gaps WHERE kind = $2)`,
		rows.Kind(outpost.KindTelemetry), rows.Kind(outpost.KindAlert)).
		Scan(&c.Readings, &c.DistinctReadings, &c.Alerts, &c.Batches, &c.DeadLetters, &c.Gaps, &c.LostReadings, &c.LostAlerts)
	if err != nil {
		return c, fmt.Errorf("postgres: counts: %w", err)
	}
	return c, nil
}

// Close closes the pool, waiting for connections in use to be returned.
// It is idempotent.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// classify wraps err with ingest.ErrInvalidData when PostgreSQL refused
// the data itself: a data exception (class 22), an integrity constraint
// (23) or a cardinality violation (21). Anything else may be transient.
func classify(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && len(pe.Code) == 5 {
		switch pe.Code[:2] {
		case "21", "22", "23":
			return fmt.Errorf("%w: %w", ingest.ErrInvalidData, err)
		}
	}
	return err
}
