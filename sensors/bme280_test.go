package sensors

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	firmwaresim "github.com/outposthq/outpost/firmware-sim"
)

// bmeBench puts a simulated BME280 (or BMP280) at addr on bench bus
// "sim-i2c0".
func bmeBench(t *testing.T, bme bool, addr uint16, o *firmwaresim.BME280Options) (*firmwaresim.Bench, *firmwaresim.I2CBus) {
	t.Helper()
	newChip := firmwaresim.NewBME280
	if !bme {
		newChip = firmwaresim.NewBMP280
	}
	chip, err := newChip(o)
	if err != nil {
		t.Fatal(err)
	}
	bench := firmwaresim.NewBench()
	bus, err := bench.I2CBus("sim-i2c0")
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Attach(addr, chip); err != nil {
		t.Fatal(err)
	}
	return bench, bus
}

func TestBME280ReadsScenario(t *testing.T) {
	clk := newDrvClock()
	start := clk.Now()
	temp := firmwaresim.SignalSpec{Kind: firmwaresim.KindSine, Base: 21, Amplitude: 2, Period: time.Hour}
	hum := firmwaresim.SignalSpec{Kind: firmwaresim.KindSine, Base: 50, Amplitude: 30, Period: 40 * time.Minute}
	bench, _ := bmeBench(t, true, 0x76, &firmwaresim.BME280Options{ChipOptions: clk.chip(),
		Temperature: temp, Pressure: constant(98765.4), Humidity: hum})
	s := newDriver(t, Spec{ID: "office-env", Driver: DriverBME280, Bus: "sim-i2c0", Buses: bench})
	sine := func(sp firmwaresim.SignalSpec, el time.Duration) float64 {
		return sp.Base + sp.Amplitude*math.Sin(2*math.Pi*el.Seconds()/sp.Period.Seconds())
	}
	for i := range 8 {
		now := clk.Now()
		el := now.Sub(start)
		t.Run(el.String(), func(t *testing.T) {
			rs := readOnce(t, s, "office-env", now)
			if got := metricsOf(rs); !slices.Equal(got, bmeMetrics) {
				t.Fatalf("metrics %v, want %v", got, bmeMetrics)
			}
			// The chip's resolution: 0.01 °C, 1/256 Pa (±1 Pa through the
			// compensation), 1/1024 %RH.
			want := []float64{sine(temp, el), 98765.4, sine(hum, el)}
			tol := []float64{0.01, 1, 0.01}
			for j, r := range rs {
				if !near(r.Value, want[j], tol[j]) || r.Quality != outpost.QualityGood {
					t.Errorf("%s = %v (%v), want %v ±%v, good", r.Metric, r.Value, r.Quality, want[j], tol[j])
				}
			}
		})
		clk.Sleep(time.Duration(i+1) * 97 * time.Second)
	}
}

func TestBMP280HasNoHumidity(t *testing.T) {
	clk := newDrvClock()
	bench, _ := bmeBench(t, false, 0x77, &firmwaresim.BME280Options{ChipOptions: clk.chip(),
		Temperature: constant(-5.25), Pressure: constant(95000), Humidity: constant(40)})
	s := newDriver(t, Spec{ID: "p", Driver: DriverBMP280, Bus: "sim-i2c0", Address: "0x77", Buses: bench})
	rs := readOnce(t, s, "p", clk.Now())
	if got := metricsOf(rs); !slices.Equal(got, bmeMetrics[:2]) {
		t.Fatalf("metrics %v, want %v", got, bmeMetrics[:2])
	}
	if rs[0].Value != -5.25 || !near(rs[1].Value, 95000, 1) {
		t.Fatalf("readings %+v, want -5.25 °C and 95000 Pa", rs)
	}

	_, err := builtin(t).New(Spec{ID: "p", Driver: DriverBMP280, Bus: "sim-i2c0", Address: "0x77", Buses: bench,
		Metrics: []Metric{{Name: "humidity"}}})
	errContains(t, err, `bmp280: unknown metric "humidity" (bmp280 has temperature, pressure)`)

	// The bme280 driver refuses a BMP280 rather than read 0 %RH.
	wrong := newDriver(t, Spec{ID: "w", Driver: DriverBME280, Bus: "sim-i2c0", Address: "0x77", Buses: bench})
	readFails(t, wrong, clk.Now(), "bme280: the chip at 0x77 is a BMP280, not a BME280")
}

func TestBME280Options(t *testing.T) {
	clk := newDrvClock()
	bench, _ := bmeBench(t, true, 0x76, &firmwaresim.BME280Options{ChipOptions: clk.chip(), Temperature: constant(22.5)})
	good := []*BMEOptions{
		nil,
		{Oversampling: 1}, {Oversampling: 2}, {Oversampling: 8}, {Oversampling: 16},
		{Filter: 2}, {Filter: 16, Oversampling: 1},
	}
	for _, o := range good {
		t.Run("", func(t *testing.T) {
			spec := Spec{ID: "e", Driver: DriverBME280, Bus: "sim-i2c0", Buses: bench, Interval: 10 * time.Second}
			if o != nil {
				spec.Options = o
			}
			s := newDriver(t, spec)
			if rs := readOnce(t, s, "e", clk.Now()); len(rs) != 3 || rs[0].Value != 22.5 {
				t.Fatalf("options %+v: %+v", o, rs)
			}
		})
	}
	bad := []struct {
		name string
		spec Spec
		want string
	}{
		{"oversampling 3", Spec{Options: &BMEOptions{Oversampling: 3}}, "oversampling 3: want 1, 2, 4, 8 or 16"},
		{"oversampling -1", Spec{Options: &BMEOptions{Oversampling: -1}}, "oversampling -1"},
		{"oversampling 32", Spec{Options: &BMEOptions{Oversampling: 32}}, "oversampling 32"},
		{"filter 1", Spec{Options: &BMEOptions{Filter: 1}}, "filter 1: want 0, 2, 4, 8 or 16"},
		{"filter 32", Spec{Options: &BMEOptions{Filter: 32}}, "filter 32"},
		{"options by value", Spec{Options: BMEOptions{}}, "options are sensors.BMEOptions, want *sensors.BMEOptions"},
		{"address not the chip's", Spec{Address: "0x48"}, "address 0x48: the chip answers at 0x76 or 0x77"},
		{"address out of range", Spec{Address: "0x78"}, `address "0x78" is not a 7-bit I2C address`},
		{"address not a number", Spec{Address: "seventy-six"}, `address "seventy-six" is not a 7-bit I2C address`},
		{"unknown metric", Spec{Metrics: []Metric{{Name: "altitude"}}}, `unknown metric "altitude" (bme280 has temperature, pressure, humidity)`},
		{"another unit", Spec{Metrics: []Metric{{Name: "temperature", Unit: "K"}}}, `metric temperature is in "Cel", not "K"`},
		{"metric twice", Spec{Metrics: []Metric{{Name: "pressure"}, {Name: "pressure", Unit: "Pa"}}}, "metric pressure listed twice"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.ID, spec.Driver, spec.Bus, spec.Buses = "e", DriverBME280, "sim-i2c0", bench
			_, err := builtin(t).New(spec)
			errContains(t, err, "bme280: "+tc.want)
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("%v is not an ErrSpec", err)
			}
		})
	}
	t.Run("bus of another kind", func(t *testing.T) {
		if _, err := bench.OneWireBus("sim-w1-0"); err != nil {
			t.Fatal(err)
		}
		_, err := builtin(t).New(Spec{ID: "e", Driver: DriverBME280, Bus: "sim-w1-0", Buses: bench})
		errContains(t, err, "bme280: ", "not i2c")
	})
}

func TestBME280SelectsMetrics(t *testing.T) {
	clk := newDrvClock()
	bench, _ := bmeBench(t, true, 0x76, &firmwaresim.BME280Options{ChipOptions: clk.chip()})
	cases := []struct {
		pick []Metric
		want []Metric
	}{
		{nil, bmeMetrics},
		{[]Metric{{Name: "pressure"}}, bmeMetrics[1:2]},
		{[]Metric{{Name: "humidity", Unit: "%RH"}, {Name: "temperature"}}, []Metric{bmeMetrics[0], bmeMetrics[2]}},
	}
	for _, tc := range cases {
		t.Run("", func(t *testing.T) {
			s := newDriver(t, Spec{ID: "e", Driver: DriverBME280, Bus: "sim-i2c0", Buses: bench, Metrics: tc.pick})
			if got := metricsOf(readOnce(t, s, "e", clk.Now())); !slices.Equal(got, tc.want) {
				t.Fatalf("picking %v read %v, want %v", tc.pick, got, tc.want)
			}
		})
	}
}

// TestBME280Quality: what the chip cannot measure is bad.
func TestBME280Quality(t *testing.T) {
	cases := []struct {
		c, pa  float64
		qc, qp outpost.Quality
	}{
		{21, 101325, outpost.QualityGood, outpost.QualityGood},
		{-40, 30000, outpost.QualityGood, outpost.QualityGood},
		{85, 109990, outpost.QualityGood, outpost.QualityGood},
		{90, 101325, outpost.QualityBad, outpost.QualityGood},
		{-45, 101325, outpost.QualityBad, outpost.QualityGood},
		{20, 25000, outpost.QualityGood, outpost.QualityBad},
		{20, 115000, outpost.QualityGood, outpost.QualityBad},
	}
	for _, tc := range cases {
		t.Run("", func(t *testing.T) {
			clk := newDrvClock()
			bench, _ := bmeBench(t, false, 0x76, &firmwaresim.BME280Options{ChipOptions: clk.chip(),
				Temperature: constant(tc.c), Pressure: constant(tc.pa)})
			s := newDriver(t, Spec{ID: "e", Driver: DriverBMP280, Bus: "sim-i2c0", Buses: bench})
			rs := readOnce(t, s, "e", clk.Now())
			if !near(rs[0].Value, tc.c, 0.01) || !near(rs[1].Value, tc.pa, 1) || rs[0].Quality != tc.qc || rs[1].Quality != tc.qp {
				t.Fatalf("%v °C, %v Pa read as %+v; want qualities %v, %v", tc.c, tc.pa, rs, tc.qc, tc.qp)
			}
		})
	}
}

func TestBME280Faults(t *testing.T) {
	open := func(t *testing.T, clk *drvClock, f ...firmwaresim.Fault) (Sensor, *firmwaresim.I2CBus) {
		t.Helper()
		bench, bus := bmeBench(t, true, 0x76, &firmwaresim.BME280Options{ChipOptions: clk.chip(f...),
			Temperature: firmwaresim.SignalSpec{Kind: firmwaresim.KindRamp, Base: 10, Slope: 1}})
		return newDriver(t, Spec{ID: "e", Driver: DriverBME280, Bus: "sim-i2c0", Buses: bench}), bus
	}
	t.Run("dropout, then back", func(t *testing.T) {
		clk := newDrvClock()
		s, _ := open(t, clk, firmwaresim.Fault{Kind: firmwaresim.FaultDropout, From: time.Second, For: 2 * time.Second})
		if rs := readOnce(t, s, "e", clk.Now()); rs[0].Value != 10 {
			t.Fatalf("before: %+v", rs)
		}
		clk.Sleep(time.Second)
		readFails(t, s, clk.Now(), "bme280: ", "no ACK")
		clk.Sleep(time.Second)
		readFails(t, s, clk.Now(), "no ACK")
		clk.Sleep(time.Second)
		if rs := readOnce(t, s, "e", clk.Now()); rs[0].Value != 13 || rs[0].Quality != outpost.QualityGood {
			t.Fatalf("after the dropout: %+v, want 13 °C", rs)
		}
	})
	t.Run("nack always", func(t *testing.T) {
		clk := newDrvClock()
		s, _ := open(t, clk, firmwaresim.Fault{Kind: firmwaresim.FaultNACK, Probability: 1})
		readFails(t, s, clk.Now(), "bme280: ", "no ACK")
		readFails(t, s, clk.Now(), "no ACK")
	})
	t.Run("nothing at the address", func(t *testing.T) {
		clk := newDrvClock()
		bench, _ := bmeBench(t, true, 0x76, &firmwaresim.BME280Options{ChipOptions: clk.chip()})
		s := newDriver(t, Spec{ID: "e", Driver: DriverBME280, Bus: "sim-i2c0", Address: "0x77", Buses: bench})
		readFails(t, s, clk.Now(), "bme280: firmwaresim: sim-i2c0 addr 0x77: ", "no ACK")
	})
	t.Run("chip reset is reconfigured", func(t *testing.T) {
		clk := newDrvClock()
		s, bus := open(t, clk)
		readOnce(t, s, "e", clk.Now())
		// A soft reset (a brown-out alike) clears ctrl_hum: a forced
		// measurement would skip humidity.
		if err := bus.Tx(0x76, []byte{0xE0, 0xB6}, nil); err != nil {
			t.Fatal(err)
		}
		clk.Sleep(time.Second)
		rs := readOnce(t, s, "e", clk.Now())
		if rs[0].Value != 11 || !near(rs[2].Value, 50, 0.01) {
			t.Fatalf("after a reset: %+v, want 11 °C and 50 %%RH", rs)
		}
	})
	t.Run("slow", func(t *testing.T) {
		clk := newDrvClock()
		s, _ := open(t, clk, firmwaresim.Fault{Kind: firmwaresim.FaultSlow, Delay: 100 * time.Millisecond})
		before := clk.Now()
		rs := readOnce(t, s, "e", before)
		if rs[0].Value < 10 || rs[0].Value > 12 || !clk.Now().After(before) {
			t.Fatalf("slow chip: %+v, clock %v → %v", rs, before, clk.Now())
		}
	})
}

func TestBME280Close(t *testing.T) {
	clk := newDrvClock()
	bench, bus := bmeBench(t, true, 0x76, &firmwaresim.BME280Options{ChipOptions: clk.chip()})
	s, err := builtin(t).New(Spec{ID: "e", Driver: DriverBME280, Bus: "sim-i2c0", Buses: bench, Options: &BMEOptions{Filter: 4}})
	if err != nil {
		t.Fatal(err)
	}
	readOnce(t, s, "e", clk.Now())
	ctrl := func() byte {
		var b [1]byte
		if err := bus.Tx(0x76, []byte{0xF4}, b[:]); err != nil {
			t.Fatal(err)
		}
		return b[0]
	}
	if mode := ctrl() & 3; mode != 3 {
		t.Fatalf("with a filter the chip is in mode %d, want normal (3)", mode)
	}
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if mode := ctrl() & 3; mode != 0 {
		t.Fatalf("after Close the chip is in mode %d, want sleep (0)", mode)
	}
	readFails(t, s, clk.Now(), "bme280: sensor closed")
}
