package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/layout"
)

// commitScratch holds what one group commit builds, reused through a
// pool.
type commitScratch struct {
	bd layout.Builder
	// batches
	gws                   []string
	epochs, seqs, created []int64
	need                  []part // the partitions the rows go to
	ns, sizes             []int32
	// chunks
	cBatch              []int32
	cSeries, cMin, cMax []int64
	cN                  []int32
	cData               [][]byte
	cWin                []int64 // the window of each chunk
	// rows, staged a row per batch and window
	rBatch             []int32
	rSeries, rTS, rWin []int64
	rValue             []float64
	rQuality           []int16
	// series upserts, one per series and batch
	uBatch                  []int32
	uID, uFirst, uLast      []int64
	uSensor, uMetric, uUnit []string
	uValue                  []float64
	uQuality                []int16
}

var scratchPool = sync.Pool{New: func() any { return new(commitScratch) }}

// ids returns the id of every series of the batches (by batch, then
// index in its Series), making those that are new in one round trip.
func (s *Store) ids(ctx context.Context, bs []*outpost.Batch) ([][]int64, error) {
	ids := make([][]int64, len(bs))
	type miss struct{ b, i int }
	var misses []miss
	for bi, b := range bs {
		ids[bi] = make([]int64, len(b.Series))
		for i := range b.Series {
			sr := &b.Series[i]
			if id, ok := s.series.Get(ingest.SeriesKey{Gateway: b.Gateway, Sensor: sr.Sensor, Metric: sr.Metric}); ok {
				ids[bi][i] = id
				continue
			}
			misses = append(misses, miss{bi, i})
		}
	}
	if len(misses) == 0 {
		return ids, nil
	}
	key := func(m miss) ingest.SeriesKey {
		sr := &bs[m.b].Series[m.i]
		return ingest.SeriesKey{Gateway: bs[m.b].Gateway, Sensor: sr.Sensor, Metric: sr.Metric}
	}
	// Sorted, so that concurrent inserts of the same keys lock them in
	// one order.
	slices.SortFunc(misses, func(a, c miss) int {
		ka, kc := key(a), key(c)
		return cmp.Or(cmp.Compare(ka.Gateway, kc.Gateway), cmp.Compare(ka.Sensor, kc.Sensor), cmp.Compare(ka.Metric, kc.Metric))
	})
	var gws, sensors, metrics, units []string
	for _, m := range misses {
		k := key(m)
		gws, sensors, metrics = append(gws, k.Gateway), append(sensors, k.Sensor), append(metrics, k.Metric)
		units = append(units, bs[m.b].Series[m.i].Unit)
	}
	// New series take their sensor's labels. The batch is one implicit
	// transaction: the lock (see labelsLock) is held until the series
	// are committed, and the insert reads sensor_labels after taking it.
	var batch pgx.Batch
	batch.Queue(`SELECT pg_advisory_xact_lock_shared($1, hashtext(g)) FROM (SELECT DISTINCT unnest($2::text[]) AS g) d`,
		int32(labelsLock), gws)
	batch.Queue(`INSERT INTO series (gateway, sensor, metric, unit, labels)
		SELECT u.gateway, u.sensor, u.metric, u.unit, coalesce(l.labels, '{}')
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(gateway, sensor, metric, unit)
		LEFT JOIN sensor_labels l ON l.gateway = u.gateway AND l.sensor = u.sensor
		ON CONFLICT (gateway, sensor, metric) DO NOTHING`, gws, sensors, metrics, units)
	found := map[ingest.SeriesKey]int64{}
	batch.Queue(`SELECT s.id, s.gateway, s.sensor, s.metric FROM series s
		JOIN unnest($1::text[], $2::text[], $3::text[]) AS u(gateway, sensor, metric)
		ON s.gateway = u.gateway AND s.sensor = u.sensor AND s.metric = u.metric`, gws, sensors, metrics).
		Query(func(r pgx.Rows) error {
			for r.Next() {
				var id int64
				var k ingest.SeriesKey
				if err := r.Scan(&id, &k.Gateway, &k.Sensor, &k.Metric); err != nil {
					return err
				}
				found[k] = id
			}
			return r.Err()
		})
	if err := s.pool.SendBatch(ctx, &batch).Close(); err != nil {
		return nil, fmt.Errorf("postgres: series: %w", classify(err))
	}
	for _, m := range misses {
		k := key(m)
		id, ok := found[k]
		if !ok {
			return nil, fmt.Errorf("postgres: series %s/%s/%s not found after insert", k.Gateway, k.Sensor, k.Metric)
		}
		ids[m.b][m.i] = id
	}
	// The pgx batch ran outside a transaction: these rows are committed.
	s.series.Put(found)
	return ids, nil
}

// CommitGroup implements ingest.GroupStore.
func (s *Store) CommitGroup(ctx context.Context, bs []*outpost.Batch, sizes []int) ([]bool, error) {
	if len(sizes) != len(bs) {
		return nil, fmt.Errorf("postgres: commit group: %d sizes for %d batches", len(sizes), len(bs))
	}
	for _, b := range bs {
		if b.Kind != outpost.KindTelemetry {
			return nil, fmt.Errorf("postgres: commit group: %w: a %s batch", ingest.ErrInvalidData, b.Kind)
		}
	}
	return s.commitTelemetry(ctx, bs, sizes, s.now().UnixNano())
}

// commitTelemetry stores telemetry batches in one statement, so one round
// trip and one transaction: their batches rows, and for those that are
// new their chunks, rows, and their series' first and newest readings.
// A batch that repeats an earlier one of bs is not sent at all.
func (s *Store) commitTelemetry(ctx context.Context, bs []*outpost.Batch, sizes []int, now int64) ([]bool, error) {
	dup := make([]bool, len(bs))
	type key struct {
		gw         string
		epoch, seq uint64
	}
	var uniq []*outpost.Batch
	var usizes []int
	var at []int // index in bs of each of uniq
	seen := make(map[key]bool, len(bs))
	for i, b := range bs {
		k := key{b.Gateway, b.Epoch, b.Seq}
		if seen[k] {
			dup[i] = true
			continue
		}
		seen[k] = true
		uniq, usizes, at = append(uniq, b), append(usizes, sizes[i]), append(at, i)
	}
	ids, err := s.ids(ctx, uniq)
	if err != nil {
		return nil, err
	}
	sc := scratchPool.Get().(*commitScratch)
	defer scratchPool.Put(sc)
	if err := sc.build(uniq, usizes, ids); err != nil {
		return nil, fmt.Errorf("postgres: %w: %v", ingest.ErrInvalidData, err)
	}
	// The statement is atomic: one that failed wrote nothing and may run
	// again. PostgreSQL's upsert of the series rows (ON CONFLICT on the
	// id) can still fail on the other unique index, (gateway, sensor,
	// metric), when concurrent commits update the same series; that is a
	// race, not bad data, so it is tried again at once.
	var fresh []bool
	for attempt := 1; ; attempt++ {
		if err := s.ensure(ctx, sc.need); err != nil {
			return nil, err
		}
		fresh, err = s.execCommit(ctx, sc, len(uniq), now)
		if err == nil {
			break
		}
		if attempt < maxSeriesRace && (seriesRace(err) || s.partitionGone(err)) {
			continue
		}
		return nil, fmt.Errorf("postgres: commit telemetry: %w", classify(err))
	}
	for j, i := range at {
		dup[i] = !fresh[j]
	}
	return dup, nil
}

// maxSeriesRace bounds the attempts of a commit that lost the series
// upsert's race.
const maxSeriesRace = 5

// seriesRace reports whether err is the series upsert's race: a unique
// violation on (gateway, sensor, metric) of a row that the upsert found
// by its id.
func seriesRace(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == seriesKeyConstraint
}

// seriesKeyConstraint is the name PostgreSQL gives series' UNIQUE
// (gateway, sensor, metric).
const seriesKeyConstraint = "series_gateway_sensor_metric_key"

// execCommit runs the commit statement of the n batches sc holds and
// reports which are new (by their place, from 0).
func (s *Store) execCommit(ctx context.Context, sc *commitScratch, n int, now int64) ([]bool, error) {
	rs, err := s.pool.Query(ctx, `WITH b AS (
		INSERT INTO batches (gateway, epoch, seq, received_at, n, kind, bytes, created)
		SELECT k.gateway, k.epoch, k.seq, $6, k.n, 'telemetry', k.bytes, k.created
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::integer[], $5::integer[], $28::bigint[]) AS k(gateway, epoch, seq, n, bytes, created)
		WHERE CASE WHEN k.created < $29
			THEN NOT EXISTS (SELECT FROM batches o WHERE o.created < $29 AND o.gateway = k.gateway AND o.epoch = k.epoch AND o.seq = k.seq)
			ELSE true END
		ON CONFLICT DO NOTHING RETURNING gateway, epoch, seq
	), nb AS (
		SELECT k.i FROM b JOIN unnest($1::text[], $2::bigint[], $3::bigint[]) WITH ORDINALITY AS k(gateway, epoch, seq, i)
		ON b.gateway = k.gateway AND b.epoch = k.epoch AND b.seq = k.seq
	), c AS (
		INSERT INTO chunks (series_id, t_min, t_max, n, data)
		SELECT u.series_id, u.t_min, u.t_max, u.n, u.data
		FROM unnest($7::integer[], $8::bigint[], $9::bigint[], $10::bigint[], $11::integer[], $12::bytea[])
			AS u(bi, series_id, t_min, t_max, n, data) JOIN nb ON nb.i = u.bi
	), p AS (
		INSERT INTO pending (series_id, win)
		SELECT DISTINCT u.series_id, u.win
		FROM unnest($7::integer[], $8::bigint[], $27::bigint[]) AS u(bi, series_id, win) JOIN nb ON nb.i = u.bi
		ORDER BY u.series_id, u.win
		ON CONFLICT (series_id, win) DO UPDATE SET win = excluded.win
	), r AS (
		INSERT INTO staged (gateway, win, series, ts, value, quality)
		SELECT ($1::text[])[u.bi], u.win, array_agg(u.series_id), array_agg(u.ts), array_agg(u.value), array_agg(u.quality)
		FROM unnest($13::integer[], $30::bigint[], $14::bigint[], $15::bigint[], $16::float8[], $17::smallint[])
			AS u(bi, win, series_id, ts, value, quality) JOIN nb ON nb.i = u.bi
		GROUP BY u.bi, u.win
	), l AS (
		INSERT INTO series AS s (id, gateway, sensor, metric, unit, first_ts, last_ts, last_value, last_quality)
		SELECT DISTINCT ON (u.id) u.id, ($1::text[])[u.bi], u.sensor, u.metric, u.unit,
			min(u.first_ts) OVER (PARTITION BY u.id), u.last_ts, u.last_value, u.last_quality
		FROM unnest($18::integer[], $19::bigint[], $20::text[], $21::text[], $22::text[], $23::bigint[], $24::bigint[], $25::float8[], $26::smallint[])
			AS u(bi, id, sensor, metric, unit, first_ts, last_ts, last_value, last_quality) JOIN nb ON nb.i = u.bi
		ORDER BY u.id, u.last_ts DESC, u.bi DESC
		ON CONFLICT (id) DO UPDATE SET
			unit = excluded.unit,
			first_ts = least(s.first_ts, excluded.first_ts),
			last_value = CASE WHEN s.last_ts IS NULL OR excluded.last_ts >= s.last_ts THEN excluded.last_value ELSE s.last_value END,
			last_quality = CASE WHEN s.last_ts IS NULL OR excluded.last_ts >= s.last_ts THEN excluded.last_quality ELSE s.last_quality END,
			last_ts = greatest(s.last_ts, excluded.last_ts)
	)
	SELECT i FROM nb`,
		sc.gws, sc.epochs, sc.seqs, sc.ns, sc.sizes, now,
		sc.cBatch, sc.cSeries, sc.cMin, sc.cMax, sc.cN, sc.cData,
		sc.rBatch, sc.rSeries, sc.rTS, sc.rValue, sc.rQuality,
		sc.uBatch, sc.uID, sc.uSensor, sc.uMetric, sc.uUnit, sc.uFirst, sc.uLast, sc.uValue, sc.uQuality,
		sc.cWin, sc.created, s.legacyUntil, sc.rWin)
	if err != nil {
		return nil, err
	}
	fresh := make([]bool, n)
	for rs.Next() {
		var i int64
		if err := rs.Scan(&i); err != nil {
			rs.Close()
			return nil, err
		}
		if i >= 1 && i <= int64(n) {
			fresh[i-1] = true
		}
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return nil, err
	}
	return fresh, nil
}

// build turns the batches into the statement's columns: their headers,
// and what layout.Builder makes of them (chunks, rows, and per batch each
// series' first and newest reading). Batch numbers in the columns count
// from 1, as the statement's WITH ORDINALITY does.
func (sc *commitScratch) build(bs []*outpost.Batch, sizes []int, ids [][]int64) error {
	sc.gws, sc.epochs, sc.seqs, sc.ns, sc.sizes = sc.gws[:0], sc.epochs[:0], sc.seqs[:0], sc.ns[:0], sc.sizes[:0]
	sc.created, sc.need = sc.created[:0], sc.need[:0]
	sc.cBatch, sc.cSeries, sc.cMin, sc.cMax, sc.cN, sc.cData = sc.cBatch[:0], sc.cSeries[:0], sc.cMin[:0], sc.cMax[:0], sc.cN[:0], sc.cData[:0]
	sc.cWin = sc.cWin[:0]
	sc.rBatch, sc.rSeries, sc.rTS, sc.rValue, sc.rQuality = sc.rBatch[:0], sc.rSeries[:0], sc.rTS[:0], sc.rValue[:0], sc.rQuality[:0]
	sc.rWin = sc.rWin[:0]
	sc.uBatch, sc.uID, sc.uSensor, sc.uMetric, sc.uUnit = sc.uBatch[:0], sc.uID[:0], sc.uSensor[:0], sc.uMetric[:0], sc.uUnit[:0]
	sc.uFirst, sc.uLast, sc.uValue, sc.uQuality = sc.uFirst[:0], sc.uLast[:0], sc.uValue[:0], sc.uQuality[:0]
	bd := &sc.bd
	bd.Reset()
	for bi, b := range bs {
		sc.gws, sc.epochs, sc.seqs = append(sc.gws, b.Gateway), append(sc.epochs, int64(b.Epoch)), append(sc.seqs, int64(b.Seq))
		sc.ns, sc.sizes = append(sc.ns, int32(b.Len())), append(sc.sizes, int32(sizes[bi]))
		sc.created, sc.need = append(sc.created, b.Created), appendPart(sc.need, part{tBatches, dayOf(b.Created)})
		if err := bd.Add(b); err != nil {
			return fmt.Errorf("batch %d: %w", bi, err)
		}
	}
	for i := range bd.Chunks {
		c := &bd.Chunks[i]
		sc.cBatch, sc.cSeries = append(sc.cBatch, int32(c.Batch+1)), append(sc.cSeries, ids[c.Batch][c.Series])
		sc.cMin, sc.cMax, sc.cN = append(sc.cMin, c.TMin), append(sc.cMax, c.TMax), append(sc.cN, int32(c.N))
		sc.cData, sc.cWin = append(sc.cData, bd.Data(c)), append(sc.cWin, layout.WindowOf(c.TMin))
		sc.need = appendPart(sc.need, part{tChunks, dayOf(c.TMin)})
	}
	for i := range bd.Rows {
		r := &bd.Rows[i]
		sc.rBatch, sc.rSeries, sc.rTS = append(sc.rBatch, int32(r.Batch+1)), append(sc.rSeries, ids[r.Batch][r.Series]), append(sc.rTS, r.TS)
		sc.rWin = append(sc.rWin, layout.WindowOf(r.TS))
		sc.rValue, sc.rQuality = append(sc.rValue, r.Value), append(sc.rQuality, int16(r.Quality))
	}
	for i := range bd.Series {
		u := &bd.Series[i]
		sr := &bs[u.Batch].Series[u.Series]
		sc.uBatch, sc.uID = append(sc.uBatch, int32(u.Batch+1)), append(sc.uID, ids[u.Batch][u.Series])
		sc.uSensor, sc.uMetric, sc.uUnit = append(sc.uSensor, sr.Sensor), append(sc.uMetric, sr.Metric), append(sc.uUnit, u.Unit)
		sc.uFirst, sc.uLast = append(sc.uFirst, u.First), append(sc.uLast, u.Last)
		sc.uValue, sc.uQuality = append(sc.uValue, u.LastValue), append(sc.uQuality, int16(u.LastQuality))
	}
	return nil
}
