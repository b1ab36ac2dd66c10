package firmwaresim

import (
	"math"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"

	"github.com/outposthq/outpost/internal/testclock"
)

// fakeClock is a settable clock whose sleep advances it, so faults and
// conversions are tested without waiting.
type fakeClock struct{ *testclock.Clock }

func newFakeClock() *fakeClock { return &fakeClock{testclock.New(time.Unix(1_700_000_000, 0))} }

func (c *fakeClock) opts(f ...Fault) ChipOptions {
	return ChipOptions{Now: c.Now, Sleep: c.Sleep, Seed: 7, Faults: f}
}

func constant(v float64) SignalSpec { return SignalSpec{Kind: KindConstant, Value: v} }

// newBMEDev attaches chip at 0x76 of a fresh bus and opens the real driver.
func newBMEDev(t *testing.T, chip *BME280) (*bmxx80.Dev, *I2CBus) {
	t.Helper()
	bus := NewI2CBus("i2c-sim")
	if err := bus.Attach(0x76, chip); err != nil {
		t.Fatal(err)
	}
	dev, err := bmxx80.NewI2C(bus, 0x76, &bmxx80.DefaultOpts)
	if err != nil {
		t.Fatal(err)
	}
	return dev, bus
}

func celsius(e physic.Env) float64 {
	return float64(e.Temperature-physic.ZeroCelsius) / float64(physic.Celsius)
}
func pascal(e physic.Env) float64    { return float64(e.Pressure) / float64(physic.Pascal) }
func percentRH(e physic.Env) float64 { return float64(e.Humidity) / float64(physic.PercentRH) }

func TestBME280RealDriverReadsScenario(t *testing.T) {
	cases := []struct{ c, pa, rh float64 }{
		{20, 101325, 50},
		{-10.37, 98000.5, 12.34},
		{-39.99, 110000, 99.5},
		{0, 30000, 0},
		{35.55, 101325, 87.65},
		{84.99, 70000, 3.21},
	}
	for _, tc := range cases {
		t.Run("", func(t *testing.T) {
			clk := newFakeClock()
			chip, err := NewBME280(&BME280Options{ChipOptions: clk.opts(),
				Temperature: constant(tc.c), Pressure: constant(tc.pa), Humidity: constant(tc.rh)})
			if err != nil {
				t.Fatal(err)
			}
			dev, _ := newBMEDev(t, chip)
			if s := dev.String(); !strings.HasPrefix(s, "BME280") {
				t.Fatalf("driver sees %s", s)
			}
			var e physic.Env
			if err := dev.Sense(&e); err != nil {
				t.Fatal(err)
			}
			if got := celsius(e); math.Abs(got-tc.c) > 0.01+1e-9 {
				t.Errorf("temperature %v, want %v ±0.01", got, tc.c)
			}
			if got := pascal(e); math.Abs(got-tc.pa) > 1 {
				t.Errorf("pressure %v, want %v ±1", got, tc.pa)
			}
			if got := percentRH(e); math.Abs(got-tc.rh) > 0.01 {
				t.Errorf("humidity %v, want %v ±0.01", got, tc.rh)
			}
			t.Logf("%v °C %v Pa %v %%RH", celsius(e), pascal(e), percentRH(e))
		})
	}
}

func TestBMP280RealDriverNoHumidity(t *testing.T) {
	chip, err := NewBMP280(&BME280Options{ChipOptions: newFakeClock().opts(),
		Temperature: constant(-5.25), Pressure: constant(95000), Humidity: constant(40)})
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := newBMEDev(t, chip)
	if s := dev.String(); !strings.HasPrefix(s, "BMP280") {
		t.Fatalf("driver sees %s", s)
	}
	var e physic.Env
	if err := dev.Sense(&e); err != nil {
		t.Fatal(err)
	}
	if c, pa := celsius(e), pascal(e); c != -5.25 || math.Abs(pa-95000) > 1 || e.Humidity != 0 {
		t.Fatalf("%v °C %v Pa %v, want -5.25 °C 95000 Pa and no humidity", c, pa, e.Humidity)
	}
}
