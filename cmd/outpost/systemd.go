package main

import (
	"github.com/outposthq/outpost/cmd/internal/systemd"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/internal/liveness"
)

// openSystemd reads the environment systemd gives a Type=notify unit
// (cmd/internal/systemd).
func (m *Main) openSystemd() error {
	u, err := systemd.Open(m.Log)
	if err != nil {
		return err
	}
	m.systemd = u
	return nil
}

// notifyReady says READY=1 once the outbox is open and the sensors are
// started (after Run), and starts the gateway's watchdog: it pets while
// the pipeline moves (gateway.StartWatchdog).
func (m *Main) notifyReady() {
	m.systemd.Ready("started", func(n liveness.Notifier, o liveness.WatchdogOptions) (*liveness.Watchdog, error) {
		return gateway.StartWatchdog(m.Gateway, n, &gateway.WatchdogOptions{Every: o.Every, Pet: o.Pet, Logger: o.Logger})
	})
}

// notifyReloading brackets a rules reload.
func (m *Main) notifyReloading() (done func()) { return m.systemd.Reloading("the rules") }

// notifyStopping says STOPPING=1 at the stop signal.
func (m *Main) notifyStopping() { m.systemd.Stopping("stopping: delivering what is stored") }

// closeSystemd stops the watchdog; after Shutdown or Close.
func (m *Main) closeSystemd() { m.systemd.Close() }
