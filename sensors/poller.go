package sensors

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
)

// Emit receives each poll's readings. The slice is handed over: the poller
// never touches it again.
type Emit func(ctx context.Context, rs []outpost.Reading)

// PollerOptions; nil means defaults.
type PollerOptions struct {
	Logger     zerolog.Logger   // default zerolog.Nop()
	MaxBackoff time.Duration    // longest wait after repeated failures, default 1m
	Now        func() time.Time // default time.Now
}

// Poller samples one sensor on its own ticker. A failing sensor backs off
// (doubling up to MaxBackoff) and never affects other pollers.
type Poller struct {
	s        Sensor
	spec     Spec
	emit     Emit
	log      zerolog.Logger
	maxBack  time.Duration
	now      func() time.Time
	readings atomic.Int64
	errors   atomic.Int64
	hint     int // size of the previous poll, to size the next slice
}

// NewPoller returns a poller for s; Run starts it.
func NewPoller(s Sensor, spec Spec, emit Emit, opts *PollerOptions) *Poller {
	p := &Poller{s: s, spec: spec, emit: emit, log: zerolog.Nop(), maxBack: time.Minute, now: time.Now}
	if opts != nil {
		p.log = opts.Logger
		if opts.MaxBackoff > 0 {
			p.maxBack = opts.MaxBackoff
		}
		if opts.Now != nil {
			p.now = opts.Now
		}
	}
	p.log = p.log.With().Str("sensor", spec.ID).Logger()
	return p
}

// Run polls until ctx is done. The caller owns the goroutine it runs in.
func (p *Poller) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.poll(ctx); err != nil {
			failures++
			p.errors.Add(1)
			wait := p.backoff(failures)
			// Log the first failure and then every tenth: a dead sensor
			// must not flood the log.
			if failures == 1 || failures%10 == 0 {
				p.log.Warn().Err(err).Int("failures", failures).Dur("retry_in", wait).Msg("sensor read failed")
			}
			t.Reset(wait)
			continue
		}
		if failures > 0 {
			p.log.Info().Int("failures", failures).Msg("sensor recovered")
			failures = 0
		}
		t.Reset(p.spec.Interval)
	}
}

func (p *Poller) poll(ctx context.Context) error {
	rs, err := p.s.Read(ctx, p.now(), make([]outpost.Reading, 0, p.hint))
	if err != nil {
		return err
	}
	if len(rs) == 0 {
		return nil
	}
	p.hint = len(rs)
	p.readings.Add(int64(len(rs)))
	p.emit(ctx, rs)
	return nil
}

func (p *Poller) backoff(failures int) time.Duration {
	d := p.spec.Interval
	for i := 1; i < failures && d < p.maxBack; i++ {
		d *= 2
	}
	return min(d, p.maxBack)
}

// Readings is how many readings this poller has emitted.
func (p *Poller) Readings() int64 { return p.readings.Load() }

// Errors is how many polls failed.
func (p *Poller) Errors() int64 { return p.errors.Load() }
