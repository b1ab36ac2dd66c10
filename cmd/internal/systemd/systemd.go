// Package systemd is what outpost run and outpost-ingest tell systemd when
// they run as a Type=notify unit: READY=1 once they are running,
// RELOADING=1 and READY=1 around a SIGHUP reload, STOPPING=1 at a stop, a
// status line, and with WatchdogSec= set, watchdog pets while their loops
// move (internal/liveness). Without $NOTIFY_SOCKET a Unit does nothing.
package systemd

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/internal/liveness"
	"github.com/outposthq/outpost/internal/sdnotify"
)

// statusEvery is how often the status line is refreshed when systemd
// asks for no watchdog.
const statusEvery = 10 * time.Second

// Unit is one binary's conversation with systemd. Its methods are safe
// on a nil *Unit, which says nothing.
type Unit struct {
	n   *sdnotify.Notifier
	wd  *liveness.Watchdog // nil until Ready, or when it failed to start
	log zerolog.Logger
}

// Open reads the environment systemd gives a Type=notify unit. A
// malformed one is an error: the unit would otherwise wait for a READY=1
// that never comes.
func Open(log zerolog.Logger) (*Unit, error) {
	n, err := sdnotify.FromEnv()
	if err != nil {
		return nil, err
	}
	return &Unit{n: n, log: log}, nil
}

// StartWatchdog starts the binary's watchdog on n, checking every o.Every
// and petting when o.Pet; Ready fills o.
type StartWatchdog func(n liveness.Notifier, o liveness.WatchdogOptions) (*liveness.Watchdog, error)

// Ready says READY=1 with status, then starts the watchdog with start:
// petting every half WatchdogSec when systemd asked for one, else only
// refreshing the status line. A watchdog that fails to start is logged.
func (u *Unit) Ready(status string, start StartWatchdog) {
	if u == nil || !u.n.Enabled() {
		return
	}
	u.log.Info().Dur("watchdog", u.n.Watchdog()).Msg("notifying systemd")
	u.warn(u.n.Ready(status))
	o := liveness.WatchdogOptions{Every: statusEvery, Logger: u.log}
	if d := u.n.Watchdog(); d > 0 {
		o.Every, o.Pet = d/2, true
	}
	wd, err := start(u.n, o)
	if err != nil {
		u.log.Error().Err(err).Msg("watchdog not started")
		return
	}
	u.wd = wd
}

// Reloading says RELOADING=1 (what is reloaded, as the status) before a
// reload; done says READY=1 after it, as Type=notify-reload wants.
func (u *Unit) Reloading(what string) (done func()) {
	if u == nil {
		return func() {}
	}
	u.warn(u.n.Reloading("reloading " + what))
	return func() { u.warn(u.n.Ready(what + " reloaded")) }
}

// Stopping says STOPPING=1; the watchdog goes on petting while the stop
// moves.
func (u *Unit) Stopping(status string) {
	if u != nil {
		u.warn(u.n.Stopping(status))
	}
}

// Close stops the watchdog and closes the socket: after the binary's
// stop, so that a stop that wedges stops the petting too.
func (u *Unit) Close() {
	if u == nil {
		return
	}
	if u.wd != nil {
		u.wd.Stop()
	}
	u.warn(u.n.Close())
}

func (u *Unit) warn(err error) {
	if err != nil {
		u.log.Warn().Err(err).Msg("notifying systemd failed")
	}
}
