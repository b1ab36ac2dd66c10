package sensors

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	firmwaresim "github.com/outposthq/outpost/firmware-sim"
)

// pinOnBench adds a simulated pin GPIO17 to bank "sim-gpio0".
func pinOnBench(t *testing.T, o *firmwaresim.GPIOOptions) *firmwaresim.Bench {
	t.Helper()
	p, err := firmwaresim.NewGPIOPin("GPIO17", 17, o)
	if err != nil {
		t.Fatal(err)
	}
	bench := firmwaresim.NewBench()
	if err := bench.AddPin("sim-gpio0", p); err != nil {
		t.Fatal(err)
	}
	return bench
}

// doorOpens is a level that goes High (the door opens) 30 s in.
var doorOpens = firmwaresim.SignalSpec{Kind: firmwaresim.KindStep, Base: 0, Value: 1, Period: 30 * time.Second}

func TestGPIOReadsLevel(t *testing.T) {
	cases := []struct {
		name          string
		opts          *GPIOOptions
		metrics       []Metric
		want          Metric
		before, after float64
	}{
		{"defaults", nil, nil, Metric{Name: "state", Unit: "1"}, 0, 1},
		{"named", &GPIOOptions{Pull: "down"}, []Metric{{Name: "door_open", Unit: "1"}}, Metric{Name: "door_open", Unit: "1"}, 0, 1},
		{"no unit", &GPIOOptions{Pull: "none"}, []Metric{{Name: "door_open"}}, Metric{Name: "door_open", Unit: "1"}, 0, 1},
		{"active low", &GPIOOptions{ActiveLow: true, Pull: "up"}, []Metric{{Name: "door_closed"}}, Metric{Name: "door_closed", Unit: "1"}, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newDrvClock()
			bench := pinOnBench(t, &firmwaresim.GPIOOptions{ChipOptions: clk.chip(), Level: doorOpens})
			spec := Spec{ID: "door", Driver: DriverGPIO, Bus: "sim-gpio0", Address: "GPIO17", Buses: bench, Metrics: tc.metrics}
			if tc.opts != nil {
				spec.Options = tc.opts
			}
			s := newDriver(t, spec)
			for _, step := range []struct {
				after time.Duration
				want  float64
			}{{0, tc.before}, {29 * time.Second, tc.before}, {time.Second, tc.after}, {time.Hour, tc.after}} {
				clk.Sleep(step.after)
				rs := readOnce(t, s, "door", clk.Now())
				if len(rs) != 1 || rs[0].Value != step.want || rs[0].Metric != tc.want.Name || rs[0].Unit != tc.want.Unit || rs[0].Quality != outpost.QualityGood {
					t.Fatalf("after %v: %+v, want %v %v", step.after, rs, tc.want, step.want)
				}
			}
		})
	}
}

// watching runs s's Watch in a goroutine, collecting what it emits; stop
// ends it and waits for it.
type watching struct {
	once   sync.Once
	cancel context.CancelFunc
	done   chan error
	got    chan outpost.Reading
}

func watch(t *testing.T, s Sensor) *watching {
	t.Helper()
	w, ok := s.(Watcher)
	if !ok {
		t.Fatalf("%T is not a Watcher", s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wt := &watching{cancel: cancel, done: make(chan error, 1), got: make(chan outpost.Reading, 1000)}
	go func() {
		wt.done <- w.Watch(ctx, func(rs []outpost.Reading) {
			for _, r := range rs {
				wt.got <- r
			}
		})
	}()
	t.Cleanup(func() { wt.stop(t) })
	return wt
}

func (w *watching) next(t *testing.T) outpost.Reading {
	t.Helper()
	select {
	case r := <-w.got:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported")
	}
	return outpost.Reading{}
}

// stop ends the watch and waits for it; it may be called again.
func (w *watching) stop(t *testing.T) {
	t.Helper()
	w.once.Do(func() {
		w.cancel()
		select {
		case err := <-w.done:
			if err != nil {
				t.Errorf("Watch: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Watch did not return after its ctx ended")
		}
	})
}

// TestGPIOWatchReportsEdges: a door opening and closing every 5 s, on a
// fake clock, is reported change by change, stamped by spec.Now.
func TestGPIOWatchReportsEdges(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		t.Run(map[bool]string{false: "active high", true: "active low"}[activeLow], func(t *testing.T) {
			clk := newDrvClock()
			start := clk.Now()
			// High for 5 s, Low for 5 s, …
			level := firmwaresim.SignalSpec{Kind: firmwaresim.KindSine, Base: 0.5, Amplitude: 1, Period: 10 * time.Second}
			bench := pinOnBench(t, &firmwaresim.GPIOOptions{ChipOptions: clk.chip(), Level: level, Poll: 10 * time.Millisecond})
			s := newDriver(t, Spec{ID: "door", Driver: DriverGPIO, Bus: "sim-gpio0", Address: "GPIO17", Buses: bench,
				Metrics: []Metric{{Name: "door_open"}}, Now: clk.Now, Options: &GPIOOptions{ActiveLow: activeLow, Debounce: time.Millisecond}})
			w := watch(t, s)
			var prev outpost.Reading
			for i := range 6 {
				r := w.next(t)
				want := float64((i + 1) % 2) // opens first
				if activeLow {
					want = 1 - want
				}
				if r.Sensor != "door" || r.Metric != "door_open" || r.Unit != "1" || r.Value != want {
					t.Fatalf("change %d: %+v, want door_open %v", i, r, want)
				}
				// The edge is found within a poll of each 5 s boundary.
				edge := start.Add(time.Duration(i) * 5 * time.Second).UnixNano()
				if r.TS < edge || i > 0 && r.TS <= prev.TS {
					t.Fatalf("change %d at %v, before the edge at %v or the change before", i, time.Unix(0, r.TS), time.Unix(0, edge))
				}
				prev = r
			}
		})
	}
}

// TestGPIOWatchSkipsWhatReadReported: a change Read has reported already
// is not reported again by Watch.
func TestGPIOWatchSkipsWhatReadReported(t *testing.T) {
	clk := newDrvClock()
	start := clk.Now()
	bench := pinOnBench(t, &firmwaresim.GPIOOptions{ChipOptions: clk.chip(), Level: doorOpens, Poll: 10 * time.Millisecond})
	s := newDriver(t, Spec{ID: "door", Driver: DriverGPIO, Bus: "sim-gpio0", Address: "GPIO17", Buses: bench,
		Now: clk.Now, Options: &GPIOOptions{Debounce: time.Millisecond}})
	clk.Sleep(31 * time.Second)
	if rs := readOnce(t, s, "door", clk.Now()); rs[0].Value != 1 {
		t.Fatalf("read %+v, want the door open", rs)
	}
	w := watch(t, s)
	// Let the watch run well past the edge on the pin's clock.
	for deadline := time.Now().Add(10 * time.Second); clk.Now().Before(start.Add(time.Minute)); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("the watch does not move the pin's clock")
		}
	}
	w.stop(t)
	select {
	case r := <-w.got:
		t.Fatalf("reported %+v, which Read reported already", r)
	default:
	}
}

// TestGPIOWatchEndsOnStoppedClock: a pin whose clock stands still never
// times out a wait for an edge; Watch halts it when its ctx ends.
func TestGPIOWatchEndsOnStoppedClock(t *testing.T) {
	stopped := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	sleeps := 0
	bench := pinOnBench(t, &firmwaresim.GPIOOptions{ChipOptions: firmwaresim.ChipOptions{
		Now: func() time.Time { return stopped },
		Sleep: func(time.Duration) {
			mu.Lock()
			sleeps++
			mu.Unlock()
			runtime.Gosched()
		},
	}})
	s := newDriver(t, Spec{ID: "door", Driver: DriverGPIO, Bus: "sim-gpio0", Address: "GPIO17", Buses: bench})
	w := watch(t, s)
	for waiting := false; !waiting; runtime.Gosched() {
		mu.Lock()
		waiting = sleeps > 0
		mu.Unlock()
	}
	w.stop(t)
}

func TestGPIONoEdges(t *testing.T) {
	bench := pinOnBench(t, nil)
	s := newDriver(t, Spec{ID: "door", Driver: DriverGPIO, Bus: "sim-gpio0", Address: "GPIO17", Buses: bench,
		Options: &GPIOOptions{NoEdges: true}})
	if _, ok := s.(Watcher); ok {
		t.Fatal("with NoEdges the sensor is a Watcher")
	}
	if rs := readOnce(t, s, "door", time.Unix(5, 0)); len(rs) != 1 || rs[0].Value != 0 {
		t.Fatalf("read %+v", rs)
	}
}

func TestGPIOClose(t *testing.T) {
	bench := pinOnBench(t, nil)
	s, err := builtin(t).New(Spec{ID: "door", Driver: DriverGPIO, Bus: "sim-gpio0", Address: "GPIO17", Buses: bench})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	readFails(t, s, time.Now(), "gpio: sensor closed")
	err = s.(Watcher).Watch(context.Background(), func([]outpost.Reading) { t.Error("emitted after Close") })
	errContains(t, err, "gpio: sensor closed")
}

func TestGPIOSpecErrors(t *testing.T) {
	bench := pinOnBench(t, nil)
	bad := []struct {
		name    string
		spec    Spec
		want    string
		specErr bool // the error is an ErrSpec
	}{
		{"pull", Spec{Options: &GPIOOptions{Pull: "sideways"}}, `pull "sideways": want up, down or none`, true},
		{"debounce", Spec{Options: &GPIOOptions{Debounce: -time.Millisecond}}, "debounce -1ms is negative", true},
		{"two metrics", Spec{Metrics: []Metric{{Name: "a"}, {Name: "b"}}}, "2 metrics; gpio has one output", true},
		{"metric without a name", Spec{Metrics: []Metric{{Unit: "1"}}}, "metric without a name", true},
		{"no pin", Spec{Address: "-"}, `address (the pin, like "GPIO17") is required`, true},
		{"unknown pin", Spec{Address: "GPIO4"}, `no pin "GPIO4" in bank sim-gpio0 (has [GPIO17])`, false},
		{"unknown bank", Spec{Address: "GPIO17", Bus: "sim-gpio9"}, `no simulated pin bank "sim-gpio9"`, false},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.ID, spec.Driver, spec.Buses = "door", DriverGPIO, bench
			if spec.Bus == "" {
				spec.Bus = "sim-gpio0"
			}
			switch spec.Address {
			case "":
				spec.Address = "GPIO17"
			case "-":
				spec.Address = ""
			}
			_, err := builtin(t).New(spec)
			errContains(t, err, "gpio: ", tc.want)
			if errors.Is(err, ErrSpec) != tc.specErr {
				t.Fatalf("%v: ErrSpec %v, want %v", err, !tc.specErr, tc.specErr)
			}
		})
	}
}

// TestGPIOWatchAgain: a Watch after one whose ctx ended (and halted the
// pin) reports changes again.
func TestGPIOWatchAgain(t *testing.T) {
	clk := newDrvClock()
	level := firmwaresim.SignalSpec{Kind: firmwaresim.KindSine, Base: 0.5, Amplitude: 1, Period: 10 * time.Second}
	bench := pinOnBench(t, &firmwaresim.GPIOOptions{ChipOptions: clk.chip(), Level: level, Poll: 10 * time.Millisecond})
	s := newDriver(t, Spec{ID: "door", Driver: DriverGPIO, Bus: "sim-gpio0", Address: "GPIO17", Buses: bench,
		Now: clk.Now, Options: &GPIOOptions{Debounce: time.Millisecond}})
	for i := range 3 {
		w := watch(t, s)
		r := w.next(t)
		w.stop(t)
		if r.Metric != "state" || r.Value != 0 && r.Value != 1 {
			t.Fatalf("watch %d: %+v", i, r)
		}
	}
}
