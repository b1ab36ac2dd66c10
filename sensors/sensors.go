// Package sensors holds what the gateway knows about sensors: the Sensor
// interface drivers implement, a registry of driver factories by name, the
// drivers built on periph.io (BME280/BMP280, DS18B20, GPIO input, ADS1115
// channel), and the Poller that samples and supervises one sensor on its
// own ticker.
//
// Drivers never own their bus: they get it from a Buses by the name in the
// config. The gateway's Buses sends names starting with "sim-" to
// firmware-sim's simulated buses and the others to the host (package
// sensors/hostbus), so everything above the bus interfaces runs the same
// code in tests as on a Raspberry Pi.
package sensors

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/onewire"

	"github.com/outposthq/outpost"
)

// Sensor is one configured sensor behind a driver.
type Sensor interface {
	// Read samples the sensor and appends the readings to dst. now is the
	// poll time; drivers stamp readings with it unless the device has a
	// clock of its own.
	Read(ctx context.Context, now time.Time, dst []outpost.Reading) ([]outpost.Reading, error)
	// Close releases the sensor (not the bus it sits on).
	Close() error
}

// Watcher is implemented by sensors that also report changes as they
// happen, between polls (a GPIO input's edges). The poller runs Watch
// beside its polls in a goroutine it owns; Watch blocks until ctx ends,
// calling emit with the readings of each change, and returns nil then. An
// error return means watching failed; the poller logs it and calls Watch
// again after a backoff.
type Watcher interface {
	Watch(ctx context.Context, emit func(rs []outpost.Reading)) error
}

// Spec is what a driver factory gets to build a Sensor.
type Spec struct {
	ID       string            // sensor id, used in every reading
	Driver   string            // registry name
	Interval time.Duration     // poll interval
	Samples  int               // readings per metric per poll, for drivers with a FIFO
	Labels   map[string]string // free-form labels from the config
	// Bus names the bus the device sits on ("sim-i2c0", "1", "host"), and
	// Address where on it: an I2C address ("0x76"), a 1-Wire ROM id
	// ("28-00000abcdef0"), a GPIO pin ("GPIO17"). Each driver documents
	// what it takes and its defaults.
	Bus     string
	Address string
	// Buses opens buses by name; drivers that sit on a bus need it.
	Buses Buses
	// Metrics: for drivers with fixed metrics (bme280, ds18b20), the ones
	// to emit (empty means all; a unit, when given, must be the driver's);
	// for drivers with one output (gpio, ads1115), its name and unit.
	Metrics []Metric
	// Options holds driver-specific settings; each driver documents the
	// type it expects (the sim driver takes []firmwaresim.Channel, bme280
	// *BMEOptions, …); nil means the driver's defaults.
	Options any
	// Now is the clock of watchers' event times; nil means time.Now.
	Now func() time.Time
}

// Metric names one output of a sensor and its unit.
type Metric struct {
	Name string
	Unit string
}

// Buses hands drivers the buses they sit on, by the names in the config.
// Implementations serialize transactions on each bus, so sensors on one
// bus may poll from their own goroutines.
type Buses interface {
	I2C(name string) (i2c.Bus, error)
	OneWire(name string) (onewire.Bus, error)
	// Pin returns the GPIO pin named pin on bus (the host's pins, or a
	// simulated pin bank).
	Pin(bus, pin string) (gpio.PinIO, error)
}

// Factory builds a sensor from its spec. On error it returns a nil Sensor,
// having released whatever it acquired; Registry.New closes a sensor
// returned with an error anyway, and refuses a nil one returned without.
type Factory func(Spec) (Sensor, error)

// Registry maps driver names to factories. The zero value is not usable; use
// NewRegistry. It is safe for concurrent use.
type Registry struct {
	mu sync.RWMutex
	m  map[string]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{m: make(map[string]Factory)} }

// Register adds a factory. Registering a name twice is an error.
func (r *Registry) Register(name string, f Factory) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name == "" || f == nil {
		return fmt.Errorf("sensors: register: empty name or nil factory")
	}
	if _, dup := r.m[name]; dup {
		return fmt.Errorf("sensors: driver %q registered twice", name)
	}
	r.m[name] = f
	return nil
}

// Has reports whether a driver is registered.
func (r *Registry) Has(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.m[name]
	return ok
}

// Names lists the registered drivers, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.m))
	for n := range r.m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// New builds the sensor spec names. On error the Sensor is nil: nothing
// is left for the caller to close.
func (r *Registry) New(spec Spec) (Sensor, error) {
	r.mu.RLock()
	f, ok := r.m[spec.Driver]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("sensors: sensor %s: unknown driver %q (known: %s)", spec.ID, spec.Driver, strings.Join(r.Names(), ", "))
	}
	s, err := f(spec)
	switch {
	case err != nil:
		if !isNil(s) {
			// A factory that broke its contract: do not leak what it built.
			err = errors.Join(err, s.Close())
		}
		return nil, fmt.Errorf("sensors: sensor %s: %w", spec.ID, err)
	case isNil(s):
		return nil, fmt.Errorf("sensors: sensor %s: driver %q returned no sensor and no error", spec.ID, spec.Driver)
	}
	return s, nil
}

// isNil reports whether s is nil or a nil pointer in an interface.
func isNil(s Sensor) bool {
	if s == nil {
		return true
	}
	v := reflect.ValueOf(s)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
