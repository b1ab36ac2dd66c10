// Package firmwaresim simulates sensor hardware so the whole gateway runs and
// is tested without any: signal generators that play the physical world, and
// simulated devices that sample them. Everything is deterministic for a seed.
//
// The chips (BME280/BMP280 and ADS1115 on an I2CBus, DS18B20s on a
// OneWireBus, a GPIOPin) sit behind periph.io's real bus interfaces, so
// the real periph drivers run against them; each chip takes its own
// signals, faults, seed and clock (ChipOptions).
package firmwaresim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Signal kinds.
const (
	KindConstant   = "constant"
	KindSine       = "sine"
	KindRamp       = "ramp"
	KindRandomWalk = "random_walk"
	KindStep       = "step"
	KindReplay     = "replay"
)

// SignalSpec describes a simulated physical quantity over time.
type SignalSpec struct {
	Kind       string        // one of the Kind* constants
	Value      float64       // constant value; step's level after Period
	Base       float64       // sine centre, ramp and random walk start, step's level before Period
	Amplitude  float64       // sine amplitude
	Period     time.Duration // sine period; time of the step
	Slope      float64       // ramp, units per second
	Step       float64       // random walk: largest change per sample
	Min, Max   float64       // random walk clamp, when HasMin / HasMax
	HasMin     bool
	HasMax     bool
	Noise      float64 // uniform noise in [-Noise, +Noise] added to any kind
	Resolution float64 // quantize to this step, like a sensor's LSB; 0 = none
	Seed       uint64
	// Replay: the recording to play, or else ReplayPath and ReplayColumn
	// to load one with LoadReplay when the signal is built.
	Replay       *Replay
	ReplayPath   string
	ReplayColumn string
}

// Signal is a stateful generator; not safe for concurrent use.
type Signal struct {
	spec  SignalSpec
	rng   *rand.Rand
	start int64 // unix ns of the first sample
	walk  float64
	began bool
}

// NewSignal checks spec and returns its generator.
func NewSignal(spec SignalSpec) (*Signal, error) {
	switch spec.Kind {
	case KindConstant, KindRamp, KindRandomWalk:
	case KindSine, KindStep:
		if spec.Period <= 0 {
			return nil, fmt.Errorf("firmwaresim: %s signal needs a period > 0", spec.Kind)
		}
	case KindReplay:
		if spec.Replay == nil {
			if spec.ReplayPath == "" || spec.ReplayColumn == "" {
				return nil, fmt.Errorf("firmwaresim: replay signal needs a Replay or a ReplayPath and ReplayColumn")
			}
			rp, err := LoadReplay(spec.ReplayPath, spec.ReplayColumn)
			if err != nil {
				return nil, err
			}
			spec.Replay = rp
		}
	default:
		return nil, fmt.Errorf("firmwaresim: unknown signal kind %q", spec.Kind)
	}
	return &Signal{spec: spec, rng: rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15)), walk: spec.Base}, nil
}

// anchor sets the time origin without drawing a sample, so a chip's
// signals start when the chip does.
func (s *Signal) anchor(ts int64) {
	if !s.began {
		s.start, s.began = ts, true
	}
}

// At returns the signal's value at ts (unix ns). Calls must come in
// non-decreasing ts; the first call sets the signal's time origin.
func (s *Signal) At(ts int64) float64 {
	if !s.began {
		s.start, s.began = ts, true
	}
	sp := &s.spec
	el := time.Duration(ts - s.start)
	var v float64
	switch sp.Kind {
	case KindConstant:
		v = sp.Value
	case KindSine:
		v = sp.Base + sp.Amplitude*math.Sin(2*math.Pi*el.Seconds()/sp.Period.Seconds())
	case KindRamp:
		v = sp.Base + sp.Slope*el.Seconds()
	case KindStep:
		v = sp.Base
		if el >= sp.Period {
			v = sp.Value
		}
	case KindRandomWalk:
		s.walk += (s.rng.Float64()*2 - 1) * sp.Step
		if sp.HasMin && s.walk < sp.Min {
			s.walk = sp.Min
		}
		if sp.HasMax && s.walk > sp.Max {
			s.walk = sp.Max
		}
		v = s.walk
	case KindReplay:
		v = sp.Replay.At(el)
	}
	if sp.Noise != 0 {
		v += (s.rng.Float64()*2 - 1) * sp.Noise
	}
	if sp.Resolution > 0 {
		v = quantize(v, sp.Resolution)
	}
	return v
}

// quantize rounds v to a multiple of res. When res is a decimal step
// m × 10^-k (0.01, 0.1, 0.5, 0.3, 2.5, 5) the result is the double nearest
// to the decimal: the integer n × m divided once by the exact power of
// ten, so 27.56 comes out as the double nearest 27.56 rather than
// 2756 × 0.01 = 27.560000000000002, like a sensor's decimal reading, and
// the wire encodes it as a scaled integer.
func quantize(v, res float64) float64 {
	n := math.Round(v / res)
	for k, p := 0, 1.0; k <= 15; k, p = k+1, p*10 { // p = 10^k, exact
		m := math.Round(res * p)
		if m < 1 || math.Abs(res*p-m) > 1e-9*m {
			continue
		}
		if nm := n * m; math.Abs(nm) < 1<<53 {
			return nm / p
		}
		break
	}
	return n * res
}
