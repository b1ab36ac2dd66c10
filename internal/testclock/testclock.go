// Package testclock is a clock for tests: time moves only when the test,
// or a sleep on the clock, moves it. Components take its Now (and Sleep)
// in place of time.Now (and time.Sleep), so timeouts, fault windows and
// backoff are tested without waiting. Safe for concurrent use.
//
// A Clock has a wall reading (Now) and a monotonic one (Mono): Add and
// Sleep move both, Step moves the wall clock alone, as NTP or an operator
// setting the date does. Running is a clock that runs by itself, faster
// than real time, for tests of whole pipelines whose timers are real.
package testclock

import (
	"context"
	"sync"
	"time"
)

// Clock is a settable clock.
type Clock struct {
	mu   sync.Mutex
	t    time.Time
	mono time.Duration
}

// New returns a clock showing t, its monotonic reading 0.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's wall time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Mono returns the clock's monotonic reading: the time Add and Sleep
// moved it by, which Step does not change.
func (c *Clock) Mono() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mono
}

// Add moves the clock forward by d: the wall and the monotonic reading.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.mono += d
}

// Step moves the wall clock alone by d (either way): a clock being set.
func (c *Clock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Sleep is a sleep on this clock: it moves the clock by d and returns.
func (c *Clock) Sleep(d time.Duration) { c.Add(d) }

// SleepCtx is Sleep that reports ctx's error, for waits that take a ctx.
func (c *Clock) SleepCtx(ctx context.Context, d time.Duration) error {
	c.Add(d)
	return ctx.Err()
}

// Running is a clock that runs by itself, speed times as fast as real
// time, from a wall time given at start; Step sets its wall clock like
// Clock's. Its readings are taken from Go's monotonic clock, so they never
// go back unless stepped.
type Running struct {
	start time.Time // real, with its monotonic reading
	speed time.Duration

	mu   sync.Mutex
	wall time.Time // wall time at monotonic reading 0
}

// NewRunning returns a clock showing t now and running speed (>= 1)
// times as fast as real time.
func NewRunning(t time.Time, speed int) *Running {
	return &Running{start: time.Now(), speed: time.Duration(max(speed, 1)), wall: t}
}

// Mono returns the time the clock has run since NewRunning.
func (r *Running) Mono() time.Duration { return time.Since(r.start) * r.speed }

// Now returns the wall time: the start time, moved by every Step, plus
// Mono.
func (r *Running) Now() time.Time {
	m := r.Mono()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wall.Add(m)
}

// Step moves the wall clock alone by d.
func (r *Running) Step(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wall = r.wall.Add(d)
}
