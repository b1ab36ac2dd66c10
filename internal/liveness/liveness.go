// Package liveness tells a wedged loop from an idle one. Each long-lived
// loop of a pipeline owns a Beat: it marks the Beat idle while it waits
// for work (a select on its channels, a connection that is up), and busy
// while it handles something (a commit, a connection attempt, a backoff
// wait), with the time the step may legitimately take. A loop that is
// idle is healthy however long it waits; one that is busy past its
// allowance is wedged. A watchdog reads the Beats' Reports from another
// goroutine.
//
// Marking costs two atomic stores and a read of the monotonic clock.
package liveness

import (
	"sync/atomic"
	"time"
)

// origin makes the monotonic clock an int64: nanoseconds since the
// package started, plus one so that 0 can mean "not busy".
var origin = time.Now()

func mono() int64 { return int64(time.Since(origin)) + 1 }

// Beat is one loop's liveness. The zero value is idle with no step done.
// Only its loop marks it; anyone may read its Report.
type Beat struct {
	since atomic.Int64 // when the current step began; 0: idle
	due   atomic.Int64 // when the current step should have ended
	last  atomic.Int64 // when the last step ended; 0: none yet
	steps atomic.Uint64
}

// Busy marks the start of a step that should end at once: handling a
// message, a commit.
func (b *Beat) Busy() { b.BusyFor(0) }

// BusyFor marks the start of a step that may take up to d: a wait of d,
// a call bounded by a timeout of d.
func (b *Beat) BusyFor(d time.Duration) {
	now := mono()
	b.due.Store(now + int64(max(d, 0)))
	b.since.Store(now) // after due: a reader that sees since sees its due or a later one
}

// Idle marks the loop as waiting for work, which ends the current step.
// It reads no clock: the step's start stands for its end in Report's
// SinceStep, which keeps a step to one clock read.
func (b *Beat) Idle() {
	since := b.since.Load()
	if since == 0 {
		return
	}
	b.since.Store(0)
	b.last.Store(since)
	b.steps.Add(1)
}

// Report is a Beat's state when it was read.
type Report struct {
	Part string
	// Busy: the loop is in a step, for BusyFor so far; Overdue is how
	// long past its allowance (0 while within it).
	Busy    bool
	BusyFor time.Duration
	Overdue time.Duration
	// Steps counts the steps ended; SinceStep is how long ago the last
	// ended step began (-1: none yet). They show progress, not health:
	// an idle loop makes none.
	Steps     uint64
	SinceStep time.Duration
}

// Report reads b under the name part.
func (b *Beat) Report(part string) Report { return b.report(part, mono()) }

func (b *Beat) report(part string, now int64) Report {
	r := Report{Part: part, Steps: b.steps.Load(), SinceStep: -1}
	if last := b.last.Load(); last != 0 {
		r.SinceStep = time.Duration(max(now-last, 0))
	}
	since := b.since.Load()
	if since == 0 {
		return r
	}
	r.Busy = true
	r.BusyFor = time.Duration(max(now-since, 0))
	r.Overdue = time.Duration(max(now-b.due.Load(), 0))
	return r
}

// Wedged reports whether the part has been busy for longer than its
// allowance and limit together.
func (r Report) Wedged(limit time.Duration) bool { return r.Busy && r.Overdue > limit }
