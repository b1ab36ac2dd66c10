package drainbench

import (
	"testing"
	"time"

	"github.com/outposthq/outpost"
)

type sourceCase struct {
	name              string
	src               Source
	series, perSeries int // perSeries 0: not checked
	batches           int
}

// TestSources checks that every data set yields valid batches of the
// intended shape, which survive encoding, and keep time increasing across
// batches (the occupancy replay wraps around within the test).
func TestSources(t *testing.T) {
	sim, err := NewSignals(2, 10*time.Millisecond, 50)
	if err != nil {
		t.Fatal(err)
	}
	occ, err := LoadOccupancy(occupancyDir, 4000)
	if err != nil {
		t.Fatal(err)
	}
	cases := []sourceCase{
		{"signals", sim, 6, 50, 3},
		// About 10 800 rows: the third batch ends the first pass, the
		// fourth starts the second.
		{"occupancy", occ, OccupancySeries, 0, 6},
	}
	enc, err := outpost.NewEncoder(&outpost.EncoderOptions{Compression: outpost.CompressZstd})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			last := map[outpost.SeriesKey]int64{}
			for i := range c.batches {
				b := c.src.Next("gw")
				b.Epoch, b.Seq = 1, uint64(i+1)
				if len(b.Series) != c.series {
					t.Fatalf("batch %d: %d series, want %d", i, len(b.Series), c.series)
				}
				p, err := enc.Encode(nil, b)
				if err != nil {
					t.Fatal(err)
				}
				got, err := outpost.DecodeBatch(p)
				if err != nil {
					t.Fatal(err)
				}
				if got.Len() != b.Len() {
					t.Fatalf("batch %d: decoded %d readings, want %d", i, got.Len(), b.Len())
				}
				for _, r := range b.AppendReadings(nil) {
					if c.perSeries > 0 && b.Len() != c.series*c.perSeries {
						t.Fatalf("batch %d: %d readings, want %d", i, b.Len(), c.series*c.perSeries)
					}
					if r.TS <= last[r.Key()] {
						t.Fatalf("batch %d: %s/%s time goes back to %d", i, r.Sensor, r.Metric, r.TS)
					}
					last[r.Key()] = r.TS
				}
			}
		})
	}
}
