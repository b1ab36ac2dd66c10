package firmwaresim

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ads1x15"
	"periph.io/x/devices/v3/bmxx80"
)

func TestADS1115RealDriverReadsVoltage(t *testing.T) {
	cases := []struct {
		ch   ads1x15.Channel
		max  physic.ElectricPotential
		fsr  float64
		want float64
	}{
		{ads1x15.Channel0, 5 * physic.Volt, 6.144, 3.3},
		{ads1x15.Channel1, 4 * physic.Volt, 4.096, 1.2345},
		{ads1x15.Channel2, 200 * physic.MilliVolt, 0.256, 0.1234},
		{ads1x15.Channel3, 1 * physic.Volt, 1.024, 0.75},
		{ads1x15.Channel0Minus1, 4 * physic.Volt, 4.096, 3.3 - 1.2345},
		{ads1x15.Channel0, 1 * physic.Volt, 1.024, 1.024}, // 3.3 V clips at full scale
	}
	clk := newFakeClock()
	chip, err := NewADS1115(&ADS1115Options{ChipOptions: clk.opts(),
		Inputs: [4]SignalSpec{constant(3.3), constant(1.2345), constant(0.1234), constant(0.75)}})
	if err != nil {
		t.Fatal(err)
	}
	bus := NewI2CBus("i2c")
	if err := bus.Attach(ads1x15.I2CAddr, chip); err != nil {
		t.Fatal(err)
	}
	adc, err := ads1x15.NewADS1115(bus, &ads1x15.DefaultOpts)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.ch.String(), func(t *testing.T) {
			p, err := adc.PinForChannel(tc.ch, tc.max, 860*physic.Hertz, ads1x15.BestQuality)
			if err != nil {
				t.Fatal(err)
			}
			s, err := p.Read()
			if err != nil {
				t.Fatal(err)
			}
			lsb := tc.fsr / 32768
			if got := float64(s.V) / float64(physic.Volt); math.Abs(got-tc.want) > lsb {
				t.Errorf("%v V (raw %d), want %v ±%v", got, s.Raw, tc.want, lsb)
			}
		})
	}
}

func TestGPIOWaitForEdge(t *testing.T) {
	cases := []struct {
		name    string
		edge    gpio.Edge
		level   SignalSpec
		timeout time.Duration
		want    bool
	}{
		{"door opens", gpio.RisingEdge, SignalSpec{Kind: KindStep, Base: 0, Value: 1, Period: 3 * time.Second}, 5 * time.Second, true},
		{"opens, waiting for close", gpio.FallingEdge, SignalSpec{Kind: KindStep, Base: 0, Value: 1, Period: 3 * time.Second}, 5 * time.Second, false},
		{"closes", gpio.BothEdges, SignalSpec{Kind: KindStep, Base: 1, Value: 0, Period: 3 * time.Second}, -1, true},
		{"timeout before change", gpio.BothEdges, SignalSpec{Kind: KindStep, Base: 0, Value: 1, Period: 3 * time.Second}, time.Second, false},
		{"no edge asked", gpio.NoEdge, SignalSpec{Kind: KindStep, Base: 0, Value: 1, Period: 3 * time.Second}, 5 * time.Second, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			p, err := NewGPIOPin("door", 17, &GPIOOptions{ChipOptions: clk.opts(), Level: tc.level, Poll: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.In(gpio.PullUp, tc.edge); err != nil {
				t.Fatal(err)
			}
			start := clk.Now()
			before := p.Read()
			if got := p.WaitForEdge(tc.timeout); got != tc.want {
				t.Fatalf("WaitForEdge = %v, want %v", got, tc.want)
			}
			if tc.want {
				if el := clk.Now().Sub(start); el < 3*time.Second || el > 3*time.Second+10*time.Millisecond {
					t.Errorf("edge after %v, want 3s", el)
				}
				if p.Read() == before {
					t.Errorf("level still %v after the edge", before)
				}
			}
		})
	}
}

func TestGPIOOutReadsBack(t *testing.T) {
	p, err := NewGPIOPin("led", 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Out(gpio.High); err != nil {
		t.Fatal(err)
	}
	if p.Read() != gpio.High || p.Func() != gpio.OUT {
		t.Fatal("output does not read back")
	}
}

// TestBME280Faults runs the real bmxx80 driver against chips with faults.
func TestBME280Faults(t *testing.T) {
	clk := newFakeClock()
	open := func(t *testing.T, f ...Fault) (*BME280, *bmxx80.Dev) {
		t.Helper()
		chip, err := NewBME280(&BME280Options{ChipOptions: clk.opts(f...),
			Temperature: SignalSpec{Kind: KindRamp, Base: 10, Slope: 1}})
		if err != nil {
			t.Fatal(err)
		}
		dev, _ := newBMEDev(t, chip)
		return chip, dev
	}
	sense := func(t *testing.T, dev *bmxx80.Dev) (float64, error) {
		t.Helper()
		var e physic.Env
		err := dev.Sense(&e)
		return celsius(e), err
	}

	t.Run("unknown address NACKs", func(t *testing.T) {
		bus := NewI2CBus("i2c")
		if _, err := bmxx80.NewI2C(bus, 0x77, &bmxx80.DefaultOpts); err == nil || !strings.Contains(err.Error(), "no ACK") {
			t.Fatalf("err %v, want a NACK", err)
		}
		if err := bus.Tx(0x77, []byte{0xD0}, make([]byte, 1)); !errors.Is(err, ErrNACK) {
			t.Fatalf("bus err %v, want ErrNACK", err)
		}
	})
	t.Run("nack", func(t *testing.T) {
		_, dev := open(t, Fault{Kind: FaultNACK, From: time.Second})
		clk.Sleep(time.Second)
		if _, err := sense(t, dev); err == nil || !strings.Contains(err.Error(), "no ACK") {
			t.Fatalf("err %v, want a NACK", err)
		}
	})
	t.Run("dropout ends", func(t *testing.T) {
		_, dev := open(t, Fault{Kind: FaultDropout, From: time.Second, For: 2 * time.Second})
		clk.Sleep(time.Second)
		if _, err := sense(t, dev); err == nil {
			t.Fatal("no error in dropout")
		}
		clk.Sleep(2 * time.Second)
		if c, err := sense(t, dev); err != nil || c != 13 {
			t.Fatalf("after dropout: %v °C, %v; want 13 °C", c, err)
		}
	})
	t.Run("stuck", func(t *testing.T) {
		_, dev := open(t, Fault{Kind: FaultStuck, From: 2 * time.Second, For: 5 * time.Second})
		clk.Sleep(time.Second)
		var got []float64
		for range 4 {
			c, err := sense(t, dev)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, c)
			clk.Sleep(2 * time.Second)
		}
		// t=1 reads 11; t=3 and t=5 are stuck at 11; t=7 is free: 17.
		if want := []float64{11, 11, 11, 17}; !equalFloats(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	t.Run("spikes", func(t *testing.T) {
		_, dev := open(t, Fault{Kind: FaultSpikes, Magnitude: 5})
		c, err := sense(t, dev)
		if err != nil || math.Abs(c-10) != 5 {
			t.Fatalf("%v °C, %v; want 10±5", c, err)
		}
	})
	t.Run("slow", func(t *testing.T) {
		_, dev := open(t, Fault{Kind: FaultSlow, Delay: 100 * time.Millisecond})
		start := clk.Now()
		if _, err := sense(t, dev); err != nil {
			t.Fatal(err)
		}
		// write ctrl_meas, read status, read data: three transactions.
		if el := clk.Now().Sub(start); el != 300*time.Millisecond {
			t.Fatalf("Sense took %v on the chip's clock, want 300ms", el)
		}
	})
}

// TestDeterministicWithSeed runs a chip with random signals and random
// faults twice and expects the same readings, and a different seed to
// differ.
func TestDeterministicWithSeed(t *testing.T) {
	run := func(seed uint64) []float64 {
		clk := newFakeClock()
		o := clk.opts(Fault{Kind: FaultSpikes, Probability: 0.3, Magnitude: 2}, Fault{Kind: FaultNACK, Probability: 0.2})
		o.Seed = seed
		chip, err := NewBME280(&BME280Options{ChipOptions: o,
			Temperature: SignalSpec{Kind: KindRandomWalk, Base: 20, Step: 0.5, Noise: 0.1, Seed: seed}})
		if err != nil {
			t.Fatal(err)
		}
		bus := NewI2CBus("i2c")
		if err := bus.Attach(0x76, chip); err != nil {
			t.Fatal(err)
		}
		var dev *bmxx80.Dev
		for dev == nil { // the NACK fault may refuse the first tries
			dev, _ = bmxx80.NewI2C(bus, 0x76, &bmxx80.DefaultOpts)
		}
		var out []float64
		for range 15 {
			var e physic.Env
			if err := dev.Sense(&e); err != nil {
				out = append(out, math.NaN())
				continue
			}
			out = append(out, celsius(e))
			clk.Sleep(time.Second)
		}
		return out
	}
	a, b, c := run(1), run(1), run(2)
	if !equalFloats(a, b) {
		t.Fatalf("same seed differs:\n%v\n%v", a, b)
	}
	if equalFloats(a, c) {
		t.Fatal("different seeds agree")
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(math.IsNaN(a[i]) && math.IsNaN(b[i])) {
			return false
		}
	}
	return true
}
