package firmwaresim

import (
	"math"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/onewire"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ds18b20"
)

func newDS(t *testing.T, serial uint64, o *DS18B20Options) *DS18B20 {
	t.Helper()
	d, err := NewDS18B20(DS18B20Address(serial), o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDS18B20RealDriverTwoDevicesBySearch(t *testing.T) {
	for _, bits := range []int{9, 10, 11, 12} {
		t.Run("", func(t *testing.T) {
			clk := newFakeClock()
			want := map[onewire.Address]float64{}
			bus := NewOneWireBus("1w-sim")
			for i, c := range []float64{21.4375, -10.3} {
				d := newDS(t, uint64(0xA1B2C3+i*0x1111), &DS18B20Options{ChipOptions: clk.opts(), Temperature: constant(c)})
				if err := bus.Attach(d); err != nil {
					t.Fatal(err)
				}
				want[d.Address()] = c
			}
			addrs, err := bus.Search(false)
			if err != nil || len(addrs) != 2 {
				t.Fatalf("search: %v %v", addrs, err)
			}
			res := 0.0625 * float64(int(1)<<(12-bits))
			devs := map[onewire.Address]*ds18b20.Dev{}
			for _, a := range addrs {
				dev, err := ds18b20.New(bus, a, bits)
				if err != nil {
					t.Fatal(err)
				}
				devs[a] = dev
				// Before any conversion the scratchpad holds the power-on
				// 85 °C. The driver means to reject it but compares with
				// 85 K (85*physic.Celsius), so it passes through.
				if got, err := dev.LastTemp(); err != nil || got != 85*physic.Kelvin+physic.ZeroCelsius {
					t.Fatalf("before any conversion: %v, %v; want the power-on 85 °C", got, err)
				}
			}
			if err := ds18b20.StartAll(bus); err != nil {
				t.Fatal(err)
			}
			clk.Sleep(94 * time.Millisecond << (bits - 9))
			for a, dev := range devs {
				got, err := dev.LastTemp()
				if err != nil {
					t.Fatal(err)
				}
				c := float64(got-physic.ZeroCelsius) / float64(physic.Celsius)
				if math.Abs(c-want[a]) > res/2+1e-9 {
					t.Errorf("%v at %d bits: %v °C, want %v ±%v", a, bits, c, want[a], res/2)
				}
			}
		})
	}
}

// TestDS18B20SenseRealClock runs the driver's own Sense, which sleeps the
// real conversion time (94 ms at 9 bits), against the real clock.
func TestDS18B20SenseRealClock(t *testing.T) {
	bus := NewOneWireBus("1w")
	d := newDS(t, 42, &DS18B20Options{Temperature: constant(-3.5)})
	if err := bus.Attach(d); err != nil {
		t.Fatal(err)
	}
	dev, err := ds18b20.New(bus, d.Address(), 9)
	if err != nil {
		t.Fatal(err)
	}
	var e physic.Env
	if err := dev.Sense(&e); err != nil {
		t.Fatal(err)
	}
	if c := celsius(e); c != -3.5 {
		t.Fatalf("%v °C, want -3.5", c)
	}
}

// TestDS18B20OneOfTwoDropsOut: the other device keeps the bus alive, so
// the missing one reads as all 0xFF, which the driver reports.
func TestDS18B20OneOfTwoDropsOut(t *testing.T) {
	clk := newFakeClock()
	bus := NewOneWireBus("1w")
	ok := newDS(t, 1, &DS18B20Options{ChipOptions: clk.opts()})
	gone := newDS(t, 2, &DS18B20Options{ChipOptions: clk.opts(Fault{Kind: FaultDropout, From: time.Second})})
	for _, d := range []*DS18B20{ok, gone} {
		if err := bus.Attach(d); err != nil {
			t.Fatal(err)
		}
	}
	if addrs, err := bus.Search(false); err != nil || len(addrs) != 2 {
		t.Fatalf("before dropout: %v %v", addrs, err)
	}
	clk.Sleep(time.Second)
	if addrs, err := bus.Search(false); err != nil || len(addrs) != 1 || addrs[0] != ok.Address() {
		t.Fatalf("in dropout: %v %v, want only %v", addrs, err, ok.Address())
	}
	if _, err := ds18b20.New(bus, gone.Address(), 12); err == nil || !strings.Contains(err.Error(), "did not respond") {
		t.Fatalf("err %v, want the driver's no-response error", err)
	}
	if _, err := ds18b20.New(bus, ok.Address(), 12); err != nil {
		t.Fatal(err)
	}
}

func TestDS18B20Faults(t *testing.T) {
	cases := []struct {
		name  string
		fault Fault
		want  string
	}{
		{"crc", Fault{Kind: FaultCRC}, "incorrect scratchpad CRC"},
		{"nack", Fault{Kind: FaultNACK}, "no presence"},
		{"dropout", Fault{Kind: FaultDropout, From: time.Second}, "no presence"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			bus := NewOneWireBus("1w")
			d := newDS(t, 7, &DS18B20Options{ChipOptions: clk.opts(tc.fault), Temperature: constant(25)})
			if err := bus.Attach(d); err != nil {
				t.Fatal(err)
			}
			clk.Sleep(2 * time.Second)
			var err error
			if _, err = ds18b20.New(bus, d.Address(), 12); err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
		})
	}
}
