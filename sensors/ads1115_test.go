package sensors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	firmwaresim "github.com/outposthq/outpost/firmware-sim"
)

// adcOnBench puts a simulated ADS1115 at addr on bench bus "sim-i2c0".
func adcOnBench(t *testing.T, addr uint16, o *firmwaresim.ADS1115Options) *firmwaresim.Bench {
	t.Helper()
	chip, err := firmwaresim.NewADS1115(o)
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
	return bench
}

// loop is a 4–20 mA pressure transmitter (0–10 bar) over a 100 Ω shunt,
// with NAMUR NE 43 fault limits.
func loop() *LinearScale {
	return &LinearScale{InMin: 0.4, InMax: 2.0, OutMin: 0, OutMax: 1e6,
		FaultBelow: 0.36, HasFaultBelow: true, FaultAbove: 2.1, HasFaultAbove: true}
}

// TestADS1115FourTo20mA: the real driver reads the loop's voltage and the
// scale turns it into pascals, judging the loop's health.
func TestADS1115FourTo20mA(t *testing.T) {
	const lsb = 4.096 / 32768 // V at ±4.096 V
	cases := []struct {
		in   float64 // V across the shunt
		want float64 // Pa
		q    outpost.Quality
	}{
		{0.4, 0, outpost.QualityGood}, // 4 mA
		{1.2, 5e5, outpost.QualityGood},
		{2.0, 1e6, outpost.QualityGood}, // 20 mA
		{0.38, -12500, outpost.QualityUncertain},
		{2.05, 1.03125e6, outpost.QualityUncertain},
		{0.3, -62500, outpost.QualityBad},    // 3 mA: under NAMUR's 3.6
		{0, -250000, outpost.QualityBad},     // a broken wire
		{2.2, 1.125e6, outpost.QualityBad},   // 22 mA
		{-0.01, -256250, outpost.QualityBad}, // below ground
		{4.2, 2.375e6, outpost.QualityBad},   // clipped as well
		{1.5, 687500, outpost.QualityGood},   // on AIN2, see below
		{1.999, 999375, outpost.QualityGood}, // just inside
		{0.401, 625, outpost.QualityGood},    // just inside
		{0.362, -23750, outpost.QualityUncertain},
	}
	for ch := range 4 {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("AIN%d %vV", ch, tc.in), func(t *testing.T) {
				clk := newDrvClock()
				var in [4]firmwaresim.SignalSpec
				for i := range in {
					in[i] = constant(3.3) // the other inputs: far off
				}
				in[ch] = constant(tc.in)
				bench := adcOnBench(t, 0x48, &firmwaresim.ADS1115Options{ChipOptions: clk.chip(), Inputs: in})
				s := newDriver(t, Spec{ID: "tank", Driver: DriverADS1115, Bus: "sim-i2c0", Address: "0x48", Buses: bench,
					Metrics: []Metric{{Name: "pressure", Unit: "Pa"}},
					Options: &ADCOptions{Channel: ch, FullScale: 4.096, Scale: loop()}})
				rs := readOnce(t, s, "tank", clk.Now())
				want, tol := tc.want, lsb*1e6/1.6
				if tc.in > 4.096 {
					want = (4.096 - lsb - 0.4) / 1.6 * 1e6 // the highest code
				}
				if len(rs) != 1 || rs[0].Metric != "pressure" || rs[0].Unit != "Pa" || !near(rs[0].Value, want, tol) || rs[0].Quality != tc.q {
					t.Fatalf("%v V: %+v, want %v Pa ±%v, %v", tc.in, rs, want, tol, tc.q)
				}
			})
		}
	}
}

// TestADS1115Volts: without a scale the readings are volts; the range
// is the PGA's, and a clipped conversion is uncertain.
func TestADS1115Volts(t *testing.T) {
	cases := []struct {
		name  string
		opts  *ADCOptions
		in    float64
		want  float64
		q     outpost.Quality
		lsb   float64
		input int
	}{
		{"defaults", nil, 1.2345, 1.2345, outpost.QualityGood, 4.096 / 32768, 0},
		{"AIN3 at ±0.256 V", &ADCOptions{Channel: 3, FullScale: 0.256}, 0.1234, 0.1234, outpost.QualityGood, 0.256 / 32768, 3},
		{"±6.144 V", &ADCOptions{Channel: 1, FullScale: 6.144}, 5, 5, outpost.QualityGood, 6.144 / 32768, 1},
		{"clipped at +2.048 V", &ADCOptions{FullScale: 2.048}, 3, 2.048, outpost.QualityUncertain, 2 * 2.048 / 32768, 0},
		{"clipped at -1.024 V", &ADCOptions{FullScale: 1.024}, -2, -1.024, outpost.QualityUncertain, 1.024 / 32768, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newDrvClock()
			var in [4]firmwaresim.SignalSpec
			in[tc.input] = constant(tc.in)
			bench := adcOnBench(t, 0x48, &firmwaresim.ADS1115Options{ChipOptions: clk.chip(), Inputs: in})
			spec := Spec{ID: "v", Driver: DriverADS1115, Bus: "sim-i2c0", Buses: bench}
			if tc.opts != nil {
				spec.Options = tc.opts
			}
			rs := readOnce(t, newDriver(t, spec), "v", clk.Now())
			if len(rs) != 1 || rs[0].Metric != "voltage" || rs[0].Unit != "V" || !near(rs[0].Value, tc.want, tc.lsb) || rs[0].Quality != tc.q {
				t.Fatalf("%v V in: %+v, want %v V ±%v, %v", tc.in, rs, tc.want, tc.lsb, tc.q)
			}
		})
	}
}

// TestADS1115Ramp: the config example's input, a ramp from 0.8 V at
// 1 mV/s, read every 100 s.
func TestADS1115Ramp(t *testing.T) {
	clk := newDrvClock()
	bench := adcOnBench(t, 0x49, &firmwaresim.ADS1115Options{ChipOptions: clk.chip(),
		Inputs: [4]firmwaresim.SignalSpec{{Kind: firmwaresim.KindRamp, Base: 0.8, Slope: 0.001}}})
	s := newDriver(t, Spec{ID: "tank", Driver: DriverADS1115, Bus: "sim-i2c0", Address: "73", Buses: bench,
		Metrics: []Metric{{Name: "pressure", Unit: "Pa"}}, Options: &ADCOptions{Scale: loop()}})
	for i := range 15 {
		in := 0.8 + 0.1*float64(i)
		want, q := (in-0.4)/1.6*1e6, outpost.QualityGood
		switch {
		case in > 2.1+1e-9:
			q = outpost.QualityBad
		case in > 2.0+1e-9:
			q = outpost.QualityUncertain
		}
		rs := readOnce(t, s, "tank", clk.Now())
		if !near(rs[0].Value, want, 4.096/32768*1e6/1.6) || rs[0].Quality != q {
			t.Fatalf("at %v V: %+v, want %v Pa %v", in, rs, want, q)
		}
		clk.Sleep(100 * time.Second)
	}
}

func TestADS1115Faults(t *testing.T) {
	t.Run("dropout, then back", func(t *testing.T) {
		clk := newDrvClock()
		bench := adcOnBench(t, 0x48, &firmwaresim.ADS1115Options{ChipOptions: clk.chip(
			firmwaresim.Fault{Kind: firmwaresim.FaultDropout, From: time.Minute, For: time.Minute}),
			Inputs: [4]firmwaresim.SignalSpec{constant(1.2)}})
		s := newDriver(t, Spec{ID: "tank", Driver: DriverADS1115, Bus: "sim-i2c0", Buses: bench, Options: &ADCOptions{Scale: loop()}})
		readOnce(t, s, "tank", clk.Now())
		clk.Sleep(time.Minute)
		readFails(t, s, clk.Now(), "ads1115: ", "no ACK")
		clk.Sleep(time.Minute)
		if rs := readOnce(t, s, "tank", clk.Now()); !near(rs[0].Value, 5e5, 100) || rs[0].Quality != outpost.QualityGood {
			t.Fatalf("after the dropout: %+v", rs)
		}
	})
	t.Run("nack always", func(t *testing.T) {
		clk := newDrvClock()
		bench := adcOnBench(t, 0x48, &firmwaresim.ADS1115Options{ChipOptions: clk.chip(firmwaresim.Fault{Kind: firmwaresim.FaultNACK, Probability: 1})})
		s := newDriver(t, Spec{ID: "tank", Driver: DriverADS1115, Bus: "sim-i2c0", Buses: bench})
		readFails(t, s, clk.Now(), "ads1115: ", "no ACK")
	})
	t.Run("stuck input", func(t *testing.T) {
		clk := newDrvClock()
		bench := adcOnBench(t, 0x48, &firmwaresim.ADS1115Options{ChipOptions: clk.chip(
			firmwaresim.Fault{Kind: firmwaresim.FaultStuck, From: time.Second}),
			Inputs: [4]firmwaresim.SignalSpec{{Kind: firmwaresim.KindRamp, Base: 1, Slope: 0.01}}})
		s := newDriver(t, Spec{ID: "v", Driver: DriverADS1115, Bus: "sim-i2c0", Buses: bench})
		first := readOnce(t, s, "v", clk.Now())[0].Value
		for range 3 {
			clk.Sleep(10 * time.Second)
			if v := readOnce(t, s, "v", clk.Now())[0].Value; v != first {
				t.Fatalf("stuck input moved: %v, then %v", first, v)
			}
		}
	})
}

func TestADS1115SpecErrors(t *testing.T) {
	bench := adcOnBench(t, 0x48, nil)
	bad := []struct {
		name string
		spec Spec
		want string
	}{
		{"channel -1", Spec{Options: &ADCOptions{Channel: -1}}, "channel -1: want 0 to 3"},
		{"channel 4", Spec{Options: &ADCOptions{Channel: 4}}, "channel 4: want 0 to 3"},
		{"full scale", Spec{Options: &ADCOptions{FullScale: 3.3}}, "full_scale 3.3 V: want 6.144, 4.096"},
		{"negative full scale", Spec{Options: &ADCOptions{FullScale: -4.096}}, "full_scale -4.096 V"},
		{"empty scale", Spec{Options: &ADCOptions{Scale: &LinearScale{InMin: 1, InMax: 1, OutMax: 10}}}, "scale: in_min and in_max are both 1"},
		{"scale NaN", Spec{Options: &ADCOptions{Scale: &LinearScale{InMax: math.NaN()}}}, "scale: NaN is not a finite number"},
		{"fault bounds", Spec{Options: &ADCOptions{Scale: &LinearScale{InMax: 1, FaultBelow: 2, HasFaultBelow: true, FaultAbove: 1, HasFaultAbove: true}}},
			"scale: fault_below 2 is not below fault_above 1"},
		{"volts in mV", Spec{Metrics: []Metric{{Name: "voltage", Unit: "mV"}}}, `metric voltage in "mV": without a scale the readings are in V`},
		{"two metrics", Spec{Metrics: []Metric{{Name: "a"}, {Name: "b"}}}, "2 metrics; ads1115 has one output"},
		{"address", Spec{Address: "0x76"}, "address 0x76: the chip answers at 0x48 to 0x4B"},
		{"options", Spec{Options: &BMEOptions{}}, "options are *sensors.BMEOptions, want *sensors.ADCOptions"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.ID, spec.Driver, spec.Bus, spec.Buses = "tank", DriverADS1115, "sim-i2c0", bench
			_, err := builtin(t).New(spec)
			errContains(t, err, "ads1115: "+tc.want)
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("%v is not an ErrSpec", err)
			}
		})
	}
	t.Run("a scaled metric keeps its unit", func(t *testing.T) {
		s := newDriver(t, Spec{ID: "lvl", Driver: DriverADS1115, Bus: "sim-i2c0", Buses: bench,
			Metrics: []Metric{{Name: "level", Unit: "m"}}, Options: &ADCOptions{Scale: &LinearScale{InMax: 4, OutMax: 2}}})
		if rs := readOnce(t, s, "lvl", time.Unix(1, 0)); rs[0].Metric != "level" || rs[0].Unit != "m" || rs[0].Value != 0 {
			t.Fatalf("%+v", rs)
		}
	})
}

// TestADS1115ChannelsShareAChip: sensors on two channels of one chip,
// polled from their own goroutines, each read their own channel.
func TestADS1115ChannelsShareAChip(t *testing.T) {
	clk := newDrvClock()
	bench := adcOnBench(t, 0x48, &firmwaresim.ADS1115Options{ChipOptions: clk.chip(),
		Inputs: [4]firmwaresim.SignalSpec{constant(1.2), constant(0.1)}})
	want := []float64{1.2, 0.1}
	var ss []Sensor
	for ch := range want {
		s, err := builtin(t).New(Spec{ID: fmt.Sprint("ain", ch), Driver: DriverADS1115, Bus: "sim-i2c0", Buses: bench,
			Options: &ADCOptions{Channel: ch}})
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	errs := make(chan error, len(ss))
	for ch, s := range ss {
		go func() {
			for range 20 {
				rs, err := s.Read(context.Background(), clk.Now(), nil)
				if err == nil && !near(rs[0].Value, want[ch], 4.096/32768) {
					err = fmt.Errorf("AIN%d read %v V, want %v", ch, rs[0].Value, want[ch])
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range ss {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, s := range ss {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	adsChips.mu.Lock()
	defer adsChips.mu.Unlock()
	if n := len(adsChips.m); n != 0 {
		t.Fatalf("%d chips still shared after every sensor closed", n)
	}
}
