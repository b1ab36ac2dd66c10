package rows

import (
	"fmt"
	"math"
	"strconv"
	"testing"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

func TestLatest(t *testing.T) {
	b := &outpost.Batch{Gateway: "gw", Series: []outpost.Series{
		{Sensor: "b", Metric: "m", TS: []int64{100, -50, 10}, Values: []float64{1, 2, 3}},             // ts 100, 50, 60: newest is the first
		{Sensor: "a", Metric: "m", TS: []int64{5, 0}, Values: []float64{1, 2}, Quality: []byte{0, 2}}, // equal ts: the later wins
		{Sensor: "b", Metric: "m", TS: []int64{100}, Values: []float64{9}},                            // the same series again, same ts: later wins
		{Sensor: "c", Metric: "m"}, // empty: skipped
	}}
	got := Latest(b)
	want := []ingest.Point{
		{Gateway: "gw", Sensor: "a", Metric: "m", TS: 5, Value: 2, Quality: outpost.QualityBad},
		{Gateway: "gw", Sensor: "b", Metric: "m", TS: 100, Value: 9},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestLabels(t *testing.T) {
	for _, tc := range []struct {
		in   map[string]string
		want string
	}{
		{nil, "{}"},
		{map[string]string{"b": "2", "a": "1"}, `{"a":"1","b":"2"}`},
	} {
		got, err := Labels(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Labels(%v) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestKind(t *testing.T) {
	for _, k := range []outpost.Kind{outpost.KindTelemetry, outpost.KindAlert, outpost.KindLoss} {
		if got, err := ParseKind(Kind(k)); err != nil || got != k {
			t.Errorf("ParseKind(Kind(%d)) = %d, %v", k, got, err)
		}
	}
	if _, err := ParseKind(Kind(9)); err == nil {
		t.Error("ParseKind of an unknown kind succeeded")
	}
}

func TestGapsQuery(t *testing.T) {
	param := func(n int) string { return "$" + strconv.Itoa(n) }
	const sel = "SELECT gateway, epoch, seq, idx, reason, kind, sensor, metric, rule, from_ts, to_ts, count, lost_epoch, first_seq, last_seq, dropped_at, received_at FROM gaps "
	for _, tc := range []struct {
		q    ingest.GapQuery
		sql  string
		args []any
	}{
		{ingest.GapQuery{Gateway: "g", From: 1, To: 2, Limit: 3},
			"WHERE gateway = $1 AND from_ts < $2 AND to_ts >= $3 ORDER BY from_ts, epoch, seq, idx LIMIT $4",
			[]any{"g", int64(2), int64(1), 3}},
		{ingest.GapQuery{Gateway: "g", Sensor: "s", Metric: "m", From: 1, To: 2, Limit: 3},
			"WHERE gateway = $1 AND sensor = $2 AND metric = $3 AND from_ts < $4 AND to_ts >= $5 ORDER BY from_ts, epoch, seq, idx LIMIT $6",
			[]any{"g", "s", "m", int64(2), int64(1), 3}},
		{ingest.GapQuery{Gateway: "g", Metric: "m", From: 1, To: 2, Limit: 3},
			"WHERE gateway = $1 AND metric = $2 AND from_ts < $3 AND to_ts >= $4 ORDER BY from_ts, epoch, seq, idx LIMIT $5",
			[]any{"g", "m", int64(2), int64(1), 3}},
	} {
		sql, args := GapsQuery(tc.q, param)
		if sql != sel+tc.sql || fmt.Sprint(args) != fmt.Sprint(tc.args) {
			t.Errorf("GapsQuery(%+v) =\n%s %v\nwant\n%s %v", tc.q, sql, args, sel+tc.sql, tc.args)
		}
	}
}

func TestSeriesQuery(t *testing.T) {
	param := func(n int) string { return "$" + strconv.Itoa(n) }
	labels := func(ls map[string]string, arg func(any) string) string {
		return "labels @> " + arg(fmt.Sprint(len(ls))) + " AND 100% sure"
	}
	const sel = "SELECT gateway, sensor, metric, unit, CAST(labels AS TEXT), coalesce(first_ts, last_ts), last_ts FROM series WHERE last_ts IS NOT NULL"
	after := ingest.SeriesKey{Gateway: "g", Sensor: "s", Metric: "m"}
	for _, tc := range []struct {
		q    ingest.SeriesQuery
		sql  string
		args []any
	}{
		{ingest.SeriesQuery{Limit: 3}, " ORDER BY gateway, sensor, metric LIMIT $1", []any{3}},
		{ingest.SeriesQuery{Gateway: "g", Sensor: "s", Metric: "m", Limit: 3},
			" AND gateway = $1 AND sensor = $2 AND metric = $3 ORDER BY gateway, sensor, metric LIMIT $4", []any{"g", "s", "m", 3}},
		{ingest.SeriesQuery{Sensor: "s", Labels: map[string]string{"a": "b"}, After: after, Limit: 3},
			" AND sensor = $1 AND labels @> $2 AND 100% sure AND (gateway, sensor, metric) > ($3, $4, $5) ORDER BY gateway, sensor, metric LIMIT $6",
			[]any{"s", "1", "g", "s", "m", 3}},
		{ingest.SeriesQuery{Gateway: "g", After: after, Limit: 3},
			" AND gateway = $1 AND (sensor, metric) > ($2, $3) ORDER BY gateway, sensor, metric LIMIT $4", []any{"g", "s", "m", 3}},
	} {
		sql, args := SeriesQuery(tc.q, param, labels)
		if sql != sel+tc.sql || fmt.Sprint(args) != fmt.Sprint(tc.args) {
			t.Errorf("SeriesQuery(%+v) =\n%s %v\nwant\n%s %v", tc.q, sql, args, sel+tc.sql, tc.args)
		}
	}
}

func TestLatestQuery(t *testing.T) {
	param := func(n int) string { return "$" + strconv.Itoa(n) }
	const sel = "SELECT gateway, sensor, metric, ts, value, quality, unit FROM latest"
	after := ingest.SeriesKey{Gateway: "g", Sensor: "s", Metric: "m"}
	for _, tc := range []struct {
		q    ingest.LatestQuery
		sql  string
		args []any
	}{
		{ingest.LatestQuery{Limit: 3}, " ORDER BY gateway, sensor, metric LIMIT $1", []any{3}},
		{ingest.LatestQuery{Gateway: "g", Limit: 3},
			" WHERE gateway = $1 ORDER BY gateway, sensor, metric LIMIT $2", []any{"g", 3}},
		{ingest.LatestQuery{After: after, Limit: 3},
			" WHERE (gateway, sensor, metric) > ($1, $2, $3) ORDER BY gateway, sensor, metric LIMIT $4",
			[]any{"g", "s", "m", 3}},
		{ingest.LatestQuery{Gateway: "h", After: after, Limit: 3},
			" WHERE gateway = $1 AND (gateway, sensor, metric) > ($2, $3, $4) ORDER BY gateway, sensor, metric LIMIT $5",
			[]any{"h", "g", "s", "m", 3}},
		{ingest.LatestQuery{Gateway: "g", After: after, Limit: 3},
			" WHERE gateway = $1 AND (sensor, metric) > ($2, $3) ORDER BY gateway, sensor, metric LIMIT $4",
			[]any{"g", "s", "m", 3}},
	} {
		sql, args := LatestQuery(tc.q, param)
		if sql != sel+tc.sql || fmt.Sprint(args) != fmt.Sprint(tc.args) {
			t.Errorf("LatestQuery(%+v) =\n%s %v\nwant\n%s %v", tc.q, sql, args, sel+tc.sql, tc.args)
		}
	}
	if CheckLatest(ingest.LatestQuery{}) == nil {
		t.Error("CheckLatest accepts limit 0")
	}
}

func TestCheckLosses(t *testing.T) {
	b := &outpost.Batch{Kind: outpost.KindLoss, Losses: []outpost.Loss{{Count: math.MaxInt64}}}
	if err := CheckLosses(b); err != nil {
		t.Fatal(err)
	}
	b.Losses = append(b.Losses, outpost.Loss{Count: math.MaxInt64 + 1})
	if err := CheckLosses(b); err == nil {
		t.Fatal("a count beyond int64 passed")
	}
}
