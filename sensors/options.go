package sensors

import (
	"time"

	"github.com/outposthq/outpost"
)

// Names of the drivers in this package (see RegisterBuiltin).
const (
	DriverBME280  = "bme280"  // Bosch BME280 on I2C: temperature, pressure, humidity
	DriverBMP280  = "bmp280"  // Bosch BMP280 on I2C: temperature, pressure
	DriverDS18B20 = "ds18b20" // Maxim DS18B20 on 1-Wire: temperature
	DriverGPIO    = "gpio"    // a digital input, e.g. a door contact
	DriverADS1115 = "ads1115" // one single-ended channel of a TI ADS1115 ADC, linearly scaled
)

// BMEOptions configure the bme280 and bmp280 drivers (Spec.Options). Nil
// means the defaults below.
type BMEOptions struct {
	// Oversampling of every quantity: 1, 2, 4, 8 or 16; 0 means 4.
	Oversampling int
	// Filter is the IIR filter coefficient: 0 (off), 2, 4, 8 or 16.
	Filter int
}

// DS18B20Options configure the ds18b20 driver. Nil means the defaults.
type DS18B20Options struct {
	// ResolutionBits is 9 (0.5 °C, 94 ms per conversion) to 12 (0.0625 °C,
	// 750 ms); 0 means 12.
	ResolutionBits int
}

// GPIOOptions configure the gpio driver. Nil means the defaults.
type GPIOOptions struct {
	// Pull is "up", "down" or "none"; "" means up (a contact to ground).
	Pull string
	// ActiveLow makes a Low level read as 1. By default High reads as 1:
	// with the pull-up and a reed switch to ground, 1 is an open door.
	ActiveLow bool
	// Debounce is how long a level must hold after an edge before it is
	// reported; 0 means 20ms.
	Debounce time.Duration
	// NoEdges turns edge events off, leaving the periodic state only.
	NoEdges bool
}

// ADCOptions configure the ads1115 driver. Nil means channel 0, ±4.096 V,
// readings in volts.
type ADCOptions struct {
	// Channel is the single-ended input AIN0–AIN3, 0 to 3.
	Channel int
	// FullScale is the PGA range in volts: 6.144, 4.096, 2.048, 1.024,
	// 0.512 or 0.256; 0 means 4.096.
	FullScale float64
	// Scale maps the measured volts to the metric; nil means volts.
	Scale *LinearScale
}

// LinearScale maps an input linearly: InMin→OutMin, InMax→OutMax. A 4–20
// mA loop over a 100 Ω shunt is 0.4–2.0 V in; a 0–10 bar transmitter is
// 0–1 000 000 Pa out.
//
// An input outside [InMin, InMax] is scaled all the same, with
// QualityUncertain; an input below FaultBelow or above FaultAbove (when
// set) is QualityBad: NAMUR NE 43 calls a loop under 3.6 mA or over 21 mA
// a fault (a broken wire reads ~0 mA).
type LinearScale struct {
	InMin, InMax   float64
	OutMin, OutMax float64
	FaultBelow     float64
	FaultAbove     float64
	HasFaultBelow  bool
	HasFaultAbove  bool
}

// Apply scales in and says how far the result can be trusted.
func (s *LinearScale) Apply(in float64) (float64, outpost.Quality) {
	out := s.OutMin + (in-s.InMin)*(s.OutMax-s.OutMin)/(s.InMax-s.InMin)
	lo, hi := min(s.InMin, s.InMax), max(s.InMin, s.InMax)
	switch {
	case s.HasFaultBelow && in < s.FaultBelow, s.HasFaultAbove && in > s.FaultAbove:
		return out, outpost.QualityBad
	case in < lo || in > hi:
		return out, outpost.QualityUncertain
	}
	return out, outpost.QualityGood
}
