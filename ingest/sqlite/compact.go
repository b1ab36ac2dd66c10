package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strconv"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/chunk"
	"github.com/outposthq/outpost/ingest/internal/layout"
)

// compactUnits bounds the (series, window) pairs one compaction
// transaction folds: the writer is held that long, and commits wait.
const compactUnits = 256

// smallChunk is the size below which a chunk of a window being compacted
// is merged with the window's rows rather than left as it is.
const smallChunk = 4096

var _ ingest.Compactor = (*Store)(nil)

// Compact implements ingest.Compactor, as ingest/postgres does: it folds
// the recent rows of every window that ends at or before before (unix
// ns) into chunks, merging them with the window's chunks of fewer than
// smallChunk readings, a write transaction per compactUnits (series,
// window) pairs. A transaction holds the file's one writer, so a commit,
// of this process or another, waits for it or comes before it, and what
// it reads no one else changes until it ends. Processes sharing a file
// therefore need no lock of their own: each compacts (Leader is always
// true), and what one folded the next does not find.
func (s *Store) Compact(ctx context.Context, before int64) (ingest.CompactStats, error) {
	st := ingest.CompactStats{Leader: true}
	before = layout.WindowOf(before)
	for {
		var round ingest.CompactStats
		var n int
		err := s.tx(ctx, func(tx *sql.Tx) (err error) {
			n, err = s.compactRound(ctx, tx, before, &round)
			return err
		})
		if err != nil {
			return st, fmt.Errorf("sqlite: compact: %w", err)
		}
		st.Windows += round.Windows
		st.Rows += round.Rows
		st.ChunksMerged += round.ChunksMerged
		st.ChunksWritten += round.ChunksWritten
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
func (s *Store) compactRound(ctx context.Context, tx *sql.Tx, before int64, st *ingest.CompactStats) (int, error) {
	// Rows dated within a window of int64's start (never a real time)
	// stay where they are: their window's start does not fit an INTEGER.
	rs, err := tx.QueryContext(ctx, `SELECT DISTINCT series_id, ts - ((ts % ?2) + ?2) % ?2 AS w FROM recent
		WHERE ts < ?1 AND ts >= ?4 ORDER BY series_id, w LIMIT ?3`, before, layout.Window, compactUnits, int64(math.MinInt64)+layout.Window)
	if err != nil {
		return 0, err
	}
	var units []unit
	for rs.Next() {
		var u unit
		if err := rs.Scan(&u.series, &u.window); err != nil {
			rs.Close()
			return 0, err
		}
		units = append(units, u)
	}
	if err := rs.Close(); err != nil {
		return 0, err
	}
	if err := rs.Err(); err != nil {
		return 0, err
	}
	c := compaction{insChunk: tx.StmtContext(ctx, s.insChunk)}
	for _, u := range units {
		if err := c.unit(ctx, tx, u, st); err != nil {
			return 0, fmt.Errorf("series %d, window at %d: %w", u.series, u.window, err)
		}
	}
	return len(units), nil
}

// compaction holds the buffers of one round's units.
type compaction struct {
	insChunk      *sql.Stmt
	runs          []layout.Run
	chunkIDs      []int64 // rowids of the chunks read
	rowIDs        []int64 // rowids of the recent rows read
	row           layout.Run
	list          []byte // a JSON array of rowids
	chunkData     sql.RawBytes
	value         sql.NullFloat64
	rowid, ts, qu int64
}

// unit folds one series' window: its rows and small chunks become chunks
// of at most chunk.MaxReadings readings, in time order, and what was read
// is deleted by rowid.
func (c *compaction) unit(ctx context.Context, tx *sql.Tx, u unit, st *ingest.CompactStats) error {
	end := u.window + layout.Window
	if end < u.window {
		end = math.MaxInt64 // the last window
	}
	c.runs, c.chunkIDs, c.rowIDs = c.runs[:0], c.chunkIDs[:0], c.rowIDs[:0]
	cs, err := tx.QueryContext(ctx, `SELECT rowid, data FROM chunks WHERE series_id = ? AND t_min >= ? AND t_min < ? AND n < ?
		ORDER BY t_min, rowid`, u.series, u.window, end, smallChunk)
	if err != nil {
		return err
	}
	for cs.Next() {
		if err := cs.Scan(&c.rowid, &c.chunkData); err != nil {
			cs.Close()
			return err
		}
		var r layout.Run
		if r.TS, r.Values, r.Quality, err = chunk.Decode(c.chunkData, nil, nil, nil); err != nil {
			cs.Close()
			return fmt.Errorf("%w: chunk %d: %v", ingest.ErrInvalidData, c.rowid, err)
		}
		if len(r.Quality) == 0 {
			r.Quality = nil // all good
		}
		c.runs, c.chunkIDs = append(c.runs, r), append(c.chunkIDs, c.rowid)
	}
	if err := cs.Close(); err != nil {
		return err
	}
	if err := cs.Err(); err != nil {
		return err
	}
	// Equal timestamps keep the order they were committed in.
	rs, err := tx.QueryContext(ctx, `SELECT rowid, ts, value, quality FROM recent WHERE series_id = ? AND ts >= ? AND ts < ?
		ORDER BY ts, rowid`, u.series, u.window, end)
	if err != nil {
		return err
	}
	c.row.TS, c.row.Values, c.row.Quality = c.row.TS[:0], c.row.Values[:0], c.row.Quality[:0]
	for rs.Next() {
		if err := rs.Scan(&c.rowid, &c.ts, &c.value, &c.qu); err != nil {
			rs.Close()
			return err
		}
		if c.qu < 0 || c.qu > int64(outpost.QualityBad) {
			rs.Close()
			return fmt.Errorf("%w: recent row %d: quality %d", ingest.ErrInvalidData, c.rowid, c.qu)
		}
		c.rowIDs = append(c.rowIDs, c.rowid)
		c.row.TS, c.row.Values, c.row.Quality = append(c.row.TS, c.ts), append(c.row.Values, float(c.value)), append(c.row.Quality, byte(c.qu))
	}
	if err := rs.Close(); err != nil {
		return err
	}
	if err := rs.Err(); err != nil {
		return err
	}
	if len(c.rowIDs) == 0 {
		return nil
	}
	c.runs = append(c.runs, c.row)
	var written int64
	err = layout.Rechunk(c.runs, u.window, end, func(tMin, tMax int64, n int, data []byte) error {
		written++
		_, err := c.insChunk.ExecContext(ctx, u.series, tMin, tMax, n, data)
		return err
	})
	if err != nil {
		return fmt.Errorf("write chunks: %w", err)
	}
	if err := c.delete(ctx, tx, "chunks", c.chunkIDs); err != nil {
		return err
	}
	if err := c.delete(ctx, tx, "recent", c.rowIDs); err != nil {
		return err
	}
	st.Windows++
	st.Rows += int64(len(c.rowIDs))
	st.ChunksMerged += int64(len(c.chunkIDs))
	st.ChunksWritten += written
	return nil
}

// delete deletes the rows of table with the rowids ids, in one statement,
// and checks that each was there.
func (c *compaction) delete(ctx context.Context, tx *sql.Tx, table string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	c.list = append(c.list[:0], '[')
	for i, id := range ids {
		if i > 0 {
			c.list = append(c.list, ',')
		}
		c.list = strconv.AppendInt(c.list, id, 10)
	}
	c.list = append(c.list, ']')
	res, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE rowid IN (SELECT value FROM json_each(?))`, string(c.list))
	if err != nil {
		return fmt.Errorf("delete from %s: %w", table, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete from %s: %w", table, err)
	} else if n != int64(len(ids)) {
		return fmt.Errorf("delete from %s: %d rows of the %d read", table, n, len(ids))
	}
	return nil
}
