package ruletest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
)

const co2Rules = "rules:\n  - {name: co2-high, select: {metric: co2}, above: 1000, for: 15m}\n"

// replay runs co2Rules over csv and returns "state@offset" per transition,
// offsets from 2015-02-05T09:00:00Z.
func replay(t *testing.T, csv string, opts *ReplayOptions) ([]string, error) {
	t.Helper()
	set, err := rules.Parse("r.yaml", []byte(co2Rules))
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2015, 2, 5, 9, 0, 0, 0, time.UTC).UnixNano()
	var got []string
	err = Replay(context.Background(), set, strings.NewReader(csv), func(as []outpost.Alert) error {
		for _, a := range as {
			got = append(got, fmt.Sprintf("%s@%s", a.State, FormatOffset(time.Duration(a.ChangedAt-base))))
		}
		return nil
	}, opts)
	return got, err
}

func TestReplay(t *testing.T) {
	cases := []struct {
		name, csv string
		opts      *ReplayOptions
		want      string
	}{
		{
			name: "rfc3339 and unix ms",
			csv: "ts,sensor,metric,value\n" +
				"2015-02-05T09:00:00Z,office,co2,1200\n" +
				"1423127700000,office,co2,1300\n" + // 09:15
				"2015-02-05T09:20:00.5+00:00,office,co2,900\n",
			want: "pending@0s firing@15m resolved@20m0.5s",
		},
		{
			name: "out of order within the window; other metrics and comments",
			csv: "ts,sensor,metric,value\n# lane telemetry seq 3: corrupt\n" +
				"2015-02-05T09:15:00Z,office,co2,1300\n" +
				"2015-02-05T09:00:00Z,office,co2,1200\n" +
				"2015-02-05T09:05:00Z,office,temperature,21\n\n" +
				"2015-02-05T09:16:00Z,office,co2,NaN\n",
			opts: &ReplayOptions{Reorder: time.Hour},
			want: "pending@0s firing@15m",
		},
		{
			name: "ticks fire across a gap",
			csv:  "ts,sensor,metric,value\n2015-02-05T09:00:00Z,office,co2,1200\n2015-02-05T11:00:00Z,office,co2,900\n",
			want: "pending@0s firing@15m resolved@2h",
		},
		{
			name: "no ticks: the next reading decides",
			csv:  "ts,sensor,metric,value\n2015-02-05T09:00:00Z,office,co2,1200\n2015-02-05T11:00:00Z,office,co2,900\n",
			opts: &ReplayOptions{Tick: -1},
			want: "pending@0s inactive@2h",
		},
		{
			name: "tick at the last timestamp",
			csv:  "ts,sensor,metric,value\n2015-02-05T09:00:00Z,office,co2,1200\n2015-02-05T09:15:00Z,office,temperature,20\n",
			want: "pending@0s firing@15m",
		},
		{name: "header only", csv: "ts,sensor,metric,value\n", want: ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := replay(t, c.csv, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != c.want {
				t.Fatalf("got %q, want %q", strings.Join(got, " "), c.want)
			}
		})
	}
}

func TestReplayErrors(t *testing.T) {
	cases := []struct {
		name, csv string
		opts      *ReplayOptions
		line      int
		msg       string
	}{
		{"empty", "", nil, 1, "empty input"},
		{"no header", "2015-02-05T09:00:00Z,office,co2,1\n", nil, 1, "want the header"},
		{"bad ts", "ts,sensor,metric,value\n2015-02-05T09:00:00Z,o,co2,1\n2015-02-05 09:01:00,o,co2,1\n", nil, 3, "want RFC 3339"},
		{"bad value", "ts,sensor,metric,value\n2015-02-05T09:00:00Z,o,co2,high\n", nil, 2, `value "high"`},
		{"fields", "ts,sensor,metric,value\n2015-02-05T09:00:00Z,o,co2\n", nil, 2, "3 fields, want 4"},
		{"empty sensor", "ts,sensor,metric,value\n2015-02-05T09:00:00Z,,co2,1\n", nil, 2, "must not be empty"},
		{"quote", "ts,sensor,metric,value\n2015-02-05T09:00:00Z,\"o,co2,1\n", nil, 2, "quote"},
		{"too late", "ts,sensor,metric,value\n2015-02-05T09:10:00Z,o,co2,1\n2015-02-05T09:00:00Z,o,co2,1\n",
			&ReplayOptions{Reorder: -1}, 3, "is 10m0s before a reading already replayed"},
		{"later than the window", "ts,sensor,metric,value\n2015-02-05T09:00:00Z,o,co2,1\n2015-02-05T09:10:00Z,o,co2,1\n2015-02-05T09:08:00Z,o,co2,1\n2015-02-05T09:01:00Z,o,co2,1\n",
			nil, 5, "within the reorder window (1m0s)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := replay(t, c.csv, c.opts)
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("err %v, want a *LineError", err)
			}
			if le.Line != c.line || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err %v, want line %d and %q", err, c.line, c.msg)
			}
		})
	}
}

func TestReplayCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Replay(ctx, nil, strings.NewReader(CSVHeader+"\n"), func([]outpost.Alert) error { return nil }, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

func TestReplayEmitError(t *testing.T) {
	set, _ := rules.Parse("r.yaml", []byte(co2Rules))
	boom := errors.New("boom")
	err := Replay(context.Background(), set, strings.NewReader(CSVHeader+"\n2015-02-05T09:00:00Z,o,co2,2000\n"),
		func([]outpost.Alert) error { return boom }, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
}

func FuzzCSVReader(f *testing.F) {
	f.Add(CSVHeader + "\n2015-02-05T09:00:00Z,o,co2,1\n1423127700000,o,co2,-1e3\n")
	f.Add(CSVHeader + "\n# c\n\"a\",b,c\n")
	f.Fuzz(func(t *testing.T, s string) {
		cr := NewCSVReader(strings.NewReader(s))
		for range 1000 {
			r, err := cr.Read()
			if err != nil {
				return
			}
			if r.Sensor == "" || r.Metric == "" {
				t.Fatalf("%q: empty sensor or metric accepted", s)
			}
		}
	})
}
