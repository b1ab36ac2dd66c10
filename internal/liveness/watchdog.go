package liveness

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Notifier is what a Watchdog needs from systemd's notification socket
// (*sdnotify.Notifier).
type Notifier interface {
	Pet(status string) error    // WATCHDOG=1, with a status line
	Status(status string) error // the status line alone
}

// WatchdogOptions configure a Watchdog.
type WatchdogOptions struct {
	// Every is how often the watchdog checks the loops and reports the
	// status: half the WatchdogSec systemd asked for, so that one late
	// check costs nothing. Required.
	Every time.Duration
	// Pet: pet systemd's watchdog at each check that finds no loop
	// wedged. Without it the watchdog only reports the status.
	Pet bool
	// Limit is how long a loop may stay busy past what its step may take
	// before it counts as wedged; default 2·Every (WatchdogSec). Petting
	// stops while any loop is wedged, and systemd acts at most
	// WatchdogSec after the last pet: a step that ends before that
	// resumes the petting and nothing happens.
	Limit time.Duration
	// Parts reads the loops' reports; required. Status is the status
	// line while no loop is wedged (optional). Both are called from the
	// watchdog's goroutine only.
	Parts  func() []Report
	Status func() string
	Logger zerolog.Logger
}

// Watchdog checks the loops every WatchdogOptions.Every and pets
// systemd's watchdog only while none is wedged; while one is, the status
// line names it ("WEDGED: batcher busy for 45s") and an error is logged
// once. StartWatchdog starts its goroutine; the caller owns it and calls
// Stop.
type Watchdog struct {
	n    Notifier
	o    WatchdogOptions
	log  zerolog.Logger
	stop chan struct{}
	done chan struct{}
	once sync.Once

	wedged    bool // owned by run
	sendFails int  // owned by run
}

// StartWatchdog starts a watchdog reporting to n.
func StartWatchdog(n Notifier, o *WatchdogOptions) (*Watchdog, error) {
	if n == nil || o == nil || o.Every <= 0 || o.Parts == nil {
		return nil, errors.New("watchdog: a notifier, a positive interval and the parts are required")
	}
	w := &Watchdog{n: n, o: *o, stop: make(chan struct{}), done: make(chan struct{})}
	if w.o.Limit <= 0 {
		w.o.Limit = 2 * w.o.Every
	}
	w.log = w.o.Logger.With().Str("component", "watchdog").Logger()
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

// check pets the watchdog when no loop is wedged, and reports the status.
func (w *Watchdog) check() {
	var wedged []Report
	for _, r := range w.o.Parts() {
		if r.Wedged(w.o.Limit) {
			wedged = append(wedged, r)
		}
	}
	var err error
	if len(wedged) == 0 {
		if w.wedged {
			w.wedged = false
			w.log.Warn().Msg("every loop moves again; petting the watchdog again")
		}
		var status string
		if w.o.Status != nil {
			status = w.o.Status()
		}
		if w.o.Pet {
			err = w.n.Pet(status)
		} else if status != "" {
			err = w.n.Status(status)
		}
	} else {
		parts := Describe(wedged)
		if !w.wedged {
			w.wedged = true
			w.log.Error().Str("wedged", parts).Str("limit", w.o.Limit.String()).
				Msg("wedged: no longer petting the watchdog; systemd restarts the process unless the loop moves again")
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

// Describe names the parts of rs and how long each has been busy.
func Describe(rs []Report) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = fmt.Sprintf("%s busy for %s", r.Part, r.BusyFor.Round(time.Millisecond))
	}
	return strings.Join(s, ", ")
}
