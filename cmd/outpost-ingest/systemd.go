package main

import (
	"fmt"
	"time"

	"github.com/outposthq/outpost/internal/liveness"
	"github.com/outposthq/outpost/internal/sdnotify"
)

// statusEvery is how often the status line is refreshed when systemd
// asks for no watchdog.
const statusEvery = 10 * time.Second

// systemd tells systemd how the service is doing when it runs as a
// Type=notify unit: READY=1 once the database is open and the broker
// subscription made, STOPPING=1 at a stop, a status line, and with
// WatchdogSec= set, watchdog pets while the consumer's loops live
// (ingest.Service.Liveness). Without $NOTIFY_SOCKET it does nothing.
type systemd struct {
	n  *sdnotify.Notifier
	wd *liveness.Watchdog // nil until ready, or when disabled
}

// openSystemd reads the environment systemd gives a Type=notify unit; a
// malformed one is an error.
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
	m.Logger.Info().Dur("watchdog", s.n.Watchdog()).Msg("notifying systemd")
	m.notifyErr(s.n.Ready("started"))
	o := &liveness.WatchdogOptions{Every: statusEvery, Logger: m.Logger, Parts: m.svc.Liveness, Status: m.statusLine()}
	if d := s.n.Watchdog(); d > 0 {
		o.Every, o.Pet = d/2, true
	}
	wd, err := liveness.StartWatchdog(s.n, o)
	if err != nil {
		m.Logger.Error().Err(err).Msg("watchdog not started")
		return
	}
	s.wd = wd
}

// statusLine is the status systemctl status shows: batches and readings
// committed per second since the last check, and dead letters so far.
func (m *Main) statusLine() func() string {
	at, last := time.Now(), m.svc.Stats()
	return func() string {
		now, st := time.Now(), m.svc.Stats()
		d := max(now.Sub(at).Seconds(), 1e-9)
		line := fmt.Sprintf("batches %.0f/s, readings %.0f/s, dead letters %d",
			float64(st.Batches-last.Batches)/d, float64(st.Readings-last.Readings)/d, st.DeadLetters)
		at, last = now, st
		return line
	}
}

// notifyReloading brackets a reload of the auth keys: RELOADING=1
// before it, and READY=1 after (done), as Type=notify-reload wants.
func (m *Main) notifyReloading() (done func()) {
	s := m.systemd
	if s == nil {
		return func() {}
	}
	m.notifyErr(s.n.Reloading("reloading the auth keys"))
	return func() { m.notifyErr(s.n.Ready("auth keys reloaded")) }
}

// notifyStopping says STOPPING=1; the watchdog goes on while the
// service drains.
func (m *Main) notifyStopping() {
	if s := m.systemd; s != nil {
		m.notifyErr(s.n.Stopping("stopping"))
	}
}

// closeSystemd stops the watchdog and closes the socket; after Close.
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
		m.Logger.Warn().Err(err).Msg("notifying systemd failed")
	}
}
