package config

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Limits of the supervision fields.
const (
	MaxRetries   = 10
	MaxFailAfter = 1000
)

// validateDriver checks what a built-in driver takes: bus, address,
// options, metrics, supervision and the sim chip.
func (s *Sensor) validateDriver(k *checker, p string) {
	s.Supervision.validate(k, p+".supervision", s)
	if s.Driver == SimDriver {
		for _, f := range []struct {
			name string
			set  bool
		}{{"bus", s.Bus != ""}, {"address", s.Address != ""}, {"options", len(s.Options.set()) > 0}, {"sim", s.Sim != nil}} {
			if f.set {
				k.errorf(p+"."+f.name, "the %s driver takes no %s (its metrics' signals say what it yields)", SimDriver, f.name)
			}
		}
		return
	}
	info, ok := builtinInfo[s.Driver]
	if !ok {
		return // a driver registered by the program: it checks its own settings
	}
	switch {
	case s.Bus == "":
		k.errorf(p+".bus", "is required for the %s driver (a %s bus, e.g. %s)", s.Driver, info.bus, busExample(info.bus))
	case s.Sim != nil && !SimBus(s.Bus):
		k.errorf(p+".sim", "is only for simulated buses (named %s…), not bus %q", SimBusPrefix, s.Bus)
	}
	s.validateAddress(k, p, info)
	for _, o := range s.Options.set() {
		if !slices.Contains(info.options, o) {
			k.errorf(p+".options."+o, "is not an option of the %s driver (it takes: %s)", s.Driver, listOr(info.options, "none"))
		}
	}
	s.Options.validate(k, p+".options")
	if info.metrics == nil && len(s.Metrics) > 1 {
		k.errorf(p+".metrics", "the %s driver has one output: give at most one metric to name it", s.Driver)
	}
	for j, m := range s.Metrics {
		mp := fmt.Sprintf("%s.metrics[%d]", p, j)
		if m.Signal != (Signal{}) {
			k.errorf(mp+".signal", "only the %s driver takes signals; a simulated chip's signals go in sim.signals", SimDriver)
		}
		if info.metrics == nil {
			continue
		}
		i := slices.IndexFunc(info.metrics, func(d Metric) bool { return d.Name == m.Name })
		switch {
		case i < 0:
			k.errorf(mp+".name", "the %s driver has no metric %q (it has: %s)", s.Driver, m.Name, metricNames(info.metrics))
		case m.Unit != "" && m.Unit != info.metrics[i].Unit:
			k.errorf(mp+".unit", "the %s driver's %s is in %s, not %q", s.Driver, m.Name, info.metrics[i].Unit, m.Unit)
		}
	}
	if s.Sim != nil {
		s.Sim.validate(k, p+".sim", s.Driver, info)
	}
}

func (s *Sensor) validateAddress(k *checker, p string, info driverInfo) {
	switch {
	case info.bus == "i2c" && s.Address != "":
		a, err := ParseI2CAddress(s.Address)
		switch {
		case err != nil:
			k.errorf(p+".address", "%v", err)
		case a < info.addrs[0] || a > info.addrs[1]:
			k.errorf(p+".address", "the %s answers at 0x%02x to 0x%02x, not 0x%02x", s.Driver, info.addrs[0], info.addrs[1], a)
		}
	case info.bus == "onewire" && s.Address == "":
		k.errorf(p+".address", "is required: the DS18B20's ROM id, e.g. 28-00000abcdef0 (see /sys/bus/w1/devices)")
	case info.bus == "onewire" && !validROM(s.Address):
		k.errorf(p+".address", "%q is not a 1-Wire ROM id (write it 28-00000abcdef0, as /sys/bus/w1/devices lists it, or as 16 hex digits)", s.Address)
	case info.bus == "gpio" && s.Address == "":
		k.errorf(p+".address", "is required: the pin, e.g. GPIO17")
	}
}

func (o *DriverOptions) validate(k *checker, p string) {
	if o.Oversampling != 0 && !slices.Contains([]int{1, 2, 4, 8, 16}, o.Oversampling) {
		k.errorf(p+".oversampling", "must be 1, 2, 4, 8 or 16, got %d", o.Oversampling)
	}
	if !slices.Contains([]int{0, 2, 4, 8, 16}, o.Filter) {
		k.errorf(p+".filter", "must be 0 (off), 2, 4, 8 or 16, got %d", o.Filter)
	}
	if o.ResolutionBits != 0 && (o.ResolutionBits < 9 || o.ResolutionBits > 12) {
		k.errorf(p+".resolution_bits", "must be between 9 and 12, got %d", o.ResolutionBits)
	}
	if o.Pull != "" {
		k.oneOf(p+".pull", o.Pull, "pull", "up", "down", "none")
	}
	if o.Debounce < 0 {
		k.errorf(p+".debounce", "must not be negative, got %v", o.Debounce)
	}
	k.between(p+".channel", o.Channel, 0, 3)
	if o.FullScale != 0 && !slices.Contains([]float64{6.144, 4.096, 2.048, 1.024, 0.512, 0.256}, o.FullScale) {
		k.errorf(p+".full_scale", "must be one of the PGA ranges 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256 (volts), got %g", o.FullScale)
	}
	if sc := o.Scale; sc != nil {
		for _, f := range []struct {
			name string
			v    float64
		}{{"in_min", sc.InMin}, {"in_max", sc.InMax}, {"out_min", sc.OutMin}, {"out_max", sc.OutMax}} {
			if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
				k.errorf(p+".scale."+f.name, "must be a finite number")
			}
		}
		if sc.InMin == sc.InMax {
			k.errorf(p+".scale.in_max", "must differ from in_min (%g)", sc.InMin)
		}
		if sc.OutMin == sc.OutMax {
			k.errorf(p+".scale.out_max", "must differ from out_min (%g)", sc.OutMin)
		}
		if sc.FaultBelow != nil && sc.FaultAbove != nil && *sc.FaultBelow >= *sc.FaultAbove {
			k.errorf(p+".scale.fault_above", "must be above fault_below (%g), got %g", *sc.FaultBelow, *sc.FaultAbove)
		}
	}
}

func (v *Supervision) validate(k *checker, p string, s *Sensor) {
	if v.Retries != nil && (*v.Retries < 0 || *v.Retries > MaxRetries) {
		k.errorf(p+".retries", "must be between 0 and %d, got %d", MaxRetries, *v.Retries)
	}
	if v.FailAfter != 0 {
		k.between(p+".fail_after", v.FailAfter, 1, MaxFailAfter)
	}
	if v.Timeout < 0 {
		k.errorf(p+".timeout", "must not be negative, got %v", v.Timeout)
	}
	if v.StuckAfter < 0 {
		k.errorf(p+".stuck_after", "must not be negative (0 turns it off), got %d", v.StuckAfter)
	}
	names := s.metricNames()
	for m, step := range v.MaxStep {
		if names != nil && !slices.Contains(names, m) {
			k.errorf(p+".max_step."+m, "sensor has no metric %q (it has: %s)", m, listOr(names, "none"))
		}
		if !(step > 0) || math.IsInf(step, 0) {
			k.errorf(p+".max_step."+m, "must be a positive number, got %g", step)
		}
	}
}

// metricNames are the names of the metrics s yields, or nil when that is
// up to a driver config does not know.
func (s *Sensor) metricNames() []string {
	var names []string
	for _, m := range s.Metrics {
		names = append(names, m.Name)
	}
	info, ok := builtinInfo[s.Driver]
	switch {
	case s.Driver == SimDriver || (ok && len(names) > 0):
		return names
	case !ok:
		return nil
	case info.metrics == nil:
		// One output, named by the driver's default.
		return []string{info.output}
	}
	for _, m := range info.metrics {
		names = append(names, m.Name)
	}
	return names
}

func (c *SimChip) validate(k *checker, p, driver string, info driverInfo) {
	for name := range c.Signals {
		sp := p + ".signals." + name
		if !slices.Contains(info.signals, name) {
			k.errorf(sp, "the simulated %s has no quantity %q (it has: %s)", driver, name, strings.Join(info.signals, ", "))
			continue
		}
		sig := c.Signals[name]
		sig.validate(k, sp)
	}
	for i, f := range c.Faults {
		fp := fmt.Sprintf("%s.faults[%d]", p, i)
		if !slices.Contains(info.faults, f.Kind) {
			k.errorf(fp+".kind", "unknown fault %q for a simulated %s (want %s)", f.Kind, driver, listOr(info.faults, "none"))
		}
		if f.From < 0 {
			k.errorf(fp+".from", "must not be negative, got %v", f.From)
		}
		if f.For < 0 {
			k.errorf(fp+".for", "must not be negative (0 means to the end), got %v", f.For)
		}
		if f.Probability < 0 || f.Probability > 1 {
			k.errorf(fp+".probability", "must be between 0 and 1 (0 means always), got %g", f.Probability)
		}
		if f.Delay < 0 {
			k.errorf(fp+".delay", "must not be negative, got %v", f.Delay)
		}
		if f.Kind == FaultSlow && f.Delay == 0 {
			k.errorf(fp+".delay", "is required for a slow fault")
		}
		if f.Kind == FaultSpikes && f.Magnitude == 0 {
			k.errorf(fp+".magnitude", "is required for a spikes fault")
		}
	}
}

// validateDevices checks what sensors share: a bus name holds one kind of
// bus, an address one device (ads1115 sensors may share a chip, one per
// channel, and then only one of them may give the chip's seed and faults).
func (c *Config) validateDevices(k *checker) {
	type dev struct {
		sensor int
		driver string
	}
	busKind := map[string]int{} // bus -> first sensor
	devs := map[string]dev{}    // bus + normalized address (+ channel) -> first sensor
	chips := map[string]int{}   // ads1115 chip with seed/faults -> sensor
	for i := range c.Sensors {
		s := &c.Sensors[i]
		info, ok := builtinInfo[s.Driver]
		if !ok || s.Bus == "" {
			continue
		}
		p := fmt.Sprintf("$.sensors[%d]", i)
		if first, seen := busKind[s.Bus]; seen {
			if other := builtinInfo[c.Sensors[first].Driver].bus; other != info.bus {
				k.errorf(p+".bus", "bus %q is a %s bus (sensors[%d] is a %s on it), not a %s bus", s.Bus, other, first, c.Sensors[first].Driver, info.bus)
				continue
			}
		} else {
			busKind[s.Bus] = i
		}
		addr := s.Address
		switch info.bus {
		case "i2c":
			n, err := s.I2CAddress()
			if err != nil {
				continue
			}
			addr = fmt.Sprintf("0x%02x", n)
		case "onewire":
			addr = strings.ToLower(strings.ReplaceAll(addr, "-", ""))
		}
		chip := s.Bus + " " + addr
		key := chip
		if s.Driver == DriverADS1115 {
			key += fmt.Sprintf(" AIN%d", s.Options.Channel)
			if s.Sim != nil && (s.Sim.Seed != 0 || len(s.Sim.Faults) > 0) {
				if first, dup := chips[chip]; dup {
					k.errorf(p+".sim", "the simulated ads1115 at %s gets its seed and faults from sensors[%d] already", chip, first)
				} else {
					chips[chip] = i
				}
			}
		}
		if first, dup := devs[chip]; dup && first.driver != s.Driver {
			k.errorf(p+".address", "%s is taken by sensors[%d] (a %s)", chip, first.sensor, first.driver)
			continue
		}
		if first, dup := devs[key]; dup {
			k.errorf(p+".address", "%s is read by sensors[%d] already", key, first.sensor)
			continue
		}
		devs[chip] = dev{i, s.Driver}
		devs[key] = dev{i, s.Driver}
	}
}

func busExample(kind string) string {
	return map[string]string{"i2c": `"sim-i2c0" or "1"`, "onewire": `"sim-w1-0" or "w1"`, "gpio": `"sim-gpio0" or "host"`}[kind]
}

func metricNames(ms []Metric) string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name + " (" + m.Unit + ")"
	}
	return strings.Join(names, ", ")
}

func listOr(s []string, none string) string {
	if len(s) == 0 {
		return none
	}
	return strings.Join(s, ", ")
}
