package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/internal/chunk"
	"github.com/outposthq/outpost/ingest/sqlite"
	"github.com/outposthq/outpost/ingest/storetest"
)

const sec = int64(time.Second)

func commit(t testing.TB, s *sqlite.Store, b *outpost.Batch) {
	t.Helper()
	if dup, err := s.Commit(context.Background(), b, 1); err != nil || dup {
		t.Fatalf("commit %d: dup %v, %v", b.Seq, dup, err)
	}
}

func rangeAll(s *sqlite.Store, sensor, metric string) ([]ingest.Point, error) {
	return storetest.Collect(s.Range(context.Background(), ingest.RangeQuery{Gateway: "gw", Sensor: sensor, Metric: metric,
		From: math.MinInt64, To: math.MaxInt64, Limit: 1 << 20}))
}

// sameBits reports whether two values are the same float64, NaN for NaN.
func sameBits(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || math.IsNaN(a) && math.IsNaN(b)
}

// The readings view answers plain SQL with every reading, from chunks
// (unpacked by outpost_chunk_unpack) and from recent, as Range does; the
// latest view is the series' newest readings.
func TestReadingsView(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	s := open(t, path)
	defer s.Close()
	long := storetest.Series("env", "t", storetest.T0-100*sec, time.Second, 300, 20.5) // chunks in two hours
	long[3].Value, long[4].Value, long[5].Value = math.NaN(), math.Inf(-1), math.Copysign(0, -1)
	long[7].Quality = outpost.QualityBad
	short := storetest.Series("env", "t", storetest.T0+3000*sec, time.Second, 3, 7) // rows
	short[1].Value, short[2].Quality = math.NaN(), outpost.QualityUncertain
	commit(t, s, storetest.Telemetry("gw", 1, 1, append(long, storetest.Series("door", "open", storetest.T0, time.Second, 2, 0)...)...))
	commit(t, s, storetest.Telemetry("gw", 1, 2, short...))

	want, err := rangeAll(s, "env", "t")
	if err != nil || len(want) != 303 {
		t.Fatalf("range: %d readings, %v", len(want), err)
	}
	db := readDB(t, path)
	defer db.Close()
	rs, err := db.Query(`SELECT gateway, sensor, metric, ts, value, quality FROM readings
		WHERE gateway = 'gw' AND sensor = 'env' AND metric = 't' ORDER BY ts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	i := 0
	for ; rs.Next(); i++ {
		var p ingest.Point
		var v sql.NullFloat64
		if err := rs.Scan(&p.Gateway, &p.Sensor, &p.Metric, &p.TS, &v, &p.Quality); err != nil {
			t.Fatal(err)
		}
		if v.Valid == math.IsNaN(want[i].Value) {
			t.Fatalf("reading %d: value %v, want %v (NaN as NULL)", i, v, want[i].Value)
		}
		if p.Value = math.NaN(); v.Valid {
			p.Value = v.Float64
		}
		w := want[i]
		if p.Gateway != w.Gateway || p.Sensor != w.Sensor || p.Metric != w.Metric || p.TS != w.TS || p.Quality != w.Quality || !sameBits(p.Value, w.Value) {
			t.Fatalf("reading %d: %+v, want %+v", i, p, w)
		}
	}
	if err := rs.Err(); err != nil || i != len(want) {
		t.Fatalf("%d rows of readings, want %d: %v", i, len(want), err)
	}
	if !math.Signbit(want[5].Value) || want[5].Value != 0 {
		t.Errorf("-0 read back as %v", want[5].Value)
	}
	got, err := queryStrings(context.Background(), db, `SELECT sensor || '/' || metric || ' ' || ts || ' ' || coalesce(value, 'NULL') || ' ' || quality FROM latest ORDER BY sensor`)
	if err != nil {
		t.Fatal(err)
	}
	wantLatest := []string{
		fmt.Sprintf("door/open %d 1.0 0", storetest.T0+sec),
		fmt.Sprintf("env/t %d 9.0 1", storetest.T0+3002*sec),
	}
	if fmt.Sprint(got) != fmt.Sprint(wantLatest) {
		t.Errorf("latest = %q, want %q", got, wantLatest)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM chunks`).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d chunks, want 2 (env/t's two hours): %v", n, err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM recent`).Scan(&n); err != nil || n != 5 {
		t.Errorf("%d recent rows, want 5: %v", n, err)
	}
}

// The newest reading of a series: a later batch with older readings does
// not move it back; of equal timestamps the later committed wins, in
// separate commits, in one group and within one batch; first_ts is the
// oldest reading.
func TestLatestOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	s := open(t, path)
	defer s.Close()
	db := readDB(t, path)
	defer db.Close()
	r := func(ts int64, v float64) outpost.Reading {
		return outpost.Reading{Sensor: "s", Metric: "m", TS: storetest.T0 + ts*sec, Value: v}
	}
	latest := func() string {
		t.Helper()
		got, err := queryStrings(context.Background(), db, fmt.Sprintf(`SELECT printf('%%d %%s %%d', (ts - %[1]d) / 1000000000, value, (first_ts - %[1]d) / 1000000000)
			FROM latest JOIN series USING (gateway, sensor, metric)`, storetest.T0))
		if err != nil || len(got) != 1 {
			t.Fatalf("latest: %q, %v", got, err)
		}
		return got[0]
	}
	commit(t, s, storetest.Telemetry("gw", 1, 1, r(10, 1)))
	commit(t, s, storetest.Telemetry("gw", 1, 2, r(5, 2)))
	if got := latest(); got != "10 1.0 5" {
		t.Fatalf("after an older batch: %s", got)
	}
	commit(t, s, storetest.Telemetry("gw", 1, 3, r(10, 3)))
	if got := latest(); got != "10 3.0 5" {
		t.Fatalf("after an equal timestamp: %s", got)
	}
	dup, err := s.CommitGroup(context.Background(), []*outpost.Batch{
		storetest.Telemetry("gw", 1, 4, r(20, 4)), storetest.Telemetry("gw", 1, 5, r(20, 5), r(-3, 0)),
	}, []int{1, 1})
	if err != nil || dup[0] || dup[1] {
		t.Fatalf("group: %v, %v", dup, err)
	}
	if got := latest(); got != "20 5.0 -3" {
		t.Fatalf("after a group: %s", got)
	}
	// The series twice in one batch, its two newest at one time.
	b := storetest.Telemetry("gw", 1, 6, r(30, 6))
	b2 := storetest.Telemetry("gw", 1, 6, r(30, 7))
	b.Series = append(b.Series, b2.Series...)
	commit(t, s, b)
	if got := latest(); got != "30 7.0 -3" {
		t.Fatalf("after a series twice in a batch: %s", got)
	}
}

// A transaction that fails after making a series leaves no trace of it:
// the id it got is not kept, and the next commit makes the series anew.
func TestRollbackForgetsSeries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	s := open(t, path)
	defer s.Close()
	w := writeDB(t, path)
	defer w.Close()
	fail := storetest.T0 + 3600*sec
	exec(t, w, fmt.Sprintf(`CREATE TRIGGER refuse BEFORE INSERT ON chunks WHEN NEW.t_min = %d BEGIN SELECT RAISE(ABORT, 'refused'); END`, fail))
	rs := append(storetest.Series("new", "m", storetest.T0, time.Second, 20, 0), storetest.Series("other", "m", fail, time.Second, 20, 0)...)
	if _, err := s.Commit(context.Background(), storetest.Telemetry("gw", 1, 1, rs...), 1); err == nil {
		t.Fatal("the batch committed through the trigger")
	}
	exec(t, w, `DROP TRIGGER refuse`)
	exec(t, w, `INSERT INTO series (gateway, sensor, metric) VALUES ('gw', 'squatter', 'm')`) // takes the id "new" had
	commit(t, s, storetest.Telemetry("gw", 1, 1, storetest.Series("new", "m", storetest.T0, time.Second, 20, 0)...))
	pts, err := storetest.Collect(s.Latest(context.Background(), ingest.LatestQuery{Limit: 10}))
	if err != nil || len(pts) != 1 || pts[0].Sensor != "new" || pts[0].Value != 19 {
		t.Fatalf("latest: %+v, %v", pts, err)
	}
	got, err := rangeAll(s, "new", "m")
	if err != nil || len(got) != 20 {
		t.Fatalf("range: %d readings, %v", len(got), err)
	}
}

// A group takes batches of every kind; a batch of it that is refused
// fails the group, and nothing of it is stored.
func TestCommitGroupKinds(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "ingest.db"))
	defer s.Close()
	tel := storetest.Telemetry("gw", 1, 1, storetest.Series("s", "m", storetest.T0, time.Second, 20, 0)...)
	alert := storetest.AlertBatch("gw", 1, 2, outpost.Alert{Rule: "hot", Fingerprint: "hot{}", State: outpost.StateFiring, ChangedAt: storetest.T0, Seq: 1})
	loss := storetest.LossBatch("gw", 1, 3, outpost.Loss{Reason: outpost.LossMaxAge, Kind: outpost.KindTelemetry, Sensor: "s", Metric: "m", Count: 5})
	bad := storetest.LossBatch("gw", 1, 4, outpost.Loss{Reason: outpost.LossMaxAge, Kind: outpost.KindTelemetry, Sensor: "s", Metric: "m", Count: math.MaxInt64 + 1})
	ctx := context.Background()
	if _, err := s.CommitGroup(ctx, []*outpost.Batch{tel, alert, loss, bad}, []int{1, 1, 1, 1}); !errors.Is(err, ingest.ErrInvalidData) {
		t.Fatalf("a group with a refused batch: %v, want ErrInvalidData", err)
	}
	if c, err := s.Counts(ctx); err != nil || c != (ingest.Counts{}) {
		t.Fatalf("counts after a refused group: %+v, %v", c, err)
	}
	dup, err := s.CommitGroup(ctx, []*outpost.Batch{tel, alert, loss, tel}, []int{1, 1, 1, 1})
	if err != nil || fmt.Sprint(dup) != "[false false false true]" {
		t.Fatalf("group: %v, %v", dup, err)
	}
	if c, err := s.Counts(ctx); err != nil || c != (ingest.Counts{Readings: 20, DistinctReadings: 20, Alerts: 1, Batches: 3, Gaps: 1, LostReadings: 5}) {
		t.Fatalf("counts: %+v, %v", c, err)
	}
	if _, err := s.CommitGroup(ctx, []*outpost.Batch{tel}, nil); err == nil {
		t.Error("a group without its sizes committed")
	}
	if dup, err := s.CommitGroup(ctx, nil, nil); err != nil || len(dup) != 0 {
		t.Errorf("an empty group: %v, %v", dup, err)
	}
}

// A damaged chunk is an error of Range, of the readings view and of
// Counts, never a panic nor readings out of order; the other series read
// on.
func TestCorruptChunk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	s := open(t, path)
	defer s.Close()
	rs := storetest.Series("s", "m", storetest.T0, time.Second, 40, 1.5)
	rs[3].Quality = outpost.QualityBad
	commit(t, s, storetest.Telemetry("gw", 1, 1, append(rs, storetest.Series("ok", "m", storetest.T0, time.Second, 20, 0)...)...))
	w := writeDB(t, path)
	defer w.Close()
	db := readDB(t, path)
	defer db.Close()
	var good []byte
	if err := w.QueryRow(`SELECT data FROM chunks JOIN series ON series.id = series_id WHERE sensor = 's'`).Scan(&good); err != nil {
		t.Fatal(err)
	}
	set := func(p []byte) {
		t.Helper()
		exec(t, w, `UPDATE chunks SET data = ? WHERE series_id = (SELECT id FROM series WHERE sensor = 's')`, p)
	}
	var cases [][]byte
	for i := range len(good) {
		cases = append(cases, good[:i]) // every truncation, the empty one too
		for _, x := range []byte{0x01, 0x80, 0xff} {
			p := append([]byte(nil), good...)
			p[i] ^= x
			cases = append(cases, p)
		}
	}
	cases = append(cases, append(append([]byte(nil), good...), 0))
	for i, p := range cases {
		set(p)
		pts, rangeErr := rangeAll(s, "s", "m")
		for j := 1; j < len(pts); j++ {
			if pts[j].TS < pts[j-1].TS {
				t.Fatalf("case %d (% x): reading %d out of order", i, p, j)
			}
		}
		var n int
		viewErr := db.QueryRow(`SELECT count(*) FROM readings WHERE sensor = 's'`).Scan(&n)
		_, countErr := s.Counts(context.Background())
		if len(p) < 4 || i%4 == 0 && len(p) < len(good) {
			// Truncated: every part of a chunk is needed.
			if !errors.Is(rangeErr, chunk.ErrCorrupt) || viewErr == nil || countErr == nil {
				t.Errorf("case %d (% x): range %v, view %v, counts %v; want errors", i, p, rangeErr, viewErr, countErr)
			}
		}
	}
	// Decodable, but not as the store writes: out of order, before its
	// t_min, or beyond the day of its t_min.
	for _, ts := range [][]int64{{2, 1}, {-5, 1}, {0, 90000}} {
		p, err := chunk.Append(nil, []int64{storetest.T0 + ts[0]*sec, storetest.T0 + ts[1]*sec}, []float64{1, 2}, nil)
		if err != nil {
			t.Fatal(err)
		}
		set(p)
		if _, err := rangeAll(s, "s", "m"); err == nil {
			t.Errorf("timestamps %v: no error", ts)
		}
	}
	set(good)
	if pts, err := rangeAll(s, "s", "m"); err != nil || len(pts) != 40 || pts[3].Quality != outpost.QualityBad {
		t.Fatalf("the chunk restored: %d readings, %v", len(pts), err)
	}
	if pts, err := rangeAll(s, "ok", "m"); err != nil || len(pts) != 20 {
		t.Fatalf("the other series: %d readings, %v", len(pts), err)
	}
}
