package firmwaresim

import (
	"strings"
	"testing"
	"time"
)

// Every chip constructor fails with a nil chip and an error prefixed
// "firmwaresim: " on a bad fault or signal; none starts anything.
func TestChipConstructorsFail(t *testing.T) {
	badFault := ChipOptions{Faults: []Fault{{Kind: "melt"}}}
	badSignal := SignalSpec{Kind: KindSine} // no period
	rom := DS18B20Address(1)
	for _, tc := range []struct {
		name string
		make func() (any, error)
	}{
		{"bme280 fault", func() (any, error) { return NewBME280(&BME280Options{ChipOptions: badFault}) }},
		{"bme280 signal", func() (any, error) { return NewBME280(&BME280Options{Humidity: badSignal}) }},
		{"bmp280 signal", func() (any, error) { return NewBMP280(&BME280Options{Pressure: badSignal}) }},
		{"ads1115 fault", func() (any, error) { return NewADS1115(&ADS1115Options{ChipOptions: badFault}) }},
		{"ads1115 signal", func() (any, error) {
			return NewADS1115(&ADS1115Options{Inputs: [4]SignalSpec{3: badSignal}})
		}},
		{"ds18b20 rom", func() (any, error) { return NewDS18B20(rom+1, nil) }},
		{"ds18b20 signal", func() (any, error) { return NewDS18B20(rom, &DS18B20Options{Temperature: badSignal}) }},
		{"gpio fault", func() (any, error) { return NewGPIOPin("GPIO4", 4, &GPIOOptions{ChipOptions: badFault}) }},
		{"gpio signal", func() (any, error) { return NewGPIOPin("GPIO4", 4, &GPIOOptions{Level: badSignal}) }},
		{"device interval", func() (any, error) { return NewDevice("d", 0, 1, nil) }},
		{"device signal", func() (any, error) {
			return NewDevice("d", time.Second, 1, []Channel{{Metric: "m", Signal: badSignal}})
		}},
		{"replay file", func() (any, error) {
			return NewSignal(SignalSpec{Kind: KindReplay, ReplayPath: t.TempDir() + "/missing.csv", ReplayColumn: "x"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.make()
			if err == nil || !strings.HasPrefix(err.Error(), "firmwaresim: ") {
				t.Fatalf("error %v, want one prefixed firmwaresim:", err)
			}
			if !isNilPtr(c) {
				t.Errorf("returned %#v with its error", c)
			}
		})
	}
}

func isNilPtr(v any) bool {
	switch c := v.(type) {
	case *BME280:
		return c == nil
	case *ADS1115:
		return c == nil
	case *DS18B20:
		return c == nil
	case *GPIOPin:
		return c == nil
	case *Device:
		return c == nil
	case *Signal:
		return c == nil
	}
	return v == nil
}

// A bench's bus of the wrong kind is an error with a nil bus (not a typed
// nil a driver would use), and nil pins, chips and devices are refused,
// not a panic later.
func TestBenchRefuses(t *testing.T) {
	b := NewBench()
	pin, err := NewGPIOPin("GPIO4", 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddPin("bank", pin); err != nil {
		t.Fatal(err)
	}
	if bus, err := b.I2C("bank"); err == nil || bus != nil {
		t.Errorf("I2C on a pin bank: %#v, %v; want nil and an error", bus, err)
	}
	if bus, err := b.OneWire("bank"); err == nil || bus != nil {
		t.Errorf("OneWire on a pin bank: %#v, %v; want nil and an error", bus, err)
	}
	if _, err := b.I2C("i2c"); err != nil {
		t.Fatal(err)
	}
	if err := b.AddPin("i2c", pin); err == nil {
		t.Error("a pin added to an I2C bus")
	}
	if err := b.AddPin("bank", nil); err == nil {
		t.Error("a nil pin added")
	}
	if err := NewI2CBus("i2c").Attach(0x76, nil); err == nil {
		t.Error("a nil chip attached")
	}
	if err := NewOneWireBus("w1").Attach(nil); err == nil {
		t.Error("a nil device attached")
	}
}
