package sensors

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/outposthq/outpost"
)

// edgeWait bounds each wait for an edge, so Watch notices its ctx ending.
const edgeWait = 100 * time.Millisecond

// pinIn is a digital input: Read reports its state, 1 or 0.
type pinIn struct {
	id        string
	pin       gpio.PinIO
	metric    Metric
	activeLow bool
	pull      gpio.Pull
	debounce  time.Duration
	now       func() time.Time
	closed    atomic.Bool
	halted    atomic.Bool // a Watch halted the pin when its ctx ended

	mu   sync.Mutex // serializes reading the level and recording it
	last int        // the state last reported by Read or Watch, -1 for none
}

// pinWatch is a pinIn that also reports edges as they happen.
type pinWatch struct{ *pinIn }

var (
	_ Sensor  = (*pinIn)(nil)
	_ Watcher = pinWatch{}
)

// NewGPIO is the Factory of the gpio driver: the pin spec.Address
// ("GPIO17", required) of the pin bank spec.Bus, as an input with a pull
// resistor. Its one output is spec.Metrics[0], or "state" in unit "1":
// 1 for High (Low with ActiveLow), else 0. The sensor is a Watcher
// reporting each debounced change, unless Options.NoEdges: then it has
// only Read, the periodic state. spec.Options is a *GPIOOptions or nil.
func NewGPIO(spec Spec) (Sensor, error) {
	const driver = DriverGPIO
	o, err := options[GPIOOptions](driver, &spec)
	if err != nil {
		return nil, err
	}
	pull, ok := map[string]gpio.Pull{"": gpio.PullUp, "up": gpio.PullUp, "down": gpio.PullDown, "none": gpio.Float}[o.Pull]
	if !ok {
		return nil, specErr(driver, spec.ID, "pull %q: want up, down or none", o.Pull)
	}
	debounce := o.Debounce
	switch {
	case debounce < 0:
		return nil, specErr(driver, spec.ID, "debounce %v is negative", debounce)
	case debounce == 0:
		debounce = 20 * time.Millisecond
	}
	m, err := outputMetric(driver, &spec, Metric{Name: "state", Unit: UnitOne}, UnitOne)
	if err != nil {
		return nil, err
	}
	if spec.Address == "" {
		return nil, specErr(driver, spec.ID, "address (the pin, like \"GPIO17\") is required")
	}
	if spec.Buses == nil {
		return nil, specErr(driver, spec.ID, "no buses to find pin %s of %q on", spec.Address, spec.Bus)
	}
	pin, err := spec.Buses.Pin(spec.Bus, spec.Address)
	if err != nil {
		return nil, driverErr(driver, spec.ID, "%w", err)
	}
	edge := gpio.BothEdges
	if o.NoEdges {
		edge = gpio.NoEdge
	}
	if err := pin.In(pull, edge); err != nil {
		return nil, driverErr(driver, spec.ID, "pin %s: %w", spec.Address, err)
	}
	p := &pinIn{id: spec.ID, pin: pin, metric: m, activeLow: o.ActiveLow, pull: pull, debounce: debounce, now: spec.Now, last: -1}
	if p.now == nil {
		p.now = time.Now
	}
	if o.NoEdges {
		return p, nil
	}
	return pinWatch{p}, nil
}

// Read appends the pin's state now.
func (p *pinIn) Read(ctx context.Context, now time.Time, dst []outpost.Reading) ([]outpost.Reading, error) {
	if err := ctx.Err(); err != nil {
		return dst, p.err(err)
	}
	if p.closed.Load() {
		return dst, p.err(errClosed)
	}
	p.mu.Lock()
	v := p.state()
	p.last = v
	p.mu.Unlock()
	return append(dst, p.reading(now, v)), nil
}

// Close halts the pin, ending a pending wait for an edge. The pin itself
// belongs to its bank.
func (p *pinIn) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	if err := p.pin.Halt(); err != nil {
		return p.err(err)
	}
	return nil
}

// Watch reports the pin's changes until ctx ends: after each edge it waits
// out the debounce time, reads the level and emits it if it differs from
// the state last reported (by Watch or Read), stamped with spec.Now.
//
// Each wait for an edge is bounded (100 ms) so the loop sees ctx end; the
// pin is also halted when ctx ends, which cuts a pending wait short on a
// pin whose clock does not move (a simulated pin on a stopped fake clock).
// A later Watch sets the pin up for edges again.
func (p pinWatch) Watch(ctx context.Context, emit func(rs []outpost.Reading)) error {
	if p.halted.Swap(false) {
		if err := p.pin.In(p.pull, gpio.BothEdges); err != nil {
			return p.err(err)
		}
	}
	haltDone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(haltDone)
		p.halted.Store(true)
		// Best effort, with no one to tell: the wait ends at its timeout
		// anyway on a pin that keeps time.
		_ = p.pin.Halt()
	})
	defer func() {
		// If the halt began, let it finish: a later Watch must not set
		// the pin up and then see this halt land on it.
		if !stop() {
			<-haltDone
		}
	}()
	for ctx.Err() == nil {
		if p.closed.Load() {
			return p.err(errClosed)
		}
		if !p.pin.WaitForEdge(edgeWait) {
			continue // a timeout, to look at ctx again
		}
		if sleepCtx(ctx, p.debounce) != nil {
			break
		}
		p.mu.Lock() // read and record as one, against a concurrent Read
		v := p.state()
		changed := v != p.last
		p.last = v
		p.mu.Unlock()
		if changed {
			emit([]outpost.Reading{p.reading(p.now(), v)})
		}
	}
	return nil
}

// state is the pin's logical state: 1 or 0.
func (p *pinIn) state() int {
	if p.pin.Read() == gpio.Level(!p.activeLow) {
		return 1
	}
	return 0
}

func (p *pinIn) reading(t time.Time, v int) outpost.Reading {
	return outpost.Reading{Sensor: p.id, Metric: p.metric.Name, Unit: p.metric.Unit, TS: t.UnixNano(), Value: float64(v)}
}

func (p *pinIn) err(err error) error { return driverErr(DriverGPIO, p.id, "%w", err) }
