package uplink

import "github.com/outposthq/outpost/internal/liveness"

// Names of the uplink's loops in Liveness.
const (
	LoopConnection = "uplink connection" // connects, waits for a loss, backs off
	LoopSender     = "uplink sender"     // reads the store, publishes, deletes on acks
)

// Liveness reports the uplink's two loops. The connection loop is busy
// during a connection attempt (allowed twice the connect timeout and a
// second) and a backoff wait (allowed the wait), idle while connected: a
// broker that is down keeps it attempting and backing off on schedule,
// which is healthy. The sender is idle while it waits for a batch, an ack
// or a tick, and busy while it reads or deletes in the store and
// publishes: a store that blocks leaves it busy. Safe from any goroutine.
func (u *Uplink) Liveness() []liveness.Report {
	return []liveness.Report{u.connBeat.Report(LoopConnection), u.sendBeat.Report(LoopSender)}
}
