package gateway

import (
	"fmt"
	"strings"
	"sync"
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

// Notifier is what the watchdog needs from systemd's notification socket
// (*sdnotify.Notifier).
type Notifier interface {
	Pet(status string) error    // WATCHDOG=1, with a status line
	Status(status string) error // the status line alone
}

// WatchdogOptions configure a Watchdog.
type WatchdogOptions struct {
	// Every is how often the watchdog checks the pipeline and reports
	// its status: half the WatchdogSec systemd asked for, so that one
	// late check costs nothing. Required.
	Every time.Duration
	// Pet: pet systemd's watchdog at each check that finds the pipeline
	// healthy. Without it the watchdog only reports the status.
	Pet bool
	// Limit is how long a loop may stay busy past what its step may take
	// before it counts as wedged; default 2·Every (WatchdogSec). Petting
	// stops while any loop is wedged, and systemd restarts the gateway
	// at most WatchdogSec after the last pet: if the step ends before,
	// petting resumes and nothing happens.
	Limit  time.Duration
	Logger zerolog.Logger
}

// Watchdog checks a running gateway's Health every WatchdogOptions.Every
// and pets systemd's watchdog only while no loop is wedged; each check
// also sets systemd's status line ("readings 1234/s, outbox 3 batches,
// uplink connected"). StartWatchdog starts its goroutine; its caller
// owns it and calls Stop, after the gateway's Shutdown or Close, so that
// a shutdown that wedges stops the petting too.
type Watchdog struct {
	g     *Gateway
	n     Notifier
	o     WatchdogOptions
	log   zerolog.Logger
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	clock func() time.Time // monotonic, for the readings rate

	// Owned by run.
	wedged    bool
	sendFails int
	lastAt    time.Time
	lastRead  int64
}

// StartWatchdog starts watching g (started or not) and reporting to n.
func StartWatchdog(g *Gateway, n Notifier, o *WatchdogOptions) (*Watchdog, error) {
	if g == nil || n == nil || o == nil || o.Every <= 0 {
		return nil, fmt.Errorf("gateway: watchdog: a gateway, a notifier and a positive interval are required")
	}
	w := &Watchdog{g: g, n: n, o: *o, stop: make(chan struct{}), done: make(chan struct{}), clock: time.Now}
	if w.o.Limit <= 0 {
		w.o.Limit = 2 * w.o.Every
	}
	w.log = w.o.Logger.With().Str("component", "watchdog").Logger()
	w.lastAt, w.lastRead = w.clock(), w.readings()
	go w.run()
	return w, nil
}

// Stop ends the watchdog's goroutine and waits for it. Idempotent.
func (w *Watchdog) Stop() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

func (w *Watchdog) run() {
	defer close(w.done)
	t := time.NewTicker(w.o.Every)
	defer t.Stop()
	w.check()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.check()
		}
	}
}

// check pets the watchdog when no loop is wedged and reports the status.
func (w *Watchdog) check() {
	wedged := w.g.Health().Wedged(w.o.Limit)
	var err error
	if len(wedged) == 0 {
		if w.wedged {
			w.wedged = false
			w.log.Warn().Msg("the pipeline moves again; petting the watchdog again")
		}
		status := w.status()
		if w.o.Pet {
			err = w.n.Pet(status)
		} else {
			err = w.n.Status(status)
		}
	} else {
		parts := describe(wedged)
		if !w.wedged {
			w.wedged = true
			w.log.Error().Str("wedged", parts).Dur("limit", w.o.Limit).
				Msg("pipeline wedged: no longer petting the watchdog; systemd restarts the gateway unless it moves again")
		}
		err = w.n.Status("WEDGED: " + parts)
	}
	if err != nil {
		w.sendFails++
		if w.sendFails == 1 || w.sendFails%100 == 0 {
			w.log.Error().Err(err).Int("failures", w.sendFails).Msg("notifying systemd failed")
		}
		return
	}
	w.sendFails = 0
}

// status is the one line systemctl status shows: readings stored per
// second since the last check, the outbox's batches, the uplink's state.
func (w *Watchdog) status() string {
	now, n := w.clock(), w.readings()
	var rate float64
	if d := now.Sub(w.lastAt); d > 0 {
		rate = float64(n-w.lastRead) / d.Seconds()
	}
	w.lastAt, w.lastRead = now, n
	up := "uplink connected"
	if !w.g.uplink.Stats().Connected {
		up = "uplink connecting"
	}
	return fmt.Sprintf("readings %.0f/s, outbox %d batches, %s", rate, w.g.storedBatches(), up)
}

func (w *Watchdog) readings() int64 { return w.g.batcher.stored.Load() }

// describe names the wedged parts and how long each has been busy.
func describe(rs []liveness.Report) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = fmt.Sprintf("%s busy for %s", r.Part, r.BusyFor.Round(time.Millisecond))
	}
	return strings.Join(s, ", ")
}
