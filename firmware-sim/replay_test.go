package firmwaresim

import (
	"strings"
	"testing"
	"time"
)

const occupancySample = `"date","Temperature","Humidity","Light","CO2","HumidityRatio","Occupancy"
"1","2015-02-04 17:51:00",23.18,27.272,426,721.25,0.00479298817650529,1
"2","2015-02-04 17:51:59",23.15,27.2675,429.5,714,0.00478344094931065,1
"3","2015-02-04 17:53:00",23.15,27.245,426,713.5,0.00477946352442199,0
`

func TestReplayColumnHoldsAndLoops(t *testing.T) {
	rp, err := ParseReplay(strings.NewReader(occupancySample), "Occupancy")
	if err != nil {
		t.Fatal(err)
	}
	sig, err := NewSignal(SignalSpec{Kind: KindReplay, Replay: rp})
	if err != nil {
		t.Fatal(err)
	}
	// Rows at +0, +59s, +120s; the loop is 120s + one mean step (60s).
	for _, c := range []struct {
		at   time.Duration
		want float64
	}{{0, 1}, {58 * time.Second, 1}, {59 * time.Second, 1}, {120 * time.Second, 0}, {179 * time.Second, 0}, {180 * time.Second, 1}, {300 * time.Second, 0}} {
		if got := sig.At(1e18 + int64(c.at)); got != c.want {
			t.Errorf("At(+%v) = %v, want %v", c.at, got, c.want)
		}
	}
	co2, err := ParseReplay(strings.NewReader(occupancySample), "CO2")
	if err != nil || co2.Len() != 3 || co2.At(61*time.Second) != 714 {
		t.Fatalf("CO2 column: %v %v", co2, err)
	}
}

func TestReplayErrors(t *testing.T) {
	for name, in := range map[string]string{
		"no column":   `"a","b"` + "\n",
		"no rows":     `"date","Occupancy"` + "\n",
		"bad value":   `"date","Occupancy"` + "\n" + `"1","2015-02-04 17:51:00",x` + "\n",
		"no time":     `"date","Occupancy"` + "\n" + `"1","yesterday",1` + "\n",
		"time back":   `"date","Occupancy"` + "\n" + `"1","2015-02-04 17:51:00",1` + "\n" + `"2","2015-02-04 17:50:00",1` + "\n",
		"short row":   `"date","x","Occupancy"` + "\n" + `"2015-02-04 17:51:00"` + "\n",
		"empty input": "",
	} {
		if _, err := ParseReplay(strings.NewReader(in), "Occupancy"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewSignal(SignalSpec{Kind: KindReplay}); err == nil {
		t.Error("replay without a recording accepted")
	}
}

// TestReplayOccupancyFile plays the shared data set through a DS18B20:
// the driver reads the recorded temperature within its resolution.
func TestReplayOccupancyFile(t *testing.T) {
	// The recordings are part of the repository: a missing file fails.
	const path = "../testdata/occupancy/datatest.txt"
	rp, err := LoadReplay(path, "Temperature")
	if err != nil {
		t.Fatal(err)
	}
	if rp.Len() != 2665 || rp.At(0) != 23.7 {
		t.Fatalf("%d rows, first %v", rp.Len(), rp.At(0))
	}
	sig, err := NewSignal(SignalSpec{Kind: KindReplay, ReplayPath: path, ReplayColumn: "Temperature"})
	if err != nil {
		t.Fatal(err)
	}
	sig.At(1e18) // the first call sets the origin
	if got := sig.At(1e18 + int64(70*time.Second)); got != 23.718 {
		t.Fatalf("second row %v, want 23.718", got)
	}
}

func FuzzParseReplay(f *testing.F) {
	f.Add(occupancySample, "Occupancy")
	f.Add(`"date","v"`+"\n"+`"2015-02-04 17:51:00",1`+"\n", "v")
	f.Fuzz(func(t *testing.T, in, col string) {
		rp, err := ParseReplay(strings.NewReader(in), col)
		if err != nil {
			return
		}
		if rp.Len() == 0 {
			t.Fatal("no rows and no error")
		}
		for _, el := range []time.Duration{0, time.Second, -time.Hour, 1 << 62} {
			_ = rp.At(el) // must not panic
		}
	})
}
