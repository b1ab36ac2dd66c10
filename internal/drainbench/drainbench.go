// Package drainbench measures how fast a gateway's outbox drains into the
// ingest service through a real broker, and the bytes per reading on the
// wire (docs/benchmarks.md, "Drain"). The benchmark is BenchmarkDrain in
// drain_test.go; this file holds the data it replays: batches shaped like
// the ones the batcher seals, from simulated signals or from recordings.
package drainbench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost"
	firmwaresim "github.com/outposthq/outpost/firmware-sim"
)

// Source yields telemetry batches, each with its series in columnar form
// (TS delta-encoded, as outpost.BatchBuilder makes them). Epoch and Seq
// are left to the outbox. A Source is not safe for concurrent use.
type Source interface {
	Next(gateway string) *outpost.Batch
}

// Signals is a Source of simulated environment sensors like
// scripts/bench.yaml: per device a temperature and a humidity random walk
// quantized to 0.01 and a pressure sine with noise quantized to 1 Pa, one
// sample per Step per series. Each batch holds PerSeries samples of every
// series, consecutive in time, as the batcher seals them.
type Signals struct {
	step      int64
	perSeries int
	devices   []device
	now       int64 // timestamp of the next sample
}

type device struct {
	id   string
	sigs [3]*firmwaresim.Signal
}

var envMetrics = [3]struct{ name, unit string }{{"temperature", "Cel"}, {"humidity", "%RH"}, {"pressure", "Pa"}}

// NewSignals returns devices × 3 series sampled every step, perSeries
// samples of each per batch.
func NewSignals(devices int, step time.Duration, perSeries int) (*Signals, error) {
	if devices < 1 || step <= 0 || perSeries < 1 {
		return nil, errors.New("drainbench: signals need devices, step and perSeries > 0")
	}
	s := &Signals{step: int64(step), perSeries: perSeries, now: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC).UnixNano()}
	for d := range devices {
		seed := uint64(d) * 3
		specs := [3]firmwaresim.SignalSpec{
			{Kind: firmwaresim.KindRandomWalk, Base: 21, Step: 0.02, Min: -40, Max: 85, HasMin: true, HasMax: true, Resolution: 0.01, Seed: seed + 1},
			{Kind: firmwaresim.KindRandomWalk, Base: 45, Step: 0.05, Min: 0, Max: 100, HasMin: true, HasMax: true, Resolution: 0.01, Seed: seed + 2},
			{Kind: firmwaresim.KindSine, Base: 101325, Amplitude: 150, Period: 10 * time.Minute, Noise: 2, Resolution: 1, Seed: seed + 3},
		}
		dev := device{id: fmt.Sprintf("dev%d", d+1)}
		for i, sp := range specs {
			sig, err := firmwaresim.NewSignal(sp)
			if err != nil {
				return nil, fmt.Errorf("drainbench: %w", err)
			}
			dev.sigs[i] = sig
		}
		s.devices = append(s.devices, dev)
	}
	return s, nil
}

// Next returns the next batch: PerSeries samples of every series.
func (s *Signals) Next(gateway string) *outpost.Batch {
	b := newBatch(gateway)
	for _, d := range s.devices {
		for i, sig := range d.sigs {
			sr := outpost.Series{Sensor: d.id, Metric: envMetrics[i].name, Unit: envMetrics[i].unit,
				TS: make([]int64, s.perSeries), Values: make([]float64, s.perSeries)}
			for j := range s.perSeries {
				ts := s.now + int64(j)*s.step
				sr.TS[j] = s.step
				sr.Values[j] = sig.At(ts)
			}
			sr.TS[0] = s.now
			b.Series = append(b.Series, sr)
		}
	}
	s.now += int64(s.perSeries) * s.step
	return b
}

// Occupancy replays the office recordings (testdata/occupancy from the
// module root) as 5 series of one sensor, Rows rows per batch. At the
// end of the recordings it starts again, shifted in time past the end.
type Occupancy struct {
	rows   int
	ts     []int64
	cols   [len(occupancyColumns)][]float64
	next   int   // next row
	offset int64 // added to the timestamps of this pass
}

var occupancyColumns = [...]struct{ metric, unit string }{
	{"temperature", "Cel"}, {"humidity", "%RH"}, {"light", "lx"}, {"co2", "ppm"}, {"humidity_ratio", "kg/kg"},
}

// OccupancySeries is how many series the recordings replay as.
const OccupancySeries = len(occupancyColumns)

// LoadOccupancy reads datatest.txt then datatraining.txt from dir. An
// error wrapping fs.ErrNotExist means the recordings are not there.
func LoadOccupancy(dir string, rows int) (*Occupancy, error) {
	if rows < 1 {
		return nil, errors.New("drainbench: occupancy needs rows > 0")
	}
	o := &Occupancy{rows: rows}
	for _, name := range []string{"datatest.txt", "datatraining.txt"} {
		if err := o.load(filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (o *Occupancy) load(path string) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("drainbench: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("drainbench: %w", cerr)
		}
	}()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for line := 2; sc.Scan(); line++ {
		fs := strings.Split(sc.Text(), ",")
		if len(fs) < 2+len(occupancyColumns) {
			return fmt.Errorf("drainbench: %s:%d: short line", path, line)
		}
		ts, err := time.Parse("2006-01-02 15:04:05", strings.Trim(fs[1], `"`))
		if err != nil {
			return fmt.Errorf("drainbench: %s:%d: %w", path, line, err)
		}
		// The two files overlap by a few minutes; keep time increasing.
		if n := len(o.ts); n > 0 && ts.UnixNano() <= o.ts[n-1] {
			continue
		}
		o.ts = append(o.ts, ts.UnixNano())
		for i := range occupancyColumns {
			v, err := strconv.ParseFloat(fs[2+i], 64)
			if err != nil {
				return fmt.Errorf("drainbench: %s:%d: %w", path, line, err)
			}
			o.cols[i] = append(o.cols[i], v)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("drainbench: %s: %w", path, err)
	}
	if len(o.ts) == 0 {
		return fmt.Errorf("drainbench: %s: no rows", path)
	}
	return nil
}

// Next returns the next Rows rows (fewer at the end of a pass) as one batch.
func (o *Occupancy) Next(gateway string) *outpost.Batch {
	if o.next == len(o.ts) {
		o.offset += o.ts[len(o.ts)-1] - o.ts[0] + int64(time.Minute)
		o.next = 0
	}
	lo, hi := o.next, min(o.next+o.rows, len(o.ts))
	o.next = hi
	b := newBatch(gateway)
	for i, c := range occupancyColumns {
		sr := outpost.Series{Sensor: "office", Metric: c.metric, Unit: c.unit,
			TS: make([]int64, hi-lo), Values: append([]float64(nil), o.cols[i][lo:hi]...)}
		sr.TS[0] = o.ts[lo] + o.offset
		for j := lo + 1; j < hi; j++ {
			sr.TS[j-lo] = o.ts[j] - o.ts[j-1]
		}
		b.Series = append(b.Series, sr)
	}
	return b
}

// newBatch is an empty telemetry batch sealed now: the outbox's age cap
// counts from Created, so replayed old recordings must not carry their
// own time there.
func newBatch(gateway string) *outpost.Batch {
	return &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindTelemetry, Gateway: gateway, Created: time.Now().UnixNano()}
}
