package sensors

import (
	"context"
	"sync"
	"time"

	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ds18b20"

	"github.com/outposthq/outpost"
)

var dsMetrics = []Metric{{Name: "temperature", Unit: UnitCelsius}}

// The DS18B20 measures −55 to 125 °C; its scratchpad holds 85 °C from
// power-on until a conversion completes, so exactly 85 °C more likely
// means no conversion happened (a weak pull-up, a brown-out) than heat.
const (
	dsMin, dsMax = -55.0, 125.0
	dsPowerOn    = 85.0
)

// ds is one Maxim DS18B20 on a 1-Wire bus, addressed by its ROM id, so
// several share a bus, each its own sensor. Read starts a conversion on
// this device only, waits the datasheet's conversion time (ctx-aware,
// unlike periph's Sense) and reads the result with periph's LastTemp.
// The device is opened (resolution written) on the first Read and again
// after a failed one.
type ds struct {
	id   string
	dev  onewire.Dev
	bits int
	// wait sleeps for a conversion; tests replace it to drive a fake clock.
	wait func(ctx context.Context, d time.Duration) error

	mu     sync.Mutex
	d      *ds18b20.Dev // nil until opened, and after a failed read
	closed bool
}

var _ Sensor = (*ds)(nil)

// NewDS18B20 is the Factory of the ds18b20 driver: the DS18B20 with the
// ROM id spec.Address (required: "28-00000abcdef0" as in
// /sys/bus/w1/devices, or the 16 hex digits of the whole ROM) on the
// 1-Wire bus spec.Bus, measuring temperature (Cel). spec.Options is a
// *DS18B20Options or nil.
func NewDS18B20(spec Spec) (Sensor, error) {
	const driver = DriverDS18B20
	o, err := options[DS18B20Options](driver, &spec)
	if err != nil {
		return nil, err
	}
	bits := o.ResolutionBits
	if bits == 0 {
		bits = 12
	}
	if bits < 9 || bits > 12 {
		return nil, specErr(driver, spec.ID, "resolution_bits %d: want 9 to 12", o.ResolutionBits)
	}
	if _, err := selectMetrics(driver, &spec, dsMetrics); err != nil {
		return nil, err // temperature is the only metric: it is on
	}
	if spec.Address == "" {
		return nil, specErr(driver, spec.ID, "address (the ROM id, like \"28-00000abcdef0\") is required")
	}
	addr, err := ParseROM(spec.Address)
	if err != nil {
		return nil, specErr(driver, spec.ID, "%w", err)
	}
	if fam := ds18b20.Family(addr & 0xFF); fam != ds18b20.DS18B20 {
		return nil, specErr(driver, spec.ID, "%s is family 0x%02x, not a DS18B20 (0x28)", spec.Address, byte(fam))
	}
	if spec.Buses == nil {
		return nil, specErr(driver, spec.ID, "no buses to find 1-Wire bus %q on", spec.Bus)
	}
	bus, err := spec.Buses.OneWire(spec.Bus)
	if err != nil {
		return nil, driverErr(driver, spec.ID, "%w", err)
	}
	return &ds{id: spec.ID, dev: onewire.Dev{Bus: bus, Addr: addr}, bits: bits, wait: sleepCtx}, nil
}

// Read converts once and appends the temperature.
func (s *ds) Read(ctx context.Context, now time.Time, dst []outpost.Reading) ([]outpost.Reading, error) {
	if err := ctx.Err(); err != nil {
		return dst, s.err(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return dst, s.err(errClosed)
	}
	if s.d == nil {
		d, err := ds18b20.New(s.dev.Bus, s.dev.Addr, s.bits)
		if err != nil {
			return dst, s.err(err)
		}
		s.d = d
	}
	// Convert T (0x44) with the strong pull-up that powers parasitic
	// devices through the conversion, as periph's Sense does.
	if err := s.dev.TxPower([]byte{0x44}, nil); err != nil {
		s.d = nil
		return dst, s.err(err)
	}
	// 93.75 ms × 2^(bits−9), rounded up like periph's conversionSleep.
	if err := s.wait(ctx, (94*time.Millisecond)<<(s.bits-9)); err != nil {
		return dst, s.err(err)
	}
	t, err := s.d.LastTemp()
	if err != nil {
		s.d = nil
		return dst, s.err(err)
	}
	c := float64(t-physic.ZeroCelsius) / float64(physic.Celsius)
	return append(dst, outpost.Reading{Sensor: s.id, Metric: dsMetrics[0].Name, Unit: dsMetrics[0].Unit,
		TS: now.UnixNano(), Value: c, Quality: dsQuality(c)}), nil
}

// dsQuality judges a DS18B20 temperature.
func dsQuality(c float64) outpost.Quality {
	if c == dsPowerOn {
		return outpost.QualityUncertain
	}
	return rangeQuality(c, dsMin, dsMax)
}

// Close releases the sensor; the DS18B20 idles by itself between
// conversions, and the bus stays open.
func (s *ds) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.d != nil {
		err = s.d.Halt()
		s.d = nil
	}
	if err != nil {
		return s.err(err)
	}
	return nil
}

func (s *ds) err(err error) error { return driverErr(DriverDS18B20, s.id, "%w", err) }

// sleepCtx sleeps for d or until ctx ends, whichever comes first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
