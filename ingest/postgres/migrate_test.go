package postgres_test

import (
	"cmp"
	"context"
	_ "embed"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/storetest"
)

//go:embed testdata/schema-v1.sql
var schemaV1 string

// A database of the row layout (version 1), filled as that release's
// store filled it, opens converted to series chunks: every reading, its
// quality and the newest of each series read back the same, the other
// tables keep their rows, and the old tables are gone. A second open
// finds nothing to do, and new batches go on.
func TestMigrateV1(t *testing.T) {
	d := dsn(t)
	c := connect(t, d)
	defer c.Close(context.Background())
	ctx := context.Background()
	if _, err := c.Exec(ctx, schemaV1); err != nil {
		t.Fatal(err)
	}
	sec := int64(time.Second)
	var want []ingest.Point
	add := func(gw, sensor, metric string, ts int64, v float64, q outpost.Quality) {
		want = append(want, ingest.Point{Gateway: gw, Sensor: sensor, Metric: metric, TS: ts, Value: v, Quality: q})
	}
	for i := range 9000 { // 2.5 hours at 1 Hz: three windows
		q := outpost.QualityGood
		if i%97 == 0 {
			q = outpost.QualityUncertain
		}
		add("gw-1", "env", "temperature", storetest.T0+int64(i)*sec, 20+float64(i%50)/10, q)
	}
	want[5].Value = math.NaN()
	for i := range 3 {
		add("gw-1", "env", "humidity", storetest.T0+int64(i)*60*sec, 40.5+float64(i), outpost.QualityBad)
	}
	add("gw-2", "door", "open", storetest.T0, 1, 0)
	add("gw-2", "door", "open", storetest.T0, 0, 0) // an equal timestamp: both kept
	rows := make([][]any, len(want))
	for i, p := range want {
		rows[i] = []any{p.Gateway, p.Sensor, p.Metric, p.TS, p.Value, int16(p.Quality)}
	}
	if _, err := c.CopyFrom(ctx, pgx.Identifier{"readings"}, []string{"gateway", "sensor", "metric", "ts", "value", "quality"},
		pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO latest SELECT DISTINCT ON (gateway, sensor, metric) * FROM readings ORDER BY gateway, sensor, metric, ts DESC`,
		`INSERT INTO batches VALUES ('gw-1', 1, 1, 1, 9003, 'telemetry', 100), ('gw-2', 1, 1, 1, 2, 'telemetry', 50)`,
		`INSERT INTO alerts VALUES ('gw-1', 'hot', 'hot{}', 'firing', 'warning', 30, '{}', 'hot', 1, 1, 1, '{}')`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	s := open(t, d)
	defer s.Close()
	cn, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cn.Readings != int64(len(want)) || cn.DistinctReadings != int64(len(want)-1) || cn.Batches != 2 || cn.Alerts != 1 {
		t.Fatalf("counts after the conversion: %+v", cn)
	}
	byKey := map[ingest.SeriesKey][]ingest.Point{}
	for _, p := range want {
		k := ingest.SeriesKey{Gateway: p.Gateway, Sensor: p.Sensor, Metric: p.Metric}
		byKey[k] = append(byKey[k], p)
	}
	for k, ps := range byKey {
		got, err := storetest.Collect(s.Range(ctx, ingest.RangeQuery{Gateway: k.Gateway, Sensor: k.Sensor, Metric: k.Metric,
			From: math.MinInt64, To: math.MaxInt64, Limit: 100000}))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ps) {
			t.Fatalf("%v: %d readings, want %d", k, len(got), len(ps))
		}
		sortPoints(got)
		sortPoints(ps)
		for i := range got {
			g, w := got[i], ps[i]
			if g.TS != w.TS || g.Quality != w.Quality || math.Float64bits(g.Value) != math.Float64bits(w.Value) && !(math.IsNaN(g.Value) && math.IsNaN(w.Value)) {
				t.Fatalf("%v reading %d = %+v, want %+v", k, i, g, w)
			}
		}
	}
	latest, err := storetest.Collect(s.Latest(ctx, ingest.LatestQuery{Limit: 10}))
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 3 || latest[0].TS != storetest.T0+2*60*sec || latest[0].Value != 42.5 || latest[0].Quality != outpost.QualityBad ||
		latest[1].TS != storetest.T0+8999*sec || latest[2].Gateway != "gw-2" {
		t.Fatalf("latest after the conversion: %+v", latest)
	}
	left, err := queryStrings(ctx, c, `SELECT relname::text FROM pg_class WHERE relname IN ('readings_v1', 'latest_v1') AND relnamespace = current_schema()::regnamespace`)
	if err != nil || len(left) != 0 {
		t.Fatalf("old tables left: %v, %v", left, err)
	}
	v, err := queryStrings(ctx, c, `SELECT version::text FROM outpost_schema`)
	if err != nil || len(v) != 1 || v[0] != "4" {
		t.Fatalf("schema version %v, %v", v, err)
	}
	// The ledger, alerts and the rest moved into daily partitions, the
	// old tables gone.
	parted, err := queryStrings(ctx, c, `SELECT p.relname::text FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
		WHERE p.relkind = 'p' AND p.relnamespace = current_schema()::regnamespace GROUP BY 1 ORDER BY 1`)
	if err != nil || !slices.Equal(parted, []string{"alerts", "batches", "chunks"}) {
		t.Fatalf("partitioned tables with partitions: %v, %v", parted, err)
	}
	left, err = queryStrings(ctx, c, `SELECT relname::text FROM pg_class WHERE relname LIKE '%\_old' AND relnamespace = current_schema()::regnamespace`)
	if err != nil || len(left) != 0 {
		t.Fatalf("old tables left: %v, %v", left, err)
	}
	// A batch of the old ledger sent again (its ack was lost before the
	// upgrade) is a duplicate, though the old ledger never knew when it
	// was made.
	if dup, err := s.Commit(ctx, storetest.Telemetry("gw-1", 1, 1, storetest.Series("env", "temperature", storetest.T0, time.Second, 3, 0)...), 1); err != nil || !dup {
		t.Fatalf("an old batch again: dup %v, %v; want a duplicate", dup, err)
	}

	s2 := open(t, d)
	defer s2.Close()
	if dup, err := s2.Commit(ctx, storetest.Telemetry("gw-1", 2, 1, storetest.Series("env", "temperature", storetest.T0+9000*sec, time.Second, 100, 0)...), 1); err != nil || dup {
		t.Fatalf("commit after the conversion: dup %v, %v", dup, err)
	}
	if cn, err := s2.Counts(ctx); err != nil || cn.Readings != int64(len(want)+100) {
		t.Fatalf("counts after a new batch: %+v, %v", cn, err)
	}
}

func sortPoints(ps []ingest.Point) {
	slices.SortFunc(ps, func(a, b ingest.Point) int {
		return cmp.Or(cmp.Compare(a.TS, b.TS), cmp.Compare(a.Value, b.Value))
	})
}

// A database of version 3, which kept the readings to fold a row each
// (the recent table), opens with them staged: every reading reads back
// the same, before and after compacting, the row table is a view, and
// new batches go on.
func TestMigrateRecent(t *testing.T) {
	d := dsn(t)
	ctx := context.Background()
	sec := int64(time.Second)
	s := open(t, d)
	var want []ingest.Point
	for i := range 40 {
		rs := storetest.Series(fmt.Sprint("s", i%4), "t", storetest.T0+int64(i)*20*60*sec, time.Minute, 3, float64(i))
		if i == 7 {
			rs[1].Quality = outpost.QualityBad
		}
		if _, err := s.Commit(ctx, storetest.Telemetry("gw", 1, uint64(i+1), rs...), 1); err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			want = append(want, ingest.Point{Gateway: "gw", Sensor: r.Sensor, Metric: r.Metric, Unit: r.Unit, TS: r.TS, Value: r.Value, Quality: r.Quality})
		}
	}
	s.Close()
	// What version 3 had: the same rows in a table of their own.
	c := connect(t, d)
	defer c.Close(ctx)
	for _, q := range []string{
		`CREATE TABLE recent_rows AS SELECT series_id, ts, value, quality FROM recent`,
		`DROP VIEW recent CASCADE`,
		`DELETE FROM staged`,
		`ALTER TABLE recent_rows RENAME TO recent`,
		`CREATE INDEX recent_series_ts ON recent (series_id, ts)`,
		`UPDATE outpost_schema SET version = 3`,
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if n, err := queryStrings(ctx, c, `SELECT count(*)::text FROM recent`); err != nil || len(n) != 1 || n[0] != "120" {
		t.Fatalf("rows of version 3: %v, %v", n, err)
	}
	s = open(t, d)
	defer s.Close()
	check := func(what string) {
		t.Helper()
		var got []ingest.Point
		for i := range 4 {
			ps, err := storetest.Collect(s.Range(ctx, ingest.RangeQuery{Gateway: "gw", Sensor: fmt.Sprint("s", i), Metric: "t",
				From: math.MinInt64, To: math.MaxInt64, Limit: 1000}))
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ps...)
		}
		sortPoints(got)
		w := slices.Clone(want)
		sortPoints(w)
		if !slices.Equal(got, w) {
			t.Fatalf("%s: %d readings, want %d", what, len(got), len(w))
		}
	}
	check("after opening")
	kind, err := queryStrings(ctx, c, `SELECT relkind::text FROM pg_class WHERE relname = 'recent' AND relnamespace = current_schema()::regnamespace`)
	if err != nil || !slices.Equal(kind, []string{"v"}) {
		t.Fatalf("recent after opening: %v, %v; want a view", kind, err)
	}
	// 40 batches of 20 minutes: the readings of about 14 hours.
	if n, err := queryStrings(ctx, c, `SELECT count(*)::text FROM staged`); err != nil || len(n) != 1 || n[0] != "14" {
		t.Fatalf("staged rows: %v, %v; want one a window", n, err)
	}
	st, err := s.Compact(ctx, math.MaxInt64)
	if err != nil || st.Rows != 120 {
		t.Fatalf("compact: %+v, %v", st, err)
	}
	check("after compacting")
	if _, err := s.Commit(ctx, storetest.Telemetry("gw", 2, 1, storetest.Series("s0", "t", storetest.T0-sec, time.Second, 2, 1)...), 1); err != nil {
		t.Fatal(err)
	}
	if cn, err := s.Counts(ctx); err != nil || cn.Readings != 122 {
		t.Fatalf("counts after a new batch: %+v, %v", cn, err)
	}
}
