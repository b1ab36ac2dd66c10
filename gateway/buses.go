package gateway

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/onewire"

	"github.com/outposthq/outpost/config"
	firmwaresim "github.com/outposthq/outpost/firmware-sim"
	"github.com/outposthq/outpost/sensors"
	"github.com/outposthq/outpost/sensors/hostbus"
)

// buses routes bus names to the simulated bench ("sim-…") or to the host,
// whose buses are opened only when a sensor names one.
type buses struct {
	bench *firmwaresim.Bench
	mu    sync.Mutex
	host  *hostbus.Buses // nil until a host bus is asked for
}

var _ sensors.Buses = (*buses)(nil)

func (b *buses) hostBuses() *hostbus.Buses {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.host == nil {
		b.host = hostbus.New()
	}
	return b.host
}

func (b *buses) I2C(name string) (i2c.Bus, error) {
	if config.SimBus(name) {
		return b.bench.I2C(name)
	}
	return b.hostBuses().I2C(name)
}

func (b *buses) OneWire(name string) (onewire.Bus, error) {
	if config.SimBus(name) {
		return b.bench.OneWire(name)
	}
	return b.hostBuses().OneWire(name)
}

func (b *buses) Pin(bus, pin string) (gpio.PinIO, error) {
	if config.SimBus(bus) {
		return b.bench.Pin(bus, pin)
	}
	return b.hostBuses().Pin(bus, pin)
}

// Close closes the host buses that were opened.
func (b *buses) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.host == nil {
		return nil
	}
	return b.host.Close()
}

// buildBench makes the simulated chips of every sensor on a sim- bus,
// from its sim scenario, on the clock now. ads1115 sensors reading other
// channels of one chip share it: each brings the input it reads.
func buildBench(cfg *config.Config, now func() time.Time) (*firmwaresim.Bench, error) {
	bench := firmwaresim.NewBench()
	type adc struct {
		opts firmwaresim.ADS1115Options
		bus  string
		addr uint16
	}
	var adcs []*adc
	adcAt := map[string]*adc{}
	for i := range cfg.Sensors {
		s := &cfg.Sensors[i]
		if s.Driver == config.SimDriver || !config.SimBus(s.Bus) {
			continue
		}
		sim := s.Sim
		if sim == nil {
			sim = &config.SimChip{}
		}
		co := firmwaresim.ChipOptions{Now: now, Seed: uint64(sim.Seed)}
		for _, f := range sim.Faults {
			co.Faults = append(co.Faults, firmwaresim.Fault{
				Kind: firmwaresim.FaultKind(f.Kind), From: f.From, For: f.For,
				Probability: f.Probability, Magnitude: f.Magnitude, Delay: f.Delay,
			})
		}
		sig := func(name string) firmwaresim.SignalSpec {
			sg, ok := sim.Signals[name]
			if !ok {
				return firmwaresim.SignalSpec{}
			}
			return simSignal(sg)
		}
		if err := attach(bench, s, co, sig, func(addr uint16) {
			key := fmt.Sprintf("%s 0x%02x", s.Bus, addr)
			a := adcAt[key]
			if a == nil {
				a = &adc{bus: s.Bus, addr: addr}
				a.opts.Now = now
				adcAt[key] = a
				adcs = append(adcs, a)
			}
			a.opts.Inputs[s.Options.Channel] = sig("input")
			if sim.Seed != 0 || len(sim.Faults) > 0 {
				a.opts.ChipOptions = co // config lets one sensor of a chip give these
			}
		}); err != nil {
			return nil, fmt.Errorf("gateway: sensor %s: simulated %s on %s: %w", s.ID, s.Driver, s.Bus, err)
		}
	}
	for _, a := range adcs {
		chip, err := firmwaresim.NewADS1115(&a.opts)
		if err != nil {
			return nil, fmt.Errorf("gateway: simulated ads1115 on %s at 0x%02x: %w", a.bus, a.addr, err)
		}
		bus, err := bench.I2CBus(a.bus)
		if err == nil {
			err = bus.Attach(a.addr, chip)
		}
		if err != nil {
			return nil, fmt.Errorf("gateway: simulated ads1115 on %s at 0x%02x: %w", a.bus, a.addr, err)
		}
	}
	return bench, nil
}

// attach builds the chip of one sensor and puts it on its bench bus;
// ads1115 chips are collected by addADC and attached afterwards.
func attach(bench *firmwaresim.Bench, s *config.Sensor, co firmwaresim.ChipOptions, sig func(string) firmwaresim.SignalSpec, addADC func(uint16)) error {
	switch s.Driver {
	case config.DriverBME280, config.DriverBMP280:
		addr, err := s.I2CAddress()
		if err != nil {
			return err
		}
		o := &firmwaresim.BME280Options{ChipOptions: co, Temperature: sig("temperature"), Pressure: sig("pressure"), Humidity: sig("humidity")}
		newChip := firmwaresim.NewBME280
		if s.Driver == config.DriverBMP280 {
			newChip = firmwaresim.NewBMP280
		}
		chip, err := newChip(o)
		if err != nil {
			return err
		}
		bus, err := bench.I2CBus(s.Bus)
		if err != nil {
			return err
		}
		return bus.Attach(addr, chip)
	case config.DriverADS1115:
		addr, err := s.I2CAddress()
		if err != nil {
			return err
		}
		addADC(addr)
		return nil
	case config.DriverDS18B20:
		rom, err := sensors.ParseROM(s.Address)
		if err != nil {
			return err
		}
		d, err := firmwaresim.NewDS18B20(rom, &firmwaresim.DS18B20Options{ChipOptions: co, Temperature: sig("temperature")})
		if err != nil {
			return err
		}
		bus, err := bench.OneWireBus(s.Bus)
		if err != nil {
			return err
		}
		return bus.Attach(d)
	case config.DriverGPIO:
		p, err := firmwaresim.NewGPIOPin(s.Address, pinNumber(s.Address), &firmwaresim.GPIOOptions{ChipOptions: co, Level: sig("level")})
		if err != nil {
			return err
		}
		return bench.AddPin(s.Bus, p)
	}
	return nil // a driver without a simulated chip
}

// pinNumber is the number in a pin name like GPIO17, or -1.
func pinNumber(name string) int {
	var n int
	if _, err := fmt.Sscanf(strings.TrimPrefix(strings.ToUpper(name), "GPIO"), "%d", &n); err != nil {
		return -1
	}
	return n
}
