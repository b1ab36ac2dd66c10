package sensors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"periph.io/x/conn/v3/onewire"

	"github.com/outposthq/outpost"
	firmwaresim "github.com/outposthq/outpost/firmware-sim"
)

// dsOnBench puts simulated DS18B20s with the given serials on bench bus
// "sim-w1-0".
func dsOnBench(t *testing.T, bench *firmwaresim.Bench, serial uint64, o *firmwaresim.DS18B20Options) onewire.Address {
	t.Helper()
	d, err := firmwaresim.NewDS18B20(firmwaresim.DS18B20Address(serial), o)
	if err != nil {
		t.Fatal(err)
	}
	bus, err := bench.OneWireBus("sim-w1-0")
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Attach(d); err != nil {
		t.Fatal(err)
	}
	return d.Address()
}

// newDS builds a ds18b20 sensor whose conversion wait runs on clk (the
// real timer when clk is nil).
func newDS(t *testing.T, bench *firmwaresim.Bench, id, addr string, bits int, clk *drvClock) Sensor {
	t.Helper()
	s := newDriver(t, Spec{ID: id, Driver: DriverDS18B20, Bus: "sim-w1-0", Address: addr, Buses: bench,
		Options: &DS18B20Options{ResolutionBits: bits}})
	if clk != nil {
		s.(*ds).wait = clk.sleepCtx
	}
	return s
}

// TestDS18B20TwoOnOneBus: two DS18B20s on one bus are two sensors, each
// reading its own device by its ROM id, in either form of the id.
func TestDS18B20TwoOnOneBus(t *testing.T) {
	for _, bits := range []int{9, 10, 11, 12} {
		t.Run(fmt.Sprint(bits, " bits"), func(t *testing.T) {
			clk := newDrvClock()
			bench := firmwaresim.NewBench()
			freezer := dsOnBench(t, bench, 0x00000abcdef0, &firmwaresim.DS18B20Options{ChipOptions: clk.chip(), Temperature: constant(-18.3)})
			room := dsOnBench(t, bench, 0x0000016a2b3c, &firmwaresim.DS18B20Options{ChipOptions: clk.chip(), Temperature: constant(21.4375)})
			sensors := []struct {
				s    Sensor
				id   string
				want float64
			}{
				{newDS(t, bench, "freezer", "28-00000abcdef0", bits, clk), "freezer", -18.3},
				{newDS(t, bench, "room", fmt.Sprintf("%016x", uint64(room)), bits, clk), "room", 21.4375},
			}
			if got := FormatROM(freezer); got != "28-00000abcdef0" {
				t.Fatalf("freezer is %s", got)
			}
			res := 0.0625 * float64(int(1)<<(12-bits))
			for range 2 {
				for _, x := range sensors {
					rs := readOnce(t, x.s, x.id, clk.Now())
					if len(rs) != 1 || rs[0].Metric != "temperature" || rs[0].Unit != "Cel" || rs[0].Quality != outpost.QualityGood ||
						!near(rs[0].Value, x.want, res/2) || math.Mod(rs[0].Value, res) != 0 {
						t.Fatalf("%s at %d bits: %+v, want %v ±%v in steps of %v", x.id, bits, rs, x.want, res/2, res)
					}
				}
			}
		})
	}
}

// TestDS18B20RealWait runs the conversion wait on the real clock, at 9
// bits (94 ms), as the gateway does.
func TestDS18B20RealWait(t *testing.T) {
	bench := firmwaresim.NewBench()
	addr := dsOnBench(t, bench, 42, &firmwaresim.DS18B20Options{Temperature: constant(-3.5)})
	s := newDS(t, bench, "t", FormatROM(addr), 9, nil)
	if rs := readOnce(t, s, "t", time.Now()); rs[0].Value != -3.5 {
		t.Fatalf("%+v, want -3.5 °C", rs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Read(ctx, time.Now(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("read with a cancelled ctx: %v", err)
	}
}

// TestDS18B20PowerOn85: a scratchpad still holding the power-on 85 °C
// (no conversion done: a weak pull-up, a brown-out) reads as uncertain;
// periph means to reject it but compares with 85 K.
func TestDS18B20PowerOn85(t *testing.T) {
	cases := []struct {
		name string
		temp float64
		wait bool // let the conversion finish
		want outpost.Quality
	}{
		{"no conversion", 20, false, outpost.QualityUncertain},
		{"really 85 °C", 85, true, outpost.QualityUncertain},
		{"85.0625 °C", 85.0625, true, outpost.QualityGood},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newDrvClock()
			bench := firmwaresim.NewBench()
			addr := dsOnBench(t, bench, 7, &firmwaresim.DS18B20Options{ChipOptions: clk.chip(), Temperature: constant(tc.temp)})
			s := newDS(t, bench, "t", FormatROM(addr), 12, clk)
			if !tc.wait {
				s.(*ds).wait = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
			}
			rs := readOnce(t, s, "t", clk.Now())
			if want := map[bool]float64{false: 85, true: tc.temp}[tc.wait]; rs[0].Value != want || rs[0].Quality != tc.want {
				t.Fatalf("%+v, want %v °C %v", rs, want, tc.want)
			}
		})
	}
}

func TestDS18B20Quality(t *testing.T) {
	cases := []struct {
		c    float64
		want outpost.Quality
	}{
		{20, outpost.QualityGood},
		{-55, outpost.QualityGood},
		{125, outpost.QualityGood},
		{84.9375, outpost.QualityGood},
		{85, outpost.QualityUncertain},
		{-55.0625, outpost.QualityBad},
		{125.0625, outpost.QualityBad},
		{math.NaN(), outpost.QualityBad},
	}
	for _, tc := range cases {
		if got := dsQuality(tc.c); got != tc.want {
			t.Errorf("dsQuality(%v) = %v, want %v", tc.c, got, tc.want)
		}
	}
}

func TestDS18B20Faults(t *testing.T) {
	cases := []struct {
		name  string
		fault firmwaresim.Fault
		want  string
	}{
		{"crc", firmwaresim.Fault{Kind: firmwaresim.FaultCRC}, "incorrect scratchpad CRC"},
		{"nack", firmwaresim.Fault{Kind: firmwaresim.FaultNACK, Probability: 1}, "no presence"},
		{"dropout", firmwaresim.Fault{Kind: firmwaresim.FaultDropout}, "no presence"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newDrvClock()
			bench := firmwaresim.NewBench()
			addr := dsOnBench(t, bench, 7, &firmwaresim.DS18B20Options{ChipOptions: clk.chip(tc.fault)})
			s := newDS(t, bench, "t", FormatROM(addr), 12, clk)
			readFails(t, s, clk.Now(), "ds18b20: ", tc.want)
		})
	}
	t.Run("crc now and then", func(t *testing.T) {
		clk := newDrvClock()
		bench := firmwaresim.NewBench()
		addr := dsOnBench(t, bench, 7, &firmwaresim.DS18B20Options{ChipOptions: clk.chip(
			firmwaresim.Fault{Kind: firmwaresim.FaultCRC, Probability: 0.5}), Temperature: constant(4)})
		s := newDS(t, bench, "t", FormatROM(addr), 12, clk)
		var ok, failed int
		for range 40 {
			rs, err := s.Read(context.Background(), clk.Now(), nil)
			switch {
			case err != nil:
				errContains(t, err, "incorrect scratchpad CRC")
				failed++
			case rs[0].Value != 4:
				t.Fatalf("a read that passed the CRC: %+v", rs)
			default:
				ok++
			}
		}
		if ok == 0 || failed == 0 {
			t.Fatalf("%d reads ok, %d failed; want some of each", ok, failed)
		}
	})
	t.Run("dropout, then back", func(t *testing.T) {
		clk := newDrvClock()
		bench := firmwaresim.NewBench()
		addr := dsOnBench(t, bench, 7, &firmwaresim.DS18B20Options{ChipOptions: clk.chip(
			firmwaresim.Fault{Kind: firmwaresim.FaultDropout, From: 10 * time.Second, For: 20 * time.Second}),
			Temperature: firmwaresim.SignalSpec{Kind: firmwaresim.KindRamp, Base: 5, Slope: 0.1}})
		s := newDS(t, bench, "t", FormatROM(addr), 12, clk)
		readOnce(t, s, "t", clk.Now())
		clk.Sleep(10 * time.Second)
		readFails(t, s, clk.Now(), "no presence")
		clk.Sleep(20 * time.Second)
		// The conversion latches the signal when it starts: at 30.75 s.
		if rs := readOnce(t, s, "t", clk.Now()); !near(rs[0].Value, 5+0.1*30.752, 0.0625/2) {
			t.Fatalf("after the dropout: %+v", rs)
		}
	})
	t.Run("another device's id", func(t *testing.T) {
		clk := newDrvClock()
		bench := firmwaresim.NewBench()
		dsOnBench(t, bench, 7, &firmwaresim.DS18B20Options{ChipOptions: clk.chip()})
		s := newDS(t, bench, "t", FormatROM(firmwaresim.DS18B20Address(8)), 12, clk)
		readFails(t, s, clk.Now(), "ds18b20: ", "did not respond")
	})
}

func TestDS18B20SpecErrors(t *testing.T) {
	bench := firmwaresim.NewBench()
	good := FormatROM(firmwaresim.DS18B20Address(0xabc))
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"no address", Spec{}, `address (the ROM id, like "28-00000abcdef0") is required`},
		{"not a ROM id", Spec{Address: "28-xyz"}, `1-Wire id "28-xyz"`},
		{"bad CRC", Spec{Address: "00000000000abc28"}, `1-Wire id "00000000000abc28": bad CRC byte 00`},
		{"another family", Spec{Address: "10-000000000abc"}, "10-000000000abc is family 0x10, not a DS18B20 (0x28)"},
		{"8 bits", Spec{Address: good, Options: &DS18B20Options{ResolutionBits: 8}}, "resolution_bits 8: want 9 to 12"},
		{"13 bits", Spec{Address: good, Options: &DS18B20Options{ResolutionBits: 13}}, "resolution_bits 13"},
		{"unknown metric", Spec{Address: good, Metrics: []Metric{{Name: "humidity"}}}, `unknown metric "humidity" (ds18b20 has temperature)`},
		{"kelvin", Spec{Address: good, Metrics: []Metric{{Name: "temperature", Unit: "K"}}}, `metric temperature is in "Cel", not "K"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.ID, spec.Driver, spec.Bus, spec.Buses = "t", DriverDS18B20, "sim-w1-0", bench
			_, err := builtin(t).New(spec)
			errContains(t, err, "ds18b20: "+tc.want)
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("%v is not an ErrSpec", err)
			}
		})
	}
}
