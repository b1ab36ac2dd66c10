package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/chunk"
	"github.com/outposthq/outpost/ingest/internal/layout"
	"github.com/outposthq/outpost/ingest/internal/rollup"
)

// compactUnits bounds the (series, window) pairs one compaction
// transaction folds: the writer is held that long, and commits wait.
const compactUnits = 256

var _ ingest.Compactor = (*Store)(nil)

// Compact implements ingest.Compactor, as ingest/postgres does: a window
// that ends at or before before (unix ns) and holds rows of the recent
// table or is marked pending (it got a chunk) is folded: its rows and
// small chunks rewritten as chunks, its rollup rows computed anew from
// all its readings; a write transaction per compactUnits windows, in
// (series, window) order. A transaction holds the file's one writer, so a
// commit, of this process or another, waits for it or comes before it,
// and what it reads no one else changes until it ends. Processes sharing
// a file therefore need no lock of their own: each compacts (Leader is
// always true), and what one folded the next does not find.
func (s *Store) Compact(ctx context.Context, before int64) (ingest.CompactStats, error) {
	st := ingest.CompactStats{Leader: true}
	before = layout.WindowOf(before)
	after := unit{math.MinInt64, math.MinInt64}
	var c compaction
	for {
		var n int
		err := s.tx(ctx, func(tx *sql.Tx) (err error) {
			n, after, err = s.compactRound(ctx, tx, &c, before, after, &st)
			return err
		})
		if err != nil {
			return st, fmt.Errorf("sqlite: compact: %w", err)
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

// compactRound folds up to compactUnits (series, window) pairs after
// after and reports how many it found and the last.
func (s *Store) compactRound(ctx context.Context, tx *sql.Tx, c *compaction, before int64, after unit, st *ingest.CompactStats) (int, unit, error) {
	rs, err := tx.QueryContext(ctx, `SELECT series_id, w FROM (
			SELECT series_id, win AS w FROM pending WHERE win < ?1
			UNION SELECT DISTINCT series_id, ts - ((ts % ?2) + ?2) % ?2 FROM recent WHERE ts < ?1 AND ts >= ?4)
		WHERE (series_id, w) > (?5, ?6) ORDER BY series_id, w LIMIT ?3`,
		before, layout.Window, compactUnits, layout.MinTS, after.series, after.window)
	if err != nil {
		return 0, after, err
	}
	var units []unit
	for rs.Next() {
		var u unit
		if err := rs.Scan(&u.series, &u.window); err != nil {
			rs.Close()
			return 0, after, err
		}
		units = append(units, u)
	}
	if err := rs.Close(); err != nil {
		return 0, after, err
	}
	if err := rs.Err(); err != nil {
		return 0, after, err
	}
	if len(units) == 0 {
		return 0, after, nil
	}
	c.insChunk = tx.StmtContext(ctx, s.insChunk)
	// A work per series' span (day): the units come in order.
	for lo := 0; lo < len(units); {
		hi := lo + 1
		for hi < len(units) && units[hi].series == units[lo].series && layout.SpanOf(units[hi].window) == layout.SpanOf(units[lo].window) {
			hi++
		}
		if err := c.work(ctx, s, tx, units[lo:hi], before, st); err != nil {
			return 0, after, fmt.Errorf("series %d, windows from %d: %w", units[lo].series, units[lo].window, err)
		}
		lo = hi
	}
	return len(units), units[len(units)-1], nil
}

// compaction holds the buffers of one round's works.
type compaction struct {
	insChunk      *sql.Stmt
	runs          []layout.Run
	chunkIDs      []int64 // rowids of the chunks read to rewrite
	rowIDs        []int64 // rowids of the recent rows read
	row           layout.Run
	wins          []int64         // the units' windows
	rolls         []rollup.Window // and their rollups
	minutes       []rollup.Agg
	list          []byte // a JSON array of rowids
	chunkData     sql.RawBytes
	value         sql.NullFloat64
	rowid, ts, qu int64
	tMin, tMax, n int64
}

// roll returns the rollup of the window of ts, nil if it is not a
// unit's.
func (c *compaction) roll(ts int64) *rollup.Window {
	if i, ok := slices.BinarySearch(c.wins, layout.WindowOf(ts)); ok {
		return &c.rolls[i]
	}
	return nil
}

// work folds units, the windows of one series in one span (a day), in
// order: their rows, the small chunks that overlap them and the closed
// sparse chunks of the span (layout.SparseChunk) become chunks
// (layout.Rechunk), what was read is deleted by rowid, and the windows'
// rollup rows are replaced.
func (c *compaction) work(ctx context.Context, s *Store, tx *sql.Tx, units []unit, before int64, st *ingest.CompactStats) error {
	series := units[0].series
	span := layout.SpanOf(units[0].window)
	spanEnd := rollup.End(span, layout.Span)
	lo, hi := units[0].window, rollup.End(units[len(units)-1].window, layout.Window)
	c.runs, c.chunkIDs, c.rowIDs = c.runs[:0], c.chunkIDs[:0], c.rowIDs[:0]
	c.wins = c.wins[:0]
	c.rolls = slices.Grow(c.rolls[:0], len(units))[:len(units)]
	for i, u := range units {
		c.wins = append(c.wins, u.window)
		c.rolls[i].Reset(u.window)
		if _, err := tx.ExecContext(ctx, `DELETE FROM pending WHERE series_id = ? AND win = ?`, u.series, u.window); err != nil {
			return err
		}
	}
	// Integer division makes the windows of a chunk's ends: told apart
	// right for every time after 1970, which is all it is needed for.
	cs, err := tx.QueryContext(ctx, `SELECT rowid, t_min, t_max, n, data FROM chunks WHERE series_id = ?1 AND t_min >= ?2 AND t_min < ?3
		AND (t_min < ?5 AND t_max >= ?4 OR t_max < ?6 AND (n < ?7 OR t_min / ?8 <> t_max / ?8))
		ORDER BY t_min, rowid`, series, span, spanEnd, lo, hi, before, layout.SparseChunk, layout.Window)
	if err != nil {
		return err
	}
	held := 0
	for cs.Next() {
		if err := cs.Scan(&c.rowid, &c.tMin, &c.tMax, &c.n, &c.chunkData); err != nil {
			cs.Close()
			return err
		}
		var r layout.Run
		if r.TS, r.Values, r.Quality, err = chunk.Decode(c.chunkData, nil, nil, nil); err != nil {
			st.Damaged++
			s.log.Error().Err(err).Int64("series", series).Int64("chunk", c.rowid).
				Msg("compact: a damaged chunk is left as it is and out of the rollups")
			continue
		}
		for i, t := range r.TS {
			if roll := c.roll(t); roll != nil {
				q := outpost.QualityGood
				if len(r.Quality) > 0 {
					q = outpost.Quality(r.Quality[i])
				}
				roll.Add(t, r.Values[i], q)
			}
		}
		if c.n < layout.SmallChunk && c.tMax < before && held+len(r.TS) <= chunk.MaxReadings {
			if len(r.Quality) == 0 {
				r.Quality = nil // all good
			}
			c.runs, c.chunkIDs = append(c.runs, r), append(c.chunkIDs, c.rowid)
			held += len(r.TS)
		}
	}
	if err := cs.Close(); err != nil {
		return err
	}
	if err := cs.Err(); err != nil {
		return err
	}
	// The rows of the units' windows. Equal timestamps keep the order
	// they were committed in.
	rs, err := tx.QueryContext(ctx, `SELECT rowid, ts, value, quality FROM recent WHERE series_id = ? AND ts >= ? AND ts < ?
		ORDER BY ts, rowid`, series, lo, hi)
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
		roll := c.roll(c.ts)
		if roll == nil {
			continue // a window between the units, left for its own turn
		}
		c.rowIDs = append(c.rowIDs, c.rowid)
		c.row.TS, c.row.Values, c.row.Quality = append(c.row.TS, c.ts), append(c.row.Values, float(c.value)), append(c.row.Quality, byte(c.qu))
		roll.Add(c.ts, float(c.value), outpost.Quality(c.qu))
	}
	if err := rs.Close(); err != nil {
		return err
	}
	if err := rs.Err(); err != nil {
		return err
	}
	// One chunk and no rows: nothing to gain by writing it again.
	if len(c.rowIDs) > 0 || len(c.runs) > 1 {
		if len(c.rowIDs) > 0 {
			c.runs = append(c.runs, c.row)
		}
		var written int64
		err = layout.Rechunk(c.runs, span, spanEnd, func(tMin, tMax int64, n int, data []byte) error {
			written++
			_, err := c.insChunk.ExecContext(ctx, series, tMin, tMax, n, data)
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
		st.Rows += int64(len(c.rowIDs))
		st.ChunksMerged += int64(len(c.chunkIDs))
		st.ChunksWritten += written
	}
	st.Windows += int64(len(units))
	for i, u := range units {
		if err := c.writeRollups(ctx, tx, u, rollup.End(u.window, layout.Window), &c.rolls[i]); err != nil {
			return err
		}
	}
	return nil
}

// writeRollups replaces the unit's rollup rows with those of roll.
func (c *compaction) writeRollups(ctx context.Context, tx *sql.Tx, u unit, end int64, roll *rollup.Window) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM rollup_1h WHERE series_id = ? AND bucket = ?`, u.series, u.window); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM rollup_1m WHERE series_id = ? AND bucket >= ? AND bucket < ?`, u.series, u.window, end); err != nil {
		return err
	}
	h, ok, minutes := roll.Rows(c.minutes)
	c.minutes = minutes
	if !ok {
		return nil
	}
	ins := func(table string, a rollup.Agg) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (series_id, bucket, n, count, min, max, sum, last_ts, last)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, u.series, a.Bucket, a.N, a.Count, value(a.Min), value(a.Max), value(a.Sum), a.LastTS, value(a.Last))
		return err
	}
	if err := ins("rollup_1h", h); err != nil {
		return err
	}
	for _, m := range c.minutes {
		if err := ins("rollup_1m", m); err != nil {
			return err
		}
	}
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
