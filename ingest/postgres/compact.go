package postgres

import (
	"bytes"
	"context"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/chunk"
	"github.com/outposthq/outpost/ingest/internal/layout"
)

// compactLock is the advisory lock key of the compactor: the ingest
// process that holds it compacts, the others skip their turn.
const compactLock = schemaLock + 1

// compactUnits bounds the (series, window) pairs one compaction
// transaction folds.
const compactUnits = 256

// smallChunk is the size below which a chunk of a window being compacted
// is merged with the window's rows rather than left as it is.
const smallChunk = 4096

var _ ingest.Compactor = (*Store)(nil)

// Compact implements ingest.Compactor: it folds the recent rows of every
// window that ends at or before before (unix ns) into chunks, merging
// them with the small chunks already in that window, a transaction per
// compactUnits (series, window) pairs. Only one ingest process compacts
// at a time (an advisory lock); in the others Compact returns at once
// with nothing done.
func (s *Store) Compact(ctx context.Context, before int64) (ingest.CompactStats, error) {
	var st ingest.CompactStats
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return st, fmt.Errorf("postgres: compact: %w", err)
	}
	defer conn.Release()
	var leader bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", int64(compactLock)).Scan(&leader); err != nil {
		return st, fmt.Errorf("postgres: compact: %w", err)
	}
	if !leader {
		return st, nil
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(compactLock)); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) // a closed session drops its locks
		}
	}()
	st.Leader = true
	before = layout.WindowOf(before)
	for {
		var n int
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var err error
			n, err = s.compactRound(ctx, tx, before, &st)
			return err
		})
		if err != nil {
			return st, fmt.Errorf("postgres: compact: %w", classify(err))
		}
		if n < compactUnits {
			return st, nil
		}
	}
}

// unit is one series' window being compacted.
type unit struct {
	series, window int64
}

// compactRound folds up to compactUnits (series, window) pairs and
// reports how many it found.
func (s *Store) compactRound(ctx context.Context, tx pgx.Tx, before int64, st *ingest.CompactStats) (int, error) {
	// The oldest rows first; a pair is all its rows in the window.
	// Rows dated within a window of int64's start (never a real time)
	// stay where they are: their window's start does not fit a bigint.
	rs, err := tx.Query(ctx, `SELECT DISTINCT series_id, ts - ((ts % $2) + $2) % $2 AS w FROM recent
		WHERE ts < $1 AND ts >= $4 ORDER BY series_id, w LIMIT $3`, before, layout.Window, compactUnits, int64(math.MinInt64)+layout.Window)
	if err != nil {
		return 0, err
	}
	units, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) (unit, error) {
		var u unit
		err := r.Scan(&u.series, &u.window)
		return u, err
	})
	if err != nil {
		return 0, err
	}
	for _, u := range units {
		if err := s.compactUnit(ctx, tx, u, st); err != nil {
			return 0, err
		}
	}
	return len(units), nil
}

// compactUnit folds one series' window: its rows and small chunks become
// chunks of at most chunk.MaxReadings readings, in time order.
func (s *Store) compactUnit(ctx context.Context, tx pgx.Tx, u unit, st *ingest.CompactStats) error {
	end := u.window + layout.Window
	if end < u.window {
		end = math.MaxInt64 // the last window
	}
	var runs []layout.Run
	var tids []pgtype.TID
	cs, err := tx.Query(ctx, `SELECT ctid, data FROM chunks WHERE series_id = $1 AND t_min >= $2 AND t_min < $3 AND n < $4
		ORDER BY t_min FOR UPDATE`, u.series, u.window, end, smallChunk)
	if err != nil {
		return err
	}
	for cs.Next() {
		var tid pgtype.TID
		var data []byte
		if err := cs.Scan(&tid, &data); err != nil {
			cs.Close()
			return err
		}
		var r layout.Run
		if r.TS, r.Values, r.Quality, err = chunk.Decode(data, nil, nil, nil); err != nil {
			cs.Close()
			return fmt.Errorf("%w: chunk of series %d: %v", ingest.ErrInvalidData, u.series, err)
		}
		if r.Quality == nil {
			r.Quality = make([]byte, len(r.TS))
		}
		runs, tids = append(runs, r), append(tids, tid)
	}
	cs.Close()
	if err := cs.Err(); err != nil {
		return err
	}
	var rowTIDs []pgtype.TID
	var row layout.Run
	rs, err := tx.Query(ctx, `SELECT ctid, ts, value, quality FROM recent WHERE series_id = $1 AND ts >= $2 AND ts < $3
		ORDER BY ts FOR UPDATE`, u.series, u.window, end)
	if err != nil {
		return err
	}
	for rs.Next() {
		var tid pgtype.TID
		var ts int64
		var v float64
		var q int16
		if err := rs.Scan(&tid, &ts, &v, &q); err != nil {
			rs.Close()
			return err
		}
		rowTIDs = append(rowTIDs, tid)
		row.TS, row.Values, row.Quality = append(row.TS, ts), append(row.Values, v), append(row.Quality, byte(q))
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return err
	}
	if len(row.TS) == 0 {
		return nil
	}
	runs = append(runs, row)
	var mins, maxs []int64
	var ns []int32
	var datas [][]byte
	err = layout.Rechunk(runs, u.window, end, func(tMin, tMax int64, n int, data []byte) error {
		mins, maxs, ns, datas = append(mins, tMin), append(maxs, tMax), append(ns, int32(n)), append(datas, bytes.Clone(data))
		return nil
	})
	if err != nil {
		return err
	}
	ids := make([]int64, len(ns))
	for i := range ids {
		ids[i] = u.series
	}
	if _, err := tx.Exec(ctx, `INSERT INTO chunks (series_id, t_min, t_max, n, data)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::integer[], $5::bytea[])`, ids, mins, maxs, ns, datas); err != nil {
		return err
	}
	if len(tids) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM chunks WHERE ctid = ANY($1::tid[])`, tids); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM recent WHERE ctid = ANY($1::tid[])`, rowTIDs); err != nil {
		return err
	}
	st.Windows++
	st.Rows += int64(len(rowTIDs))
	st.ChunksMerged += int64(len(tids))
	st.ChunksWritten += int64(len(ns))
	return nil
}
