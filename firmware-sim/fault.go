package firmwaresim

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// FaultKind names a fault a simulated chip can be told to have.
type FaultKind string

// Fault kinds. Value faults (stuck, spikes) bend what the chip measures;
// bus faults (dropout, nack, crc, slow) bend how it answers.
const (
	// FaultStuck freezes every quantity of the chip at the last value it
	// measured before the window (or its first value in the window).
	FaultStuck FaultKind = "stuck"
	// FaultSpikes adds ±Magnitude to a measurement with Probability.
	FaultSpikes FaultKind = "spikes"
	// FaultDropout makes the chip vanish from the bus: I2C NACK, no 1-Wire
	// presence; a GPIO input reads its pull resistor, like a cut wire.
	FaultDropout FaultKind = "dropout"
	// FaultNACK makes a transaction fail with Probability: an I2C NACK, or a
	// 1-Wire device that stays silent (reads as 0xFF) for that transaction.
	FaultNACK FaultKind = "nack"
	// FaultCRC corrupts the CRC byte of a DS18B20 scratchpad read with
	// Probability.
	FaultCRC FaultKind = "crc"
	// FaultSlow delays each transaction by Delay, through ChipOptions.Sleep.
	FaultSlow FaultKind = "slow"
)

// Fault is one fault of one chip, active in a window of the chip's time.
type Fault struct {
	Kind FaultKind
	// From is when the fault starts, measured from the chip's creation on
	// its clock.
	From time.Duration
	// For is how long it lasts; 0 means until the end.
	For time.Duration
	// Probability is the chance per measurement (spikes) or per transaction
	// (nack, crc), in (0, 1]; 0 means 1, every time.
	Probability float64
	// Magnitude is the size of a spike, in the quantity's unit.
	Magnitude float64
	// Delay is the extra time each transaction takes (slow).
	Delay time.Duration
}

// ChipOptions are what every simulated chip shares. The zero value is
// usable: real clock, real sleep, seed 0, no faults.
type ChipOptions struct {
	// Now is the chip's clock; nil means time.Now. Signals and fault
	// windows are read on it.
	Now func() time.Time
	// Sleep is how a slow fault waits; nil means time.Sleep. Tests pass a
	// function that advances their fake clock instead.
	Sleep func(time.Duration)
	// Seed seeds the fault dice (spikes, nack, crc). Signals carry their
	// own seeds, so two chips built alike answer alike.
	Seed uint64
	// Faults apply to this chip only.
	Faults []Fault
}

// faults is the fault engine embedded in every chip. Its owner holds the
// chip's lock around every call.
type faults struct {
	list  []Fault
	rng   *rand.Rand
	now   func() time.Time
	sleep func(time.Duration)
	start time.Time
	last  map[int]float64 // last value reported per quantity
	held  map[int]float64 // stuck values per quantity, while stuck
}

func newFaults(o ChipOptions) (*faults, error) {
	for i, f := range o.Faults {
		switch f.Kind {
		case FaultStuck, FaultSpikes, FaultDropout, FaultNACK, FaultCRC, FaultSlow:
		default:
			return nil, fmt.Errorf("firmwaresim: fault %d: unknown kind %q", i, f.Kind)
		}
		if f.Probability < 0 || f.Probability > 1 || f.From < 0 || f.For < 0 || f.Delay < 0 {
			return nil, fmt.Errorf("firmwaresim: fault %d (%s): negative duration or probability outside [0, 1]", i, f.Kind)
		}
	}
	fs := &faults{
		list:  o.Faults,
		rng:   rand.New(rand.NewPCG(o.Seed, o.Seed^0x6a09e667f3bcc908)),
		now:   o.Now,
		sleep: o.Sleep,
		last:  map[int]float64{},
		held:  map[int]float64{},
	}
	if fs.now == nil {
		fs.now = time.Now
	}
	if fs.sleep == nil {
		fs.sleep = time.Sleep
	}
	fs.start = fs.now()
	return fs, nil
}

// active returns the first fault of kind k whose window holds t.
func (fs *faults) active(k FaultKind, t time.Time) *Fault {
	el := t.Sub(fs.start)
	for i := range fs.list {
		f := &fs.list[i]
		if f.Kind == k && el >= f.From && (f.For == 0 || el < f.From+f.For) {
			return f
		}
	}
	return nil
}

// roll says whether a fault with probability p fires; it draws only for
// 0 < p < 1 so the dice sequence depends on the scenario alone.
func (fs *faults) roll(p float64) bool {
	if p == 0 || p >= 1 {
		return true
	}
	return fs.rng.Float64() < p
}

// begin runs the bus faults of one transaction: it sleeps for a slow
// fault, then reports whether the chip answers at all (false for dropout
// or a NACK roll). It returns the chip's time after the delay.
func (fs *faults) begin() (time.Time, bool) {
	t := fs.now()
	if f := fs.active(FaultSlow, t); f != nil && f.Delay > 0 {
		fs.sleep(f.Delay)
		t = fs.now()
	}
	if fs.active(FaultDropout, t) != nil {
		return t, false
	}
	if f := fs.active(FaultNACK, t); f != nil && fs.roll(f.Probability) {
		return t, false
	}
	return t, true
}

// present reports whether the chip is on the bus at t (no dropout).
func (fs *faults) present(t time.Time) bool { return fs.active(FaultDropout, t) == nil }

// value applies the value faults to quantity q measured as v at t.
func (fs *faults) value(q int, v float64, t time.Time) float64 {
	if fs.active(FaultStuck, t) != nil {
		h, ok := fs.held[q]
		if !ok {
			h, ok = fs.last[q]
			if !ok {
				h = v
			}
			fs.held[q] = h
		}
		return h
	}
	delete(fs.held, q)
	if f := fs.active(FaultSpikes, t); f != nil && fs.roll(f.Probability) {
		if fs.rng.IntN(2) == 0 {
			v += f.Magnitude
		} else {
			v -= f.Magnitude
		}
	}
	fs.last[q] = v
	return v
}

// corruptCRC reports whether a CRC fault fires at t.
func (fs *faults) corruptCRC(t time.Time) bool {
	f := fs.active(FaultCRC, t)
	return f != nil && fs.roll(f.Probability)
}

// signalOr builds the signal of one quantity, a constant def when the spec
// is left empty, anchored at the chip's start.
func signalOr(spec SignalSpec, def float64, start time.Time) (*Signal, error) {
	if spec.Kind == "" {
		spec = SignalSpec{Kind: KindConstant, Value: def}
	}
	s, err := NewSignal(spec)
	if err != nil {
		return nil, err
	}
	s.anchor(start.UnixNano())
	return s, nil
}
