package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/ingest/storetest"
	"github.com/outposthq/outpost/internal/testenv"
	"github.com/outposthq/outpost/rules"
	"github.com/outposthq/outpost/rules/ruletest"
)

// backtestRules fire and resolve (hot), step down between levels and
// repeat (co2-high), run a window (hot-avg), go nodata (humidity-silent)
// and clear before their for (hot's second pending). No rule selects
// pressure.
const backtestRules = `rules:
  - name: hot
    select: {metric: temperature}
    above: 25
    for: 10s
  - name: hot-avg
    select: {metric: temperature, sensor: room-a}
    condition: 'avg(temperature, "30s") > 24'
    for: 5s
  - name: co2-high
    select: {metric: co2}
    levels:
      - {severity: critical, above: 1500, reset_below: 1300}
      - {severity: warning, above: 1000, for: 20s, reset_below: 900}
    repeat: 1m
  - name: humidity-silent
    select: {metric: humidity}
    below: 0
    no_data: {after: 30s}
`

// backtestT0 is the first reading's time: two minutes before an hour, so
// that compacting the closed hour puts the history in both layouts.
var backtestT0 = time.Date(2025, 6, 1, 11, 58, 0, 0, time.UTC).UnixNano()

const sec = int64(time.Second)

// backtestBatches are six minutes of a gateway's readings as it would
// have sent them: a batch per 10 seconds, series by series in key order
// within it (so that, across series, readings come out of time order by
// up to 10 s), plus a batch that repeats one reading.
func backtestBatches() [][]outpost.Reading {
	var batches [][]outpost.Reading
	for b := int64(0); b < 36; b++ {
		var rs []outpost.Reading
		add := func(sensor, metric string, every, offset int64, value func(s int64) (float64, outpost.Quality, bool)) {
			for s := b * 10; s < b*10+10; s++ {
				if s%every != 0 {
					continue
				}
				v, q, ok := value(s)
				if !ok {
					continue
				}
				rs = append(rs, outpost.Reading{Sensor: sensor, Metric: metric, Unit: "x", TS: backtestT0 + s*sec + offset, Value: v, Quality: q})
			}
		}
		add("room-a", "co2", 5, 0, func(s int64) (float64, outpost.Quality, bool) {
			switch {
			case s < 30:
				return 800, outpost.QualityGood, true
			case s < 100:
				return 1100, outpost.QualityGood, true
			case s < 130:
				return 1600, outpost.QualityGood, true
			case s < 200:
				return 1200, outpost.QualityGood, true
			}
			return 850, outpost.QualityGood, true
		})
		add("room-a", "humidity", 3, 0, func(s int64) (float64, outpost.Quality, bool) {
			return 40, outpost.QualityGood, s < 90 || s >= 180 // silent for 90 s: nodata, then resolved
		})
		add("room-a", "temperature", 1, 0, func(s int64) (float64, outpost.Quality, bool) {
			switch {
			case s == 200:
				return 99, outpost.QualityBad, true // the engine ignores it: no pending
			case s >= 60 && s < 150:
				return 27, outpost.QualityGood, true
			case s >= 250 && s < 255:
				return 26, outpost.QualityUncertain, true // uncertain counts: pending, then inactive
			}
			return 20, outpost.QualityGood, true
		})
		add("room-b", "pressure", 1, 500*int64(time.Millisecond), func(s int64) (float64, outpost.Quality, bool) {
			return 1013, outpost.QualityGood, true
		})
		add("room-b", "temperature", 2, 250*int64(time.Millisecond), func(s int64) (float64, outpost.Quality, bool) {
			if s >= 300 && s < 330 {
				return 30, outpost.QualityGood, true
			}
			return 22, outpost.QualityGood, true
		})
		batches = append(batches, rs)
		if b == 30 {
			// A reading stored twice (another batch of the same reading).
			batches = append(batches, []outpost.Reading{{Sensor: "room-a", Metric: "co2", Unit: "x", TS: backtestT0 + 300*sec, Value: 850}})
		}
	}
	return batches
}

// storeBatches commits each batch of readings to the store at dsn as a
// telemetry batch of gateway gw, then compacts what lies before
// compactBefore (0: nothing).
func storeBatches(t *testing.T, dsn, gw string, batches [][]outpost.Reading, compactBefore int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := stores.Open(ctx, dsn, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	for i, rs := range batches {
		if _, err := s.Commit(ctx, storetest.Telemetry(gw, 7, uint64(i+1), rs...), 100); err != nil {
			t.Fatalf("commit batch %d: %v", i, err)
		}
	}
	if compactBefore != 0 {
		c, ok := s.(ingest.Compactor)
		if !ok {
			t.Fatal("the store does not compact")
		}
		st, err := c.Compact(ctx, compactBefore)
		if err != nil || st.ChunksWritten == 0 {
			t.Fatalf("compact: %+v, %v", st, err)
		}
	}
}

// csvOf is the CSV replay's input for the readings of batches with
// from <= ts < to, in the order the batches hold them, as `outpost
// buffer export --format csv` writes them, but for what a CSV cannot
// express: readings of bad quality, which the engine ignores, are left
// out, and so are those of the series that keep (nil: all) refuses, as
// the backtest does not read them.
func csvOf(batches [][]outpost.Reading, from, to int64, keep func(outpost.Reading) bool) string {
	var b strings.Builder
	b.WriteString(ruletest.CSVHeader + "\n")
	for _, rs := range batches {
		for _, r := range rs {
			if r.Quality == outpost.QualityBad || r.TS < from || r.TS >= to || keep != nil && !keep(r) {
				continue
			}
			fmt.Fprintf(&b, "%s,%s,%s,%s\n", fmtNS(r.TS), r.Sensor, r.Metric, strconv.FormatFloat(r.Value, 'g', -1, 64))
		}
	}
	return b.String()
}

// outpostBinary builds the gateway binary `outpost` into the test's
// temporary directory, so that the test runs `outpost rules replay`
// itself, and returns its path.
func outpostBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "outpost")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/outposthq/outpost/cmd/outpost")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/outpost: %v\n%s", err, out)
	}
	return bin
}

// csvReplay runs `outpost rules replay` (the binary bin) over csv and
// returns its output.
func csvReplay(t *testing.T, bin, csv string, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(in, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"rules", "replay", "--input", in}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("outpost rules replay: %v\n%s", err, errOut.String())
	}
	return out.String()
}

// backtestRun runs `outpost-ingest rules replay` with args.
func backtestRun(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(append([]string{"rules", "replay"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeRules(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// backtestStores are the databases the tests run against: a SQLite file,
// and with OUTPOST_TEST_PG a PostgreSQL schema of their own.
func backtestStores(t *testing.T) map[string]string {
	dbs := map[string]string{"sqlite": "sqlite:" + filepath.Join(t.TempDir(), "ingest.db")}
	if base := os.Getenv(testenv.EnvPG); base != "" {
		dbs["postgres"] = testenv.PostgresSchema(t, base)
	}
	return dbs
}

// setPage makes every series' page n readings for the test.
func setPage(t *testing.T, n int) {
	old := historyPage
	historyPage = n
	t.Cleanup(func() { historyPage = old })
}

// The backtest prints exactly what `outpost rules replay` prints for the
// same readings as a CSV, in pages of any size, from chunks and rows
// alike, over the whole history and over a window of it.
func TestRulesReplaySameAsCSV(t *testing.T) {
	batches := backtestBatches()
	rulesFile := writeRules(t, backtestRules)
	bin := outpostBinary(t)
	selectedMetric := func(r outpost.Reading) bool { return r.Metric != "pressure" }
	hour := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	for name, dsn := range backtestStores(t) {
		t.Run(name, func(t *testing.T) {
			storeBatches(t, dsn, "gw-1", batches, hour)
			for _, w := range []struct {
				name     string
				from, to int64
			}{
				{"all", backtestT0 - sec, backtestT0 + 3600*sec},
				{"window", backtestT0 + 95*sec, backtestT0 + 301*sec}, // from co2's critical; to just after the duplicate
			} {
				want := csvReplay(t, bin, csvOf(batches, w.from, w.to, selectedMetric), "--rules", rulesFile, "--gateway", "gw-1")
				if w.name == "all" {
					for _, s := range []string{`"rule":"hot","fingerprint":"hot/room-a","state":"firing"`, `"rule":"hot","fingerprint":"hot/room-a","state":"resolved"`,
						`"rule":"hot","fingerprint":"hot/room-a","state":"inactive"`, `"rule":"hot","fingerprint":"hot/room-b","state":"firing"`,
						`"rule":"hot-avg","fingerprint":"hot-avg/room-a","state":"firing"`, `"state":"firing","severity":"critical"`,
						`"rule":"humidity-silent","fingerprint":"humidity-silent/room-a","state":"nodata"`, `"gateway":"gw-1"`} {
						if !strings.Contains(want, s) {
							t.Fatalf("the CSV replay lacks %s: the test's readings no longer exercise it:\n%s", s, want)
						}
					}
					if strings.Contains(want, `"value":99`) {
						t.Fatalf("the bad reading counted:\n%s", want)
					}
				}
				for _, page := range []int{0, 1, 7} {
					t.Run(fmt.Sprintf("%s/page=%d", w.name, page), func(t *testing.T) {
						setPage(t, page)
						code, out, errOut := backtestRun("--db", dsn, "--rules", rulesFile, "--gateway", "gw-1",
							"--from", fmtNS(w.from), "--to", strconv.FormatInt(w.to/int64(time.Millisecond), 10))
						if code != 0 {
							t.Fatalf("exit %d: %s", code, errOut)
						}
						if out != want {
							t.Fatalf("output differs from outpost rules replay's\n--- backtest:\n%s--- outpost rules replay:\n%s", out, want)
						}
						if errOut != "" {
							t.Errorf("stderr: %s", errOut)
						}
					})
				}
			}
			// --reorder and --tick as the CSV replay's.
			want := csvReplay(t, bin, csvOf(batches, 0, math.MaxInt64, selectedMetric), "--rules", rulesFile, "--gateway", "gw-1", "--tick", "0", "--reorder", "20s")
			code, out, errOut := backtestRun("--db", dsn, "--rules", rulesFile, "--gateway", "gw-1", "--from", "0", "--to", "2030-01-01T00:00:00Z",
				"--tick", "0", "--reorder", "20s")
			if code != 0 || out != want {
				t.Fatalf("--tick 0: exit %d, %s\n--- backtest:\n%s--- outpost rules replay:\n%s", code, errOut, out, want)
			}
		})
	}
}

// --sensor and --metric read only the series they name: the output is
// the CSV replay's of those series alone.
func TestRulesReplayFilters(t *testing.T) {
	batches := backtestBatches()
	rulesFile := writeRules(t, backtestRules)
	bin := outpostBinary(t)
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "ingest.db")
	storeBatches(t, dsn, "gw-1", batches, 0)
	for _, f := range []struct {
		args []string
		keep func(outpost.Reading) bool
	}{
		{[]string{"--sensor", "room-b"}, func(r outpost.Reading) bool { return r.Sensor == "room-b" && r.Metric != "pressure" }},
		{[]string{"--metric", "co2"}, func(r outpost.Reading) bool { return r.Metric == "co2" }},
		{[]string{"--sensor", "room-a", "--metric", "temperature"}, func(r outpost.Reading) bool { return r.Sensor == "room-a" && r.Metric == "temperature" }},
	} {
		t.Run(strings.Join(f.args, " "), func(t *testing.T) {
			want := csvReplay(t, bin, csvOf(batches, 0, math.MaxInt64, f.keep), "--rules", rulesFile, "--gateway", "gw-1")
			code, out, errOut := backtestRun(append([]string{"--db", dsn, "--rules", rulesFile, "--gateway", "gw-1", "--from", "0", "--to", "2030-01-01T00:00:00Z"}, f.args...)...)
			if code != 0 || out != want || want == "" {
				t.Fatalf("exit %d, %s\n--- backtest:\n%s--- outpost rules replay:\n%s", code, errOut, out, want)
			}
		})
	}
	// A window without readings is not an error; it says so.
	code, out, errOut := backtestRun("--db", dsn, "--rules", rulesFile, "--gateway", "gw-1", "--from", "2030-01-01T00:00:00Z", "--to", "2030-02-01T00:00:00Z")
	if code != 0 || out != "" || !strings.Contains(errOut, "no readings in the window") {
		t.Fatalf("empty window: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// The engine sees the sensors' labels that the newest status gave them,
// as the gateway's engine does (a CSV carries none).
func TestRulesReplayLabels(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "ingest.db")
	storeBatches(t, dsn, "gw-1", [][]outpost.Reading{storetest.Series("fridge-1", "temperature", backtestT0, time.Second, 5, 8)}, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := stores.Open(ctx, dsn, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	err = s.SetGatewayStatus(ctx, "gw-1", "online", time.Unix(0, backtestT0), []byte(`{"state":"online"}`),
		ingest.SensorLabels{"fridge-1": {"device": "f1", "room": "store"}})
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	rulesFile := writeRules(t, `rules:
  - {name: fridge-warm, select: {metric: temperature, labels: {room: store}}, group_by: [device], above: 10}
  - {name: other-room, select: {metric: temperature, labels: {room: office}}, above: 0}
`)
	code, out, errOut := backtestRun("--db", dsn, "--rules", rulesFile, "--gateway", "gw-1", "--from", "0", "--to", "2030-01-01T00:00:00Z")
	want := `{"ts":"2025-06-01T11:58:03Z","rule":"fridge-warm","fingerprint":"fridge-warm/f1","state":"firing","severity":"warning","value":11,"labels":{"device":"f1","gateway":"gw-1","metric":"temperature"}}` + "\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, %s\n%s", code, errOut, out)
	}
}

// summaryRow finds rule's row in a --summary table.
func summaryRow(t *testing.T, out, rule string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "# ") {
		t.Fatalf("summary:\n%s", out)
	}
	cols := strings.Fields(lines[1])
	if strings.Join(cols, "\t") != ruletest.SummaryColumns {
		t.Fatalf("summary header %q", lines[1])
	}
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) == len(cols) && f[0] == rule {
			row := map[string]string{}
			for i, c := range cols {
				row[c] = f[i]
			}
			return row
		}
	}
	t.Fatalf("no row for %s:\n%s", rule, out)
	return nil
}

// --summary counts known episodes: three of one instance (the last still
// firing at the end), one of another, repeats that start none, and a
// rule that never fires.
func TestRulesReplaySummary(t *testing.T) {
	at := func(s int64) int64 { return backtestT0 + s*sec }
	var rs []outpost.Reading
	for s := int64(0); s < 120; s++ {
		v := 20.0
		if s >= 10 && s < 20 || s >= 40 && s < 45 || s >= 100 {
			v = 30 // firing [10, 20), [40, 45) and [100, 119]: 10 + 5 + 19 s
		}
		rs = append(rs, outpost.Reading{Sensor: "a", Metric: "t", TS: at(s), Value: v})
		if s%10 == 0 {
			v := 20.0
			if s >= 30 && s < 90 {
				v = 40 // [30, 90): 60 s, repeated at 50 and 70
			}
			rs = append(rs, outpost.Reading{Sensor: "b", Metric: "t", TS: at(s), Value: v})
		}
	}
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "ingest.db")
	storeBatches(t, dsn, "gw-1", [][]outpost.Reading{rs}, 0)
	rulesFile := writeRules(t, `rules:
  - {name: warm, select: {metric: t}, above: 25, repeat: 20s}
  - {name: never, select: {metric: t}, above: 1000}
  - {name: pending-only, select: {metric: t, sensor: b}, above: 25, for: 5m}
`)
	args := []string{"--db", dsn, "--rules", rulesFile, "--gateway", "gw-1", "--from", fmtNS(at(0)), "--to", fmtNS(at(120)), "--summary"}
	code, out, errOut := backtestRun(args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, "# gateway gw-1, 2025-06-01T11:58:00Z to 2025-06-01T12:00:00Z: 132 readings of 2 of its 2 series") ||
		!strings.Contains(out, "the last at 2025-06-01T11:59:59Z\n") {
		t.Fatalf("summary's first line:\n%s", out)
	}
	for rule, want := range map[string]map[string]string{
		// a: 3 episodes, 10 s + 5 s + 19 s (still firing at 119 s); b:
		// one of 60 s, repeated at 50 s and 70 s. a's third repeats at
		// 120 s would be after the last reading.
		"warm":         {"episodes": "4", "instances": "2", "firing_time": "1m34s", "longest": "1m0s", "at_end": "1", "pending": "0", "firing": "6", "resolved": "3", "inactive": "0", "nodata": "0"},
		"never":        {"episodes": "0", "instances": "0", "firing_time": "0s", "longest": "0s", "at_end": "0", "pending": "0", "firing": "0", "resolved": "0", "inactive": "0", "nodata": "0"},
		"pending-only": {"episodes": "0", "instances": "0", "firing_time": "0s", "longest": "0s", "at_end": "0", "pending": "1", "firing": "0", "resolved": "0", "inactive": "1", "nodata": "0"},
	} {
		row := summaryRow(t, out, rule)
		for k, v := range want {
			if row[k] != v {
				t.Errorf("%s: %s = %s, want %s\n%s", rule, k, row[k], v, out)
			}
		}
	}
	// The transitions behind it.
	code, lines, errOut := backtestRun(args[:len(args)-1]...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got []string
	for l := range strings.Lines(lines) {
		var j ruletest.JSONLine
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatal(err)
		}
		if j.Rule == "warm" {
			got = append(got, j.TS[14:19]+" "+j.Fingerprint+" "+j.State)
		}
	}
	want := []string{"58:10 warm/a firing", "58:20 warm/a resolved", "58:30 warm/b firing", "58:40 warm/a firing", "58:45 warm/a resolved",
		"58:50 warm/b firing", "59:10 warm/b firing", "59:30 warm/b resolved", "59:40 warm/a firing"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("warm's transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// watchStore counts the queries of a Store that are open at once, and
// the Store calls made while one is.
type watchStore struct {
	ingest.Store
	open, maxOpen, nested int
	ranges                int
}

func watch[T any](w *watchStore, seq iter.Seq2[T, error]) iter.Seq2[T, error] {
	if w.open > 0 {
		w.nested++
	}
	return func(yield func(T, error) bool) {
		w.open++
		w.maxOpen = max(w.maxOpen, w.open)
		defer func() { w.open-- }()
		for v, err := range seq {
			if !yield(v, err) {
				return
			}
		}
	}
}

func (w *watchStore) Range(ctx context.Context, q ingest.RangeQuery) iter.Seq2[ingest.Point, error] {
	w.ranges++
	return watch(w, w.Store.Range(ctx, q))
}

func (w *watchStore) Series(ctx context.Context, q ingest.SeriesQuery) iter.Seq2[ingest.SeriesInfo, error] {
	return watch(w, w.Store.Series(ctx, q))
}

// Many series merge into one stream in time order (ties by series), each
// read in pages, every reading once — duplicates of a timestamp too,
// also a page's worth and more of them — with never more than one query
// open and no Store call from inside one.
func TestHistoryMerge(t *testing.T) {
	const nSeries = 40
	var rs []outpost.Reading
	want := map[string]int{}
	for i := range nSeries {
		sensor := fmt.Sprintf("s%02d", i)
		for k := range 25 + i {
			// Steps of i+1 ms from an offset of i: series interleave, and
			// meet at common times.
			ts := backtestT0 + int64(i+k*(i+1))*int64(time.Millisecond)
			rs = append(rs, outpost.Reading{Sensor: sensor, Metric: "m", TS: ts, Value: float64(k)})
			want[fmt.Sprintf("%s %d %v", sensor, ts, float64(k))]++
		}
	}
	// Five readings of one series at one time: more than a page (2).
	for range 5 {
		rs = append(rs, outpost.Reading{Sensor: "s07", Metric: "m", TS: backtestT0 + 30*int64(time.Millisecond), Value: -1})
		want[fmt.Sprintf("s07 %d -1", backtestT0+30*int64(time.Millisecond))]++
	}
	// Another metric, and readings outside the window.
	rs = append(rs, outpost.Reading{Sensor: "s00", Metric: "other", TS: backtestT0, Value: 1},
		outpost.Reading{Sensor: "s01", Metric: "m", TS: backtestT0 - 1, Value: 1},
		outpost.Reading{Sensor: "s01", Metric: "m", TS: backtestT0 + 5*sec, Value: 1})
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "ingest.db")
	storeBatches(t, dsn, "gw-1", [][]outpost.Reading{rs}, 0)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := stores.Open(ctx, dsn, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := &watchStore{Store: s}
	set, err := rules.Parse("r.yaml", []byte("rules:\n  - {name: r, select: {metric: m}, above: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	oldList := seriesListPage
	seriesListPage = 3 // the listing pages too
	t.Cleanup(func() { seriesListPage = oldList })
	setPage(t, 2)
	ss, total, err := historySeries(ctx, w, set, "gw-1", "", "", backtestT0, backtestT0+5*sec)
	if err != nil || len(ss) != nSeries || total != nSeries+1 {
		t.Fatalf("series: %d selected of %d, %v", len(ss), total, err)
	}
	h, err := newHistory(ctx, w, "gw-1", ss, backtestT0, backtestT0+5*sec)
	if err != nil {
		t.Fatal(err)
	}
	var prev outpost.Reading
	n := 0
	for {
		r, err := h.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 && (r.TS < prev.TS || r.TS == prev.TS && r.Sensor < prev.Sensor) {
			t.Fatalf("reading %d: %s at %d after %s at %d", n, r.Sensor, r.TS, prev.Sensor, prev.TS)
		}
		k := fmt.Sprintf("%s %d %v", r.Sensor, r.TS, r.Value)
		if want[k] == 0 {
			t.Fatalf("reading %d: %s not stored, or more often than stored", n, k)
		}
		want[k]--
		prev = r
		n++
	}
	for k, c := range want {
		if c != 0 {
			t.Errorf("%s: %d not read", k, c)
		}
	}
	if w.maxOpen != 1 || w.nested != 0 {
		t.Errorf("queries open at once: %d; Store calls from inside a query: %d", w.maxOpen, w.nested)
	}
	if w.ranges < n/2 || int64(w.ranges) != h.queries || h.readings != int64(n) {
		t.Errorf("%d Range queries (history counted %d) for %d readings (history counted %d) in pages of 2", w.ranges, h.queries, n, h.readings)
	}

	// The page of one timestamp grows up to historyMaxSameTS, then fails.
	old := historyMaxSameTS
	historyMaxSameTS = 4
	t.Cleanup(func() { historyMaxSameTS = old })
	_, err = newHistory(ctx, w, "gw-1", []ingest.SeriesInfo{{Gateway: "gw-1", Sensor: "s07", Metric: "m"}},
		backtestT0+30*int64(time.Millisecond), backtestT0+sec)
	if err == nil || !strings.Contains(err.Error(), "more than 4 readings stored at one time") {
		t.Fatalf("a page of one timestamp: %v", err)
	}
}

// More series than maxHistorySeries is refused, with a hint.
func TestRulesReplayTooManySeries(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "ingest.db")
	var rs []outpost.Reading
	for i := range 5 {
		rs = append(rs, storetest.Series(fmt.Sprintf("s%d", i), "m", backtestT0, time.Second, 3, 0)...)
	}
	storeBatches(t, dsn, "gw-1", [][]outpost.Reading{rs}, 0)
	old := maxHistorySeries
	maxHistorySeries = 4
	t.Cleanup(func() { maxHistorySeries = old })
	rulesFile := writeRules(t, "rules:\n  - {name: r, select: {metric: m}, above: 0}\n")
	code, _, errOut := backtestRun("--db", dsn, "--rules", rulesFile, "--gateway", "gw-1", "--from", "0", "--to", "2030-01-01T00:00:00Z")
	if code != 1 || !strings.Contains(errOut, `gateway "gw-1" has more than 4 series`) || !strings.Contains(errOut, "--sensor or --metric") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// Narrowed, it runs.
	if code, out, errOut := backtestRun("--db", dsn, "--rules", rulesFile, "--gateway", "gw-1", "--from", "0", "--to", "2030-01-01T00:00:00Z", "--sensor", "s1"); code != 0 || out == "" {
		t.Fatalf("--sensor s1: exit %d: %s", code, errOut)
	}
}

func TestRulesReplayErrors(t *testing.T) {
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "ingest.db")
	storeBatches(t, dsn, "gw-1", [][]outpost.Reading{storetest.Series("s", "m", backtestT0, time.Second, 3, 0)}, 0)
	good := writeRules(t, "rules:\n  - {name: r, select: {metric: m}, above: 0}\n")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - name: r\n    select: {metric: m}\n    above: hot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := func(extra ...string) []string {
		return append([]string{"--db", dsn, "--rules", good, "--gateway", "gw-1", "--from", "2025-06-01T00:00:00Z", "--to", "2025-06-02T00:00:00Z"}, extra...)
	}
	without := func(flag string) []string {
		args := base()
		for i := 0; i < len(args); i += 2 {
			if args[i] == flag {
				return append(args[:i:i], args[i+2:]...)
			}
		}
		panic(flag)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no db", without("--db"), 2, "--db is required"},
		{"no rules", without("--rules"), 2, "--rules is required"},
		{"no gateway", without("--gateway"), 2, "--gateway is required"},
		{"no from", without("--from"), 2, "--from is required"},
		{"no to", without("--to"), 2, "--to is required"},
		{"from after to", base("--from", "2025-06-03T00:00:00Z"), 2, "--from 2025-06-03T00:00:00Z must be before --to 2025-06-02T00:00:00Z"},
		{"bad time", base("--to", "yesterday"), 2, `invalid value "yesterday" for flag -to: want RFC 3339`},
		{"time out of range", base("--to", "3000-01-01T00:00:00Z"), 2, "out of range"},
		{"long time", base("--to", strings.Repeat("1", 65)), 2, "longer than 64 bytes"},
		{"negative tick", base("--tick", "-1s"), 2, "--tick must not be negative"},
		{"negative reorder", base("--reorder", "-1s"), 2, "--reorder must not be negative"},
		{"unknown flag", base("--frob"), 2, "flag provided but not defined: -frob"},
		{"argument", base("extra"), 2, "unexpected arguments"},
		{"long sensor", base("--sensor", strings.Repeat("s", outpost.MaxIDLen+1)), 2, "--sensor is longer than"},
		{"bad log level", base("--log-level", "loud"), 2, "loud"},
		{"bad rules", base("--rules", bad), 2, "bad.yaml:4:12: rules[0].above: "},
		{"missing rules", base("--rules", filepath.Join(dir, "nope.yaml")), 2, "nope.yaml"},
		{"missing sqlite", base("--db", "sqlite:"+filepath.Join(dir, "nope.db")), 1, "nope.db: no such file"},
		{"unknown scheme", base("--db", "mysql://u:hunter2@db/x"), 1, "open database"},
		{"postgres down", base("--db", "postgres://u:hunter2@127.0.0.1:1/x?sslmode=disable"), 1, "open database postgres://u:xxxxx@127.0.0.1:1/x"},
		{"unknown gateway", base("--gateway", "gw-9"), 1, `gateway "gw-9" has no series stored`},
		{"unknown sensor", base("--sensor", "nope"), 1, `gateway "gw-1" has no series of sensor "nope" stored`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := backtestRun(c.args...)
			if code != c.code || !strings.Contains(errOut, c.msg) || out != "" {
				t.Fatalf("exit %d (want %d), stdout %q, stderr:\n%s\nwant it to say %q", code, c.code, out, errOut, c.msg)
			}
			if strings.Contains(errOut, "hunter2") {
				t.Fatalf("stderr shows the password:\n%s", errOut)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.db")); err == nil {
		t.Error("a backtest of a missing SQLite file created it")
	}
	// The rules files' problems are printed one a line, as outpost's.
	_, _, errOut := backtestRun(base("--rules", bad)...)
	if !regexp.MustCompile(`(?m)^\S+bad\.yaml:4:12: rules\[0\]\.above: `).MatchString(errOut) {
		t.Errorf("bad rules:\n%s", errOut)
	}
}

func TestRulesCommandHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		out  string
		err  string
	}{
		{[]string{"rules"}, 2, "", "usage: outpost-ingest rules replay"},
		{[]string{"rules", "--help"}, 0, "usage: outpost-ingest rules replay", ""},
		{[]string{"rules", "frob"}, 2, "", `unknown command "frob"`},
		{[]string{"rules", "replay", "--help"}, 0, "outpost-ingest rules replay --db sqlite:", ""},
		{[]string{"--help"}, 0, "rules replay", ""},
	} {
		var out, errOut bytes.Buffer
		code := run(c.args, &out, &errOut)
		if code != c.code || !strings.Contains(out.String(), c.out) || !strings.Contains(errOut.String(), c.err) {
			t.Errorf("%q: exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", c.args, code, c.code, out.String(), errOut.String())
		}
	}
}
