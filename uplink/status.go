package uplink

// The status document (docs/wire-format.md, "Status"). The connection
// loop publishes it, retained, QoS 1: at each connect (the birth), then,
// while the connection lasts, StatusInterval after the last one, and
// StatusHoldoff after the last one once StatusChanged was called since;
// Close publishes it offline, and the broker the last will when the
// connection dies. Nothing goes out while disconnected: a change then
// waits for the birth of the next connection, which shows it. The
// schedule lives in waitLost, on the connection goroutine, which has
// nothing else to do while the connection is up: no goroutine of its own.

import (
	"encoding/json"
	"time"

	"github.com/outposthq/outpost"
)

// StatusChanged says that the status document's health changed in a way
// that matters (the gateway calls it when the number of firing or
// pending alerts or the set of failing sensors changes). A connected
// uplink publishes a fresh document StatusHoldoff after its last one, or
// at once if that was longer ago; calls meanwhile add nothing. A
// disconnected one publishes nothing: its next connect publishes a fresh
// document anyway. It never blocks, and is safe from any goroutine,
// before Start and after Close.
func (u *Uplink) StatusChanged() {
	select {
	case u.statusWake <- struct{}{}:
	default: // one is pending already
	}
}

// statusSchedule says when the connected uplink next publishes its
// status: StatusInterval after the last one (when it is not 0), and
// StatusHoldoff after the last one once a change was reported since.
// Times are Go's monotonic clock: a step of the wall clock (docs/clock.md)
// neither delays nor hurries a document.
type statusSchedule struct {
	interval, holdoff time.Duration
	last              time.Time // the last document published
	changed           bool      // StatusChanged since last
}

// next is when the next document is due; false: none is.
func (s *statusSchedule) next() (time.Time, bool) {
	var at time.Time
	ok := false
	if s.interval > 0 {
		at, ok = s.last.Add(s.interval), true
	}
	if s.changed {
		if c := s.last.Add(s.holdoff); !ok || c.Before(at) {
			at, ok = c, true
		}
	}
	return at, ok
}

// published records a document published at now.
func (s *statusSchedule) published(now time.Time) { s.last, s.changed = now, false }

// arm sets t to fire when the next document is due, or stops it.
func (s *statusSchedule) arm(t *time.Timer) {
	t.Stop() // since Go 1.23 a Reset after Stop never sees a stale tick
	if at, ok := s.next(); ok {
		t.Reset(max(time.Until(at), 0))
	}
}

// birth publishes the online status at a connect. A StatusChanged before
// it is answered by it.
func (u *Uplink) birth() {
	select {
	case <-u.statusWake:
	default:
	}
	u.client.Publish(u.statusTopic, 1, true, u.statusJSON("online"))
}

// republishStatus publishes the online status on the connection that is
// up; if paho has marked it lost already, nothing (waitLost hears of
// the loss next, and the next connect publishes a birth). It does not
// wait for the PUBACK: a document lost with its connection is replaced
// by the next birth.
func (u *Uplink) republishStatus() {
	if !u.connected.Load() || !u.client.IsConnectionOpen() {
		return
	}
	u.client.Publish(u.statusTopic, 1, true, u.statusJSON("online"))
}

// statusJSON is the status document in state, dated now, with the
// version, the start time and the health as Options give them.
func (u *Uplink) statusJSON(state string) []byte {
	st := outpost.Status{State: state, Gateway: u.opt.Gateway,
		TS: u.opt.Now().UTC().Format(time.RFC3339Nano), Version: u.opt.Version, Labels: u.labels, Sensors: u.sensors}
	if u.opt.StartedAt != nil {
		if t := u.opt.StartedAt(); !t.IsZero() {
			st.StartedAt = t.UTC().Truncate(time.Second).Format(time.RFC3339)
		}
	}
	st.Health = u.health()
	b, err := json.Marshal(st)
	if err == nil && len(b) <= outpost.MaxStatusBytes {
		return b
	}
	// Only a health beyond what New counted can get here.
	u.log.Error().AnErr("marshal", err).Int("bytes", len(b)).Int("max", outpost.MaxStatusBytes).
		Msg("status document too large with its health: published without it")
	st.Health = nil
	b, _ = json.Marshal(st) // strings and maps of strings: no error
	return b
}

// health is Options.Health's answer as the document carries it: a copy,
// sensors_failing {} rather than null, or nil when there is none or it
// breaks the document's bounds (logged: a bug of the caller, which the
// ingest service would dead-letter the whole document for).
func (u *Uplink) health() *outpost.StatusHealth {
	if u.opt.Health == nil {
		return nil
	}
	h := u.opt.Health()
	if h == nil {
		return nil
	}
	c := *h
	if c.SensorsFailing == nil {
		c.SensorsFailing = map[string][]string{}
	}
	if err := c.Check(); err != nil {
		u.log.Error().Err(err).Msg("status health out of bounds: published without it")
		return nil
	}
	return &c
}

// willJSON is the last will: offline, undated (ingest takes it for newer
// than the status it replaces, which a time taken now, before that
// status, would not be), and without labels or sensors (theirs stand),
// version, start time or health (the broker sends it when the gateway
// can no longer say).
func (u *Uplink) willJSON() []byte {
	b, _ := json.Marshal(outpost.Status{State: "offline", Gateway: u.opt.Gateway}) // strings: no error
	return b
}
