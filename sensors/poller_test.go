package sensors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/testclock"
)

const (
	qGood      = outpost.QualityGood
	qUncertain = outpost.QualityUncertain
	qBad       = outpost.QualityBad

	fastRead = 100 * time.Microsecond // below the 1ms interval, the default timeout
	slowRead = 5 * time.Millisecond
)

var errTransient = errors.New("bus NACK")

func TestPollerSupervision(t *testing.T) {
	tests := []struct {
		name  string
		sup   Supervision
		reads []scripted
		want  []wantItem
		// status: Sensor, LastErrorAt are filled in by the test.
		status Status
		// lastErr is the read whose poll failed last, counted from 1; 0
		// if none did.
		lastErr int
	}{
		{
			name:   "retry hides a transient error",
			reads:  []scripted{readOK(1), readErr(), readOK(2), readOK(3)},
			want:   []wantItem{emitted(ms(1, qGood)), emitted(ms(2, qGood)), emitted(ms(3, qGood))},
			status: Status{Polls: 3, Retries: 1, Readings: 3},
		},
		{
			name:    "no retries",
			sup:     Supervision{Retries: -1},
			reads:   []scripted{readOK(1), readErr(), readOK(2)},
			want:    []wantItem{emitted(ms(1, qGood)), emitted(ms(2, qGood))},
			status:  Status{Polls: 3, Failures: 1, Readings: 2, LastError: "bus NACK"},
			lastErr: 2,
		},
		{
			name:   "two retries",
			sup:    Supervision{Retries: 2},
			reads:  []scripted{readOK(1), readErr(), readErr(), readOK(2)},
			want:   []wantItem{emitted(ms(1, qGood)), emitted(ms(2, qGood))},
			status: Status{Polls: 2, Retries: 2, Readings: 2},
		},
		{
			name: "failing begins after FailAfter failed polls and ends on recovery",
			reads: []scripted{
				readOK(1),
				readErr(), readErr(), // poll 2 fails after its retry
				readErr(), readErr(),
				readErr(), readErr(), // the third failed poll: failing
				readErr(), readErr(),
				readOK(2), readOK(3),
			},
			want: []wantItem{
				emitted(ms(1, qGood)),
				began(HealthFailing, 1, 3),
				ended(HealthFailing, 1, 4), emitted(ms(2, qGood)),
				emitted(ms(3, qGood)),
			},
			status:  Status{Polls: 7, Failures: 4, Retries: 4, Readings: 3, LastError: "bus NACK"},
			lastErr: 8,
		},
		{
			name:  "failing stays active at shutdown",
			sup:   Supervision{FailAfter: 2, Retries: -1},
			reads: []scripted{readOK(1), readErr(), readErr(), readErr()},
			want: []wantItem{
				emitted(ms(1, qGood)),
				began(HealthFailing, 1, 2),
			},
			status:  Status{Polls: 4, Failures: 3, Readings: 1, LastError: "bus NACK", Active: []string{HealthFailing}},
			lastErr: 4,
		},
		{
			name:  "slow reads are uncertain and begin slow",
			reads: []scripted{readOK(1), readSlow(2), readSlow(3), readSlow(4), readOK(5)},
			want: []wantItem{
				emitted(ms(1, qGood)),
				emitted(ms(2, qUncertain)),
				emitted(ms(3, qUncertain)),
				began(HealthSlow, 1, 3), emitted(ms(4, qUncertain)),
				ended(HealthSlow, 1, 3), emitted(ms(5, qGood)),
			},
			status: Status{Polls: 5, Readings: 5, Uncertain: 3},
		},
		{
			name:   "a read within Timeout is not slow",
			sup:    Supervision{Timeout: 2 * slowRead},
			reads:  []scripted{readSlow(1), readSlow(2), readSlow(3)},
			want:   []wantItem{emitted(ms(1, qGood)), emitted(ms(2, qGood)), emitted(ms(3, qGood))},
			status: Status{Polls: 3, Readings: 3},
		},
		{
			name: "failed polls leave slow as it was",
			sup:  Supervision{FailAfter: 2},
			reads: []scripted{
				readSlow(1), readSlow(2),
				readErr(), readErr(),
				readSlow(3), readOK(4),
			},
			want: []wantItem{
				emitted(ms(1, qUncertain)),
				began(HealthSlow, 0, 2), emitted(ms(2, qUncertain)),
				emitted(ms(3, qUncertain)),
				ended(HealthSlow, 0, 3), emitted(ms(4, qGood)),
			},
			status:  Status{Polls: 5, Failures: 1, Retries: 1, Readings: 4, Uncertain: 3, LastError: "bus NACK"},
			lastErr: 3,
		},
		{
			name:  "stuck after StuckAfter unchanged polls",
			sup:   Supervision{StuckAfter: 2},
			reads: []scripted{readOK(1), readOK(2), readOK(2), readOK(2), readOK(2), readOK(3)},
			want: []wantItem{
				emitted(ms(1, qGood)),
				emitted(ms(2, qGood)),
				emitted(ms(2, qGood)),
				began(HealthStuck, 2, 2), emitted(ms(2, qUncertain)),
				emitted(ms(2, qUncertain)),
				ended(HealthStuck, 2, 3), emitted(ms(3, qGood)),
			},
			status: Status{Polls: 6, Readings: 6, Uncertain: 2},
		},
		{
			name: "stuck needs every metric unchanged",
			sup:  Supervision{StuckAfter: 1},
			reads: []scripted{
				readVals(sample{"a", 1, qGood}, sample{"b", 1, qGood}),
				readVals(sample{"a", 1, qGood}, sample{"b", 2, qGood}),
				readVals(sample{"a", 1, qGood}, sample{"b", 2, qGood}),
				readVals(sample{"a", 2, qGood}, sample{"b", 2, qGood}),
			},
			want: []wantItem{
				emitted(sample{"a", 1, qGood}, sample{"b", 1, qGood}),
				emitted(sample{"a", 1, qGood}, sample{"b", 2, qGood}),
				began(HealthStuck, 2, 1), emitted(sample{"a", 1, qUncertain}, sample{"b", 2, qUncertain}),
				ended(HealthStuck, 2, 1), emitted(sample{"a", 2, qGood}, sample{"b", 2, qGood}),
			},
			status: Status{Polls: 4, Readings: 8, Uncertain: 2},
		},
		{
			name:  "a spike is uncertain and not the next base",
			sup:   Supervision{MaxStep: map[string]float64{"m": 1, "other": 0.1}},
			reads: []scripted{readOK(10), readOK(10.5), readOK(20), readOK(11), readOK(11.2)},
			want: []wantItem{
				emitted(ms(10, qGood)),
				emitted(ms(10.5, qGood)),
				emitted(ms(20, qUncertain)),
				emitted(ms(11, qGood)), // 0.5 from 10.5, 9 from the spike
				emitted(ms(11.2, qGood)),
			},
			status: Status{Polls: 5, Readings: 5, Uncertain: 1},
		},
		{
			name:  "FailAfter spikes in a row are a new level",
			sup:   Supervision{MaxStep: map[string]float64{"m": 1}},
			reads: []scripted{readOK(10), readOK(20), readOK(20.5), readOK(20.2), readOK(20.4)},
			want: []wantItem{
				emitted(ms(10, qGood)),
				emitted(ms(20, qUncertain)),
				emitted(ms(20.5, qUncertain)),
				emitted(ms(20.2, qUncertain)),
				emitted(ms(20.4, qGood)),
			},
			status: Status{Polls: 5, Readings: 5, Uncertain: 3},
		},
		{
			name:  "spikes in a row that disagree stay spikes",
			sup:   Supervision{MaxStep: map[string]float64{"m": 1}},
			reads: []scripted{readOK(10), readOK(50), readOK(-30), readOK(50), readOK(10.3)},
			want: []wantItem{
				emitted(ms(10, qGood)),
				emitted(ms(50, qUncertain)),
				emitted(ms(-30, qUncertain)),
				emitted(ms(50, qUncertain)), // three spikes, but not one level
				emitted(ms(10.3, qGood)),
			},
			status: Status{Polls: 5, Readings: 5, Uncertain: 3},
		},
		{
			name:  "driver QualityBad begins bad",
			reads: []scripted{readOK(1), readVals(ms(2, qBad)), readVals(ms(3, qBad)), readVals(ms(4, qBad)), readOK(5)},
			want: []wantItem{
				emitted(ms(1, qGood)),
				emitted(ms(2, qBad)),
				emitted(ms(3, qBad)),
				began(HealthBad, 1, 3), emitted(ms(4, qBad)),
				ended(HealthBad, 1, 3), emitted(ms(5, qGood)),
			},
			status: Status{Polls: 5, Readings: 5, Bad: 3},
		},
		{
			name:  "a slow bad reading stays bad",
			sup:   Supervision{FailAfter: 1},
			reads: []scripted{{took: slowRead, vals: []sample{ms(1, qBad), {"n", 1, qGood}}}},
			want: []wantItem{
				began(HealthSlow, 0, 1), began(HealthBad, 0, 1), emitted(ms(1, qBad), sample{"n", 1, qUncertain}),
			},
			status: Status{Polls: 1, Readings: 2, Uncertain: 1, Bad: 1, Active: []string{HealthBad, HealthSlow}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScriptSensor(tt.reads...)
			r := runPoller(t, s, PollerOptions{Now: s.clock.Now, MaxBackoff: 2 * time.Millisecond, Supervision: tt.sup})
			for i, w := range tt.want {
				w.check(t, i, r.next(t), s)
			}
			r.waitIdle(t, s)
			wantSt := tt.status
			wantSt.Sensor = "s"
			if tt.lastErr > 0 {
				wantSt.LastErrorAt = s.pollTime(tt.lastErr - 1)
			}
			if st := r.p.Status(); !equalStatus(st, wantSt) {
				t.Errorf("status\n got %+v\nwant %+v", st, wantSt)
			}
			if r.p.Readings() != wantSt.Readings || r.p.Errors() != wantSt.Failures {
				t.Errorf("Readings() %d, Errors() %d; want %d, %d", r.p.Readings(), r.p.Errors(), wantSt.Readings, wantSt.Failures)
			}
			r.close()
			if n := r.dropped.Load(); n > 0 {
				t.Errorf("%d items handed out at shutdown", n)
			}
		})
	}
}

func TestPollerFailingBesideHealthy(t *testing.T) {
	opts := PollerOptions{MaxBackoff: 2 * time.Millisecond}
	sick := newScriptSensor()
	sick.more = func(int) scripted { return readErr() }
	opts.Now = sick.clock.Now
	sickRun := runPoller(t, sick, opts)
	well := newScriptSensor()
	well.more = func(n int) scripted { return readOK(float64(n)) }
	opts.Now = well.clock.Now
	wellRun := runPoller(t, well, opts)

	if it := sickRun.next(t); it.ev == nil || it.ev.Condition != HealthFailing || !it.ev.Active {
		t.Fatalf("sick sensor: got %v, want failing", it)
	}
	// The sick poller keeps failing meanwhile; the healthy one must not
	// notice.
	last := -1.0
	for range 5 {
		it := wellRun.next(t)
		if it.ev != nil || len(it.rs) != 1 || it.rs[0].Value <= last || it.rs[0].Quality != qGood {
			t.Fatalf("healthy sensor: got %v after %v", it, last)
		}
		last = it.rs[0].Value
	}
	if st := sickRun.p.Status(); !slices.Equal(st.Active, []string{HealthFailing}) || st.Failures < 3 || st.Readings != 0 {
		t.Errorf("sick status %+v", st)
	}
	if st := wellRun.p.Status(); len(st.Active) != 0 || st.Failures != 0 || st.Readings < 5 {
		t.Errorf("healthy status %+v", st)
	}
}

func TestPollerWatcher(t *testing.T) {
	s := newWatchSensor()
	s.more = func(n int) scripted { return readOK(float64(n)) }
	r := runPoller(t, s, PollerOptions{
		Now:        s.clock.Now,
		MaxBackoff: time.Millisecond,
		// Watched readings are not judged: the door's step is no spike.
		Supervision: Supervision{MaxStep: map[string]float64{"door": 0.5}},
	})
	t.Cleanup(s.release) // before r.close, which waits for the watcher
	var edges []float64
	polls := 0
	for len(edges) < 2 {
		it := r.next(t)
		switch {
		case it.ev != nil:
			t.Fatalf("unexpected %v", it)
		case len(it.rs) == 1 && it.rs[0].Metric == "m":
			if polls++; polls > 10000 {
				t.Fatalf("%d polls and the watcher reported %v", polls, edges)
			}
		case len(it.rs) == 1 && it.rs[0].Metric == "door" && it.rs[0].Quality == qGood:
			edges = append(edges, it.rs[0].Value)
		default:
			t.Fatalf("unexpected %v", it)
		}
	}
	if !slices.Equal(edges, []float64{0, 1}) {
		t.Errorf("edges %v, want [0 1]", edges)
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		r.close()
	}()
	select {
	case <-s.ending:
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher never saw Run end")
	}
	// The watcher has not returned yet: neither may Run.
	select {
	case <-r.done:
		t.Error("Run returned before its watcher")
	default:
	}
	s.release()
	<-closed
	if calls, running := s.calls.Load(), s.running.Load(); calls != 2 || running != 0 {
		t.Errorf("Watch called %d times, %d still running after Run returned; want 2, 0", calls, running)
	}
	if got, least := r.p.Readings(), int64(len(edges)+polls); got < least {
		t.Errorf("Readings() = %d, want at least %d", got, least)
	}
}

func TestPollerLogs(t *testing.T) {
	tests := []struct {
		name  string
		reads []scripted
		want  []wantItem
		logs  []string
	}{
		{
			name:  "one failure",
			reads: []scripted{readErr(), readOK(1)},
			want:  []wantItem{emitted(ms(1, qGood))},
			logs:  []string{"warn sensor read failed 1", "info sensor recovered 1"},
		},
		{
			name:  "failing",
			reads: append(slices.Repeat([]scripted{readErr()}, 12), readOK(1)),
			want:  []wantItem{began(HealthFailing, 0, 3), ended(HealthFailing, 0, 12), emitted(ms(1, qGood))},
			logs: []string{
				"warn sensor read failed 1",
				"warn sensor condition began failing",
				"warn sensor read failed 10",
				"info sensor condition ended failing",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer // written by Run's goroutine only, read after it returned
			s := newScriptSensor(tt.reads...)
			r := runPoller(t, s, PollerOptions{
				Logger:      zerolog.New(&buf),
				Now:         s.clock.Now,
				MaxBackoff:  time.Millisecond,
				Supervision: Supervision{Retries: -1},
			})
			for i, w := range tt.want {
				w.check(t, i, r.next(t), s)
			}
			r.waitIdle(t, s)
			r.close()
			if got := logLines(t, &buf); !slices.Equal(got, tt.logs) {
				t.Errorf("logs\n got %q\nwant %q", got, tt.logs)
			}
		})
	}
}

func TestBackoffDoublesToCap(t *testing.T) {
	tests := []struct {
		name  string
		delay func(n int) time.Duration
		want  []time.Duration
	}{
		{
			name:  "polls",
			delay: NewPoller(&fakeSensor{}, Spec{Interval: time.Second}, nil, &PollerOptions{MaxBackoff: 10 * time.Second}).backoff,
			want:  []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second},
		},
		{
			name:  "watch",
			delay: func(n int) time.Duration { return doubling(100*time.Millisecond, time.Second, n) },
			want:  []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, w := range tt.want {
				if got := tt.delay(i + 1); got != w {
					t.Errorf("after %d failures: %v, want %v", i+1, got, w)
				}
			}
		})
	}
}

// scripted is one Read: an error or readings, taking took on the
// sensor's clock.
type scripted struct {
	err  error
	took time.Duration
	vals []sample
}

// sample is one reading of a scripted read, or an expected one.
type sample struct {
	metric string
	v      float64
	q      outpost.Quality
}

// ms is a sample of metric "m".
func ms(v float64, q outpost.Quality) sample { return sample{"m", v, q} }

func readOK(v float64) scripted        { return readVals(ms(v, qGood)) }
func readSlow(v float64) scripted      { return scripted{took: slowRead, vals: []sample{ms(v, qGood)}} }
func readErr() scripted                { return scripted{err: errTransient, took: fastRead} }
func readVals(vals ...sample) scripted { return scripted{took: fastRead, vals: vals} }

// pollClock is a fake clock that moves only as reads take time.
type pollClock struct{ *testclock.Clock }

func (c *pollClock) advance(d time.Duration) { c.Add(d) }

// scriptSensor plays its reads in order, then more(0), more(1), … if more
// is set; else it closes idle and blocks in Read until the poll's ctx ends.
type scriptSensor struct {
	clock *pollClock
	reads []scripted
	more  func(n int) scripted
	idle  chan struct{}

	mu  sync.Mutex
	n   int
	ats []time.Time // the time each Read was given
}

func newScriptSensor(reads ...scripted) *scriptSensor {
	return &scriptSensor{
		clock: &pollClock{testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))},
		reads: reads,
		idle:  make(chan struct{}),
	}
}

func (s *scriptSensor) Read(ctx context.Context, now time.Time, dst []outpost.Reading) ([]outpost.Reading, error) {
	s.mu.Lock()
	i := s.n
	s.n++
	s.ats = append(s.ats, now)
	var r scripted
	switch {
	case i < len(s.reads):
		r = s.reads[i]
	case s.more != nil:
		r = s.more(i - len(s.reads))
	default:
		s.mu.Unlock()
		if i == len(s.reads) {
			close(s.idle)
		}
		<-ctx.Done()
		return dst, ctx.Err()
	}
	s.mu.Unlock()
	s.clock.advance(r.took)
	if r.err != nil {
		return dst, r.err
	}
	for _, v := range r.vals {
		dst = append(dst, outpost.Reading{Sensor: "s", Metric: v.metric, TS: now.UnixNano(), Value: v.v, Quality: v.q})
	}
	return dst, nil
}

func (s *scriptSensor) Close() error { return nil }

// pollTime is the time read i (from 0) was given.
func (s *scriptSensor) pollTime(i int) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ats[i]
}

// watchSensor is a scriptSensor and a Watcher whose first Watch reports
// the door at 0 and fails, and whose second reports it at 1 and watches
// until the end; then it closes ending and returns once released.
type watchSensor struct {
	*scriptSensor
	calls    atomic.Int32
	running  atomic.Int32
	ending   chan struct{}
	released chan struct{}
	once     sync.Once
}

func newWatchSensor() *watchSensor {
	return &watchSensor{scriptSensor: newScriptSensor(), ending: make(chan struct{}), released: make(chan struct{})}
}

// release lets the watcher return; it is idempotent.
func (s *watchSensor) release() { s.once.Do(func() { close(s.released) }) }

func (s *watchSensor) Watch(ctx context.Context, emit func(rs []outpost.Reading)) error {
	n := s.calls.Add(1)
	s.running.Add(1)
	defer s.running.Add(-1)
	emit([]outpost.Reading{{Sensor: "s", Metric: "door", Value: float64(n - 1)}})
	if n == 1 {
		return errors.New("edge interrupt lost")
	}
	<-ctx.Done()
	close(s.ending)
	<-s.released
	return nil
}

// pollItem is one thing a poller handed out: a health event or a poll's
// readings.
type pollItem struct {
	ev *HealthEvent
	rs []outpost.Reading
}

func (it pollItem) String() string {
	if it.ev != nil {
		return fmt.Sprintf("event %+v", *it.ev)
	}
	return fmt.Sprintf("readings %+v", it.rs)
}

// wantItem is an expected item: a health event if cond is set, else readings.
type wantItem struct {
	cond   string
	active bool
	since  int // the read (from 0) whose poll first showed the condition
	polls  int
	vals   []sample
}

func began(cond string, since, polls int) wantItem {
	return wantItem{cond: cond, active: true, since: since, polls: polls}
}

func ended(cond string, since, polls int) wantItem {
	return wantItem{cond: cond, since: since, polls: polls}
}

func emitted(vals ...sample) wantItem { return wantItem{vals: vals} }

func (w wantItem) check(t *testing.T, i int, it pollItem, s *scriptSensor) {
	t.Helper()
	if w.cond == "" {
		vals := make([]sample, len(it.rs))
		for j, r := range it.rs {
			vals[j] = sample{r.Metric, r.Value, r.Quality}
		}
		if it.ev != nil || !slices.Equal(vals, w.vals) {
			t.Fatalf("item %d: got %v, want readings %v", i, it, w.vals)
		}
		return
	}
	ev := it.ev
	if ev == nil || ev.Condition != w.cond || ev.Active != w.active || ev.Polls != w.polls || ev.Sensor != "s" {
		t.Fatalf("item %d: got %v, want %s active=%v polls=%d", i, it, w.cond, w.active, w.polls)
	}
	if since := s.pollTime(w.since); !ev.Since.Equal(since) || ev.At.Before(since) {
		t.Errorf("item %d: %s since %v at %v, want since %v (read %d)", i, w.cond, ev.Since, ev.At, since, w.since)
	}
	if w.cond == HealthFailing && w.active && ev.Err != errTransient.Error() {
		t.Errorf("item %d: failing with error %q, want %q", i, ev.Err, errTransient)
	}
}

// pollRun runs a poller whose emit and OnHealth hand each item to the
// test and wait for it to be taken: the test sees everything in order,
// and the poller moves on no further than the test lets it.
type pollRun struct {
	p       *Poller
	items   chan pollItem
	stop    chan struct{} // closed by close: items are dropped from then on
	done    chan struct{} // closed when Run returned
	cancel  context.CancelFunc
	once    sync.Once
	dropped atomic.Int64
}

func runPoller(t *testing.T, s Sensor, opts PollerOptions) *pollRun {
	t.Helper()
	r := &pollRun{items: make(chan pollItem), stop: make(chan struct{}), done: make(chan struct{})}
	give := func(it pollItem) {
		select {
		case r.items <- it:
		case <-r.stop:
			r.dropped.Add(1)
		}
	}
	opts.OnHealth = func(ev HealthEvent) { give(pollItem{ev: &ev}) }
	emit := func(_ context.Context, rs []outpost.Reading) { give(pollItem{rs: rs}) }
	r.p = NewPoller(s, Spec{ID: "s", Interval: time.Millisecond}, emit, &opts)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.p.Run(ctx)
	}()
	t.Cleanup(r.close)
	return r
}

// close stops the poller and waits for Run to return. It is idempotent.
func (r *pollRun) close() {
	r.once.Do(func() {
		r.cancel()
		close(r.stop)
	})
	<-r.done
}

// next returns the next item the poller hands out.
func (r *pollRun) next(t *testing.T) pollItem {
	t.Helper()
	select {
	case it := <-r.items:
		return it
	case <-time.After(10 * time.Second):
		t.Fatal("poller handed out nothing for 10s")
		return pollItem{}
	}
}

// waitIdle waits until s has played its script and fails on any item
// handed out meanwhile. From then on the poller is blocked in Read and its
// status holds still.
func (r *pollRun) waitIdle(t *testing.T, s *scriptSensor) {
	t.Helper()
	select {
	case <-s.idle:
	case it := <-r.items:
		t.Fatalf("unexpected %v", it)
	case <-time.After(10 * time.Second):
		t.Fatal("script not played to its end in 10s")
	}
}

// equalStatus compares statuses, an empty Active equal to a nil one.
func equalStatus(a, b Status) bool {
	if !slices.Equal(a.Active, b.Active) {
		return false
	}
	a.Active, b.Active = nil, nil
	return reflect.DeepEqual(a, b)
}

// logLines sums up each logged line as "level message detail", the detail
// being the failures or the condition.
func logLines(t *testing.T, buf *bytes.Buffer) []string {
	t.Helper()
	var lines []string
	dec := json.NewDecoder(buf)
	for dec.More() {
		var l struct {
			Level     string
			Message   string
			Failures  int
			Condition string
		}
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		line := l.Level + " " + l.Message
		if l.Condition != "" {
			line += " " + l.Condition
		} else if l.Failures > 0 {
			line += fmt.Sprintf(" %d", l.Failures)
		}
		lines = append(lines, line)
	}
	return lines
}
