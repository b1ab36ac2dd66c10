package ingest

import "time"

// SetEventHeartbeat shortens the silence after which an event stream
// gets a ping, so that a test sees pings at once. Call it before the
// first stream opens.
func SetEventHeartbeat(s *Service, d time.Duration) { s.events.heartbeat = d }
