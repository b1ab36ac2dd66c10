package sensors

import (
	"errors"
	"fmt"
	"math"

	"periph.io/x/conn/v3/i2c"

	"github.com/outposthq/outpost"
)

// UCUM unit symbols of the built-in drivers' metrics.
const (
	UnitCelsius   = "Cel"
	UnitPascal    = "Pa"
	UnitPercentRH = "%RH"
	UnitVolt      = "V"
	UnitOne       = "1" // a dimensionless state, 0 or 1
)

// RegisterBuiltin registers the drivers of this package under their
// Driver* names: bme280, bmp280, ds18b20, gpio and ads1115.
func RegisterBuiltin(r *Registry) error {
	for _, d := range []struct {
		name string
		f    Factory
	}{
		{DriverBME280, NewBME280},
		{DriverBMP280, NewBMP280},
		{DriverDS18B20, NewDS18B20},
		{DriverGPIO, NewGPIO},
		{DriverADS1115, NewADS1115},
	} {
		if err := r.Register(d.name, d.f); err != nil {
			return err
		}
	}
	return nil
}

// asSensor returns a driver constructor's result as a Sensor: a nil
// interface on error, never a typed nil (*bme)(nil) that a caller would
// Close.
func asSensor[S Sensor](s S, err error) (Sensor, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

// errClosed is what a closed sensor's Read returns.
var errClosed = errors.New("sensor closed")

// driverErr prefixes an error of a sensor with its driver. The sensor's
// id is not repeated: Registry.New, the poller's log and health events
// name the sensor already.
func driverErr(driver, _ string, format string, args ...any) error {
	return fmt.Errorf("%s: %w", driver, fmt.Errorf(format, args...))
}

// specErr is a driverErr caused by the spec itself, which retrying cannot
// mend: it matches ErrSpec too.
func specErr(driver, id string, format string, args ...any) error {
	return specError{driverErr(driver, id, format, args...)}
}

type specError struct{ err error }

func (e specError) Error() string   { return e.err.Error() }
func (e specError) Unwrap() []error { return []error{ErrSpec, e.err} }

// options returns spec.Options as a *T, or a zero T when it is nil.
func options[T any](driver string, spec *Spec) (*T, error) {
	switch o := spec.Options.(type) {
	case nil:
		return new(T), nil
	case *T:
		if o == nil {
			return new(T), nil
		}
		return o, nil
	}
	return nil, specErr(driver, spec.ID, "options are %T, want %T", spec.Options, new(T))
}

// selectMetrics says which of a driver's fixed metrics spec asks for:
// all when spec.Metrics is empty, else the ones named there, whose units
// (when given) must be the driver's.
func selectMetrics(driver string, spec *Spec, fixed []Metric) ([]bool, error) {
	on := make([]bool, len(fixed))
	if len(spec.Metrics) == 0 {
		for i := range on {
			on[i] = true
		}
		return on, nil
	}
	for _, m := range spec.Metrics {
		i := indexMetric(fixed, m.Name)
		switch {
		case i < 0:
			return nil, specErr(driver, spec.ID, "unknown metric %q (%s has %s)", m.Name, driver, metricNames(fixed))
		case m.Unit != "" && m.Unit != fixed[i].Unit:
			return nil, specErr(driver, spec.ID, "metric %s is in %q, not %q", m.Name, fixed[i].Unit, m.Unit)
		case on[i]:
			return nil, specErr(driver, spec.ID, "metric %s listed twice", m.Name)
		}
		on[i] = true
	}
	return on, nil
}

// outputMetric is the one output of a single-output driver: the metric
// spec names, or def. An empty unit becomes defUnit.
func outputMetric(driver string, spec *Spec, def Metric, defUnit string) (Metric, error) {
	switch len(spec.Metrics) {
	case 0:
		return def, nil
	case 1:
		m := spec.Metrics[0]
		if m.Name == "" {
			return Metric{}, specErr(driver, spec.ID, "metric without a name")
		}
		if m.Unit == "" {
			m.Unit = defUnit
		}
		return m, nil
	}
	return Metric{}, specErr(driver, spec.ID, "%d metrics; %s has one output, named by at most one metric", len(spec.Metrics), driver)
}

func indexMetric(ms []Metric, name string) int {
	for i, m := range ms {
		if m.Name == name {
			return i
		}
	}
	return -1
}

func metricNames(ms []Metric) string {
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += ", "
		}
		s += m.Name
	}
	return s
}

// rangeQuality is QualityBad for a value outside what the device can
// measure (or not a number), else QualityGood.
func rangeQuality(v, lo, hi float64) outpost.Quality {
	if math.IsNaN(v) || v < lo || v > hi {
		return outpost.QualityBad
	}
	return outpost.QualityGood
}

// i2cBus gets spec's I2C bus from spec.Buses.
func i2cBus(driver string, spec *Spec) (i2c.Bus, error) {
	if spec.Buses == nil {
		return nil, specErr(driver, spec.ID, "no buses to find I2C bus %q on", spec.Bus)
	}
	bus, err := spec.Buses.I2C(spec.Bus)
	if err != nil {
		return nil, driverErr(driver, spec.ID, "%w", err)
	}
	return bus, nil
}
