package chunk

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The UCI occupancy recordings, where the repository keeps them (their
// README holds the source and the licence).
var occupancyFile = filepath.Join("..", "..", "..", "testdata", "occupancy", "datatraining.txt")

// occupancyRows is how many rows of the file the tests read: 3600
// readings a metric, about two and a half days of one a minute.
const occupancyRows = 3600

// recording is one metric's column of the recordings.
type recording struct {
	metric string
	ts     []int64
	values []float64
}

// occupancy reads the first occupancyRows rows of the recordings, one
// column a metric, the timestamps as UTC.
func occupancy(t testing.TB) []recording {
	t.Helper()
	f, err := os.Open(occupancyFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		t.Fatalf("%s: no header", occupancyFile)
	}
	// "date","Temperature","Humidity","Light","CO2","HumidityRatio","Occupancy"
	names := []string{"temperature", "humidity", "light", "co2", "humidity_ratio"}
	recs := make([]recording, len(names))
	for i, n := range names {
		recs[i].metric = n
	}
	for row := 0; row < occupancyRows && sc.Scan(); row++ {
		fs := strings.Split(sc.Text(), ",")
		if len(fs) < 2+len(names) {
			t.Fatalf("%s: short line %q", occupancyFile, sc.Text())
		}
		ts, err := time.Parse("2006-01-02 15:04:05", strings.Trim(fs[1], `"`))
		if err != nil {
			t.Fatal(err)
		}
		for i := range names {
			v, err := strconv.ParseFloat(fs[2+i], 64)
			if err != nil {
				t.Fatal(err)
			}
			recs[i].ts = append(recs[i].ts, ts.UnixNano())
			recs[i].values = append(recs[i].values, v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(recs[0].ts) != occupancyRows {
		t.Fatalf("%s: %d rows, want %d", occupancyFile, len(recs[0].ts), occupancyRows)
	}
	return recs
}

// TestOccupancy round-trips the recordings, one chunk a metric, and
// logs what a reading costs: the whole window, and one-day windows
// (1440 readings) as a store cutting by day would write them.
func TestOccupancy(t *testing.T) {
	var all, allDays, readings int
	for _, r := range occupancy(t) {
		p, err := Append(nil, r.ts, r.values, nil)
		if err != nil {
			t.Fatal(err)
		}
		ts, vs, q, err := Decode(p, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !same(ts, vs, q, r.ts, r.values, nil) {
			t.Fatalf("%s: the readings did not come back", r.metric)
		}
		days := 0
		for lo := 0; lo < len(r.ts); lo += 1440 {
			hi := min(lo+1440, len(r.ts))
			d, err := Append(nil, r.ts[lo:hi], r.values[lo:hi], nil)
			if err != nil {
				t.Fatal(err)
			}
			days += len(d)
		}
		k, e := sections(t, p)
		t.Logf("%-14s k=%d e=%4d  %5.2f B/reading in one chunk of %d, %5.2f in one-day chunks",
			r.metric, k, e, float64(len(p))/float64(len(r.ts)), len(r.ts), float64(days)/float64(len(r.ts)))
		all, allDays, readings = all+len(p), allDays+days, readings+len(r.ts)
	}
	t.Logf("%-14s %17s %5.2f B/reading in one chunk a metric, %5.2f in one-day chunks", "all", "", float64(all)/float64(readings), float64(allDays)/float64(readings))
}
