package sensors

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	firmwaresim "github.com/outposthq/outpost/firmware-sim"
)

// Each driver's Factory, called directly, returns a nil Sensor (a nil
// interface, not a typed nil a caller would Close) when the spec is bad
// or the bus cannot be had.
func TestFactoriesFailWithNil(t *testing.T) {
	bench := firmwaresim.NewBench()
	pin, err := firmwaresim.NewGPIOPin("GPIO17", 17, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bench.AddPin("sim-gpio", pin); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		driver string
		f      Factory
		addr   string
	}{
		{DriverBME280, NewBME280, "0x76"},
		{DriverBMP280, NewBMP280, "0x77"},
		{DriverDS18B20, NewDS18B20, "28-00000abcdef0"},
		{DriverGPIO, NewGPIO, "GPIO17"},
		{DriverADS1115, NewADS1115, "0x48"},
	} {
		t.Run(tc.driver, func(t *testing.T) {
			for _, spec := range []Spec{
				{ID: "x", Driver: tc.driver, Buses: bench, Bus: "sim-gpio", Address: tc.addr, Options: struct{}{}}, // bad options
				{ID: "x", Driver: tc.driver, Address: tc.addr},                                                     // no buses
				{ID: "x", Driver: tc.driver, Buses: bench, Bus: "sim-gpio", Address: "nonsense"},                   // bad address
			} {
				s, err := tc.f(spec)
				if err == nil {
					s.Close()
					t.Fatalf("%+v: factory succeeded", spec)
				}
				if s != nil {
					t.Errorf("%+v: factory returned %#v with %v", spec, s, err)
				}
			}
			// A bus of another kind (for gpio: a bank that is not there).
			spec := Spec{ID: "x", Driver: tc.driver, Buses: bench, Bus: "sim-gpio", Address: tc.addr}
			if tc.driver == DriverGPIO {
				spec.Bus = "sim-i2c0"
			}
			s, err := tc.f(spec)
			if err == nil {
				s.Close()
				t.Fatalf("%+v: factory succeeded on the wrong bus", spec)
			}
			if s != nil || errors.Is(err, ErrSpec) {
				t.Errorf("%+v: factory returned %#v, %v; want nil and a retryable error", spec, s, err)
			}
		})
	}
}

// contractSensor counts its Closes.
type contractSensor struct{ closed atomic.Int32 }

func (s *contractSensor) Read(context.Context, time.Time, []outpost.Reading) ([]outpost.Reading, error) {
	return nil, nil
}

func (s *contractSensor) Close() error {
	s.closed.Add(1)
	return nil
}

// Registry.New holds factories to their contract: what a failing factory
// returned anyway is closed, and a factory's nil sensor without an error
// is an error, so New never hands out a nil Sensor.
func TestRegistryFactoryContract(t *testing.T) {
	built := &contractSensor{}
	r := NewRegistry()
	for name, f := range map[string]Factory{
		"both":      func(Spec) (Sensor, error) { return built, errors.New("half built") },
		"nil":       func(Spec) (Sensor, error) { return nil, nil },
		"typed-nil": func(Spec) (Sensor, error) { return (*contractSensor)(nil), nil },
		"typed-nil-err": func(Spec) (Sensor, error) {
			return (*contractSensor)(nil), errors.New("absent")
		},
	} {
		if err := r.Register(name, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ driver, want string }{
		{"both", "sensors: sensor x: half built"},
		{"nil", `sensors: sensor x: driver "nil" returned no sensor and no error`},
		{"typed-nil", `sensors: sensor x: driver "typed-nil" returned no sensor and no error`},
		{"typed-nil-err", "sensors: sensor x: absent"},
	} {
		for _, orLater := range []bool{false, true} {
			newSensor := r.New
			if orLater {
				newSensor = r.NewOrLater
			}
			s, err := newSensor(Spec{ID: "x", Driver: tc.driver})
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("%s (NewOrLater %v): error %v, want %q", tc.driver, orLater, err, tc.want)
			}
			if !orLater {
				if s != nil {
					t.Errorf("%s: New returned %#v with its error", tc.driver, s)
				}
				continue
			}
			// Not a spec error: NewOrLater returns its stand-in, which
			// holds nothing until it is built.
			if _, ok := s.(*later); !ok {
				t.Fatalf("%s: NewOrLater returned %#v, want its stand-in", tc.driver, s)
			}
			if err := s.Close(); err != nil {
				t.Errorf("%s: close the stand-in: %v", tc.driver, err)
			}
		}
	}
	if n := built.closed.Load(); n != 2 {
		t.Errorf("the sensor a failing factory returned was closed %d times, want once per New", n)
	}
}

// A poller given no sensor reports it failing instead of panicking.
func TestPollerNilSensor(t *testing.T) {
	events := make(chan HealthEvent, 4)
	p := NewPoller(nil, Spec{ID: "x", Interval: time.Millisecond}, nil, &PollerOptions{
		Supervision: Supervision{FailAfter: 1, Retries: -1},
		OnHealth:    func(ev HealthEvent) { events <- ev },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	select {
	case ev := <-events:
		if ev.Condition != HealthFailing || !ev.Active || !strings.Contains(ev.Err, "no sensor") {
			t.Errorf("health event %+v, want failing: no sensor", ev)
		}
	case <-ctx.Done():
		t.Error("no health event")
	}
	cancel()
	<-done
}
