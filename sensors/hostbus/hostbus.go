// Package hostbus gives sensor drivers the buses of the machine the
// gateway runs on, through periph.io's host drivers: I2C buses
// (/dev/i2c-N), the kernel's 1-Wire masters (over netlink) and GPIO pins.
// It is kept apart from package sensors so that only the gateway binary,
// not every test, links the host drivers.
package hostbus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/onewire/onewirereg"
	"periph.io/x/host/v3"
	"periph.io/x/host/v3/netlink"

	"github.com/outposthq/outpost/sensors"
)

// PinBus is the bus name of the host's GPIO pins ("" means it too).
const PinBus = "host"

// ErrClosed is returned by a Buses after Close.
var ErrClosed = errors.New("hostbus: closed")

// Buses opens the host's buses by name for sensor drivers. A bus is
// opened on first use and then shared by every sensor naming it; Close
// closes them all. It is safe for concurrent use; periph's buses
// serialize their own transactions.
type Buses struct {
	mu      sync.Mutex
	state   *driverreg.State // periph's host drivers, once loaded
	closed  bool
	i2c     map[string]i2c.BusCloser // by the name asked for
	i2cOpen []i2c.BusCloser          // each bus once
	w1      map[uint32]*netlink.OneWire
}

var _ sensors.Buses = (*Buses)(nil)

// New returns a Buses that has opened nothing yet; periph's host drivers
// are loaded on first use.
func New() *Buses {
	return &Buses{i2c: map[string]i2c.BusCloser{}, w1: map[uint32]*netlink.OneWire{}}
}

// I2C opens the I2C bus name as periph's i2creg knows it: its number
// ("1"), its device ("/dev/i2c-1") or its alias ("I2C1"); "" means the
// first bus.
func (b *Buses) I2C(name string) (i2c.Bus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.init(); err != nil {
		return nil, err
	}
	if bus, ok := b.i2c[name]; ok {
		return bus, nil
	}
	refs := i2creg.All()
	if len(refs) == 0 {
		return nil, fmt.Errorf("hostbus: i2c bus %q: the host has no I2C bus%s (is I2C enabled, e.g. dtparam=i2c_arm=on?)", name, b.why("sysfs-i2c"))
	}
	bus, err := i2creg.Open(name)
	if err != nil {
		names := make([]string, len(refs))
		for i, r := range refs {
			names[i] = r.Name
		}
		return nil, fmt.Errorf("hostbus: i2c bus %q: %w (the host has %s)", name, err, strings.Join(names, ", "))
	}
	// Another spelling of a bus already open: share that one.
	for _, o := range b.i2cOpen {
		if o.String() == bus.String() {
			if err := bus.Close(); err != nil {
				return nil, fmt.Errorf("hostbus: i2c bus %q: %w", name, err)
			}
			b.i2c[name] = o
			return o, nil
		}
	}
	b.i2c[name] = bus
	b.i2cOpen = append(b.i2cOpen, bus)
	return bus, nil
}

// OneWire opens a 1-Wire master of the kernel's w1 subsystem through
// netlink: "w1" is master 1 (the first, e.g. dtoverlay=w1-gpio on a
// Raspberry Pi), "w1-N" and "w1_bus_masterN" (its name under
// /sys/bus/w1/devices) are master N.
//
// The kernel's netlink interface cannot hold the bus up with a strong
// pull-up during a conversion, so DS18B20s must be powered through their
// VDD pin, not parasitically.
func (b *Buses) OneWire(name string) (onewire.Bus, error) {
	id, err := ParseOneWireMaster(name)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.init(); err != nil {
		return nil, err
	}
	if bus, ok := b.w1[id]; ok {
		return bus, nil
	}
	if !hasMaster(id) {
		return nil, fmt.Errorf("hostbus: 1-Wire bus %q: the kernel has no w1 master %d%s (is w1-gpio loaded? see /sys/bus/w1/devices)", name, id, b.why("netlink-onewire"))
	}
	bus, err := netlink.New(id)
	if err != nil {
		return nil, fmt.Errorf("hostbus: 1-Wire bus %q: %w", name, err)
	}
	b.w1[id] = bus
	return bus, nil
}

// Pin returns the host's GPIO pin called pin ("GPIO17"), by periph's
// gpioreg; bus must be "host" or "".
func (b *Buses) Pin(bus, pin string) (gpio.PinIO, error) {
	if bus != PinBus && bus != "" {
		return nil, fmt.Errorf("hostbus: pin bus %q: the host's pins are on bus %q", bus, PinBus)
	}
	if pin == "" {
		return nil, errors.New("hostbus: no pin name")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.init(); err != nil {
		return nil, err
	}
	p := gpioreg.ByName(pin)
	if p == nil {
		return nil, fmt.Errorf("hostbus: no GPIO pin %q on this host", pin)
	}
	return p, nil
}

// Close closes every bus opened; the pins stay as configured. Later
// calls return ErrClosed; Close itself may be called again.
func (b *Buses) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	var errs []error
	for _, bus := range b.i2cOpen {
		if err := bus.Close(); err != nil {
			errs = append(errs, fmt.Errorf("hostbus: close %s: %w", bus, err))
		}
	}
	for _, bus := range b.w1 {
		if err := bus.Close(); err != nil {
			errs = append(errs, fmt.Errorf("hostbus: close %s: %w", bus, err))
		}
	}
	b.i2c, b.i2cOpen, b.w1 = nil, nil, nil
	return errors.Join(errs...)
}

// init loads periph's host drivers once. b.mu is held.
func (b *Buses) init() error {
	if b.closed {
		return ErrClosed
	}
	if b.state != nil {
		return nil
	}
	st, err := host.Init()
	if err != nil {
		return fmt.Errorf("hostbus: loading periph host drivers: %w", err)
	}
	b.state = st
	return nil
}

// why says why periph's host driver called driver did not load, or "".
// b.mu is held, init done.
func (b *Buses) why(driver string) string {
	for _, f := range append(b.state.Failed, b.state.Skipped...) {
		if f.D.String() == driver {
			return "; " + f.String()
		}
	}
	return ""
}

// ParseOneWireMaster returns the kernel's w1 master number a 1-Wire bus
// name means: "w1" is 1, "w1-N" and "w1_bus_masterN" are N (1 or more).
func ParseOneWireMaster(name string) (uint32, error) {
	var num string
	switch {
	case name == "w1":
		return 1, nil
	case strings.HasPrefix(name, "w1_bus_master"):
		num = strings.TrimPrefix(name, "w1_bus_master")
	case strings.HasPrefix(name, "w1-"):
		num = strings.TrimPrefix(name, "w1-")
	default:
		return 0, fmt.Errorf("hostbus: 1-Wire bus %q: want w1, w1-N or w1_bus_masterN", name)
	}
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil || n == 0 || num[0] == '+' {
		return 0, fmt.Errorf("hostbus: 1-Wire bus %q: master number %q is not a whole number from 1", name, num)
	}
	return uint32(n), nil
}

// hasMaster reports whether periph's netlink driver found w1 master id
// when it loaded (it registers each as OneWire<id>).
func hasMaster(id uint32) bool {
	for _, r := range onewirereg.All() {
		if r.Number == int(id) {
			return true
		}
	}
	return false
}
