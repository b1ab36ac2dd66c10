package gateway

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/internal/liveness"
)

// Names of the gateway's own loops in Health.
const (
	LoopBatcher   = "batcher"
	LoopRules     = "rules"
	LoopDashboard = "dashboard"
)

// Health is the liveness of the pipeline's loops, read at one moment:
// the batcher (which commits to the outbox), the rule engine, the
// dashboard and the uplink's connection and sender loops
// (uplink.LoopConnection, LoopSender). A loop waiting for work is
// healthy however long it waits; one that has been busy with a single
// step (a commit, a rule evaluation, a connection attempt past its
// timeout, a backoff past its wait) for longer than a limit is wedged.
// A broker that is down is not a wedge: the connection loop goes on
// attempting and backing off on schedule.
type Health struct {
	Parts []liveness.Report
}

// Health reads the loops' liveness; safe from any goroutine, before
// Start and after Close too (every loop is idle then).
func (g *Gateway) Health() Health {
	h := Health{Parts: []liveness.Report{g.batcher.beat.Report(LoopBatcher)}}
	if g.ruler != nil {
		h.Parts = append(h.Parts, g.ruler.beat.Report(LoopRules))
	}
	if g.dash != nil {
		h.Parts = append(h.Parts, g.dash.beat.Report(LoopDashboard))
	}
	h.Parts = append(h.Parts, g.uplink.Liveness()...)
	return h
}

// Wedged is the parts busy for longer than limit past what their step
// may take; none when the pipeline is healthy.
func (h Health) Wedged(limit time.Duration) []liveness.Report {
	var w []liveness.Report
	for _, p := range h.Parts {
		if p.Wedged(limit) {
			w = append(w, p)
		}
	}
	return w
}

// Notifier is what the watchdog needs from systemd's notification
// socket (*sdnotify.Notifier).
type Notifier = liveness.Notifier

// WatchdogOptions configure StartWatchdog; see liveness.WatchdogOptions.
type WatchdogOptions struct {
	Every  time.Duration // how often to check: half of WatchdogSec; required
	Pet    bool          // pet the watchdog while healthy; else only the status
	Limit  time.Duration // busy past a step's allowance this long is wedged; default 2·Every
	Logger zerolog.Logger
}

// StartWatchdog checks g's Health every o.Every and pets systemd's
// watchdog only while no loop is wedged; each check sets the status line
// too ("readings 1234/s, outbox 3 batches, uplink connected"). The caller
// owns the watchdog and stops it after the gateway's Shutdown or Close,
// so that a shutdown that wedges stops the petting too.
func StartWatchdog(g *Gateway, n Notifier, o *WatchdogOptions) (*liveness.Watchdog, error) {
	if g == nil || g.batcher == nil || o == nil {
		return nil, fmt.Errorf("gateway: watchdog: a built gateway and options are required")
	}
	st := &statusLine{g: g, at: time.Now(), stored: g.batcher.stored.Load()}
	w, err := liveness.StartWatchdog(n, &liveness.WatchdogOptions{
		Every: o.Every, Pet: o.Pet, Limit: o.Limit, Logger: o.Logger,
		Parts:  func() []liveness.Report { return g.Health().Parts },
		Status: st.String,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return w, nil
}

// statusLine is the one line systemctl status shows: readings stored per
// second since the last check, the outbox's batches, the uplink's state.
type statusLine struct {
	g      *Gateway
	at     time.Time
	stored int64
}

func (s *statusLine) String() string {
	now, n := time.Now(), s.g.batcher.stored.Load()
	var rate float64
	if d := now.Sub(s.at); d > 0 {
		rate = float64(n-s.stored) / d.Seconds()
	}
	s.at, s.stored = now, n
	up := "uplink connected"
	if !s.g.uplink.Stats().Connected {
		up = "uplink connecting"
	}
	return fmt.Sprintf("readings %.0f/s, outbox %d batches, %s", rate, s.g.storedBatches(), up)
}
