// Package sensors holds what the gateway knows about sensors: the Sensor
// interface drivers implement, a registry of driver factories by name, and
// the Poller that samples one sensor on its own ticker.
package sensors

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

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

// Spec is what a driver factory gets to build a Sensor.
type Spec struct {
	ID       string            // sensor id, used in every reading
	Driver   string            // registry name
	Interval time.Duration     // poll interval
	Samples  int               // readings per metric per poll, for drivers with a FIFO
	Labels   map[string]string // free-form labels from the config
	// Options holds driver-specific settings; each driver documents the
	// type it expects (the sim driver takes []firmwaresim.Channel).
	Options any
}

// Factory builds a sensor from its spec.
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

// New builds the sensor spec names.
func (r *Registry) New(spec Spec) (Sensor, error) {
	r.mu.RLock()
	f, ok := r.m[spec.Driver]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("sensors: sensor %s: unknown driver %q (known: %s)", spec.ID, spec.Driver, strings.Join(r.Names(), ", "))
	}
	s, err := f(spec)
	if err != nil {
		return nil, fmt.Errorf("sensors: sensor %s: %w", spec.ID, err)
	}
	return s, nil
}
