package ingest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/outposthq/outpost"
)

// seriesSpec is one series entry of a batch: its readings' times
// (absolute; batchOf makes them relative, as the wire has them).
type seriesSpec struct {
	sensor, metric, unit string
	ts                   []int64
}

// batchOf is a telemetry batch of gw holding ss, each reading's value
// its time and its quality its index mod 3.
func batchOf(gw string, ss ...seriesSpec) *outpost.Batch {
	b := &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindTelemetry, Gateway: gw, Epoch: 1, Seq: 1}
	for _, s := range ss {
		ser := outpost.Series{Sensor: s.sensor, Metric: s.metric, Unit: s.unit}
		for j, ts := range s.ts {
			if j == 0 {
				ser.TS = append(ser.TS, ts)
			} else {
				ser.TS = append(ser.TS, ts-s.ts[j-1])
			}
			ser.Values = append(ser.Values, float64(ts))
			ser.Quality = append(ser.Quality, byte(j%3))
		}
		b.Series = append(b.Series, ser)
	}
	return b
}

func tspan(from, n int64) []int64 {
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = from + int64(i)
	}
	return ts
}

// names are the points as sensor/metric@ts, in order.
func names(pts []Point) string {
	var sb strings.Builder
	for i, p := range pts {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%s/%s@%d", p.Sensor, p.Metric, p.TS)
	}
	return sb.String()
}

// TestEventPoints: a batch within the limit is sent whole, by series
// then time (a series twice in a batch, readings out of order); beyond
// it, the newest reading of every series and the newest of the others;
// beyond the limit in series, the newest of the first series by key.
// Every point carries its reading's value and quality, and its series'
// unit of the series' last occurrence, as the stores record it.
func TestEventPoints(t *testing.T) {
	for _, tc := range []struct {
		name      string
		b         *outpost.Batch
		limit     int
		want      string
		truncated bool
	}{
		{"whole", batchOf("gw",
			seriesSpec{"s", "t", "Cel", []int64{5, 3, 4}},
			seriesSpec{"a", "z", "", []int64{1}},
			seriesSpec{"s", "t", "K", []int64{2, 9}},
		), 10, "a/z@1 s/t@2 s/t@3 s/t@4 s/t@5 s/t@9", false},
		{"at the limit", batchOf("gw", seriesSpec{"s", "t", "", tspan(0, 4)}), 4, "s/t@0 s/t@1 s/t@2 s/t@3", false},
		{"newest of each, then the newest", batchOf("gw",
			seriesSpec{"a", "m", "", tspan(0, 20)},
			seriesSpec{"b", "m", "", []int64{-100}},
			seriesSpec{"c", "m", "", tspan(100, 5)},
		), 10, "a/m@16 a/m@17 a/m@18 a/m@19 b/m@-100 c/m@100 c/m@101 c/m@102 c/m@103 c/m@104", true},
		{"more series than the limit", batchOf("gw",
			seriesSpec{"c", "m", "", tspan(0, 3)},
			seriesSpec{"a", "m", "", tspan(10, 3)},
			seriesSpec{"b", "m", "", tspan(20, 3)},
		), 2, "a/m@12 b/m@22", true},
		{"as many series as the limit", batchOf("gw",
			seriesSpec{"b", "m", "", tspan(0, 3)},
			seriesSpec{"a", "m", "", tspan(10, 3)},
		), 2, "a/m@12 b/m@2", true},
		{"a series twice, beyond the limit", batchOf("gw",
			seriesSpec{"a", "m", "", []int64{50, 51}},
			seriesSpec{"b", "m", "", tspan(0, 10)},
			seriesSpec{"a", "m", "", []int64{1, 2}},
		), 4, "a/m@50 a/m@51 b/m@8 b/m@9", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pts, truncated := eventPoints(tc.b, tc.limit)
			if got := names(pts); got != tc.want || truncated != tc.truncated {
				t.Fatalf("points %s, truncated %v\nwant   %s, truncated %v", got, truncated, tc.want, tc.truncated)
			}
			units := map[outpost.SeriesKey]string{}
			for _, s := range tc.b.Series {
				units[outpost.SeriesKey{Sensor: s.Sensor, Metric: s.Metric}] = s.Unit
			}
			for _, p := range pts {
				if p.Gateway != "gw" || p.Value != float64(p.TS) || p.Unit != units[outpost.SeriesKey{Sensor: p.Sensor, Metric: p.Metric}] {
					t.Fatalf("point %+v: wrong gateway, value or unit", p)
				}
			}
		})
	}
	// The quality column: each point has its own reading's.
	b := batchOf("gw", seriesSpec{"s", "t", "", tspan(0, 6)})
	pts, _ := eventPoints(b, 3)
	for _, p := range pts {
		if want := outpost.Quality(p.TS % 3); p.Quality != want {
			t.Fatalf("point at %d: quality %v, want %v", p.TS, p.Quality, want)
		}
	}
}

// TestEventPointsRandom: on random batches (distinct times), what
// eventPoints keeps is what a plain reading of the rule keeps: every
// series' newest, then the newest of the rest.
func TestEventPointsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		var ss []seriesSpec
		times := rng.Perm(400)
		next := 0
		for range 1 + rng.IntN(12) {
			n := 1 + rng.IntN(40)
			if next+n > len(times) {
				break
			}
			var ts []int64
			for _, v := range times[next : next+n] {
				ts = append(ts, int64(v))
			}
			next += n
			ss = append(ss, seriesSpec{sensor: fmt.Sprint("s", rng.IntN(6)), metric: "m", ts: ts})
		}
		b := batchOf("gw", ss...)
		limit := 1 + rng.IntN(60)
		got, truncated := eventPoints(b, limit)

		var all []Point
		for _, s := range ss {
			for _, ts := range s.ts {
				all = append(all, Point{Sensor: s.sensor, Metric: s.metric, TS: ts})
			}
		}
		slices.SortFunc(all, func(a, b Point) int { return -cmp.Compare(a.TS, b.TS) }) // newest first
		var want []Point
		if len(all) <= limit {
			want = all
		} else {
			seen := map[string]bool{}
			var rest []Point
			for _, p := range all {
				if !seen[p.Sensor] {
					seen[p.Sensor] = true
					want = append(want, p)
				} else {
					rest = append(rest, p)
				}
			}
			slices.SortFunc(want, func(a, b Point) int { return cmp.Compare(a.Sensor, b.Sensor) })
			want = want[:min(len(want), limit)]
			want = append(want, rest[:limit-len(want)]...)
		}
		slices.SortFunc(want, func(a, b Point) int { return cmp.Or(cmp.Compare(a.Sensor, b.Sensor), cmp.Compare(a.TS, b.TS)) })
		if names(got) != names(want) || truncated != (len(all) > limit) {
			t.Fatalf("round %d, limit %d:\n got %s (truncated %v)\nwant %s", round, limit, names(got), truncated, names(want))
		}
	}
}

// The frames: one data line of JSON each; a line break in the JSON is
// refused, leaving the buffer as it was.
func TestAppendEvent(t *testing.T) {
	b, err := appendEvent([]byte("x"), "batch", func(d []byte) ([]byte, error) { return append(d, `{"a":1}`...), nil })
	if err != nil || string(b) != "xevent: batch\ndata: {\"a\":1}\n\n" {
		t.Fatalf("%q, %v", b, err)
	}
	for _, bad := range []string{"{\n}", "{\r}"} {
		b, err := appendEvent([]byte("x"), "batch", func(d []byte) ([]byte, error) { return append(d, bad...), nil })
		if !errors.Is(err, errLineBreak) || string(b) != "x" {
			t.Fatalf("%q: %q, %v", bad, b, err)
		}
	}
	// A status whose payload was pretty-printed goes out on one line.
	g := GatewayStatus{Gateway: "gw", State: "online", Payload: json.RawMessage("{\n  \"state\": \"online\",\n  \"note\": \"a\\nb \u2028\"\n}")}
	b, err = appendEvent(nil, "status", func(d []byte) ([]byte, error) { return appendJSON(d, g) })
	if err != nil || strings.Count(string(b), "\n") != 3 || !strings.HasSuffix(string(b), "\n\n") {
		t.Fatalf("status: %q, %v", b, err)
	}
}
