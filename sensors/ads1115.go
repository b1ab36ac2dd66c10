package sensors

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ads1x15"

	"github.com/outposthq/outpost"
)

// adsDataRate is the conversion rate asked for: the chip's default, 128
// samples/s (7.8 ms per single-shot conversion), a fair trade of noise
// against time for values polled every few seconds.
const adsDataRate = 128 * physic.Hertz

// adsFullScales are the PGA ranges of the ADS1115, in volts.
var adsFullScales = []float64{6.144, 4.096, 2.048, 1.024, 0.512, 0.256}

// adc is one single-ended channel of a TI ADS1115, converted in
// single-shot mode on each Read (the chip powers down in between) and
// scaled linearly. Sensors reading channels of one chip share its periph
// Dev (see adsChips).
type adc struct {
	id     string
	chip   adsKey
	pin    ads1x15.PinADC
	scale  *LinearScale
	metric Metric

	mu     sync.Mutex
	closed bool
}

var _ Sensor = (*adc)(nil)

// NewADS1115 is the Factory of the ads1115 driver: input AIN<Channel> of
// the ADS1115 at spec.Address ("" means 0x48; 0x48 to 0x4B) on the I2C
// bus spec.Bus. Its one output is spec.Metrics[0], or "voltage" in V;
// with a Scale it is the scaled value, whose quality Scale.Apply judges.
// A conversion at the ends of the PGA range (clipped) is at best
// QualityUncertain. spec.Options is an *ADCOptions or nil.
func NewADS1115(spec Spec) (Sensor, error) {
	const driver = DriverADS1115
	o, err := options[ADCOptions](driver, &spec)
	if err != nil {
		return nil, err
	}
	if o.Channel < 0 || o.Channel > 3 {
		return nil, specErr(driver, spec.ID, "channel %d: want 0 to 3 (AIN0–AIN3)", o.Channel)
	}
	fs := o.FullScale
	if fs == 0 {
		fs = 4.096
	}
	valid := false
	for _, v := range adsFullScales {
		valid = valid || math.Abs(fs-v) < 1e-9
	}
	if !valid {
		return nil, specErr(driver, spec.ID, "full_scale %v V: want 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256", o.FullScale)
	}
	if s := o.Scale; s != nil {
		if err := checkScale(s); err != nil {
			return nil, specErr(driver, spec.ID, "scale: %w", err)
		}
	}
	m, err := outputMetric(driver, &spec, Metric{Name: "voltage", Unit: UnitVolt}, "")
	if err != nil {
		return nil, err
	}
	if o.Scale == nil && m.Unit != "" && m.Unit != UnitVolt {
		return nil, specErr(driver, spec.ID, "metric %s in %q: without a scale the readings are in V", m.Name, m.Unit)
	}
	if o.Scale == nil {
		m.Unit = UnitVolt
	}
	addr, err := ParseI2CAddress(spec.Address, ads1x15.I2CAddr)
	if err != nil {
		return nil, specErr(driver, spec.ID, "%w", err)
	}
	if addr < 0x48 || addr > 0x4B {
		return nil, specErr(driver, spec.ID, "address 0x%02x: the chip answers at 0x48 to 0x4B", addr)
	}
	bus, err := i2cBus(driver, &spec)
	if err != nil {
		return nil, err
	}
	key := adsKeyOf(bus, addr)
	dev, err := adsChips.acquire(key, bus)
	if err != nil {
		return nil, driverErr(driver, spec.ID, "%w", err)
	}
	// PinForChannel only computes the config word; no I/O yet.
	pin, err := dev.PinForChannel(ads1x15.Channel0+ads1x15.Channel(o.Channel),
		physic.ElectricPotential(math.Round(fs*1000))*physic.MilliVolt, adsDataRate, ads1x15.BestQuality)
	if err != nil {
		adsChips.release(key)
		return nil, driverErr(driver, spec.ID, "%w", err)
	}
	return &adc{id: spec.ID, chip: key, pin: pin, scale: o.Scale, metric: m}, nil
}

// Read converts once and appends the channel's value.
func (s *adc) Read(ctx context.Context, now time.Time, dst []outpost.Reading) ([]outpost.Reading, error) {
	if err := ctx.Err(); err != nil {
		return dst, s.err(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return dst, s.err(errClosed)
	}
	smp, err := s.pin.Read()
	if err != nil {
		return dst, s.err(err)
	}
	v := float64(smp.V) / float64(physic.Volt)
	q := outpost.QualityGood
	if s.scale != nil {
		v, q = s.scale.Apply(v)
	}
	if (smp.Raw >= math.MaxInt16 || smp.Raw <= math.MinInt16) && q == outpost.QualityGood {
		q = outpost.QualityUncertain // clipped: the input may be anywhere beyond
	}
	return append(dst, outpost.Reading{Sensor: s.id, Metric: s.metric.Name, Unit: s.metric.Unit,
		TS: now.UnixNano(), Value: v, Quality: q}), nil
}

// Close releases the pin and the sensor's share of the chip; in
// single-shot mode the chip is powered down already. The bus stays open.
func (s *adc) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	adsChips.release(s.chip)
	if err := s.pin.Halt(); err != nil {
		return s.err(err)
	}
	return nil
}

func (s *adc) err(err error) error { return driverErr(DriverADS1115, s.id, "%w", err) }

// checkScale rejects a scale that maps nothing or is not finite.
func checkScale(s *LinearScale) error {
	for _, v := range []float64{s.InMin, s.InMax, s.OutMin, s.OutMax, s.FaultBelow, s.FaultAbove} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%v is not a finite number", v)
		}
	}
	if s.InMin == s.InMax {
		return fmt.Errorf("in_min and in_max are both %v: nothing to map", s.InMin)
	}
	if s.HasFaultBelow && s.HasFaultAbove && s.FaultBelow >= s.FaultAbove {
		return fmt.Errorf("fault_below %v is not below fault_above %v", s.FaultBelow, s.FaultAbove)
	}
	return nil
}

// adsChips shares one periph Dev per ADS1115 among the sensors reading its
// channels. A conversion is a config write, a wait and a read of the
// result; periph's Dev holds its lock across the three, but two Devs on
// one chip, polled from two goroutines, would read each other's
// conversions.
var adsChips = chipShare{m: map[adsKey]*sharedADS{}}

// adsKey names a chip: its bus and address. The bus is the key itself
// when comparable (the usual pointer), else its name.
type adsKey struct {
	bus  any
	addr uint16
}

func adsKeyOf(bus i2c.Bus, addr uint16) adsKey {
	if t := reflect.TypeOf(bus); t != nil && t.Comparable() {
		return adsKey{bus, addr}
	}
	return adsKey{bus.String(), addr}
}

type chipShare struct {
	mu sync.Mutex
	m  map[adsKey]*sharedADS
}

type sharedADS struct {
	dev  *ads1x15.Dev
	refs int
}

// acquire returns the chip's Dev, creating it on first use (periph's
// NewADS1115 only records the bus and address).
func (c *chipShare) acquire(k adsKey, bus i2c.Bus) (*ads1x15.Dev, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sh := c.m[k]
	if sh == nil {
		dev, err := ads1x15.NewADS1115(bus, &ads1x15.Opts{I2cAddress: k.addr})
		if err != nil {
			return nil, err
		}
		sh = &sharedADS{dev: dev}
		c.m[k] = sh
	}
	sh.refs++
	return sh.dev, nil
}

// release drops a share; the last one forgets the chip.
func (c *chipShare) release(k adsKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sh := c.m[k]; sh != nil {
		if sh.refs--; sh.refs == 0 {
			delete(c.m, k)
		}
	}
}
