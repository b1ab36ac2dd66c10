package sensors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
)

// Log keys of the poller.
const (
	keySensor    = "sensor"
	keyFailures  = "failures"
	keyRetryIn   = "retry_in"
	keyCondition = "condition"
	keyPolls     = "polls"
	keySince     = "since"
	keyDetail    = "detail"
)

// Emit receives the readings of each poll, and of each change a Watcher
// reports. The slice is handed over: the poller never touches it again.
//
// A poller whose sensor is a Watcher calls emit from two goroutines, its
// polls' and its watcher's, possibly at the same time: emit must be safe
// for concurrent use (the gateway's Bus.Publish is).
type Emit func(ctx context.Context, rs []outpost.Reading)

// PollerOptions configure a Poller; nil means the defaults.
type PollerOptions struct {
	Logger     zerolog.Logger // default zerolog.Nop()
	MaxBackoff time.Duration  // longest wait after repeated failures, default 1m
	// Now is the clock of poll times and of read durations (Timeout);
	// default time.Now.
	Now func() time.Time
	// Supervision tunes how the sensor is judged; the zero value means the
	// defaults documented on Supervision.
	Supervision Supervision
	// OnHealth, when set, is called on each change of a health condition,
	// from the goroutine running Run. The next poll waits for it: it must
	// return quickly.
	OnHealth func(HealthEvent)
	// OnRead, when set, is called with the duration of each successful
	// read (the one that gave the poll its readings), from the goroutine
	// running Run; it must return at once (a histogram's Observe).
	OnRead func(time.Duration)
}

// Poller samples one sensor on its own timer and supervises it: it retries
// failed reads, backs off a failing sensor (doubling from the interval up
// to MaxBackoff) without affecting other pollers, judges the readings
// (slow, stuck, spikes, bad) and reports health conditions as they begin
// and end.
type Poller struct {
	s        Sensor
	spec     Spec
	emit     Emit
	log      zerolog.Logger
	maxBack  time.Duration
	now      func() time.Time
	onHealth func(HealthEvent)
	onRead   func(time.Duration)
	retries  int
	timeout  time.Duration
	maxStep  map[string]float64

	// State of the goroutine running Run, touched by no other.
	hint                      int // size of the previous poll, to size the next slice
	failing, slow, stuck, bad condition
	last                      map[string]float64  // each metric's value in the latest poll that had it (stuck, when on)
	base                      map[string]float64  // each metric's last good value (MaxStep)
	spikes                    map[string]spikeRun // each metric's agreeing spikes in a row (MaxStep)

	mu sync.Mutex
	st Status

	tests chan testReq // Test's requests, served by Run between polls
}

// testReq is one Test: Run reads the sensor once and answers on done.
type testReq struct {
	ctx  context.Context
	done chan testResult // buffered: Run never waits on it
}

type testResult struct {
	readings []outpost.Reading
	took     time.Duration
	err      error
}

// NewPoller returns a poller for s; Run starts it. It starts nothing
// itself. A nil s is a sensor whose every read fails (the poller's
// failing health event says so), not a panic in Run; a nil emit drops
// the readings.
func NewPoller(s Sensor, spec Spec, emit Emit, opts *PollerOptions) *Poller {
	var o PollerOptions
	if opts != nil {
		o = *opts
	}
	if isNil(s) {
		s = noSensor{}
	}
	if emit == nil {
		emit = func(context.Context, []outpost.Reading) {}
	}
	p := &Poller{
		s: s, spec: spec, emit: emit,
		log:      o.Logger,
		maxBack:  time.Minute,
		now:      time.Now,
		onHealth: o.OnHealth,
		onRead:   o.OnRead,
		retries:  1,
		timeout:  spec.Interval,
		maxStep:  maps.Clone(o.Supervision.MaxStep),
		last:     make(map[string]float64),
		base:     make(map[string]float64),
		spikes:   make(map[string]spikeRun),
		st:       Status{Sensor: spec.ID},
		tests:    make(chan testReq),
	}
	if o.MaxBackoff > 0 {
		p.maxBack = o.MaxBackoff
	}
	if o.Now != nil {
		p.now = o.Now
	}
	sup := o.Supervision
	if sup.Retries != 0 {
		p.retries = max(sup.Retries, 0)
	}
	if sup.Timeout > 0 {
		p.timeout = sup.Timeout
	}
	failAfter := 3
	if sup.FailAfter > 0 {
		failAfter = sup.FailAfter
	}
	p.failing = condition{name: HealthFailing, after: failAfter}
	p.slow = condition{name: HealthSlow, after: failAfter}
	p.bad = condition{name: HealthBad, after: failAfter}
	p.stuck = condition{name: HealthStuck, after: sup.StuckAfter}
	p.log = p.log.With().Str(keySensor, spec.ID).Logger()
	return p
}

// Run polls until ctx is done, and watches the sensor beside the polls if
// it is a Watcher. The caller owns the goroutine Run runs in; Run owns the
// watcher's and waits for it before returning. Conditions active at the
// end are not reported as ended: they still held when polling stopped.
func (p *Poller) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if w, ok := p.s.(Watcher); ok {
		wg.Go(func() { p.watch(ctx, w) })
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-p.tests:
			p.test(req)
			continue
		case <-t.C:
		}
		began := time.Now()
		wait := p.poll(ctx)
		if ctx.Err() != nil {
			return
		}
		// Keep the cadence: the next poll is due wait after this one
		// began, so a read that takes 26 ms does not make a 1 s sensor
		// drift to 1.026 s.
		t.Reset(max(wait-time.Since(began), 0))
	}
}

// Test reads the sensor once, with the poller's retries and timeout,
// and returns the readings without emitting them or judging them: they
// change no health condition and reach no bus (a remote sensors.test).
// The poller's goroutine runs the read between two polls, so that the
// driver is never read from two goroutines. It waits for that until ctx
// ends: a poller that is not running answers ctx's error.
func (p *Poller) Test(ctx context.Context) ([]outpost.Reading, time.Duration, error) {
	req := testReq{ctx: ctx, done: make(chan testResult, 1)}
	select {
	case p.tests <- req:
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("sensors: %s is not being polled: %w", p.spec.ID, ctx.Err())
	}
	select {
	case r := <-req.done:
		return r.readings, r.took, r.err
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

// test serves one Test on Run's goroutine, within the read timeout.
func (p *Poller) test(req testReq) {
	ctx, cancel := context.WithTimeout(req.ctx, p.timeout)
	defer cancel()
	rs, took, err := p.read(ctx, p.now())
	req.done <- testResult{readings: rs, took: took, err: err}
}

// noSensor stands in for a nil Sensor given to NewPoller.
type noSensor struct{}

var errNoSensor = errors.New("sensors: no sensor to poll (NewPoller was given nil)")

func (noSensor) Read(_ context.Context, _ time.Time, dst []outpost.Reading) ([]outpost.Reading, error) {
	return dst, errNoSensor
}

func (noSensor) Close() error { return nil }

// Status returns what the poller knows of its sensor now. It is safe to
// call from any goroutine.
func (p *Poller) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.Active = slices.Clone(p.st.Active)
	return st
}

// Readings is how many readings this poller has emitted, edges included.
func (p *Poller) Readings() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.Readings
}

// Errors is how many polls failed after their retries.
func (p *Poller) Errors() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.Failures
}

// poll runs one poll and returns how long to wait for the next.
func (p *Poller) poll(ctx context.Context) time.Duration {
	at := p.now()
	rs, took, err := p.read(ctx, at)
	if err != nil {
		if ctx.Err() != nil {
			return 0 // shutting down: not the sensor's failure
		}
		return p.failed(at, err)
	}
	decided := p.now()
	if p.onRead != nil {
		p.onRead(took)
	}
	if n := p.failing.polls; n > 0 {
		if ev, ended := p.failing.observe(false, at); ended {
			p.report(ev, decided, "")
		} else {
			p.log.Info().Int(keyFailures, n).Msg("sensor recovered")
		}
	}
	// Failed polls leave slow, stuck and bad as they were: only a reading
	// tells whether they still hold.
	slow := p.timeout > 0 && took > p.timeout
	if p.timeout > 0 {
		if ev, changed := p.slow.observe(slow, at); changed {
			p.report(ev, decided, fmt.Sprintf("read took %v, timeout %v", took, p.timeout))
		}
	}
	if len(rs) > 0 {
		p.judge(rs, slow, at, decided)
		p.hint = len(rs)
	}
	p.mu.Lock()
	p.st.Polls++
	p.count(rs)
	p.mu.Unlock()
	if len(rs) > 0 {
		p.emit(ctx, rs)
	}
	return p.spec.Interval
}

// read reads the sensor, retrying at once up to p.retries times, and
// returns the readings and how long the read that gave them took. The
// first attempt is stamped at, the poll time.
func (p *Poller) read(ctx context.Context, at time.Time) ([]outpost.Reading, time.Duration, error) {
	buf := make([]outpost.Reading, 0, p.hint)
	for try := 0; ; try++ {
		start := at
		if try > 0 {
			start = p.now()
		}
		rs, err := p.s.Read(ctx, start, buf[:0])
		if err == nil {
			return rs, p.now().Sub(start), nil
		}
		if try >= p.retries || ctx.Err() != nil {
			return nil, 0, err
		}
		p.mu.Lock()
		p.st.Retries++
		p.mu.Unlock()
	}
}

// failed accounts for the poll at time at that failed with err, and
// returns the backoff before the next.
func (p *Poller) failed(at time.Time, err error) time.Duration {
	ev, began := p.failing.observe(true, at)
	n := p.failing.polls
	wait := p.backoff(n)
	p.mu.Lock()
	p.st.Polls++
	p.st.Failures++
	p.st.LastError, p.st.LastErrorAt = err.Error(), at
	p.mu.Unlock()
	// Log the first failure and then every tenth: a dead sensor must not
	// flood the log.
	if n == 1 || n%10 == 0 {
		p.log.Warn().Err(err).Int(keyFailures, n).Dur(keyRetryIn, wait).Msg("sensor read failed")
	}
	if began {
		p.report(ev, p.now(), err.Error())
	}
	return wait
}

// judge marks the readings of a successful poll QualityUncertain where
// the read was slow, the sensor is stuck or a value spiked, and tracks the
// stuck and bad conditions. It never changes a driver's QualityBad.
func (p *Poller) judge(rs []outpost.Reading, slow bool, at, decided time.Time) {
	bad := ""
	for i := range rs {
		if rs[i].Quality == outpost.QualityBad {
			bad = rs[i].Metric
			break
		}
	}
	if p.stuck.after > 0 {
		unchanged := true
		for i := range rs {
			if prev, ok := p.last[rs[i].Metric]; !ok || !same(prev, rs[i].Value) {
				unchanged = false
				break
			}
		}
		// Update after comparing: the samples of one poll are compared
		// with the previous poll, not with each other.
		for i := range rs {
			p.last[rs[i].Metric] = rs[i].Value
		}
		if ev, changed := p.stuck.observe(unchanged, at); changed {
			p.report(ev, decided, fmt.Sprintf("values unchanged for %d polls", ev.Polls))
		}
	}
	if ev, changed := p.bad.observe(bad != "", at); changed {
		p.report(ev, decided, fmt.Sprintf("driver reported %s bad", bad))
	}
	stuck, spikes := p.stuck.active, len(p.maxStep) > 0
	if !slow && !stuck && !spikes {
		return // nothing to mark: the common case costs no map lookups
	}
	for i := range rs {
		r := &rs[i]
		spiked := spikes && p.spike(r)
		if (spiked || slow || stuck) && r.Quality == outpost.QualityGood {
			r.Quality = outpost.QualityUncertain
		}
	}
}

// spikeRun is a run of consecutive spikes of one metric that agree with
// each other: each within MaxStep of the one before.
type spikeRun struct {
	n    int
	last float64
}

// spike reports whether r jumped further than its metric's MaxStep from
// the last good value. A spike does not become the base of the next
// comparison, unless FailAfter come in a row that agree with each other:
// then the level has moved (a door opened, a heater turned on) and the
// last of them is the new base, lest every reading after a real step be
// uncertain. Random spikes, scattered around the true value, rarely agree.
func (p *Poller) spike(r *outpost.Reading) bool {
	step, ok := p.maxStep[r.Metric]
	if !ok || r.Quality == outpost.QualityBad || math.IsNaN(r.Value) {
		return false
	}
	base, ok := p.base[r.Metric]
	if !ok || math.Abs(r.Value-base) <= step {
		p.base[r.Metric] = r.Value
		delete(p.spikes, r.Metric)
		return false
	}
	run := p.spikes[r.Metric]
	if run.n > 0 && math.Abs(r.Value-run.last) <= step {
		run.n++
	} else {
		run.n = 1
	}
	run.last = r.Value
	p.spikes[r.Metric] = run
	if run.n >= p.failing.after {
		p.base[r.Metric] = r.Value
		delete(p.spikes, r.Metric)
	}
	return true
}

// watch runs w.Watch until ctx ends, calling it again after a backoff
// when it fails. A Watch returning nil before ctx ends has nothing to
// watch (edges turned off) and is not called again.
func (p *Poller) watch(ctx context.Context, w Watcher) {
	var emitted atomic.Int64
	emit := func(rs []outpost.Reading) {
		if len(rs) == 0 {
			return
		}
		// Watchers are not told the slice is handed over; a copy lets them
		// reuse theirs.
		rs = slices.Clone(rs)
		p.mu.Lock()
		p.count(rs)
		p.mu.Unlock()
		emitted.Add(1)
		p.emit(ctx, rs)
	}
	failures := 0
	for {
		err := w.Watch(ctx, emit)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			p.log.Debug().Msg("sensor watch ended")
			return
		}
		// A watch that delivered changes worked for a while: start the
		// backoff over.
		if emitted.Swap(0) > 0 {
			failures = 0
		}
		failures++
		wait := doubling(100*time.Millisecond, p.maxBack, failures)
		if failures == 1 || failures%10 == 0 {
			p.log.Warn().Err(err).Int(keyFailures, failures).Dur(keyRetryIn, wait).Msg("sensor watch failed")
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// count adds emitted readings to the status; p.mu must be held.
func (p *Poller) count(rs []outpost.Reading) {
	p.st.Readings += int64(len(rs))
	for i := range rs {
		switch rs[i].Quality {
		case outpost.QualityUncertain:
			p.st.Uncertain++
		case outpost.QualityBad:
			p.st.Bad++
		}
	}
}

// report records a condition's change in the status, logs it and hands it
// to OnHealth. detail, describing the condition, goes with its beginning.
func (p *Poller) report(ev HealthEvent, at time.Time, detail string) {
	ev.Sensor, ev.At = p.spec.ID, at
	if ev.Active {
		ev.Err = detail
	}
	p.mu.Lock()
	if ev.Active {
		p.st.Active = append(p.st.Active, ev.Condition)
		slices.Sort(p.st.Active)
	} else {
		p.st.Active = slices.DeleteFunc(p.st.Active, func(c string) bool { return c == ev.Condition })
	}
	p.mu.Unlock()
	if ev.Active {
		p.log.Warn().Str(keyCondition, ev.Condition).Int(keyPolls, ev.Polls).Time(keySince, ev.Since).Str(keyDetail, ev.Err).Msg("sensor condition began")
	} else {
		p.log.Info().Str(keyCondition, ev.Condition).Int(keyPolls, ev.Polls).Time(keySince, ev.Since).Msg("sensor condition ended")
	}
	if p.onHealth != nil {
		p.onHealth(ev)
	}
}

// backoff is the wait after failures polls failed in a row.
func (p *Poller) backoff(failures int) time.Duration {
	return doubling(p.spec.Interval, p.maxBack, failures)
}

// doubling is first doubled for each of n-1 failures, capped at limit.
func doubling(first, limit time.Duration, n int) time.Duration {
	d := first
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// condition tracks one health condition over consecutive polls.
type condition struct {
	name   string
	after  int       // polls in a row showing it that begin it
	polls  int       // polls in a row showing it
	since  time.Time // when the first of them ran
	active bool
}

// observe records whether the poll run at time at showed the condition,
// and returns the event and true if the condition began or ended with it.
// The event's Sensor, At and Err are the caller's to fill.
func (c *condition) observe(show bool, at time.Time) (HealthEvent, bool) {
	if !show {
		ev, ended := HealthEvent{Condition: c.name, Since: c.since, Polls: c.polls}, c.active
		c.polls, c.active = 0, false
		return ev, ended
	}
	if c.polls == 0 {
		c.since = at
	}
	c.polls++
	if c.active || c.polls < c.after {
		return HealthEvent{}, false
	}
	c.active = true
	return HealthEvent{Condition: c.name, Active: true, Since: c.since, Polls: c.polls}, true
}

// same reports whether a value is unchanged; NaN is NaN.
func same(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
