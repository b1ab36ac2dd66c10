package chunk

import (
	"bufio"
	"fmt"
	"math/bits"
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

// rowOverhead is about what a stored chunk costs beside its bytes: the
// row of the chunks table (series, window, first and last times,
// count, tuple header, index entry).
const rowOverhead = 100

// levers are format 2's encoder choices, each turned off alone, to
// measure what it brings.
var levers = []struct {
	name string
	o    options
}{
	{"v2", options{}},
	{"-runs", options{oneRun: true}},
	{"-exp22", options{narrowExp: true}},
	{"-xor", options{noXOR: true}},
	{"-f32", options{noFloat32: true}},
	{"-packts", options{plainTimes: true}},
}

// TestOccupancy round-trips the recordings in chunks of an hour and of
// a day (60 and 1440 readings), in format 1 and in format 2 with every
// lever and with each turned off, and logs what a reading costs: the
// chunk's bytes, and with rowOverhead a chunk, all metrics together.
func TestOccupancy(t *testing.T) {
	recs := occupancy(t)
	for _, size := range []int{60, 1440} {
		t.Logf("chunks of %d readings, bytes a reading (timestamps alone in format 2 in brackets):", size)
		head := fmt.Sprintf("%-14s %6s", "metric", "v1")
		for _, l := range levers {
			head += fmt.Sprintf(" %7s", l.name)
		}
		t.Log(head)
		all := make([]int, 1+len(levers))
		var allTS, chunks, readings int
		for _, r := range recs {
			sizes := make([]int, 1+len(levers))
			var tsBytes int
			for lo := 0; lo < len(r.ts); lo += size {
				hi := min(lo+size, len(r.ts))
				ts, vs := r.ts[lo:hi], r.values[lo:hi]
				p, err := appendV1(nil, ts, vs, nil)
				if err != nil {
					t.Fatal(err)
				}
				sizes[0] += len(p)
				for i, l := range levers {
					p, err := appendChunk(nil, ts, vs, nil, l.o)
					if err != nil {
						t.Fatal(err)
					}
					dts, dvs, dq, err := Decode(p, nil, nil, nil)
					if err != nil {
						t.Fatal(err)
					}
					if !same(dts, dvs, dq, ts, vs, nil) {
						t.Fatalf("%s %s: the readings did not come back", r.metric, l.name)
					}
					sizes[1+i] += len(p)
					if i == 0 {
						_, _, b := runsOf(t, p)
						tsBytes += b
					}
				}
				chunks++
			}
			line := fmt.Sprintf("%-14s", r.metric)
			for i, s := range sizes {
				line += fmt.Sprintf(" %6.2f ", float64(s)/float64(len(r.ts)))
				all[i] += s
			}
			t.Log(line + fmt.Sprintf("(%.2f)", float64(tsBytes)/float64(len(r.ts))))
			allTS += tsBytes
			readings += len(r.ts)
		}
		line, withRows := fmt.Sprintf("%-14s", "all"), fmt.Sprintf("%-14s", "all + rows")
		for _, s := range all {
			line += fmt.Sprintf(" %6.2f ", float64(s)/float64(readings))
			withRows += fmt.Sprintf(" %6.2f ", float64(s+chunks*rowOverhead)/float64(readings))
		}
		t.Log(line + fmt.Sprintf("(%.2f)", float64(allTS)/float64(readings)))
		t.Log(withRows)
	}
}

// TestOccupancyFloat32 is TestOccupancy for the recordings as a gateway
// reading float32 registers would send them, float64(float32(v)): no
// short decimals left, what the raw kinds are for. It also sets format
// 2's byte-aligned XOR beside Gorilla's bit-aligned one (as estimated
// by gorillaBits) on the values alone, all in one run.
func TestOccupancyFloat32(t *testing.T) {
	for _, size := range []int{60, 1440} {
		t.Logf("float32 values, chunks of %d readings, bytes a reading:", size)
		head := fmt.Sprintf("%-14s %6s", "metric", "v1")
		for _, l := range levers {
			head += fmt.Sprintf(" %7s", l.name)
		}
		t.Log(head + "   values alone: XOR32 bytes, XOR32 Gorilla bits")
		all := make([]int, 1+len(levers))
		var allXOR, allGorilla, readings int
		for _, r := range occupancy(t) {
			vs32 := make([]float64, len(r.values))
			for i, v := range r.values {
				vs32[i] = float64(float32(v))
			}
			sizes := make([]int, 1+len(levers))
			var xorBytes, gorilla int
			for lo := 0; lo < len(r.ts); lo += size {
				hi := min(lo+size, len(r.ts))
				ts, vs := r.ts[lo:hi], vs32[lo:hi]
				p, err := appendV1(nil, ts, vs, nil)
				if err != nil {
					t.Fatal(err)
				}
				sizes[0] += len(p)
				for i, l := range levers {
					p, err := appendChunk(nil, ts, vs, nil, l.o)
					if err != nil {
						t.Fatal(err)
					}
					dts, dvs, dq, err := Decode(p, nil, nil, nil)
					if err != nil || !same(dts, dvs, dq, ts, vs, nil) {
						t.Fatalf("%s %s: the readings did not come back: %v", r.metric, l.name, err)
					}
					sizes[1+i] += len(p)
				}
				words := make([]uint64, len(vs))
				for i, v := range vs {
					b, _ := toFloat32(v)
					words[i] = uint64(b)
				}
				xorBytes += xorCost32(vs)
				gorilla += (gorillaBits(words, 32) + 7) / 8
			}
			line := fmt.Sprintf("%-14s", r.metric)
			for i, s := range sizes {
				line += fmt.Sprintf(" %6.2f ", float64(s)/float64(len(r.ts)))
				all[i] += s
			}
			t.Log(line + fmt.Sprintf("  %6.2f %6.2f", float64(xorBytes)/float64(len(r.ts)), float64(gorilla)/float64(len(r.ts))))
			allXOR, allGorilla, readings = allXOR+xorBytes, allGorilla+gorilla, readings+len(r.ts)
		}
		line := fmt.Sprintf("%-14s", "all")
		for _, s := range all {
			line += fmt.Sprintf(" %6.2f ", float64(s)/float64(readings))
		}
		t.Log(line + fmt.Sprintf("  %6.2f %6.2f", float64(allXOR)/float64(readings), float64(allGorilla)/float64(readings)))
	}
}

// gorillaBits is the size in bits of words (of width 32 or 64) in
// Gorilla's XOR encoding (Pelkonen et al., 2015): the first word whole,
// then for each the XOR with the one before: 0 as one bit; else two
// bits, and either the meaningful bits within the window of the XOR
// before, or 5 bits of leading zeros (at most 31), 6 (or 5) of length
// and the meaningful bits.
func gorillaBits(words []uint64, width int) int {
	lenBits := 6
	if width == 32 {
		lenBits = 5
	}
	n := width
	lead, trail := -1, -1
	for i := 1; i < len(words); i++ {
		x := words[i] ^ words[i-1]
		if x == 0 {
			n++
			continue
		}
		l := min(bits.LeadingZeros64(x)-(64-width), 31)
		tr := bits.TrailingZeros64(x)
		if lead >= 0 && l >= lead && tr >= trail {
			n += 2 + width - lead - trail
			continue
		}
		lead, trail = l, tr
		n += 2 + 5 + lenBits + width - l - tr
	}
	return n
}
