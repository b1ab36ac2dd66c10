package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/layout"
)

// builders hold the layout.Builder of each telemetry batch of a commit.
// A batch is built before the transaction, so that encoding runs while
// another commit holds the writer.
var builders = sync.Pool{New: func() any { return new(layout.Builder) }}

// writeTelemetry writes a built batch whose batches row is new: its
// series (made if new, their ids added to made), chunks, rows and the
// series' first and newest readings.
func (s *Store) writeTelemetry(ctx context.Context, tx *sql.Tx, b *outpost.Batch, bd *layout.Builder, made map[ingest.SeriesKey]int64) error {
	// Chunks and rows name a series by its first index in b.Series, as
	// its update does.
	ids := make([]int64, len(b.Series))
	for _, u := range bd.Series {
		sr := &b.Series[u.Series]
		k := ingest.SeriesKey{Gateway: b.Gateway, Sensor: sr.Sensor, Metric: sr.Metric}
		id, ok := s.series.Get(k)
		if !ok {
			id, ok = made[k]
		}
		if !ok {
			if err := tx.StmtContext(ctx, s.newSeries).QueryRowContext(ctx, b.Gateway, sr.Sensor, sr.Metric, u.Unit).Scan(&id); err != nil {
				return fmt.Errorf("insert series: %w", classify(err))
			}
			made[k] = id
		}
		ids[u.Series] = id
	}
	ins, pend := tx.StmtContext(ctx, s.insChunk), tx.StmtContext(ctx, s.insPending)
	for i := range bd.Chunks {
		c := &bd.Chunks[i]
		if _, err := ins.ExecContext(ctx, ids[c.Series], c.TMin, c.TMax, c.N, bd.Data(c)); err != nil {
			return fmt.Errorf("insert chunk: %w", classify(err))
		}
		if _, err := pend.ExecContext(ctx, ids[c.Series], layout.WindowOf(c.TMin)); err != nil {
			return fmt.Errorf("insert pending: %w", classify(err))
		}
	}
	ins = tx.StmtContext(ctx, s.insRecent)
	for _, r := range bd.Rows {
		if _, err := ins.ExecContext(ctx, ids[r.Series], r.TS, value(r.Value), int64(r.Quality)); err != nil {
			return fmt.Errorf("insert recent: %w", classify(err))
		}
	}
	up := tx.StmtContext(ctx, s.upSeries)
	for _, u := range bd.Series {
		res, err := up.ExecContext(ctx, ids[u.Series], u.Unit, u.First, u.Last, value(u.LastValue), int64(u.LastQuality))
		if err != nil {
			return fmt.Errorf("update series: %w", classify(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("update series: %w", err)
		} else if n != 1 {
			// Not ours to explain (the file replaced under a running
			// store?): forget every id, and let the retry look them up.
			s.series.Reset()
			return fmt.Errorf("update series: series %d is gone", ids[u.Series])
		}
	}
	return nil
}

// Statements of the telemetry commit, prepared on the writer.
const (
	// A new series takes its sensor's labels (SetGatewayStatus).
	sqlNewSeries = `INSERT INTO series (gateway, sensor, metric, unit, labels) VALUES (?1, ?2, ?3, ?4,
			coalesce((SELECT labels FROM sensor_labels WHERE gateway = ?1 AND sensor = ?2), '{}'))
		ON CONFLICT (gateway, sensor, metric) DO UPDATE SET unit = excluded.unit RETURNING id`
	sqlInsChunk   = `INSERT INTO chunks (series_id, t_min, t_max, n, data) VALUES (?, ?, ?, ?, ?)`
	sqlInsPending = `INSERT INTO pending (series_id, win) VALUES (?, ?) ON CONFLICT DO NOTHING`
	sqlInsRecent  = `INSERT INTO recent (series_id, ts, value, quality) VALUES (?, ?, ?, ?)`
	// The first reading moves back; the newest moves forward only, and
	// an equal timestamp replaces it (the later commit wins). A NULL
	// unit keeps the one stored.
	sqlUpSeries = `UPDATE series SET unit = coalesce(?2, unit),
		first_ts = CASE WHEN first_ts IS NULL OR ?3 < first_ts THEN ?3 ELSE first_ts END,
		last_value = CASE WHEN last_ts IS NULL OR ?4 >= last_ts THEN ?5 ELSE last_value END,
		last_quality = CASE WHEN last_ts IS NULL OR ?4 >= last_ts THEN ?6 ELSE last_quality END,
		last_ts = CASE WHEN last_ts IS NULL OR ?4 >= last_ts THEN ?4 ELSE last_ts END
		WHERE id = ?1`
)
