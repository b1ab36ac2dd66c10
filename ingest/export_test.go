package ingest

import "time"

// SetWorkAllowance shortens what one message may take a worker before
// Liveness calls it overdue, so that a test sees a wedge at once.
func SetWorkAllowance(s *Service, d time.Duration) { s.workAllowance.Store(int64(d)) }

// SetCourierSweep makes the command courier of a service of o sweep
// every d instead of every minute.
func SetCourierSweep(o *Options, d time.Duration) { o.courierSweep = d }
