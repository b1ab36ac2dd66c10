package main

import (
	"fmt"
	"time"

	"github.com/outposthq/outpost/cmd/internal/systemd"
	"github.com/outposthq/outpost/internal/liveness"
)

// openSystemd reads the environment systemd gives a Type=notify unit
// (cmd/internal/systemd).
func (m *Main) openSystemd() error {
	u, err := systemd.Open(m.Logger)
	if err != nil {
		return err
	}
	m.systemd = u
	return nil
}

// notifyReady says READY=1 once the database is open and the broker
// subscription made, and starts the watchdog: it pets while the
// consumer's loops live (ingest.Service.Liveness).
func (m *Main) notifyReady() {
	m.systemd.Ready("started", func(n liveness.Notifier, o liveness.WatchdogOptions) (*liveness.Watchdog, error) {
		o.Parts, o.Status = m.svc.Liveness, m.statusLine()
		return liveness.StartWatchdog(n, &o)
	})
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

// notifyReloading brackets a reload of the auth keys.
func (m *Main) notifyReloading() (done func()) { return m.systemd.Reloading("the auth keys") }

// notifyStopping says STOPPING=1 at the stop signal.
func (m *Main) notifyStopping() { m.systemd.Stopping("stopping") }

// closeSystemd stops the watchdog; after Close.
func (m *Main) closeSystemd() { m.systemd.Close() }
