package gateway

import (
	"strconv"
	"sync"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
)

// The status document's health (outpost.StatusHealth, docs/wire-format.md,
// "Status"). The uplink asks for it as it makes each document
// (uplink.Options.Health) and is told when it changed in a way that
// matters (uplink.StatusChanged): by the ruler when its counts of firing
// or pending instances change, and by every sensor health event. All of
// it is read from what the parts count anyway: the outbox's Stats, the
// pollers' Status, the ruler's two counts.

// minRateWindow is the shortest time readings_per_s is measured over: a
// document that follows the previous one closer than this (the offline
// one at a stop, a birth right after a reconnect) repeats the previous
// rate and leaves the window open, rather than make a rate of a poll or
// two.
const minRateWindow = time.Second

// statusState is what the health keeps from one document to the next,
// and the process's start. The uplink calls never overlap, but the
// mutex keeps that from mattering.
type statusState struct {
	mu        sync.Mutex
	startMono time.Duration // the gateway's monotonic clock at New
	startedAt time.Time     // the start on the wall clock, once it is trusted; zero before
	at        time.Duration // monotonic clock when the rate's window began
	readings  int64         // readings emitted then
	rate      float64       // the last rate reported
}

func (s *statusState) start(mono time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startMono, s.at = mono, mono
}

// perSecond is the rate of readings (n emitted by now, on the monotonic
// clock) since the window began, which then begins again; within
// minRateWindow of its start, the previous rate.
func (s *statusState) perSecond(n int64, now time.Duration) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	dt := now - s.at
	if dt < minRateWindow {
		return s.rate
	}
	s.rate = significant3(float64(max(n-s.readings, 0)) / dt.Seconds())
	s.at, s.readings = now, n
	return s.rate
}

// significant3 rounds a rate to three significant digits: 6.02, 1230,
// 0.00333 (a reading every five minutes). More would be noise, and cost
// bytes on a metered link.
func significant3(v float64) float64 {
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64)
	if err != nil { // cannot happen: FormatFloat's output parses
		return v
	}
	return r
}

// statusStartedAt is uplink.Options.StartedAt: when the gateway started,
// on the wall clock, or the zero time while that clock is not trusted
// (docs/clock.md: a Pi that booted at 1970 would say it started then).
// Once trusted, it is the trusted time less the monotonic time since New,
// and stays so: later steps of the clock do not move it.
func (g *Gateway) statusStartedAt() time.Time {
	if !g.clock.isTrusted() {
		return time.Time{}
	}
	s := &g.status
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.startedAt.IsZero() {
		now := g.clock.now()
		s.startedAt = now.Add(-(g.clock.mono() - s.startMono))
	}
	return s.startedAt
}

// statusHealth is uplink.Options.Health: the outbox's stored batches,
// bytes and oldest batch (both lanes), the readings per second since
// the previous document, the alert instances firing and pending (the
// rules', and each active sensor health condition as a firing instance
// of sensor_health), and the sensors with an active condition. The
// failing sensors are the configured ones, which the uplink's size
// check counted.
func (g *Gateway) statusHealth() *outpost.StatusHealth {
	ob := g.outbox.Stats()
	h := &outpost.StatusHealth{SensorsFailing: map[string][]string{}}
	var oldest int64
	for _, l := range []buffer.Lane{buffer.LaneAlert, buffer.LaneTelemetry} {
		h.OutboxBatches += int64(ob.Batches[l])
		h.OutboxBytes += ob.Bytes[l]
		if c := ob.OldestCreated[l]; c > 0 && (oldest == 0 || c < oldest) {
			oldest = c
		}
	}
	if oldest > 0 {
		h.OutboxOldest = time.Unix(0, oldest).UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	var readings int64
	for _, p := range g.pollers {
		st := p.Status() // Active is a sorted copy
		readings += st.Readings
		if len(st.Active) > 0 {
			h.SensorsFailing[st.Sensor] = st.Active
			h.AlertsFiring += int64(len(st.Active))
		}
	}
	if g.ruler != nil {
		h.AlertsFiring += g.ruler.firing.Load()
		h.AlertsPending += g.ruler.pending.Load()
	}
	h.ReadingsPerS = g.status.perSecond(readings, g.clock.mono())
	return h
}
