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

// compactSeries bounds the series whose closed windows one compaction
// transaction folds.
const compactSeries = 1024

// smallChunk is the size below which a chunk of a window being compacted
// is merged with the window's rows rather than left as it is.
const smallChunk = 4096

var _ ingest.Compactor = (*Store)(nil)

// Compact implements ingest.Compactor: it folds the recent rows of every
// window that ends at or before before (unix ns) into chunks, merging
// them with the small chunks already in that window, a transaction per
// compactSeries series. Only one ingest process compacts
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
	// Round by round through the series that have rows to fold, in id
	// order: the row table is the work queue, read by its index.
	after := int64(math.MinInt64)
	for {
		var n int
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var err error
			n, after, err = s.compactRound(ctx, tx, before, after, &st)
			return err
		})
		if err != nil {
			return st, fmt.Errorf("postgres: compact: %w", classify(err))
		}
		if n < compactSeries {
			return st, nil
		}
	}
}

// unit is one series' window being compacted.
type unit struct {
	series, window int64
}

// compactRound folds the rows before before of the next compactSeries
// series after the series id after, with the small chunks of the same
// windows, and reports how many series it took and the last one's id.
func (s *Store) compactRound(ctx context.Context, tx pgx.Tx, before, after int64, st *ingest.CompactStats) (int, int64, error) {
	// Rows dated within a window of int64's start (never a real time)
	// stay where they are: their window's start does not fit a bigint.
	minTS := int64(math.MinInt64) + layout.Window
	rs, err := tx.Query(ctx, `SELECT DISTINCT series_id FROM recent WHERE series_id > $1 AND ts < $2 AND ts >= $3
		ORDER BY series_id LIMIT $4`, after, before, minTS, compactSeries)
	if err != nil {
		return 0, after, err
	}
	series, err := pgx.CollectRows(rs, pgx.RowTo[int64])
	if err != nil || len(series) == 0 {
		return 0, after, err
	}
	last := series[len(series)-1]
	// Their rows, by series and time; each (series, window) is a unit.
	idx := map[unit]int{}
	var units []unit
	var rowRuns []layout.Run
	var rowTIDs []pgtype.TID
	minW, maxW := int64(math.MaxInt64), int64(math.MinInt64)
	rr, err := tx.Query(ctx, `SELECT ctid, series_id, ts, value, quality FROM recent
		WHERE series_id = ANY($1) AND ts < $2 AND ts >= $3 ORDER BY series_id, ts FOR UPDATE`, series, before, minTS)
	if err != nil {
		return 0, after, err
	}
	for rr.Next() {
		var tid pgtype.TID
		var id, ts int64
		var v float64
		var q int16
		if err := rr.Scan(&tid, &id, &ts, &v, &q); err != nil {
			rr.Close()
			return 0, after, err
		}
		u := unit{id, layout.WindowOf(ts)}
		i, ok := idx[u]
		if !ok {
			i = len(units)
			idx[u] = i
			units, rowRuns = append(units, u), append(rowRuns, layout.Run{})
			minW, maxW = min(minW, u.window), max(maxW, u.window)
		}
		r := &rowRuns[i]
		r.TS, r.Values, r.Quality = append(r.TS, ts), append(r.Values, v), append(r.Quality, byte(q))
		rowTIDs = append(rowTIDs, tid)
	}
	rr.Close()
	if err := rr.Err(); err != nil {
		return 0, after, err
	}
	// The small chunks of those series in those windows' span; only
	// those of a unit's window are merged.
	maxEnd := maxW + layout.Window
	if maxEnd < maxW {
		maxEnd = math.MaxInt64
	}
	runs := make([][]layout.Run, len(units))
	var chunkTIDs []pgtype.TID
	cs, err := tx.Query(ctx, `SELECT ctid, series_id, t_min, data FROM chunks
		WHERE series_id = ANY($1) AND t_min >= $2 AND t_min < $3 AND n < $4 ORDER BY series_id, t_min FOR UPDATE`,
		series, minW, maxEnd, smallChunk)
	if err != nil {
		return 0, after, err
	}
	for cs.Next() {
		var tid pgtype.TID
		var id, tMin int64
		var data []byte
		if err := cs.Scan(&tid, &id, &tMin, &data); err != nil {
			cs.Close()
			return 0, after, err
		}
		i, ok := idx[unit{id, layout.WindowOf(tMin)}]
		if !ok {
			continue // a window without rows to fold: left as it is
		}
		var r layout.Run
		if r.TS, r.Values, r.Quality, err = chunk.Decode(data, nil, nil, nil); err != nil {
			cs.Close()
			return 0, after, fmt.Errorf("%w: chunk of series %d: %v", ingest.ErrInvalidData, id, err)
		}
		if r.Quality == nil {
			r.Quality = make([]byte, len(r.TS))
		}
		runs[i] = append(runs[i], r)
		chunkTIDs = append(chunkTIDs, tid)
	}
	cs.Close()
	if err := cs.Err(); err != nil {
		return 0, after, err
	}
	var ids, mins, maxs []int64
	var ns []int32
	var datas [][]byte
	for i, u := range units {
		end := u.window + layout.Window
		if end < u.window {
			end = math.MaxInt64 // the last window
		}
		err := layout.Rechunk(append(runs[i], rowRuns[i]), u.window, end, func(tMin, tMax int64, n int, data []byte) error {
			ids, mins, maxs = append(ids, u.series), append(mins, tMin), append(maxs, tMax)
			ns, datas = append(ns, int32(n)), append(datas, bytes.Clone(data))
			return nil
		})
		if err != nil {
			return 0, after, err
		}
		st.Windows++
		st.ChunksMerged += int64(len(runs[i]))
	}
	if _, err := tx.Exec(ctx, `INSERT INTO chunks (series_id, t_min, t_max, n, data)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::integer[], $5::bytea[])`, ids, mins, maxs, ns, datas); err != nil {
		return 0, after, err
	}
	if len(chunkTIDs) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM chunks WHERE ctid = ANY($1::tid[])`, chunkTIDs); err != nil {
			return 0, after, err
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM recent WHERE ctid = ANY($1::tid[])`, rowTIDs); err != nil {
		return 0, after, err
	}
	st.Rows += int64(len(rowTIDs))
	st.ChunksWritten += int64(len(ns))
	return len(series), last, nil
}
