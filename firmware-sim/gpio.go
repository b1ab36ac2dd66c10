package firmwaresim

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/conn/v3/pin"
)

// GPIOOptions configure a simulated input pin. Nil options mean a
// fault-free pin on the real clock, constantly Low.
type GPIOOptions struct {
	ChipOptions
	// Level is the signal on the pin: above 0.5 reads High. An empty Kind
	// is constant 0.
	Level SignalSpec
	// Poll is how often WaitForEdge samples the signal, on Sleep; 0 means
	// 1 ms.
	Poll time.Duration
}

// GPIOPin is a simulated GPIO pin implementing periph's gpio.PinIO: as an
// input it reads its signal, e.g. a door contact; as an output it reads
// back the level driven. Edges are found by sampling the signal every Poll
// on the injected clock, so a fake clock tests them without waiting.
type GPIOPin struct {
	name   string
	num    int
	poll   time.Duration
	mu     sync.Mutex
	f      *faults
	sig    *Signal
	pull   gpio.Pull
	edge   gpio.Edge
	out    bool
	level  gpio.Level // driven level when out
	last   gpio.Level // level at the last edge check
	halted bool
}

var _ gpio.PinIO = (*GPIOPin)(nil)

// NewGPIOPin returns a simulated pin with a name and logical number.
func NewGPIOPin(name string, number int, opts *GPIOOptions) (*GPIOPin, error) {
	if opts == nil {
		opts = &GPIOOptions{}
	}
	f, err := newFaults(opts.ChipOptions)
	if err != nil {
		return nil, err
	}
	p := &GPIOPin{name: name, num: number, poll: opts.Poll, f: f}
	if p.poll <= 0 {
		p.poll = time.Millisecond
	}
	if p.sig, err = signalOr(opts.Level, 0, f.start); err != nil {
		return nil, fmt.Errorf("firmwaresim: gpio %s: %w", name, err)
	}
	p.last = p.sample()
	return p, nil
}

// In implements gpio.PinIn: the pin becomes an input; edge selects what
// WaitForEdge waits for.
func (p *GPIOPin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out, p.pull, p.edge, p.halted = false, pull, edge, false
	p.last = p.sampleLocked()
	return nil
}

// Read implements gpio.PinIn.
func (p *GPIOPin) Read() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out {
		return p.level
	}
	return p.sampleLocked()
}

// WaitForEdge implements gpio.PinIn: it samples the signal every Poll
// until an edge of the kind set by In, the timeout (-1: none) or Halt. It
// returns false at once if In asked for no edges.
func (p *GPIOPin) WaitForEdge(timeout time.Duration) bool {
	p.mu.Lock()
	if p.out || p.edge == gpio.NoEdge {
		p.mu.Unlock()
		return false
	}
	sleep, now := p.f.sleep, p.f.now
	p.mu.Unlock()
	deadline := now().Add(timeout)
	for {
		p.mu.Lock()
		if p.halted {
			p.mu.Unlock()
			return false
		}
		l := p.sampleLocked()
		prev := p.last
		p.last = l
		edge := p.edge
		p.mu.Unlock()
		if l != prev && (edge == gpio.BothEdges || (edge == gpio.RisingEdge) == bool(l)) {
			return true
		}
		if timeout >= 0 && !now().Before(deadline) {
			return false
		}
		sleep(p.poll)
	}
}

// Pull implements gpio.PinIn.
func (p *GPIOPin) Pull() gpio.Pull {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pull
}

// DefaultPull implements gpio.PinIn.
func (p *GPIOPin) DefaultPull() gpio.Pull { return gpio.Float }

// Out implements gpio.PinOut: the pin drives l and reads it back.
func (p *GPIOPin) Out(l gpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out, p.level = true, l
	return nil
}

// PWM implements gpio.PinOut; the simulated pin has no PWM.
func (p *GPIOPin) PWM(gpio.Duty, physic.Frequency) error {
	return errors.New("firmwaresim: gpio: PWM not simulated")
}

// Halt implements conn.Resource: it ends a pending WaitForEdge.
func (p *GPIOPin) Halt() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.halted = true
	return nil
}

// String implements pin.Pin.
func (p *GPIOPin) String() string { return p.name }

// Name implements pin.Pin.
func (p *GPIOPin) Name() string { return p.name }

// Number implements pin.Pin.
func (p *GPIOPin) Number() int { return p.num }

// Function implements pin.Pin.
func (p *GPIOPin) Function() string { return string(p.Func()) }

// Func implements pin.PinFunc.
func (p *GPIOPin) Func() pin.Func {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out {
		return gpio.OUT
	}
	return gpio.IN
}

// SupportedFuncs implements pin.PinFunc.
func (p *GPIOPin) SupportedFuncs() []pin.Func { return []pin.Func{gpio.IN, gpio.OUT} }

// SetFunc implements pin.PinFunc.
func (p *GPIOPin) SetFunc(f pin.Func) error {
	switch f {
	case gpio.IN:
		return p.In(gpio.PullNoChange, gpio.NoEdge)
	case gpio.OUT:
		return p.Out(gpio.Low)
	}
	return fmt.Errorf("firmwaresim: gpio %s: function %s not supported", p.name, f)
}

func (p *GPIOPin) sample() gpio.Level {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sampleLocked()
}

func (p *GPIOPin) sampleLocked() gpio.Level {
	now := p.f.now()
	if !p.f.present(now) {
		// A cut wire: the input reads its pull resistor (a floating one
		// is taken as Low).
		return p.pull == gpio.PullUp
	}
	return p.f.value(0, p.sig.At(now.UnixNano()), now) > 0.5
}

var _ pin.PinFunc = (*GPIOPin)(nil)
