package gateway

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/outposthq/outpost"
)

// Policy says what the bus does when a receiver's queue is full.
type Policy int

const (
	// Block makes the emitter wait for the receiver (no loss; a slow
	// receiver slows sensors down).
	Block Policy = iota
	// Drop discards the slice for that receiver and counts it.
	Drop
)

// Bus fans reading slices out to receivers, each with a bounded queue of its
// own. No receiver knows any emitter. A published slice is shared by every
// receiver and must not be modified by anyone after Publish.
type Bus struct {
	mu        sync.Mutex
	receivers []*receiver
	closed    bool
}

type receiver struct {
	name     string
	ch       chan []outpost.Reading
	policy   Policy
	dropped  atomic.Int64 // readings
	received atomic.Int64 // readings
}

// Subscribe adds a receiver with a queue of the given number of slices. All
// receivers subscribe before the first Publish.
func (b *Bus) Subscribe(name string, queue int, p Policy) <-chan []outpost.Reading {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := &receiver{name: name, ch: make(chan []outpost.Reading, max(queue, 1)), policy: p}
	b.receivers = append(b.receivers, r)
	return r.ch
}

// Publish hands rs to every receiver. With Block it waits for room in each
// queue. ctx is unused: a poll that read a value always delivers it.
func (b *Bus) Publish(_ context.Context, rs []outpost.Reading) {
	for _, r := range b.receivers {
		switch r.policy {
		case Drop:
			select {
			case r.ch <- rs:
				r.received.Add(int64(len(rs)))
			default:
				r.dropped.Add(int64(len(rs)))
			}
		default:
			// Receivers drain their queues until Close, even while
			// shutting down, so waiting here never loses the slice.
			r.ch <- rs
			r.received.Add(int64(len(rs)))
		}
	}
}

// Close closes every receiver's queue. Call it once all emitters stopped.
func (b *Bus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for _, r := range b.receivers {
		close(r.ch)
	}
}

// Dropped is the number of readings dropped per receiver.
func (b *Bus) Dropped() map[string]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[string]int64, len(b.receivers))
	for _, r := range b.receivers {
		m[r.name] = r.dropped.Load()
	}
	return m
}
