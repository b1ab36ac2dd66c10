package firmwaresim

import (
	"fmt"
	"sort"
	"sync"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/onewire"
)

// Bench is a set of named simulated buses, the simulated counterpart of a
// host's buses: a gateway config naming bus "sim-i2c0" gets the bench's
// I2C bus of that name. A name holds one kind of bus; I2C and 1-Wire buses
// are created on first use, pins must be added. Safe for concurrent use.
type Bench struct {
	mu    sync.Mutex
	i2c   map[string]*I2CBus
	ow    map[string]*OneWireBus
	banks map[string]map[string]*GPIOPin
}

// NewBench returns an empty bench.
func NewBench() *Bench {
	return &Bench{i2c: map[string]*I2CBus{}, ow: map[string]*OneWireBus{}, banks: map[string]map[string]*GPIOPin{}}
}

// I2CBus returns the simulated I2C bus called name, creating it.
func (b *Bench) I2CBus(name string) (*I2CBus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.kindFree(name, "i2c"); err != nil {
		return nil, err
	}
	bus, ok := b.i2c[name]
	if !ok {
		bus = NewI2CBus(name)
		b.i2c[name] = bus
	}
	return bus, nil
}

// OneWireBus returns the simulated 1-Wire bus called name, creating it.
func (b *Bench) OneWireBus(name string) (*OneWireBus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.kindFree(name, "onewire"); err != nil {
		return nil, err
	}
	bus, ok := b.ow[name]
	if !ok {
		bus = NewOneWireBus(name)
		b.ow[name] = bus
	}
	return bus, nil
}

// AddPin puts p in the pin bank called bank under its name; a name is
// taken once.
func (b *Bench) AddPin(bank string, p *GPIOPin) error {
	if p == nil {
		return fmt.Errorf("firmwaresim: no pin to add to bank %s", bank)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.kindFree(bank, "gpio"); err != nil {
		return err
	}
	pins, ok := b.banks[bank]
	if !ok {
		pins = map[string]*GPIOPin{}
		b.banks[bank] = pins
	}
	if _, dup := pins[p.Name()]; dup {
		return fmt.Errorf("firmwaresim: pin %s already in bank %s", p.Name(), bank)
	}
	pins[p.Name()] = p
	return nil
}

// I2C returns the bus called name as a periph i2c.Bus; on error the bus
// is nil (not a typed nil *I2CBus).
func (b *Bench) I2C(name string) (i2c.Bus, error) {
	bus, err := b.I2CBus(name)
	if err != nil {
		return nil, err
	}
	return bus, nil
}

// OneWire returns the bus called name as a periph onewire.Bus; on error
// the bus is nil (not a typed nil *OneWireBus).
func (b *Bench) OneWire(name string) (onewire.Bus, error) {
	bus, err := b.OneWireBus(name)
	if err != nil {
		return nil, err
	}
	return bus, nil
}

// Pin returns the pin called pin in bank.
func (b *Bench) Pin(bank, pin string) (gpio.PinIO, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pins, ok := b.banks[bank]
	if !ok {
		return nil, fmt.Errorf("firmwaresim: no simulated pin bank %q", bank)
	}
	p, ok := pins[pin]
	if !ok {
		names := make([]string, 0, len(pins))
		for n := range pins {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("firmwaresim: no pin %q in bank %s (has %v)", pin, bank, names)
	}
	return p, nil
}

// kindFree fails when name is already a bus of another kind. b.mu is held.
func (b *Bench) kindFree(name, kind string) error {
	have := ""
	switch {
	case b.i2c[name] != nil:
		have = "i2c"
	case b.ow[name] != nil:
		have = "onewire"
	case b.banks[name] != nil:
		have = "gpio"
	}
	if have != "" && have != kind {
		return fmt.Errorf("firmwaresim: bus %s is a simulated %s bus, not %s", name, have, kind)
	}
	return nil
}
