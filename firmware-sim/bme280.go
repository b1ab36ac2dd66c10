package firmwaresim

import (
	"fmt"
	"sync"
	"time"
)

// BME280Options configure a simulated BME280 or BMP280. Nil options mean a
// fault-free chip on the real clock measuring 20 °C, 101325 Pa and 50 %RH.
type BME280Options struct {
	ChipOptions
	Temperature SignalSpec // °C; empty Kind means constant 20
	Pressure    SignalSpec // Pa; empty Kind means constant 101325
	Humidity    SignalSpec // %RH; empty Kind means constant 50; the BMP280 has none
}

// Quantity indexes of the BME280, for the fault engine.
const (
	qTemperature = iota
	qPressure
	qHumidity
)

// Register map (BME280 datasheet §5.3).
const (
	bmeRegCalib0  = 0x88 // 0x88–0xA1: dig_T1…dig_P9, dig_H1
	bmeRegChipID  = 0xD0
	bmeRegReset   = 0xE0
	bmeRegCalib26 = 0xE1 // 0xE1–0xE7: dig_H2…dig_H6
	bmeRegCtrlHum = 0xF2
	bmeRegStatus  = 0xF3
	bmeRegCtrlMes = 0xF4
	bmeRegConfig  = 0xF5
	bmeRegData    = 0xF7 // 0xF7–0xFE: press, temp, hum
)

// BME280 is a simulated Bosch BME280 (chip id 0x60) or BMP280 (0x58)
// answering register reads and writes like the datasheet. Measurements are
// taken in forced mode when ctrl_meas is written, and on every data read in
// normal mode; the raw ADC values are found by inverting the datasheet
// compensation so a real driver recovers the scenario's values.
type BME280 struct {
	mu      sync.Mutex
	isBME   bool
	cal     bmeCalibration
	f       *faults
	t, p, h *Signal
	regs    [256]byte
	ptr     byte
	osrsH   byte // ctrl_hum, latched into effect by a ctrl_meas write
}

// NewBME280 returns a simulated BME280. Attach it at 0x76 or 0x77.
func NewBME280(opts *BME280Options) (*BME280, error) { return newBMx280(opts, true) }

// NewBMP280 returns a simulated BMP280: no humidity, chip id 0x58.
func NewBMP280(opts *BME280Options) (*BME280, error) { return newBMx280(opts, false) }

func newBMx280(opts *BME280Options, isBME bool) (*BME280, error) {
	if opts == nil {
		opts = &BME280Options{}
	}
	f, err := newFaults(opts.ChipOptions)
	if err != nil {
		return nil, err
	}
	c := &BME280{isBME: isBME, cal: datasheetCalibration, f: f}
	if c.t, err = signalOr(opts.Temperature, 20, f.start); err != nil {
		return nil, fmt.Errorf("firmwaresim: bme280 temperature: %w", err)
	}
	if c.p, err = signalOr(opts.Pressure, 101325, f.start); err != nil {
		return nil, fmt.Errorf("firmwaresim: bme280 pressure: %w", err)
	}
	if c.h, err = signalOr(opts.Humidity, 50, f.start); err != nil {
		return nil, fmt.Errorf("firmwaresim: bme280 humidity: %w", err)
	}
	c.reset()
	return c, nil
}

// Tx implements I2CChip: w[0] sets the register pointer, further bytes of
// w are (register, value) pairs after the first value (datasheet §6.2.1),
// then r is read from the pointer with auto-increment.
func (c *BME280) Tx(w, r []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now, ok := c.f.begin()
	if !ok {
		return ErrNACK
	}
	if len(w) > 0 {
		c.ptr = w[0]
		for i := 1; i < len(w); i += 2 {
			c.ptr = w[i-1]
			c.write(w[i-1], w[i], now)
		}
	}
	if len(r) > 0 && c.ptr >= bmeRegData && c.regs[bmeRegCtrlMes]&3 == 3 {
		c.measure(now) // normal mode: a fresh result for every read
	}
	for i := range r {
		r[i] = c.read(c.ptr)
		if c.ptr < 0xFF {
			c.ptr++
		}
	}
	return nil
}

func (c *BME280) write(reg, v byte, now time.Time) {
	switch reg {
	case bmeRegReset:
		if v == 0xB6 {
			c.reset()
		}
	case bmeRegCtrlHum:
		if c.isBME {
			c.regs[reg] = v & 7
		}
	case bmeRegConfig:
		c.regs[reg] = v &^ 2
	case bmeRegCtrlMes:
		c.regs[reg] = v
		c.osrsH = c.regs[bmeRegCtrlHum]
		if m := v & 3; m == 1 || m == 2 { // forced: measure, back to sleep
			c.measure(now)
			c.regs[reg] &^= 3
		}
	}
	// Everything else is read-only and ignored, as on the chip.
}

func (c *BME280) read(reg byte) byte {
	if !c.isBME && (reg == bmeRegCtrlHum || reg >= bmeRegCalib26 && reg <= bmeRegCalib26+6 || reg >= 0xFD) {
		return 0
	}
	return c.regs[reg]
}

func (c *BME280) reset() {
	c.regs = [256]byte{}
	c.cal.put(c.regs[:])
	c.regs[bmeRegChipID] = 0x58
	if c.isBME {
		c.regs[bmeRegChipID] = 0x60
	}
	// Data registers read 0x80000 / 0x8000 (skipped) until a measurement.
	copy(c.regs[bmeRegData:], []byte{0x80, 0, 0, 0x80, 0, 0, 0x80, 0})
	c.osrsH = 0
}

// measure samples the signals at now and stores the raw ADC values.
func (c *BME280) measure(now time.Time) {
	ts := now.UnixNano()
	ctrl := c.regs[bmeRegCtrlMes]
	tRaw, pRaw, hRaw := int32(0x80000), int32(0x80000), int32(0x8000)
	tFine := int32(0)
	if ctrl>>5 != 0 {
		tRaw = c.cal.rawTemp(c.f.value(qTemperature, c.t.At(ts), now))
		_, tFine = c.cal.temp(tRaw)
	}
	if ctrl>>2&7 != 0 {
		pRaw = c.cal.rawPressure(c.f.value(qPressure, c.p.At(ts), now), tFine)
	}
	if c.isBME && c.osrsH != 0 {
		hRaw = c.cal.rawHumidity(c.f.value(qHumidity, c.h.At(ts), now), tFine)
	}
	d := c.regs[bmeRegData:]
	d[0], d[1], d[2] = byte(pRaw>>12), byte(pRaw>>4), byte(pRaw<<4)
	d[3], d[4], d[5] = byte(tRaw>>12), byte(tRaw>>4), byte(tRaw<<4)
	d[6], d[7] = byte(hRaw>>8), byte(hRaw)
}

var _ I2CChip = (*BME280)(nil)
