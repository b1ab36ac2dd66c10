package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/chunk"
	"github.com/outposthq/outpost/ingest/internal/layout"
	"github.com/outposthq/outpost/ingest/internal/rows"
)

// maxCachedSeries bounds the series ids kept in memory; past it the cache
// starts again (a lookup costs one round trip).
const maxCachedSeries = 1 << 20

// seriesCache maps series keys to their ids. Ids never change once made.
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

func (c *seriesCache) put(k ingest.SeriesKey, id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedSeries {
		c.m = make(map[ingest.SeriesKey]int64)
	}
	c.m[k] = id
}

// commitScratch holds what one telemetry commit builds, reused through a
// pool.
type commitScratch struct {
	split layout.Scratch
	data  []byte
	// chunks
	cSeries, cMin, cMax []int64
	cN                  []int32
	cData               [][]byte
	// rows
	rSeries, rTS []int64
	rValue       []float64
	rQuality     []int16
	// series upserts, one per series, by id
	ups []seriesUpsert
}

type seriesUpsert struct {
	id                   int64
	sensor, metric, unit string
	first, last          int64
	lastValue            float64
	lastQuality          int16
}

var scratchPool = sync.Pool{New: func() any { return new(commitScratch) }}

// ids returns the id of every series of the batch (by index in
// b.Series), making those that are new in one round trip.
func (s *Store) ids(ctx context.Context, b *outpost.Batch) ([]int64, error) {
	ids := make([]int64, len(b.Series))
	var miss []int
	for i := range b.Series {
		sr := &b.Series[i]
		if id, ok := s.series.get(ingest.SeriesKey{Gateway: b.Gateway, Sensor: sr.Sensor, Metric: sr.Metric}); ok {
			ids[i] = id
			continue
		}
		miss = append(miss, i)
	}
	if len(miss) == 0 {
		return ids, nil
	}
	// Sorted, so that concurrent inserts of the same keys lock them in
	// one order.
	slices.SortFunc(miss, func(a, c int) int {
		return cmp.Or(cmp.Compare(b.Series[a].Sensor, b.Series[c].Sensor), cmp.Compare(b.Series[a].Metric, b.Series[c].Metric))
	})
	sensors, metrics, units := make([]string, 0, len(miss)), make([]string, 0, len(miss)), make([]string, 0, len(miss))
	for _, i := range miss {
		sensors, metrics, units = append(sensors, b.Series[i].Sensor), append(metrics, b.Series[i].Metric), append(units, b.Series[i].Unit)
	}
	var batch pgx.Batch
	batch.Queue(`INSERT INTO series (gateway, sensor, metric, unit)
		SELECT $1, u.sensor, u.metric, u.unit FROM unnest($2::text[], $3::text[], $4::text[]) AS u(sensor, metric, unit)
		ON CONFLICT (gateway, sensor, metric) DO NOTHING`, b.Gateway, sensors, metrics, units)
	found := map[[2]string]int64{}
	batch.Queue(`SELECT s.id, s.sensor, s.metric FROM series s JOIN unnest($2::text[], $3::text[]) AS u(sensor, metric)
		ON s.sensor = u.sensor AND s.metric = u.metric WHERE s.gateway = $1`, b.Gateway, sensors, metrics).
		Query(func(r pgx.Rows) error {
			for r.Next() {
				var id int64
				var sensor, metric string
				if err := r.Scan(&id, &sensor, &metric); err != nil {
					return err
				}
				found[[2]string{sensor, metric}] = id
			}
			return r.Err()
		})
	if err := s.pool.SendBatch(ctx, &batch).Close(); err != nil {
		return nil, fmt.Errorf("postgres: series: %w", classify(err))
	}
	for _, i := range miss {
		sr := &b.Series[i]
		id, ok := found[[2]string{sr.Sensor, sr.Metric}]
		if !ok {
			return nil, fmt.Errorf("postgres: series %s/%s/%s not found after insert", b.Gateway, sr.Sensor, sr.Metric)
		}
		ids[i] = id
		s.series.put(ingest.SeriesKey{Gateway: b.Gateway, Sensor: sr.Sensor, Metric: sr.Metric}, id)
	}
	return ids, nil
}

// commitTelemetry stores a telemetry batch in one statement, so one round
// trip: the batches row, its chunks and rows, and its series' first and
// newest readings, all only if the batches row is new.
func (s *Store) commitTelemetry(ctx context.Context, b *outpost.Batch, size int, now int64) (bool, error) {
	ids, err := s.ids(ctx, b)
	if err != nil {
		return false, err
	}
	sc := scratchPool.Get().(*commitScratch)
	defer scratchPool.Put(sc)
	if err := sc.build(b, ids); err != nil {
		return false, fmt.Errorf("postgres: %w: %v", ingest.ErrInvalidData, err)
	}
	ids2, sensors, metrics, units := make([]int64, len(sc.ups)), make([]string, len(sc.ups)), make([]string, len(sc.ups)), make([]string, len(sc.ups))
	first, last, lastV, lastQ := make([]int64, len(sc.ups)), make([]int64, len(sc.ups)), make([]float64, len(sc.ups)), make([]int16, len(sc.ups))
	for i, u := range sc.ups {
		ids2[i], sensors[i], metrics[i], units[i] = u.id, u.sensor, u.metric, u.unit
		first[i], last[i], lastV[i], lastQ[i] = u.first, u.last, u.lastValue, u.lastQuality
	}
	var n int
	err = s.pool.QueryRow(ctx, `WITH b AS (
		INSERT INTO batches (gateway, epoch, seq, received_at, n, kind, bytes)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING 1
	), c AS (
		INSERT INTO chunks (series_id, t_min, t_max, n, data)
		SELECT u.* FROM unnest($8::bigint[], $9::bigint[], $10::bigint[], $11::integer[], $12::bytea[]) AS u, b
	), r AS (
		INSERT INTO recent (series_id, ts, value, quality)
		SELECT u.* FROM unnest($13::bigint[], $14::bigint[], $15::float8[], $16::smallint[]) AS u, b
	), l AS (
		INSERT INTO series AS s (id, gateway, sensor, metric, unit, first_ts, last_ts, last_value, last_quality)
		SELECT u.id, $1, u.sensor, u.metric, u.unit, u.first_ts, u.last_ts, u.last_value, u.last_quality
		FROM unnest($17::bigint[], $18::text[], $19::text[], $20::text[], $21::bigint[], $22::bigint[], $23::float8[], $24::smallint[])
			AS u(id, sensor, metric, unit, first_ts, last_ts, last_value, last_quality), b
		ORDER BY u.id
		ON CONFLICT (id) DO UPDATE SET
			unit = excluded.unit,
			first_ts = least(s.first_ts, excluded.first_ts),
			last_value = CASE WHEN s.last_ts IS NULL OR excluded.last_ts >= s.last_ts THEN excluded.last_value ELSE s.last_value END,
			last_quality = CASE WHEN s.last_ts IS NULL OR excluded.last_ts >= s.last_ts THEN excluded.last_quality ELSE s.last_quality END,
			last_ts = greatest(s.last_ts, excluded.last_ts)
	)
	SELECT count(*) FROM b`,
		b.Gateway, int64(b.Epoch), int64(b.Seq), now, b.Len(), rows.Kind(b.Kind), size,
		sc.cSeries, sc.cMin, sc.cMax, sc.cN, sc.cData,
		sc.rSeries, sc.rTS, sc.rValue, sc.rQuality,
		ids2, sensors, metrics, units, first, last, lastV, lastQ).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("postgres: commit telemetry: %w", classify(err))
	}
	return n == 0, nil
}

// build splits the batch into chunks and rows and finds each series'
// first and newest reading.
func (sc *commitScratch) build(b *outpost.Batch, ids []int64) error {
	sc.data = sc.data[:0]
	sc.cSeries, sc.cMin, sc.cMax, sc.cN, sc.cData = sc.cSeries[:0], sc.cMin[:0], sc.cMax[:0], sc.cN[:0], sc.cData[:0]
	sc.rSeries, sc.rTS, sc.rValue, sc.rQuality = sc.rSeries[:0], sc.rTS[:0], sc.rValue[:0], sc.rQuality[:0]
	sc.ups = sc.ups[:0]
	var offs []int
	for _, p := range layout.Split(b, &sc.split) {
		id := ids[p.Series]
		if p.Chunk() {
			off := len(sc.data)
			var err error
			if sc.data, err = chunk.Append(sc.data, p.TS, p.Values, p.Quality); err != nil {
				return err
			}
			offs = append(offs, off)
			sc.cSeries = append(sc.cSeries, id)
			sc.cMin, sc.cMax = append(sc.cMin, p.TS[0]), append(sc.cMax, p.TS[len(p.TS)-1])
			sc.cN = append(sc.cN, int32(len(p.TS)))
		} else {
			for i, t := range p.TS {
				q := int16(0)
				if p.Quality != nil {
					q = int16(p.Quality[i])
				}
				sc.rSeries, sc.rTS, sc.rValue, sc.rQuality = append(sc.rSeries, id), append(sc.rTS, t), append(sc.rValue, p.Values[i]), append(sc.rQuality, q)
			}
		}
		// Pieces come by series, then time: the last piece of a series
		// ends with its newest reading (the later of equal times).
		sr := &b.Series[p.Series]
		lastI := len(p.TS) - 1
		q := int16(0)
		if p.Quality != nil {
			q = int16(p.Quality[lastI])
		}
		if n := len(sc.ups); n > 0 && sc.ups[n-1].id == id {
			u := &sc.ups[n-1]
			u.first = min(u.first, p.TS[0])
			if p.TS[lastI] >= u.last {
				u.last, u.lastValue, u.lastQuality = p.TS[lastI], p.Values[lastI], q
			}
			continue
		}
		sc.ups = append(sc.ups, seriesUpsert{id: id, sensor: sr.Sensor, metric: sr.Metric, unit: sr.Unit,
			first: p.TS[0], last: p.TS[lastI], lastValue: p.Values[lastI], lastQuality: q})
	}
	// The data buffer may have moved while it grew: slice it at the end.
	for i, off := range offs {
		end := len(sc.data)
		if i+1 < len(offs) {
			end = offs[i+1]
		}
		sc.cData = append(sc.cData, sc.data[off:end:end])
	}
	// A series repeated in the batch has one upsert, by id.
	slices.SortStableFunc(sc.ups, func(a, c seriesUpsert) int { return cmp.Compare(a.id, c.id) })
	w := 0
	for _, u := range sc.ups {
		if w > 0 && sc.ups[w-1].id == u.id {
			prev := &sc.ups[w-1]
			prev.first = min(prev.first, u.first)
			if u.last >= prev.last {
				prev.last, prev.lastValue, prev.lastQuality = u.last, u.lastValue, u.lastQuality
			}
			continue
		}
		sc.ups[w] = u
		w++
	}
	sc.ups = sc.ups[:w]
	return nil
}
