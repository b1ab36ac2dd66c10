package ingest

import (
	"strconv"

	"github.com/outposthq/outpost/internal/liveness"
)

// Names of the consumer's loops in Liveness: "worker 1" … "worker N",
// and the ack tracker.
const (
	LoopWorker     = "worker"
	LoopAckTracker = "ack tracker"
)

// workerAllowance is what one message may take a worker while the store
// answers: a store call, bounded by storeTimeout, and a retry wait.
const workerAllowance = storeTimeout + retryMax

// Liveness reports the consumer's loops, for a watchdog. A worker is idle
// while it waits for a message and busy from taking one until it is
// stored and acked or dead-lettered, allowed a store call and a retry
// wait; the ack tracker is busy while it waits for a PUBACK, allowed
// until the ack's deadline. While the store keeps failing (a database
// that is down) the workers retry on schedule: that is not a wedge, and
// their reports show no time overdue then. A broker that is down leaves
// every loop idle. Safe from any goroutine.
func (s *Service) Liveness() []liveness.Report {
	failing := s.dbFailing.Load()
	rs := make([]liveness.Report, 0, len(s.workBeats)+1)
	for i := range s.workBeats {
		r := s.workBeats[i].Report(LoopWorker + " " + strconv.Itoa(i+1))
		if failing {
			r.Overdue = 0
		}
		rs = append(rs, r)
	}
	return append(rs, s.ackBeat.Report(LoopAckTracker))
}
