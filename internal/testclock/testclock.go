// Package testclock is a clock for tests: time moves only when the test,
// or a sleep on the clock, moves it. Components take its Now (and Sleep)
// in place of time.Now (and time.Sleep), so timeouts, fault windows and
// backoff are tested without waiting. Safe for concurrent use.
package testclock

import (
	"context"
	"sync"
	"time"
)

// Clock is a settable clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock showing t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) {
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
