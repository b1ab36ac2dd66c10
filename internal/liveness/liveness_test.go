package liveness

import (
	"sync"
	"testing"
	"time"
)

func TestBeat(t *testing.T) {
	var b Beat
	r := b.report("p", 100)
	if r.Busy || r.Steps != 0 || r.SinceStep != -1 || r.Wedged(0) {
		t.Fatalf("zero Beat: %+v", r)
	}
	b.Idle() // idle already: no step
	if r := b.Report("p"); r.Steps != 0 {
		t.Fatalf("Idle without a step counted one: %+v", r)
	}

	b.Busy()
	since := b.since.Load()
	limit := time.Second
	for _, c := range []struct {
		at     time.Duration
		wedged bool
	}{{0, false}, {limit, false}, {limit + 1, true}, {time.Hour, true}} {
		r := b.report("p", since+int64(c.at))
		if !r.Busy || r.BusyFor != c.at || r.Overdue != c.at || r.Wedged(limit) != c.wedged {
			t.Errorf("busy for %v: %+v, wedged %v", c.at, r, r.Wedged(limit))
		}
	}

	// A step with an allowance is not overdue within it.
	b.BusyFor(time.Minute)
	since = b.since.Load()
	if r := b.report("p", since+int64(time.Minute+limit)); r.Overdue != limit || r.Wedged(limit) {
		t.Errorf("within allowance and limit: %+v", r)
	}
	if r := b.report("p", since+int64(time.Minute+limit+1)); !r.Wedged(limit) {
		t.Errorf("past allowance and limit: %+v", r)
	}

	b.Idle()
	r = b.Report("p")
	if r.Busy || r.Steps != 1 || r.SinceStep < 0 || r.Wedged(0) {
		t.Errorf("after Idle: %+v", r)
	}
	// Idle is healthy however long.
	if r := b.report("p", b.last.Load()+int64(24*time.Hour)); r.Busy || r.Wedged(0) || r.SinceStep != 24*time.Hour {
		t.Errorf("idle a day: %+v", r)
	}
}

// Marking and reading from different goroutines is race free.
func TestConcurrent(t *testing.T) {
	var b Beat
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 10000 {
			b.Busy()
			b.Idle()
		}
	})
	for range 1000 {
		if r := b.Report("p"); r.Overdue < 0 || r.BusyFor < 0 {
			t.Fatalf("%+v", r)
		}
	}
	wg.Wait()
	if r := b.Report("p"); r.Steps != 10000 || r.Busy {
		t.Errorf("%+v", r)
	}
}

func BenchmarkBusyIdle(b *testing.B) {
	var bt Beat
	for b.Loop() {
		bt.Busy()
		bt.Idle()
	}
}
