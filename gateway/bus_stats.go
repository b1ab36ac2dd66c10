package gateway

// ReceiverStats is one bus receiver's queue and counters.
type ReceiverStats struct {
	Name     string
	Depth    int   // slices waiting in its queue now
	Capacity int   // the queue's size, in slices
	Received int64 // readings queued for it
	Dropped  int64 // readings dropped because its queue was full (Drop policy)
}

// Receivers returns each receiver's queue and counters, in subscription
// order.
func (b *Bus) Receivers() []ReceiverStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]ReceiverStats, len(b.receivers))
	for i, r := range b.receivers {
		out[i] = ReceiverStats{Name: r.name, Depth: len(r.ch), Capacity: cap(r.ch),
			Received: r.received.Load(), Dropped: r.dropped.Load()}
	}
	return out
}
