package sensors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"

	"github.com/outposthq/outpost"
)

// bmeMetrics are the metrics of the bme280 driver, in reading order; the
// bmp280 has the first two.
var bmeMetrics = []Metric{
	{Name: "temperature", Unit: UnitCelsius},
	{Name: "pressure", Unit: UnitPascal},
	{Name: "humidity", Unit: UnitPercentRH},
}

// What a BME280 can measure (datasheet §1, operating range); the BMP280's
// temperature and pressure ranges are the same. Outside, a value is bad.
var bmeRange = [3][2]float64{{-40, 85}, {30000, 110000}, {0, 100}}

// Registers read to notice a reset chip (datasheet §5.4).
const (
	bmeRegCtrlHum  = 0xF2 // humidity oversampling; 0 after a reset
	bmeRegCtrlMeas = 0xF4 // oversampling and mode; sleep after a reset
)

// bme is a Bosch BME280 or BMP280 on I2C, read in forced mode: each Read
// has the chip measure once and sleep again. The device is opened (chip id
// checked, calibration read, oversampling set) on the first Read and again
// after a failed one, so a sensor that is missing at start-up or loses
// power recovers by itself.
type bme struct {
	id     string
	driver string
	dev    i2c.Dev
	opts   bmxx80.Opts
	on     []bool // which of bmeMetrics to emit
	isBME  bool

	mu     sync.Mutex
	d      *bmxx80.Dev // nil until opened, and after a failed read
	closed bool
}

var _ Sensor = (*bme)(nil)

// NewBME280 is the Factory of the bme280 driver: a BME280 at spec.Address
// on the I2C bus spec.Bus ("" means 0x76; 0x76 or 0x77), measuring
// temperature (Cel), pressure (Pa) and humidity (%RH); spec.Metrics may
// pick some. spec.Options is a *BMEOptions or nil.
func NewBME280(spec Spec) (Sensor, error) { return asSensor(newBME(spec, DriverBME280, true)) }

// NewBMP280 is the Factory of the bmp280 driver: like NewBME280, for a
// BMP280, which has no humidity.
func NewBMP280(spec Spec) (Sensor, error) { return asSensor(newBME(spec, DriverBMP280, false)) }

func newBME(spec Spec, driver string, isBME bool) (*bme, error) {
	o, err := options[BMEOptions](driver, &spec)
	if err != nil {
		return nil, err
	}
	ovs, ok := map[int]bmxx80.Oversampling{0: bmxx80.O4x, 1: bmxx80.O1x, 2: bmxx80.O2x, 4: bmxx80.O4x, 8: bmxx80.O8x, 16: bmxx80.O16x}[o.Oversampling]
	if !ok {
		return nil, specErr(driver, spec.ID, "oversampling %d: want 1, 2, 4, 8 or 16", o.Oversampling)
	}
	filter, ok := map[int]bmxx80.Filter{0: bmxx80.NoFilter, 2: bmxx80.F2, 4: bmxx80.F4, 8: bmxx80.F8, 16: bmxx80.F16}[o.Filter]
	if !ok {
		return nil, specErr(driver, spec.ID, "filter %d: want 0, 2, 4, 8 or 16", o.Filter)
	}
	fixed := bmeMetrics
	if !isBME {
		fixed = bmeMetrics[:2]
	}
	on, err := selectMetrics(driver, &spec, fixed)
	if err != nil {
		return nil, err
	}
	addr, err := ParseI2CAddress(spec.Address, 0x76)
	if err != nil {
		return nil, specErr(driver, spec.ID, "%w", err)
	}
	if addr != 0x76 && addr != 0x77 {
		return nil, specErr(driver, spec.ID, "address 0x%02x: the chip answers at 0x76 or 0x77", addr)
	}
	bus, err := i2cBus(driver, &spec)
	if err != nil {
		return nil, err
	}
	s := &bme{
		id: spec.ID, driver: driver, dev: i2c.Dev{Bus: bus, Addr: addr}, on: on, isBME: isBME,
		opts: bmxx80.Opts{Temperature: ovs, Pressure: ovs, Humidity: ovs, Filter: filter},
	}
	if filter != bmxx80.NoFilter {
		// periph applies the IIR filter only in normal mode, which a
		// standby time selects: the chip then measures on its own every
		// standby (capped at 1 s, BMP280 4 s) and Read takes the latest
		// filtered result.
		s.opts.Standby = spec.Interval
		if s.opts.Standby <= 0 {
			s.opts.Standby = time.Second
		}
	}
	if !isBME {
		s.opts.Humidity = bmxx80.Off
	}
	return s, nil
}

// Read measures once and appends the selected metrics.
func (s *bme) Read(ctx context.Context, now time.Time, dst []outpost.Reading) ([]outpost.Reading, error) {
	if err := ctx.Err(); err != nil {
		return dst, s.err(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return dst, s.err(errClosed)
	}
	if s.d != nil && s.wasReset() {
		s.d = nil // configure it again before measuring
	}
	if s.d == nil {
		d, err := bmxx80.NewI2C(s.dev.Bus, s.dev.Addr, &s.opts)
		if err != nil {
			// bmxx80 prefixes its errors with the chip's name, which is
			// "" until it has read the chip id (and it wraps with %v).
			if msg, ok := strings.CutPrefix(err.Error(), ": "); ok {
				err = errors.New(msg)
			}
			return dst, s.err(err)
		}
		// periph takes any BMx280 or BMP180; a BMP280 under the bme280
		// driver would read 0 %RH, a BMP180 is another chip.
		chip, _, _ := strings.Cut(d.String(), "{")
		if chip != "BME280" && (s.isBME || chip != "BMP280") {
			return dst, s.err(fmt.Errorf("the chip at 0x%02x is a %s, not a %s", s.dev.Addr, chip, strings.ToUpper(s.driver)))
		}
		s.d = d
	}
	var e physic.Env
	if err := s.d.Sense(&e); err != nil {
		s.d = nil
		return dst, s.err(err)
	}
	vals := [3]float64{
		float64(e.Temperature-physic.ZeroCelsius) / float64(physic.Celsius),
		float64(e.Pressure) / float64(physic.Pascal),
		float64(e.Humidity) / float64(physic.PercentRH),
	}
	ts := now.UnixNano()
	for i, on := range s.on {
		if on {
			dst = append(dst, outpost.Reading{Sensor: s.id, Metric: bmeMetrics[i].Name, Unit: bmeMetrics[i].Unit,
				TS: ts, Value: vals[i], Quality: rangeQuality(vals[i], bmeRange[i][0], bmeRange[i][1])})
		}
	}
	return dst, nil
}

// wasReset reports whether the chip lost its settings since it was
// configured (a brown-out, a reset). A BME280's ctrl_hum reads 0 then, so
// a forced measurement would skip humidity and leave a meaningless value
// in its register; in normal mode the chip is asleep, its results stale.
// A BMP280 in forced mode loses nothing: each Sense writes ctrl_meas. A
// failed bus read says nothing; Sense will report it.
func (s *bme) wasReset() bool {
	normal := s.opts.Standby != 0
	if !s.isBME && !normal {
		return false
	}
	var b [3]byte // ctrl_hum, status, ctrl_meas
	if s.dev.Tx([]byte{bmeRegCtrlHum}, b[:]) != nil {
		return false
	}
	return s.isBME && b[0]&7 == 0 || normal && b[2]&3 != 3
}

// Close stops the chip: in normal mode (a filter) it is put to sleep; in
// forced mode it sleeps already. The bus stays open.
func (s *bme) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.d == nil {
		return nil
	}
	err := s.d.Halt()
	if err == nil && s.opts.Standby != 0 {
		// ctrl_meas with mode 00: sleep.
		err = s.dev.Tx([]byte{bmeRegCtrlMeas, byte(s.opts.Temperature)<<5 | byte(s.opts.Pressure)<<2}, nil)
	}
	s.d = nil
	if err != nil {
		return s.err(err)
	}
	return nil
}

func (s *bme) err(err error) error {
	// periph's bmxx80 prefixes its errors with the chip's name, once per
	// layer, and flattens them with %v: drop the repeats, nothing else is
	// lost.
	msg := err.Error()
	for {
		t := strings.TrimPrefix(strings.TrimPrefix(msg, "bme280: "), "bmp280: ")
		if t == msg {
			break
		}
		msg = t
	}
	if msg != err.Error() {
		err = errors.New(msg)
	}
	return driverErr(s.driver, s.id, "%w", err)
}
