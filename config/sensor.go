package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sensor drivers built into the gateway besides SimDriver (package
// sensors implements them; docs/sensors.md describes them).
const (
	DriverBME280  = "bme280"  // I2C: temperature, pressure, humidity
	DriverBMP280  = "bmp280"  // I2C: temperature, pressure
	DriverDS18B20 = "ds18b20" // 1-Wire: temperature
	DriverGPIO    = "gpio"    // a digital input: edges and periodic state
	DriverADS1115 = "ads1115" // one ADC channel, linearly scaled
)

// SimBusPrefix starts the names of simulated buses: a sensor on bus
// "sim-i2c0" talks to a firmware-sim chip built from its sim section.
const SimBusPrefix = "sim-"

// DriverOptions are the driver-specific settings of a sensor. Each field
// belongs to one driver; setting another driver's option is an error.
type DriverOptions struct {
	// Oversampling (bme280, bmp280) of every quantity: 1, 2, 4, 8 or 16;
	// default 4.
	Oversampling int `yaml:"oversampling"`
	// Filter (bme280, bmp280) is the IIR filter coefficient: 0 (off), 2, 4,
	// 8 or 16.
	Filter int `yaml:"filter"`
	// ResolutionBits (ds18b20): 9 (0.5 °C, 94 ms) to 12 (0.0625 °C, 750
	// ms); default 12.
	ResolutionBits int `yaml:"resolution_bits"`
	// Pull (gpio): up, down or none; default up (a contact to ground).
	Pull string `yaml:"pull"`
	// ActiveLow (gpio) makes a Low level read as 1.
	ActiveLow bool `yaml:"active_low"`
	// Debounce (gpio): how long a level must hold after an edge; default
	// 20ms.
	Debounce time.Duration `yaml:"debounce"`
	// Edges (gpio): report each change as it happens, besides the state
	// every interval; default true.
	Edges *bool `yaml:"edges"`
	// Channel (ads1115): the single-ended input AIN0–AIN3, 0 to 3.
	Channel int `yaml:"channel"`
	// FullScale (ads1115): the PGA range in volts, 6.144, 4.096, 2.048,
	// 1.024, 0.512 or 0.256; default 4.096.
	FullScale float64 `yaml:"full_scale"`
	// Scale (ads1115) maps volts to the sensor's metric; none means volts.
	Scale *Scale `yaml:"scale"`
}

// Scale maps an input linearly: in_min→out_min, in_max→out_max. Inputs
// outside [in_min, in_max] are uncertain; below fault_below or above
// fault_above (optional) they are bad, like a broken 4–20 mA loop.
type Scale struct {
	InMin      float64  `yaml:"in_min"`
	InMax      float64  `yaml:"in_max"`
	OutMin     float64  `yaml:"out_min"`
	OutMax     float64  `yaml:"out_max"`
	FaultBelow *float64 `yaml:"fault_below"`
	FaultAbove *float64 `yaml:"fault_above"`
}

// Supervision tunes how the gateway judges a sensor (see docs/sensors.md).
type Supervision struct {
	// Retries of a failed read within one poll; 0 to 10, default 1.
	Retries *int `yaml:"retries"`
	// FailAfter consecutive failed, slow or bad polls raise a health
	// event; 1 to 1000, default 3.
	FailAfter int `yaml:"fail_after"`
	// Timeout: a slower read is uncertain and counts as slow; default the
	// interval.
	Timeout time.Duration `yaml:"timeout"`
	// StuckAfter polls with every value unchanged make the sensor stuck;
	// default 0, off.
	StuckAfter int `yaml:"stuck_after"`
	// MaxStep is, per metric, the largest believable change between two
	// polls; a larger jump is an uncertain spike.
	MaxStep map[string]float64 `yaml:"max_step"`
}

// SimChip is the scenario of the simulated chip behind a sensor on a sim-
// bus: what it measures over time and how it misbehaves.
type SimChip struct {
	// Seed makes the faults' dice deterministic.
	Seed int64 `yaml:"seed"`
	// Signals per quantity of the chip: temperature (°C), pressure (Pa),
	// humidity (%RH) for bme280/bmp280; temperature for ds18b20; input (V,
	// the channel this sensor reads) for ads1115; level (above 0.5 is
	// High) for gpio. A quantity left out keeps the chip's default.
	Signals map[string]Signal `yaml:"signals"`
	// Faults of the chip, each in a time window.
	Faults []Fault `yaml:"faults"`
}

// Fault kinds of simulated chips.
const (
	FaultStuck   = "stuck"   // values freeze
	FaultSpikes  = "spikes"  // ±magnitude jumps with probability
	FaultDropout = "dropout" // the chip vanishes from the bus
	FaultNACK    = "nack"    // transactions fail with probability
	FaultCRC     = "crc"     // ds18b20 scratchpad CRC errors with probability
	FaultSlow    = "slow"    // every transaction takes delay longer
)

// Fault is one fault of a simulated chip, active from `from` (after the
// chip starts) for `for` (0: to the end).
type Fault struct {
	Kind        string        `yaml:"kind"`
	From        time.Duration `yaml:"from"`
	For         time.Duration `yaml:"for"`
	Probability float64       `yaml:"probability"` // (0, 1], 0 means always
	Magnitude   float64       `yaml:"magnitude"`   // spikes
	Delay       time.Duration `yaml:"delay"`       // slow
}

// driverInfo is what config knows of a built-in driver.
type driverInfo struct {
	bus     string    // i2c, onewire or gpio
	metrics []Metric  // fixed metrics with their units; nil: one configurable output
	options []string  // the option fields it takes
	signals []string  // sim signal names
	faults  []string  // fault kinds its simulated chip has
	addrs   [2]uint16 // I2C: the addresses the chip can answer at, lowest (the default) and highest
	output  string    // the default name of a one-output driver's metric
}

var (
	i2cFaults   = []string{FaultStuck, FaultSpikes, FaultDropout, FaultNACK, FaultSlow}
	bmeOptions  = []string{"oversampling", "filter"}
	builtinInfo = map[string]driverInfo{
		DriverBME280: {bus: "i2c", options: bmeOptions, faults: i2cFaults, addrs: [2]uint16{0x76, 0x77},
			metrics: []Metric{{Name: "temperature", Unit: "Cel"}, {Name: "pressure", Unit: "Pa"}, {Name: "humidity", Unit: "%RH"}},
			signals: []string{"temperature", "pressure", "humidity"}},
		DriverBMP280: {bus: "i2c", options: bmeOptions, faults: i2cFaults, addrs: [2]uint16{0x76, 0x77},
			metrics: []Metric{{Name: "temperature", Unit: "Cel"}, {Name: "pressure", Unit: "Pa"}},
			signals: []string{"temperature", "pressure"}},
		DriverDS18B20: {bus: "onewire", options: []string{"resolution_bits"},
			faults:  []string{FaultStuck, FaultSpikes, FaultDropout, FaultNACK, FaultCRC, FaultSlow},
			metrics: []Metric{{Name: "temperature", Unit: "Cel"}}, signals: []string{"temperature"}},
		DriverGPIO: {bus: "gpio", options: []string{"pull", "active_low", "debounce", "edges"}, output: "state",
			faults: []string{FaultStuck, FaultDropout}, signals: []string{"level"}},
		DriverADS1115: {bus: "i2c", options: []string{"channel", "full_scale", "scale"}, addrs: [2]uint16{0x48, 0x4B}, output: "voltage",
			faults: i2cFaults, signals: []string{"input"}},
	}
)

// BuiltinDrivers lists the drivers config knows the options of, sorted.
func BuiltinDrivers() []string {
	names := []string{SimDriver}
	for n := range builtinInfo {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// I2CAddress is the I2C address of a sensor of a built-in I2C driver: its
// address, or the driver's default when it gives none (0x76 for
// bme280/bmp280, 0x48 for ads1115).
func (s *Sensor) I2CAddress() (uint16, error) {
	info, ok := builtinInfo[s.Driver]
	if !ok || info.bus != "i2c" {
		return 0, fmt.Errorf("the %s driver has no I2C address", s.Driver)
	}
	if s.Address == "" {
		return info.addrs[0], nil
	}
	return ParseI2CAddress(s.Address)
}

// SimBus reports whether a bus name is a simulated bus.
func SimBus(name string) bool { return strings.HasPrefix(name, SimBusPrefix) }

// set reports which option fields o sets (non-zero).
func (o *DriverOptions) set() []string {
	var s []string
	add := func(name string, on bool) {
		if on {
			s = append(s, name)
		}
	}
	add("oversampling", o.Oversampling != 0)
	add("filter", o.Filter != 0)
	add("resolution_bits", o.ResolutionBits != 0)
	add("pull", o.Pull != "")
	add("active_low", o.ActiveLow)
	add("debounce", o.Debounce != 0)
	add("edges", o.Edges != nil)
	add("channel", o.Channel != 0)
	add("full_scale", o.FullScale != 0)
	add("scale", o.Scale != nil)
	return s
}

// ParseI2CAddress parses a 7-bit I2C address written in hex ("0x76") or
// decimal ("118"), in the range 0x03 to 0x77.
func ParseI2CAddress(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 0, 16)
	if err != nil || n < 0x03 || n > 0x77 {
		return 0, fmt.Errorf("%q is not a 7-bit I2C address (0x03 to 0x77, e.g. \"0x76\")", s)
	}
	return uint16(n), nil
}

// validROM checks the form of a 1-Wire ROM id: "28-00000abcdef0" as Linux
// lists it, or 16 hex digits; the driver checks its CRC.
func validROM(s string) bool {
	hex := func(t string) bool {
		for i := 0; i < len(t); i++ {
			c := t[i] | 0x20
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	if len(s) == 15 && s[2] == '-' {
		return hex(s[:2]) && hex(s[3:])
	}
	return len(s) == 16 && hex(s)
}
