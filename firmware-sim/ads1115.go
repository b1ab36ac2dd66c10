package firmwaresim

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// ADS1115Options configure a simulated ADS1115. Nil options mean a
// fault-free chip on the real clock with every input at 0 V.
type ADS1115Options struct {
	ChipOptions
	// Inputs are the voltages of AIN0…AIN3 in volts; an empty Kind is 0 V.
	Inputs [4]SignalSpec
}

// Registers (ADS1115 datasheet §9.6).
const (
	adsRegConversion = 0
	adsRegConfig     = 1
	adsRegLoThresh   = 2
	adsRegHiThresh   = 3
)

// adsFSR is the full-scale range of each PGA setting, in volts.
var adsFSR = [8]float64{6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256}

// ADS1115 is a simulated TI ADS1115 16-bit ADC. A single-shot conversion
// happens when the config register is written with OS set; in continuous
// mode every read of the conversion register converts anew. The result is
// the multiplexed input voltage over the PGA's full-scale range, clipped
// to the 16-bit code range. Conversion time is not simulated.
type ADS1115 struct {
	mu   sync.Mutex
	f    *faults
	in   [4]*Signal
	regs [4]uint16
	ptr  byte
}

// NewADS1115 returns a simulated ADS1115; attach it at 0x48–0x4B.
func NewADS1115(opts *ADS1115Options) (*ADS1115, error) {
	if opts == nil {
		opts = &ADS1115Options{}
	}
	f, err := newFaults(opts.ChipOptions)
	if err != nil {
		return nil, err
	}
	c := &ADS1115{f: f, regs: [4]uint16{0, 0x8583, 0x8000, 0x7FFF}}
	for i, spec := range opts.Inputs {
		if c.in[i], err = signalOr(spec, 0, f.start); err != nil {
			return nil, fmt.Errorf("firmwaresim: ads1115 AIN%d: %w", i, err)
		}
	}
	return c, nil
}

// Tx implements I2CChip: w[0] is the pointer register, two more bytes
// write it big-endian; r reads the pointed register big-endian.
func (c *ADS1115) Tx(w, r []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now, ok := c.f.begin()
	if !ok {
		return ErrNACK
	}
	if len(w) > 0 {
		c.ptr = w[0] & 3
	}
	if len(w) >= 3 {
		v := uint16(w[1])<<8 | uint16(w[2])
		switch c.ptr {
		case adsRegConfig:
			c.regs[adsRegConfig] = v &^ 0x8000 // OS reads 0 while converting
			if v&0x8000 != 0 || v&0x0100 == 0 {
				c.convert(now)
			}
			c.regs[adsRegConfig] |= 0x8000 // and 1 once done: at once here
		case adsRegLoThresh, adsRegHiThresh:
			c.regs[c.ptr] = v
		}
	}
	if len(r) > 0 && c.ptr == adsRegConversion && c.regs[adsRegConfig]&0x0100 == 0 {
		c.convert(now) // continuous mode
	}
	for i := range r {
		v := c.regs[c.ptr]
		if i%2 == 0 {
			r[i] = byte(v >> 8)
		} else {
			r[i] = byte(v)
		}
	}
	return nil
}

// convert samples the selected input and stores the 16-bit code.
func (c *ADS1115) convert(now time.Time) {
	cfg := c.regs[adsRegConfig]
	ts := now.UnixNano()
	ain := func(i int) float64 { return c.f.value(i, c.in[i].At(ts), now) }
	var v float64
	switch mux := cfg >> 12 & 7; mux {
	case 0:
		v = ain(0) - ain(1)
	case 1:
		v = ain(0) - ain(3)
	case 2:
		v = ain(1) - ain(3)
	case 3:
		v = ain(2) - ain(3)
	default:
		v = ain(int(mux - 4))
	}
	fsr := adsFSR[cfg>>9&7]
	code := math.Round(v / fsr * 32768)
	code = math.Max(-32768, math.Min(32767, code))
	c.regs[adsRegConversion] = uint16(int16(code))
}

var _ I2CChip = (*ADS1115)(nil)
