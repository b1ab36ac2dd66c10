package sqlite_test

import (
	"cmp"
	"context"
	"database/sql"
	_ "embed"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/sqlite"
	"github.com/outposthq/outpost/ingest/storetest"
)

//go:embed testdata/schema-v1.sql
var schemaV1 string

// fillV1 writes readings into a file of the row layout as that release's
// store wrote them: a row each, NaN as NULL, and latest upserted
// (an equal timestamp replacing it), one batch after another.
func fillV1(t *testing.T, db *sql.DB, batches ...[]ingest.Point) {
	t.Helper()
	val := func(v float64) any {
		if math.IsNaN(v) {
			return nil
		}
		return v
	}
	for i, b := range batches {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range b {
			if _, err := tx.Exec(`INSERT INTO readings (gateway, sensor, metric, ts, value, quality) VALUES (?, ?, ?, ?, ?, ?)`,
				p.Gateway, p.Sensor, p.Metric, p.TS, val(p.Value), int64(p.Quality)); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(`INSERT INTO latest (gateway, sensor, metric, ts, value, quality) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (gateway, sensor, metric) DO UPDATE
				SET ts = excluded.ts, value = excluded.value, quality = excluded.quality
				WHERE excluded.ts >= latest.ts`, p.Gateway, p.Sensor, p.Metric, p.TS, val(p.Value), int64(p.Quality)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tx.Exec(`INSERT INTO batches VALUES (?, 1, ?, 1, ?, 'telemetry', 100)`, b[0].Gateway, i+1, len(b)); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// readV1 reads back a row-layout file's readings, as that release's store
// returned them, by series, and its latest.
func readV1(t *testing.T, db *sql.DB) (map[ingest.SeriesKey][]ingest.Point, []ingest.Point) {
	t.Helper()
	scan := func(q string) []ingest.Point {
		rs, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []ingest.Point
		for rs.Next() {
			var p ingest.Point
			var v sql.NullFloat64
			if err := rs.Scan(&p.Gateway, &p.Sensor, &p.Metric, &p.TS, &v, &p.Quality); err != nil {
				t.Fatal(err)
			}
			if p.Value = math.NaN(); v.Valid {
				p.Value = v.Float64
			}
			out = append(out, p)
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	by := map[ingest.SeriesKey][]ingest.Point{}
	for _, p := range scan(`SELECT gateway, sensor, metric, ts, value, quality FROM readings`) {
		k := ingest.SeriesKey{Gateway: p.Gateway, Sensor: p.Sensor, Metric: p.Metric}
		by[k] = append(by[k], p)
	}
	return by, scan(`SELECT gateway, sensor, metric, ts, value, quality FROM latest ORDER BY gateway, sensor, metric`)
}

func samePoint(a, b ingest.Point) bool {
	return a.Gateway == b.Gateway && a.Sensor == b.Sensor && a.Metric == b.Metric && a.TS == b.TS && a.Quality == b.Quality && sameBits(a.Value, b.Value)
}

// A file of the row layout (version 1), filled as that release's store
// filled it, opens converted to series chunks: every reading, its quality,
// NaN and the newest of each series read back as that store read them;
// the other tables keep their rows, and the old tables are gone. A
// conversion that fails part way resumes at the next open; an open after
// it finds nothing to do, and new batches go on.
func TestMigrateV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	db := writeDB(t, path)
	defer db.Close()
	exec(t, db, schemaV1)
	p := func(gw, sensor, metric string, ts int64, v float64, q outpost.Quality) ingest.Point {
		return ingest.Point{Gateway: gw, Sensor: sensor, Metric: metric, TS: ts, Value: v, Quality: q}
	}
	var temp []ingest.Point
	for i := range 9000 { // 2.5 hours at 1 Hz: three windows
		q := outpost.QualityGood
		if i%97 == 0 {
			q = outpost.QualityUncertain
		}
		temp = append(temp, p("gw-1", "env", "temperature", storetest.T0+int64(i)*sec, 20+float64(i%50)/10, q))
	}
	temp[5].Value, temp[6].Value, temp[7].Value, temp[8].Value = math.NaN(), math.Inf(1), math.Inf(-1), 0.1+0.2
	temp[9].Quality = outpost.QualityBad
	hum := []ingest.Point{
		p("gw-1", "env", "humidity", storetest.T0, 40.5, outpost.QualityBad),
		p("gw-1", "env", "humidity", storetest.T0+120*sec, 42.5, outpost.QualityBad),
	}
	late := []ingest.Point{ // an older batch arriving later
		p("gw-1", "env", "humidity", storetest.T0+60*sec, 41.5, outpost.QualityGood),
		p("gw-1", "env", "humidity", storetest.T0-3600*sec, math.NaN(), outpost.QualityGood),
	}
	door := []ingest.Point{ // equal timestamps: both kept, the later is the newest
		p("gw-2", "door", "open", storetest.T0, 1, 0),
		p("gw-2", "door", "open", storetest.T0, 0, 0),
	}
	broken := []ingest.Point{ // a quality no store wrote: stops the conversion
		p("gw-3", "x", "y", storetest.T0, 1, 0),
		p("gw-3", "x", "y", storetest.T0+sec, 2, 0),
	}
	fillV1(t, db, temp, hum, late, door, broken)
	exec(t, db, `UPDATE readings SET quality = 7 WHERE gateway = 'gw-3' AND value = 2`)
	exec(t, db, `INSERT INTO alerts VALUES ('gw-1', 'hot', 'hot{}', 'firing', 'warning', 30, '{}', 'hot', 1, 1, 1, '{}')`)
	want, wantLatest := readV1(t, db)

	// The first open converts the series before gw-3's, and stops there.
	s, err := sqlite.Open(context.Background(), path, zerolog.Nop())
	if err == nil || s != nil || !strings.Contains(err.Error(), "gw-3/x/y") || !strings.Contains(err.Error(), "quality 7") {
		t.Fatalf("open with a broken series: %v, %v", s, err)
	}
	left, err := queryStrings(context.Background(), db, `SELECT DISTINCT gateway FROM readings_v1`)
	if err != nil || len(left) != 1 || left[0] != "gw-3" {
		t.Fatalf("rows left after the failed conversion: %v, %v", left, err)
	}
	exec(t, db, `UPDATE readings_v1 SET quality = 2 WHERE quality = 7`)
	k3 := ingest.SeriesKey{Gateway: "gw-3", Sensor: "x", Metric: "y"}
	want[k3][1].Quality = outpost.QualityBad
	wantLatest[len(wantLatest)-1].Quality = outpost.QualityBad

	s = open(t, path)
	ctx := context.Background()
	c, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := len(temp) + len(hum) + len(late) + len(door) + len(broken)
	if c != (ingest.Counts{Readings: int64(n), DistinctReadings: int64(n - 1), Batches: 5, Alerts: 1}) {
		t.Fatalf("counts after the conversion: %+v", c)
	}
	for k, ps := range want {
		got, err := storetest.Collect(s.Range(ctx, ingest.RangeQuery{Gateway: k.Gateway, Sensor: k.Sensor, Metric: k.Metric,
			From: math.MinInt64, To: math.MaxInt64, Limit: 100000}))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ps) {
			t.Fatalf("%v: %d readings, want %d", k, len(got), len(ps))
		}
		byTime := func(a, b ingest.Point) int { return cmp.Or(cmp.Compare(a.TS, b.TS), cmp.Compare(a.Value, b.Value)) }
		slices.SortFunc(got, byTime)
		slices.SortFunc(ps, byTime)
		for i := range got {
			if !samePoint(got[i], ps[i]) {
				t.Fatalf("%v reading %d = %+v, want %+v", k, i, got[i], ps[i])
			}
		}
	}
	if got := want[ingest.SeriesKey{Gateway: "gw-1", Sensor: "env", Metric: "temperature"}]; !math.IsNaN(got[5].Value) || !math.IsInf(got[7].Value, -1) || got[8].Value != 0.1+0.2 || got[9].Quality != outpost.QualityBad {
		t.Fatalf("special readings of temperature: %+v", got[5:10])
	}
	latest, err := storetest.Collect(s.Latest(ctx, ingest.LatestQuery{Limit: 10}))
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != len(wantLatest) {
		t.Fatalf("latest = %+v, want %+v", latest, wantLatest)
	}
	for i := range latest {
		if !samePoint(latest[i], wantLatest[i]) {
			t.Fatalf("latest[%d] = %+v, want %+v", i, latest[i], wantLatest[i])
		}
	}
	if wantLatest[0].TS != storetest.T0+120*sec || wantLatest[2].Value != 0 {
		t.Fatalf("the file's latest was not as meant: %+v", wantLatest)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tables, err := queryStrings(ctx, db, `SELECT name FROM sqlite_schema WHERE name LIKE '%_v1'`)
	if err != nil || len(tables) != 0 {
		t.Fatalf("old tables left: %v, %v", tables, err)
	}
	v, err := queryStrings(ctx, db, `SELECT version FROM outpost_schema`)
	if err != nil || len(v) != 1 || v[0] != "3" {
		t.Fatalf("schema version %v, %v", v, err)
	}

	s = open(t, path)
	defer s.Close()
	// A batch of the old ledger sent again (its ack lost before the
	// upgrade) is a duplicate, though the old ledger never knew when it
	// was made.
	gws, err := queryStrings(ctx, db, `SELECT gateway FROM batches WHERE epoch = 1 AND seq = 1`)
	if err != nil || len(gws) != 1 {
		t.Fatalf("old ledger row: %v, %v", gws, err)
	}
	if dup, err := s.Commit(ctx, storetest.Telemetry(gws[0], 1, 1, storetest.Series("env", "temperature", storetest.T0, time.Second, 3, 0)...), 1); err != nil || !dup {
		t.Fatalf("an old batch again: dup %v, %v; want a duplicate", dup, err)
	}
	commit(t, s, storetest.Telemetry("gw-1", 2, 1, storetest.Series("env", "temperature", storetest.T0+9000*sec, time.Second, 100, 0)...))
	if c, err := s.Counts(ctx); err != nil || c.Readings != int64(n+100) {
		t.Fatalf("counts after a new batch: %+v, %v", c, err)
	}
}

// A file of a later layout than this release's is refused, untouched.
func TestOpenNewerLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	s := open(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := writeDB(t, path)
	defer db.Close()
	exec(t, db, `UPDATE outpost_schema SET version = 4`)
	s, err := sqlite.Open(context.Background(), path, zerolog.Nop())
	if err == nil || s != nil || !strings.Contains(err.Error(), "version 4") {
		t.Fatalf("open of a version 4 file: %v, %v", s, err)
	}
	v, err := queryStrings(context.Background(), db, `SELECT version FROM outpost_schema`)
	if err != nil || len(v) != 1 || v[0] != "4" {
		t.Fatalf("version after the refused open: %v, %v", v, err)
	}
}
