package postgres

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/chunk"
	"github.com/outposthq/outpost/ingest/internal/layout"
	"github.com/outposthq/outpost/ingest/internal/rollup"
)

// compactLock is the advisory lock key of the compactor: the ingest
// process that holds it compacts, the others skip their turn.
const compactLock = schemaLock + 1

// compactUnits bounds the (series, window) pairs that one compaction
// transaction folds.
const compactUnits = 1024

// Bounds of the readings a round holds in memory to rewrite as chunks:
// small chunks beyond them are left as they are (and still rolled up).
const (
	mergeUnitMax  = chunk.MaxReadings
	mergeRoundMax = 8 << 20
)

var _ ingest.Compactor = (*Store)(nil)

// Compact implements ingest.Compactor. A window is folded when it ends at
// or before before (unix ns) and either holds staged readings or is
// marked pending (a commit wrote a chunk into it): its staged readings
// and small chunks, with the closed sparse chunks of its day, are
// rewritten as chunks (layout.Rechunk: a chunk a day for a sparse
// series), and its rollup rows computed anew from all its readings.
// Staged rows first (a transaction per stagedRound of them, oldest
// windows first), then the pending windows left (a transaction per
// compactUnits). Only one ingest process compacts at a time (an advisory
// lock); in the others Compact returns at once with nothing done.
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
	var c compaction
	// The staged readings, a round of stagedRound staged rows at a
	// time, oldest windows first: the staged table is the work queue,
	// read by its index on win.
	after := group{win: math.MinInt64}
	for {
		var n int
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var err error
			n, err = c.foldStaged(ctx, s, tx, before, &after, &st)
			return err
		})
		if err != nil {
			return st, fmt.Errorf("postgres: compact: %w", classify(err))
		}
		if n == 0 {
			break
		}
	}
	// The pending windows left: those that got chunks and no rows.
	for {
		var n int
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			units, err := pendingUnits(ctx, tx, before)
			if err != nil || len(units) == 0 {
				return err
			}
			n = len(units)
			return c.fold(ctx, s, tx, units, before, nil, &st)
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

// stagedRound is about the most staged rows one compaction transaction
// folds: it takes whole windows of gateways, at least one, until it has
// as many.
const stagedRound = 256

// stagedReading is a reading of a staged row.
type stagedReading struct {
	series, ts int64
	value      float64
	quality    byte
}

// group is a window of a gateway's staged rows, the order rounds take
// them in.
type group struct {
	win     int64
	gateway string
}

// foldStaged folds the readings of the staged rows of the oldest closed
// windows after after, gateway by gateway, about stagedRound rows of
// them, and deletes those rows; it reports how many it counted, and
// moves after on. A window of a gateway is read whole, so that each of
// its series' windows is folded once. The windows they touch are
// compacted as units (fold), with whatever chunks those hold.
func (c *compaction) foldStaged(ctx context.Context, s *Store, tx pgx.Tx, before int64, after *group, st *ingest.CompactStats) (int, error) {
	gs, err := tx.Query(ctx, `SELECT win, gateway, count(*) FROM staged WHERE win < $1 AND win >= $2 AND (win, gateway) > ($4, $5)
		GROUP BY win, gateway ORDER BY win, gateway LIMIT $3`, before, layout.MinTS, stagedRound, after.win, after.gateway)
	if err != nil {
		return 0, err
	}
	var wins []int64
	var gws []string
	var g group
	var n int64
	taken := int64(0)
	_, err = pgx.ForEachRow(gs, []any{&g.win, &g.gateway, &n}, func() error {
		if taken < stagedRound {
			wins, gws, taken = append(wins, g.win), append(gws, g.gateway), taken+n
			*after = g
		}
		return nil
	})
	if err != nil || len(wins) == 0 {
		return 0, err
	}
	// The arrays as they are, sorted here: a staged row costs its
	// columns, not a row a reading.
	rs, err := tx.Query(ctx, `SELECT ctid, series, ts, value, quality FROM staged
		WHERE (gateway, win) IN (SELECT * FROM unnest($1::text[], $2::bigint[])) FOR UPDATE`, gws, wins)
	if err != nil {
		return 0, err
	}
	rds := c.staged[:0]
	var tids []pgtype.TID
	var tid pgtype.TID
	var ids, tss []int64
	var vs []float64
	var qs []int16
	_, err = pgx.ForEachRow(rs, []any{&tid, &ids, &tss, &vs, &qs}, func() error {
		if len(tss) != len(ids) || len(vs) != len(ids) || len(qs) != len(ids) {
			// Left where it is, for an operator, as a damaged chunk is.
			st.Damaged++
			s.log.Error().Str("ctid", fmt.Sprint(tid)).Int("series", len(ids)).Int("ts", len(tss)).Int("value", len(vs)).Int("quality", len(qs)).
				Msg("compact: a staged row whose arrays differ in length is left as it is and out of the rollups")
			return nil
		}
		tids = append(tids, tid)
		for i, id := range ids {
			q := qs[i]
			if q < 0 || q > int16(outpost.QualityBad) {
				q = int16(outpost.QualityBad) // what a reader takes it for
			}
			rds = append(rds, stagedReading{id, tss[i], vs[i], byte(q)})
		}
		return nil
	})
	c.staged = rds
	if err != nil {
		return 0, err
	}
	if len(tids) == 0 {
		return int(taken), nil // none left to fold: deleted since counted (retention), or damaged
	}
	// Sorted by series then time, the readings give each unit once, in
	// order.
	slices.SortStableFunc(rds, func(a, b stagedReading) int { return cmp.Or(cmp.Compare(a.series, b.series), cmp.Compare(a.ts, b.ts)) })
	var units []unit
	for _, r := range rds {
		if u := (unit{r.series, layout.WindowOf(r.ts)}); len(units) == 0 || units[len(units)-1] != u {
			units = append(units, u)
		}
	}
	if len(rds) > 0 {
		if err := c.fold(ctx, s, tx, units, before, rds, st); err != nil {
			return 0, err
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM staged WHERE ctid = ANY($1::tid[])`, tids); err != nil {
		return 0, err
	}
	st.Rows += int64(len(rds))
	return int(taken), nil
}

// pendingUnits takes up to compactUnits closed pending windows off the
// list, in series order.
func pendingUnits(ctx context.Context, tx pgx.Tx, before int64) ([]unit, error) {
	rs, err := tx.Query(ctx, `DELETE FROM pending WHERE (series_id, win) IN (
			SELECT series_id, win FROM pending WHERE win < $1 ORDER BY series_id, win LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING series_id, win`, before, compactUnits)
	if err != nil {
		return nil, err
	}
	var units []unit
	var u unit
	_, err = pgx.ForEachRow(rs, []any{&u.series, &u.window}, func() error {
		units = append(units, u)
		return nil
	})
	return units, err
}

// compaction holds what a round reads and writes, reused round after
// round.
type compaction struct {
	idx   map[unit]int // a work by its series and span (in window)
	works []work
	// chunks to write
	ids, mins, maxs []int64
	ns              []int32
	datas           [][]byte
	// rollup rows to write
	rSeries, rBucket, rN, rCount, rLastTS []int64
	rMin, rMax, rSum, rLast               []float64
	rHour                                 []bool // the row is an hour row, else a minute row
	minutes                               []rollup.Agg
	// units as columns
	uSeries, uWin, uEnd []int64
	// works as columns: series, span, end of span, first unit window,
	// end of the last
	wSeries, wSpan, wSpanEnd, wLo, wHi []int64
	merged                             int // readings held to rewrite, in the round
	staged                             []stagedReading
}

// ptid is a row of a partition: the partition's name and the row's ctid
// in it.
type ptid struct {
	table string
	tid   pgtype.TID
}

// work is the round's units of one series in one span (a day): their
// windows are rolled up, and the span's small chunks and the windows'
// rows rewritten together (layout.Rechunk), so that a sparse series gets
// a chunk a day.
type work struct {
	series, span int64
	wins         []int64         // the units' windows, in order
	rolls        []rollup.Window // each window's rollup
	at           int             // the roll last added to
	runs         []layout.Run    // small chunks and rows to rewrite
	held         int             // readings in runs
	tids         []ptid          // of the chunks in runs
	rows         layout.Run      // the staged readings of the span's units
}

// add adds a reading to the rollup of its window, if that is a unit's.
func (w *work) add(ts int64, v float64, q outpost.Quality) {
	win := layout.WindowOf(ts)
	if w.wins[w.at] != win {
		i, ok := slices.BinarySearch(w.wins, win)
		if !ok {
			return
		}
		w.at = i
	}
	w.rolls[w.at].Add(ts, v, q)
}

// fold compacts the units in tx. With rows (staged readings of the
// units, sorted by series and time, taken off the staged table by the
// caller), their pending marks
// are taken off the list first (their chunks are read after that, so a
// commit that writes a chunk into one of them marks it again, or is
// seen). It reads the chunks that overlap the units' windows, for the
// rollups, and the closed sparse chunks of their spans
// (layout.SparseChunk); it rewrites the rows and the small chunks read
// as chunks, and writes the units' rollups.
func (c *compaction) fold(ctx context.Context, s *Store, tx pgx.Tx, units []unit, before int64, rows []stagedReading, st *ingest.CompactStats) error {
	c.reset(units)
	need := make([]part, 0, 2*len(units))
	for _, u := range units {
		need = append(need, part{tChunks, dayOf(u.window)}, part{tRollup1m, dayOf(u.window)})
	}
	if err := s.ensure(ctx, need); err != nil {
		return err
	}
	if rows != nil {
		if _, err := tx.Exec(ctx, `DELETE FROM pending p USING unnest($1::bigint[], $2::bigint[]) u(s, w)
			WHERE p.series_id = u.s AND p.win = u.w`, c.uSeries, c.uWin); err != nil {
			return err
		}
		for _, r := range rows {
			w := &c.works[c.idx[unit{r.series, layout.SpanOf(r.ts)}]]
			w.rows.TS, w.rows.Values, w.rows.Quality = append(w.rows.TS, r.ts), append(w.rows.Values, r.value), append(w.rows.Quality, r.quality)
			w.add(r.ts, r.value, outpost.Quality(r.quality))
		}
	}
	var tid pgtype.TID
	var id int64
	// Integer division makes the windows of a chunk's ends: told apart
	// right for every time after 1970, which is all it is needed for.
	cs, err := tx.Query(ctx, `SELECT c.tableoid::regclass::text, c.ctid, c.series_id, c.t_min, c.t_max, c.n, c.data FROM chunks c
		JOIN unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) u(s, d, de, lo, hi)
		ON c.series_id = u.s AND c.t_min >= u.d AND c.t_min < u.de
			AND (c.t_min < u.hi AND c.t_max >= u.lo OR c.t_max < $6 AND (c.n < $7 OR c.t_min / $8 <> c.t_max / $8))
		ORDER BY c.series_id, c.t_min FOR UPDATE OF c`,
		c.wSeries, c.wSpan, c.wSpanEnd, c.wLo, c.wHi, before, layout.SparseChunk, layout.Window)
	if err != nil {
		return err
	}
	var tMin, tMax int64
	var n int32
	var data []byte
	var table string
	_, err = pgx.ForEachRow(cs, []any{&table, &tid, &id, &tMin, &tMax, &n, &data}, func() error {
		w := &c.works[c.idx[unit{id, layout.SpanOf(tMin)}]]
		var r layout.Run
		var err error
		if r.TS, r.Values, r.Quality, err = chunk.Decode(data, nil, nil, nil); err != nil {
			// Left where it is, for an operator: the window's other
			// readings are still folded and rolled up.
			st.Damaged++
			s.log.Error().Err(err).Int64("series", id).Int64("t_min", tMin).
				Msg("compact: a damaged chunk is left as it is and out of the rollups")
			return nil
		}
		for i, t := range r.TS {
			w.add(t, r.Values[i], qualityAt(r.Quality, i))
		}
		if n < layout.SmallChunk && tMax < before && w.held+len(r.TS) <= mergeUnitMax && c.merged+len(r.TS) <= mergeRoundMax {
			if len(r.Quality) == 0 {
				r.Quality = nil
			}
			w.runs, w.tids = append(w.runs, r), append(w.tids, ptid{table, tid})
			w.held += len(r.TS)
			c.merged += len(r.TS)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var oldChunks []ptid
	for i := range c.works {
		w := &c.works[i]
		// One chunk and no rows: nothing to gain by writing it again.
		if len(w.rows.TS) > 0 || len(w.runs) > 1 {
			runs := w.runs
			if len(w.rows.TS) > 0 {
				if allZero(w.rows.Quality) {
					w.rows.Quality = nil
				}
				runs = append(runs, w.rows)
			}
			end := rollup.End(w.span, layout.Span)
			err := layout.Rechunk(runs, w.span, end, func(tMin, tMax int64, n int, data []byte) error {
				c.ids, c.mins, c.maxs = append(c.ids, w.series), append(c.mins, tMin), append(c.maxs, tMax)
				c.ns, c.datas = append(c.ns, int32(n)), append(c.datas, bytes.Clone(data))
				return nil
			})
			if err != nil {
				return err
			}
			oldChunks = append(oldChunks, w.tids...)
			st.ChunksMerged += int64(len(w.tids))
		}
		for k := range w.wins {
			c.addRollups(w.series, &w.rolls[k])
		}
		st.Windows += int64(len(w.wins))
	}
	st.ChunksWritten += int64(len(c.ns))
	if len(c.ns) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO chunks (series_id, t_min, t_max, n, data)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::integer[], $5::bytea[])`, c.ids, c.mins, c.maxs, c.ns, c.datas); err != nil {
			return err
		}
	}
	// A ctid names a row within its partition: the chunks are deleted
	// from each partition by its own name.
	byPart := map[string][]pgtype.TID{}
	for _, t := range oldChunks {
		byPart[t.table] = append(byPart[t.table], t.tid)
	}
	for table, tids := range byPart {
		if _, err := tx.Exec(ctx, `DELETE FROM `+pgx.Identifier{table}.Sanitize()+` WHERE ctid = ANY($1::tid[])`, tids); err != nil {
			return err
		}
	}
	return c.writeRollups(ctx, tx)
}

// reset readies c for units: a work for each series' span, and the
// columns. It sorts units by series and window.
func (c *compaction) reset(units []unit) {
	slices.SortFunc(units, func(a, b unit) int { return cmp.Or(cmp.Compare(a.series, b.series), cmp.Compare(a.window, b.window)) })
	if c.idx == nil {
		c.idx = map[unit]int{}
	}
	clear(c.idx)
	c.works = c.works[:0]
	c.uSeries, c.uWin, c.uEnd = c.uSeries[:0], c.uWin[:0], c.uEnd[:0]
	c.wSeries, c.wSpan, c.wSpanEnd, c.wLo, c.wHi = c.wSeries[:0], c.wSpan[:0], c.wSpanEnd[:0], c.wLo[:0], c.wHi[:0]
	for _, u := range units {
		k := unit{u.series, layout.SpanOf(u.window)}
		i, ok := c.idx[k]
		if !ok {
			i = len(c.works)
			c.idx[k] = i
			c.works = append(c.works, work{series: k.series, span: k.window})
		}
		w := &c.works[i]
		w.wins = append(w.wins, u.window)
		w.rolls = slices.Grow(w.rolls, 1)[:len(w.rolls)+1]
		w.rolls[len(w.rolls)-1].Reset(u.window)
		c.uSeries, c.uWin, c.uEnd = append(c.uSeries, u.series), append(c.uWin, u.window), append(c.uEnd, rollup.End(u.window, layout.Window))
	}
	for i := range c.works {
		w := &c.works[i]
		c.wSeries, c.wSpan, c.wSpanEnd = append(c.wSeries, w.series), append(c.wSpan, w.span), append(c.wSpanEnd, rollup.End(w.span, layout.Span))
		c.wLo, c.wHi = append(c.wLo, w.wins[0]), append(c.wHi, rollup.End(w.wins[len(w.wins)-1], layout.Window))
	}
	c.ids, c.mins, c.maxs, c.ns, c.datas = c.ids[:0], c.mins[:0], c.maxs[:0], c.ns[:0], c.datas[:0]
	c.rSeries, c.rBucket, c.rN, c.rCount, c.rLastTS = c.rSeries[:0], c.rBucket[:0], c.rN[:0], c.rCount[:0], c.rLastTS[:0]
	c.rMin, c.rMax, c.rSum, c.rLast, c.rHour = c.rMin[:0], c.rMax[:0], c.rSum[:0], c.rLast[:0], c.rHour[:0]
	c.merged = 0
}

// addRollups adds a window's rollup rows to the columns: its hour row
// first, then its minute rows.
func (c *compaction) addRollups(series int64, roll *rollup.Window) {
	h, ok, minutes := roll.Rows(c.minutes)
	c.minutes = minutes
	if !ok {
		return
	}
	c.addRow(series, h, true)
	for _, m := range c.minutes {
		c.addRow(series, m, false)
	}
}

func (c *compaction) addRow(series int64, a rollup.Agg, hour bool) {
	c.rHour = append(c.rHour, hour)
	c.rSeries, c.rBucket, c.rN, c.rCount, c.rLastTS = append(c.rSeries, series), append(c.rBucket, a.Bucket), append(c.rN, a.N), append(c.rCount, a.Count), append(c.rLastTS, a.LastTS)
	c.rMin, c.rMax, c.rSum, c.rLast = append(c.rMin, a.Min), append(c.rMax, a.Max), append(c.rSum, a.Sum), append(c.rLast, a.Last)
}

// writeRollups replaces the units' rollup rows with the new ones. A
// window with too few readings for rows (rollup.HourRowsFrom) keeps none.
func (c *compaction) writeRollups(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `DELETE FROM rollup_1h r USING unnest($1::bigint[], $2::bigint[]) u(s, w)
		WHERE r.series_id = u.s AND r.bucket = u.w`, c.uSeries, c.uWin); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM rollup_1m r USING unnest($1::bigint[], $2::bigint[], $3::bigint[]) u(s, w, e)
		WHERE r.series_id = u.s AND r.bucket >= u.w AND r.bucket < u.e`, c.uSeries, c.uWin, c.uEnd); err != nil {
		return err
	}
	// The hour rows, then the minute rows, each from the columns.
	_, err := tx.Exec(ctx, `WITH r AS (
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::float8[], $6::float8[], $7::float8[], $8::bigint[], $9::float8[], $10::boolean[])
			AS r(series_id, bucket, n, count, min, max, sum, last_ts, last, hour)
	), h AS (
		INSERT INTO rollup_1h (series_id, bucket, n, count, min, max, sum, last_ts, last)
		SELECT series_id, bucket, n, count, min, max, sum, last_ts, last FROM r WHERE hour
	)
	INSERT INTO rollup_1m (series_id, bucket, n, count, min, max, sum, last_ts, last)
	SELECT series_id, bucket, n, count, min, max, sum, last_ts, last FROM r WHERE NOT hour`,
		c.rSeries, c.rBucket, c.rN, c.rCount, c.rMin, c.rMax, c.rSum, c.rLastTS, c.rLast, c.rHour)
	return err
}

// allZero reports whether every byte of b is 0: qualities all good.
func allZero(b []byte) bool {
	for _, q := range b {
		if q != 0 {
			return false
		}
	}
	return true
}

// qualityAt is the quality of reading i of a decoded chunk (q empty: all
// good).
func qualityAt(q []byte, i int) outpost.Quality {
	if len(q) == 0 {
		return outpost.QualityGood
	}
	return outpost.Quality(q[i])
}
