package sensors

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	firmwaresim "github.com/outposthq/outpost/firmware-sim"
	"github.com/outposthq/outpost/internal/testclock"
)

// The driver tests run the real periph drivers against firmware-sim's
// chips on a Bench, the way the gateway wires them: through a Registry
// with RegisterBuiltin and Spec.Buses.

// drvClock is a fake clock for simulated chips and sensors; Sleep
// advances it, so fault windows, conversions and edges are tested without
// waiting.
type drvClock struct{ *testclock.Clock }

func newDrvClock() *drvClock { return &drvClock{testclock.New(time.Unix(1_700_000_000, 0))} }

// sleepCtx is a ds18b20 conversion wait on this clock.
func (c *drvClock) sleepCtx(ctx context.Context, d time.Duration) error { return c.SleepCtx(ctx, d) }

// chip returns the ChipOptions of a chip on this clock with faults f.
func (c *drvClock) chip(f ...firmwaresim.Fault) firmwaresim.ChipOptions {
	return firmwaresim.ChipOptions{Now: c.Now, Sleep: c.Sleep, Seed: 7, Faults: f}
}

func constant(v float64) firmwaresim.SignalSpec {
	return firmwaresim.SignalSpec{Kind: firmwaresim.KindConstant, Value: v}
}

// builtin is a registry of this package's drivers.
func builtin(t *testing.T) *Registry {
	t.Helper()
	r := NewRegistry()
	if err := RegisterBuiltin(r); err != nil {
		t.Fatal(err)
	}
	return r
}

// newDriver builds spec's sensor through a registry and closes it when
// the test ends.
func newDriver(t *testing.T, spec Spec) Sensor {
	t.Helper()
	s, err := builtin(t).New(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close %s: %v", spec.ID, err)
		}
	})
	return s
}

// readOnce reads s at now and checks what every reading must hold.
func readOnce(t *testing.T, s Sensor, id string, now time.Time) []outpost.Reading {
	t.Helper()
	rs, err := s.Read(context.Background(), now, nil)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	for _, r := range rs {
		if r.Sensor != id || r.TS != now.UnixNano() {
			t.Fatalf("reading %+v: want sensor %s at %d", r, id, now.UnixNano())
		}
	}
	return rs
}

// readFails reads s at now and wants an error containing each of want.
func readFails(t *testing.T, s Sensor, now time.Time, want ...string) {
	t.Helper()
	rs, err := s.Read(context.Background(), now, nil)
	if err == nil {
		t.Fatalf("read: %v, want an error", rs)
	}
	errContains(t, err, want...)
	// The driver's name leads the message once, not once per layer.
	if msg := err.Error(); strings.Count(msg, "bme280: ")+strings.Count(msg, "bmp280: ") > 1 {
		t.Fatalf("error %q repeats the driver's name", msg)
	}
}

func errContains(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not contain %q", err, w)
		}
	}
}

// metricsOf lists the metric names and units of rs.
func metricsOf(rs []outpost.Reading) []Metric {
	ms := make([]Metric, len(rs))
	for i, r := range rs {
		ms[i] = Metric{Name: r.Metric, Unit: r.Unit}
	}
	return ms
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol+1e-9 }

func TestRegisterBuiltin(t *testing.T) {
	r := builtin(t)
	want := []string{DriverADS1115, DriverBME280, DriverBMP280, DriverDS18B20, DriverGPIO}
	if got := r.Names(); !slices.Equal(got, want) {
		t.Fatalf("registered %v, want %v", got, want)
	}
	if err := RegisterBuiltin(r); err == nil {
		t.Fatal("registering the drivers twice is no error")
	}
}

// TestSpecErrors: whatever the driver, a spec it cannot use is an
// ErrSpec (not worth retrying) named after the driver and sensor.
func TestSpecErrors(t *testing.T) {
	bench := firmwaresim.NewBench()
	cases := []struct {
		driver string
		opts   any    // of the wrong type
		addr   string // a good address
	}{
		{DriverBME280, &DS18B20Options{}, ""},
		{DriverBMP280, BMEOptions{}, "0x77"},
		{DriverDS18B20, &BMEOptions{}, "28-00000abcdef0"},
		{DriverGPIO, "pull: up", "GPIO17"},
		{DriverADS1115, &GPIOOptions{}, "0x49"},
	}
	for _, tc := range cases {
		t.Run(tc.driver, func(t *testing.T) {
			_, err := builtin(t).New(Spec{ID: "x", Driver: tc.driver, Buses: bench, Options: tc.opts})
			errContains(t, err, "sensors: sensor x: "+tc.driver+": options are ")
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("%v is not an ErrSpec", err)
			}
			_, err = builtin(t).New(Spec{ID: "x", Driver: tc.driver, Address: tc.addr})
			errContains(t, err, "sensors: sensor x: "+tc.driver+": no buses")
		})
	}
}
