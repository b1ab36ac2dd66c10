package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/chunk"
	"github.com/outposthq/outpost/ingest/internal/layout"
)

// maxCachedSeries bounds the series ids kept in memory; past it the cache
// starts again (a lookup costs one statement).
const maxCachedSeries = 1 << 20

// seriesCache maps series keys to their ids. It holds only committed ids:
// those a transaction makes join it after the commit (an id of a rolled
// back series row would be given to another series).
type seriesCache struct {
	mu sync.RWMutex
	m  map[ingest.SeriesKey]int64
}

func (c *seriesCache) get(k ingest.SeriesKey) (int64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id, ok := c.m[k]
	return id, ok
}

func (c *seriesCache) put(ids map[ingest.SeriesKey]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, id := range ids {
		if c.m == nil || len(c.m) >= maxCachedSeries {
			c.m = make(map[ingest.SeriesKey]int64)
		}
		c.m[k] = id
	}
}

func (c *seriesCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
}

// built is a telemetry batch cut into what the store writes: its chunks,
// its rows for recent, and per series its first and newest reading. It is
// made before the transaction, so that encoding runs while another
// commit holds the writer, and reused through a pool.
type built struct {
	split  layout.Scratch
	data   []byte // the chunks, back to back
	chunks []builtChunk
	rows   []builtRow
	ups    []seriesUpsert
}

type builtChunk struct {
	series     int // index in the batch's Series
	tMin, tMax int64
	n          int
	end        int // the chunk is data[previous end:end]
}

type builtRow struct {
	series  int
	ts      int64
	value   float64
	quality byte
}

// seriesUpsert is what a batch sets of one of its series: applied in
// order, so that of equal newest timestamps the later one wins.
type seriesUpsert struct {
	series      int
	first, last int64
	lastValue   float64
	lastQuality byte
}

var builtPool = sync.Pool{New: func() any { return new(built) }}

// build cuts b. An error means readings the chunk format refuses
// (timestamps whose deltas overflow int64).
func (bt *built) build(b *outpost.Batch) error {
	bt.data, bt.chunks, bt.rows, bt.ups = bt.data[:0], bt.chunks[:0], bt.rows[:0], bt.ups[:0]
	for _, p := range layout.Split(b, &bt.split) {
		if p.Chunk() {
			var err error
			if bt.data, err = chunk.Append(bt.data, p.TS, p.Values, p.Quality); err != nil {
				return fmt.Errorf("series %d: %w", p.Series, err)
			}
			bt.chunks = append(bt.chunks, builtChunk{series: p.Series, tMin: p.TS[0], tMax: p.TS[len(p.TS)-1],
				n: len(p.TS), end: len(bt.data)})
		} else {
			for i, t := range p.TS {
				q := byte(0)
				if p.Quality != nil {
					q = p.Quality[i]
				}
				bt.rows = append(bt.rows, builtRow{series: p.Series, ts: t, value: p.Values[i], quality: q})
			}
		}
		// Pieces come by series, then time: a series' last piece ends
		// with its newest reading (the later of equal times).
		last := len(p.TS) - 1
		q := byte(0)
		if p.Quality != nil {
			q = p.Quality[last]
		}
		if n := len(bt.ups); n > 0 && bt.ups[n-1].series == p.Series {
			u := &bt.ups[n-1]
			u.first = min(u.first, p.TS[0])
			u.last, u.lastValue, u.lastQuality = p.TS[last], p.Values[last], q
			continue
		}
		bt.ups = append(bt.ups, seriesUpsert{series: p.Series, first: p.TS[0], last: p.TS[last],
			lastValue: p.Values[last], lastQuality: q})
	}
	return nil
}

// writeTelemetry writes a built batch whose batches row is new: its
// series (made if new, their ids added to made), chunks, rows and the
// series' first and newest readings.
func (s *Store) writeTelemetry(ctx context.Context, tx *sql.Tx, b *outpost.Batch, bt *built, made map[ingest.SeriesKey]int64) error {
	ids := make([]int64, len(b.Series))
	for _, u := range bt.ups {
		sr := &b.Series[u.series]
		k := ingest.SeriesKey{Gateway: b.Gateway, Sensor: sr.Sensor, Metric: sr.Metric}
		id, ok := s.series.get(k)
		if !ok {
			id, ok = made[k]
		}
		if !ok {
			if err := tx.StmtContext(ctx, s.newSeries).QueryRowContext(ctx, b.Gateway, sr.Sensor, sr.Metric, sr.Unit).Scan(&id); err != nil {
				return fmt.Errorf("insert series: %w", classify(err))
			}
			made[k] = id
		}
		ids[u.series] = id
	}
	ins := tx.StmtContext(ctx, s.insChunk)
	start := 0
	for _, c := range bt.chunks {
		if _, err := ins.ExecContext(ctx, ids[c.series], c.tMin, c.tMax, c.n, bt.data[start:c.end]); err != nil {
			return fmt.Errorf("insert chunk: %w", classify(err))
		}
		start = c.end
	}
	ins = tx.StmtContext(ctx, s.insRecent)
	for _, r := range bt.rows {
		if _, err := ins.ExecContext(ctx, ids[r.series], r.ts, value(r.value), int64(r.quality)); err != nil {
			return fmt.Errorf("insert recent: %w", classify(err))
		}
	}
	up := tx.StmtContext(ctx, s.upSeries)
	for _, u := range bt.ups {
		res, err := up.ExecContext(ctx, ids[u.series], b.Series[u.series].Unit, u.first, u.last, value(u.lastValue), int64(u.lastQuality))
		if err != nil {
			return fmt.Errorf("update series: %w", classify(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("update series: %w", err)
		} else if n != 1 {
			// Not ours to explain (the file replaced under a running
			// store?): forget every id, and let the retry look them up.
			s.series.reset()
			return fmt.Errorf("update series: series %d is gone", ids[u.series])
		}
	}
	return nil
}

// Statements of the telemetry commit, prepared on the writer.
const (
	sqlNewSeries = `INSERT INTO series (gateway, sensor, metric, unit) VALUES (?, ?, ?, ?)
		ON CONFLICT (gateway, sensor, metric) DO UPDATE SET unit = excluded.unit RETURNING id`
	sqlInsChunk  = `INSERT INTO chunks (series_id, t_min, t_max, n, data) VALUES (?, ?, ?, ?, ?)`
	sqlInsRecent = `INSERT INTO recent (series_id, ts, value, quality) VALUES (?, ?, ?, ?)`
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
