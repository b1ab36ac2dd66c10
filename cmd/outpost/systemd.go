package main

import (
	"time"

	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/internal/liveness"
	"github.com/outposthq/outpost/internal/sdnotify"
)

// statusEvery is how often the status line is refreshed when systemd
// asks for no watchdog.
const statusEvery = 10 * time.Second

// systemd tells systemd how the gateway is doing when it runs as a
// Type=notify unit: READY=1 once the outbox is open and the sensors are
// started, RELOADING=1 around a rules reload, STOPPING=1 at a stop, and a
// status line; with WatchdogSec= set, a gateway.Watchdog pets the
// watchdog while the pipeline moves. Without $NOTIFY_SOCKET it does
// nothing.
type systemd struct {
	n  *sdnotify.Notifier
	wd *liveness.Watchdog // nil until ready, or when disabled
}

// openSystemd reads the environment systemd gives a Type=notify unit.
// A malformed one is an error: the unit would otherwise wait for a
// READY=1 that never comes.
func (m *Main) openSystemd() error {
	n, err := sdnotify.FromEnv()
	if err != nil {
		return err
	}
	m.systemd = &systemd{n: n}
	return nil
}

// notifyReady says READY=1 and starts the watchdog; after Run.
func (m *Main) notifyReady() {
	s := m.systemd
	if s == nil || !s.n.Enabled() {
		return
	}
	m.Log.Info().Dur("watchdog", s.n.Watchdog()).Msg("notifying systemd")
	m.notifyErr(s.n.Ready("started"))
	o := &gateway.WatchdogOptions{Every: statusEvery, Logger: m.Log}
	if d := s.n.Watchdog(); d > 0 {
		o.Every, o.Pet = d/2, true
	}
	wd, err := gateway.StartWatchdog(m.Gateway, s.n, o)
	if err != nil {
		m.Log.Error().Err(err).Msg("watchdog not started")
		return
	}
	s.wd = wd
}

// notifyReloading brackets a rules reload: RELOADING=1 before it, and
// READY=1 after (done).
func (m *Main) notifyReloading() (done func()) {
	s := m.systemd
	if s == nil {
		return func() {}
	}
	m.notifyErr(s.n.Reloading("reloading the rules"))
	return func() { m.notifyErr(s.n.Ready("rules reloaded")) }
}

// notifyStopping says STOPPING=1; the watchdog goes on petting while the
// shutdown moves.
func (m *Main) notifyStopping() {
	if s := m.systemd; s != nil {
		m.notifyErr(s.n.Stopping("stopping: delivering what is stored"))
	}
}

// closeSystemd stops the watchdog and closes the socket; after Shutdown
// or Close.
func (m *Main) closeSystemd() {
	s := m.systemd
	if s == nil {
		return
	}
	if s.wd != nil {
		s.wd.Stop()
	}
	m.notifyErr(s.n.Close())
}

func (m *Main) notifyErr(err error) {
	if err != nil {
		m.Log.Warn().Err(err).Msg("notifying systemd failed")
	}
}
