package chaos

import (
	"errors"
	"time"
)

// Options configure a kill loop. Zero fields take the defaults noted.
type Options struct {
	// Kills is how many times the gateway is killed with SIGKILL before the
	// final graceful run. Default 20.
	Kills int
	// Seed drives the kill times and the signals' noise. The same seed gives
	// the same plan (process timing still varies).
	Seed int64

	Broker string // MQTT broker URL; required
	DB     string // ingest DSN: postgres://… or sqlite:PATH; required
	Dir    string // work dir: configs, logs, data dir, outbox copies; required
	Bin    Binaries

	Sensors       int           // simulated sensors; default 3
	Metrics       int           // metrics per sensor; default 2
	PollInterval  time.Duration // sensor poll interval; default 20ms
	Samples       int           // readings per metric per poll; default 50
	BatchInterval time.Duration // batch.interval; default 200ms
	// MaxReadings is batch.max_readings; default 997, deliberately not a
	// multiple of a poll's Metrics×Samples readings, so that batch
	// boundaries cut polls and a kill can leave half a poll committed.
	MaxReadings int
	// MaxDelay is batch.max_delay; default 0: the config's default
	// (30s), which at the kill loop's rates holds open only the partial
	// batch left at a tick.
	MaxDelay   time.Duration
	AckTimeout time.Duration // uplink.ack_timeout; default 2s

	// A run lasts MinUp to MaxUp before its kill, except a share ShortShare
	// of them that are killed within ShortUp of their exec, most of those
	// while the gateway is still starting. Defaults 300ms, 2s, 120ms, 0.15.
	MinUp, MaxUp time.Duration
	ShortUp      time.Duration
	ShortShare   float64
	// FinalUp is how long the last run lasts before SIGTERM. Default 1.5s.
	FinalUp time.Duration

	// FlushSlack widens the window before each kill in which readings may
	// be lost, beyond batch.interval + poll interval: it covers the
	// commit's fsync and the batcher's queue. After the graceful stop the
	// last reading may be up to a poll interval plus FlushSlack before
	// SIGTERM (a poll delayed right then is not a loss). Default 750ms:
	// unloaded, the unflushed tail at a kill is under 100ms; with another
	// package's fsync-heavy tests on the same 2 CPUs and disk (as under
	// `go test ./...`) it was measured at up to 412ms.
	FlushSlack time.Duration
	// StartSlack is how long after its exec a restarted gateway may take
	// to emit its first reading. Default 1s.
	StartSlack time.Duration
	// DrainTimeout bounds the drain at the end. Default 45s.
	DrainTimeout time.Duration

	// Logf receives progress lines; default none.
	Logf func(format string, args ...any)
}

func (o Options) withDefaults() (Options, error) {
	if o.Broker == "" || o.DB == "" || o.Dir == "" || o.Bin.Gateway == "" || o.Bin.Ingest == "" {
		return o, errors.New("chaos: Broker, DB, Dir and Bin are required")
	}
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	defInt := func(p *int, d int) {
		if *p <= 0 {
			*p = d
		}
	}
	defInt(&o.Kills, 20)
	defInt(&o.Sensors, 3)
	defInt(&o.Metrics, 2)
	defInt(&o.Samples, 50)
	defInt(&o.MaxReadings, 997)
	def(&o.PollInterval, 20*time.Millisecond)
	def(&o.BatchInterval, 200*time.Millisecond)
	def(&o.AckTimeout, 2*time.Second)
	def(&o.MinUp, 300*time.Millisecond)
	def(&o.MaxUp, 2*time.Second)
	def(&o.ShortUp, 120*time.Millisecond)
	def(&o.FinalUp, 1500*time.Millisecond)
	def(&o.FlushSlack, 750*time.Millisecond)
	def(&o.StartSlack, time.Second)
	def(&o.DrainTimeout, 45*time.Second)
	if o.ShortShare <= 0 {
		o.ShortShare = 0.15
	}
	if o.MaxUp < o.MinUp {
		o.MaxUp = o.MinUp
	}
	if o.PollInterval%time.Duration(o.Samples) != 0 {
		// The analysis relies on readings of one poll being exactly
		// PollInterval/Samples apart.
		return o, errors.New("chaos: PollInterval must be a multiple of Samples nanoseconds")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o, nil
}

// step is the spacing of readings within one poll.
func (o *Options) step() time.Duration { return o.PollInterval / time.Duration(o.Samples) }

// flushWindow is how long before a kill readings may be unflushed.
func (o *Options) flushWindow() time.Duration {
	return o.BatchInterval + o.PollInterval + o.FlushSlack
}
