// Package gateway wires the edge pipeline: sensor pollers emit onto the bus;
// the rule engine, the batcher and the dashboard's live view receive; the
// batcher stores batches in the outbox; the uplink forwards them and
// carries the dashboard's retained live and alert topics. Both cmd/outpost
// and cmd/outpost-demo run a Gateway.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway/command"
	"github.com/outposthq/outpost/rules"
	"github.com/outposthq/outpost/sensors"
	"github.com/outposthq/outpost/uplink"
)

// OutboxFile is the outbox's file name inside the data dir.
const OutboxFile = "outbox.db"

// Options; nil means defaults.
type Options struct {
	Logger   zerolog.Logger    // default zerolog.Nop()
	Registry *sensors.Registry // default DefaultRegistry()
	Now      func() time.Time  // default time.Now
	// OnAlert, if set, is called with each alert before it is stored: rule
	// alert transitions from the rule engine's goroutine, sensor health
	// events (rule HealthRule) from the sensor's poller goroutine, so calls
	// may overlap; it must return quickly.
	OnAlert func(outpost.Alert)
	// Mono, ClockFloor and ClockSynced feed the wall-clock trust
	// (docs/clock.md): the monotonic clock (default: Go's, since New),
	// the time before which the wall clock is untrusted (default: the
	// build's VCS time, at least 2026-01-01), and the kernel's NTP status
	// (default: adjtimex(2) on Linux). Tests inject them with Now.
	Mono        func() time.Duration
	ClockFloor  time.Time
	ClockSynced func() (bool, error)
	// BootID names the boot Mono belongs to, when Mono outlives the
	// gateway (held telemetry then survives a restart); with Mono nil
	// the kernel's boot id and CLOCK_BOOTTIME are used on Linux.
	BootID string
	// Version is the binary's version, which the status document
	// carries (cmd/outpost passes what `outpost --version` prints; the
	// gateway cannot ask cmd/internal/cli itself); "" leaves it out. At
	// most outpost.MaxStatusVersionLen bytes of UTF-8 without NUL, or
	// New fails.
	Version string

	// statusHoldoff, for tests, replaces uplink.DefaultStatusHoldoff.
	statusHoldoff time.Duration
}

// Gateway is one running edge pipeline. New builds it, Start runs it;
// Shutdown stops it gracefully (it delivers what it can within the
// configured grace), Close stops it at once. Both flush what the sensors
// emitted into the outbox.
type Gateway struct {
	cfg *config.Config
	log zerolog.Logger
	now func() time.Time

	bus     Bus
	outbox  *buffer.Outbox
	uplink  *uplink.Uplink
	pollers []*sensors.Poller
	devs    []sensors.Sensor
	buses   *buses
	clock   *clockTracker        // wall-clock trust; every part reads the time through it
	health  chan []outpost.Alert // sensor health events to the batcher
	batcher *batcher
	ruler   *ruler              // nil without rules
	watch   *watcher            // nil without rules files, or before Start
	dash    *dashboard          // nil when no dashboard topic is on
	onAlert func(outpost.Alert) // Options.OnAlert
	met     *gatewayMetrics     // latency histograms
	msrv    *metricsServer      // nil when metrics.listen is off
	status  statusState         // what the status document's health keeps between documents
	cmds    *command.Dispatcher // remote commands (commands.go); Start starts it, Close stops it

	version   string        // Options.Version, for the ping command
	startMono time.Duration // g.clock.mono() at New, for the ping command's uptime

	sensorsCancel context.CancelFunc
	sensorsWG     sync.WaitGroup // pollers
	pipeWG        sync.WaitGroup // batcher and ruler
	dashWG        sync.WaitGroup // dashboard
	reloadFails   atomic.Int64
	rulesHash     atomic.Pointer[string] // rules.Set.Hash of the rules running; nil without rules
	rulesSetMu    sync.Mutex             // one rules.set writes and swaps at a time
	healthRaised  atomic.Int64
	started       atomic.Bool
	stopOnce      sync.Once
	watchOnce     sync.Once
	closing       chan struct{} // closed when Close begins
	closeOnce     sync.Once
	closeErr      error
}

// New builds a gateway from a validated config: it opens the outbox, loads
// the rules and creates the sensors; nothing runs until Start. On an error
// it has closed whatever it opened and returns no gateway.
func New(cfg *config.Config, opts *Options) (*Gateway, error) {
	o := Options{Logger: zerolog.Nop(), Now: time.Now}
	if opts != nil {
		o.Logger = opts.Logger
		o.Registry = opts.Registry
		o.OnAlert = opts.OnAlert
		o.Mono, o.ClockFloor, o.ClockSynced, o.BootID = opts.Mono, opts.ClockFloor, opts.ClockSynced, opts.BootID
		o.Version, o.statusHoldoff = opts.Version, opts.statusHoldoff
		if opts.Now != nil {
			o.Now = opts.Now
		}
	}
	if o.Registry == nil {
		o.Registry = DefaultRegistry()
	}
	g := &Gateway{cfg: cfg, log: o.Logger.With().Str("gateway", cfg.Gateway.ID).Logger(), now: o.Now,
		closing: make(chan struct{})}
	if err := g.build(o); err != nil {
		if cerr := g.closeParts(); cerr != nil {
			g.log.Warn().Err(cerr).Msg("closing after a failed start")
		}
		return nil, err
	}
	return g, nil
}

// build opens and creates the gateway's parts. What it opened before an
// error stays in g for closeParts.
func (g *Gateway) build(o Options) error {
	cfg := g.cfg
	g.onAlert = o.OnAlert
	g.met = newGatewayMetrics(len(cfg.Sensors))
	g.clock = newClockTracker(cfg.Clock, clockOptions{wall: o.Now, mono: o.Mono, boot: o.BootID, floor: o.ClockFloor, synced: o.ClockSynced, log: g.log})
	o.Now = g.clock.now
	g.status.start(g.clock.mono())
	g.startMono, g.version = g.clock.mono(), o.Version
	var err error

	ropts := rulesOptions(cfg)
	engine, set, err := loadRules(cfg, ropts)
	if err != nil {
		return startErr(PartRules, "", err)
	}
	bench, err := buildBench(cfg, o.Now)
	if err != nil {
		return startErr(PartSensor, "simulated buses", err)
	}
	g.buses = &buses{bench: bench}
	specs := make([]sensors.Spec, len(cfg.Sensors))
	for i := range cfg.Sensors {
		specs[i] = sensorSpec(&cfg.Sensors[i], g.buses)
		specs[i].Now = o.Now
		s, err := o.Registry.NewOrLater(specs[i])
		if s == nil {
			return startErr(PartSensor, specs[i].ID, err)
		}
		if err != nil {
			// The device did not answer; its poller keeps trying.
			g.log.Warn().Err(err).Str("sensor", specs[i].ID).Msg("sensor not ready; will retry")
		}
		g.devs = append(g.devs, s)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return startErr(PartDataDir, cfg.DataDir, err)
	}
	key, err := g.loadKey()
	if err != nil {
		return startErr(PartKey, cfg.AuthKeyPath(), err)
	}
	if g.cmds, err = g.newDispatcher(key); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	enc, err := encoder(cfg, key != nil)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	outboxPath := filepath.Join(cfg.DataDir, OutboxFile)
	g.outbox, err = buffer.Open(outboxPath, &buffer.Options{
		Encoder:    enc,
		MaxBatches: cfg.Buffer.MaxBatches,
		MaxBytes:   int64(cfg.Buffer.MaxBytes),
		MaxAge:     cfg.Buffer.MaxAge,
		Gateway:    cfg.Gateway.ID,
		Logger:     g.log,
		Now:        o.Now,
		OnCommit:   g.met.commit.ObserveDuration,
		HoldAge:    g.clock.holdAge,
	})
	if err != nil {
		return startErr(PartOutbox, outboxPath, err)
	}
	g.armClock()
	uo, err := uplinkOptions(cfg, g.log, o.Now, g.onConnect)
	if err == nil && key != nil {
		uo.Key, uo.Auth = key, uplink.AuthMode(cfg.Uplink.AuthMode())
	}
	if err == nil {
		uo.OnAck = g.met.ack.ObserveDuration
		uo.Version, uo.StartedAt, uo.Health = o.Version, g.statusStartedAt, g.statusHealth
		uo.StatusHoldoff = o.statusHoldoff
		if cfg.Uplink.Commands { // off by default (docs/security.md, "Remote commands")
			uo.OnCommand = g.submitCommand
		}
	}
	if err != nil {
		return startErr(PartUplink, "", err)
	}
	g.uplink, err = uplink.New(&outboxStore{ob: g.outbox, clock: g.clock}, uo)
	if err != nil {
		return startErr(PartUplink, "", err)
	}

	policy := Block
	if cfg.Bus.Policy == "drop" {
		policy = Drop
	}
	g.dash = newGatewayDashboard(g, set)
	alerts := make(chan []outpost.Alert, 64)
	if engine != nil {
		g.ruler = newRuler(engine, set, ropts)
		g.setRulesHash(set)
		g.ruler.in = g.bus.Subscribe("rules", cfg.Bus.Queue, policy)
		g.ruler.out = alerts
		g.ruler.store = g.outbox
		g.ruler.tick = time.Second
		g.ruler.now = o.Now
		g.ruler.notify = o.OnAlert
		g.ruler.dash = g.dash
		g.ruler.onCount = g.uplink.StatusChanged
		g.ruler.log = g.log.With().Str("component", "rules").Logger()
	} else {
		close(alerts)
	}
	g.health = make(chan []outpost.Alert, 64)
	g.batcher = &batcher{
		gateway:     cfg.Gateway.ID,
		in:          g.bus.Subscribe("batcher", cfg.Bus.Queue, policy),
		alerts:      alerts,
		health:      g.health,
		out:         g.outbox,
		maxReadings: cfg.Batch.MaxReadings,
		interval:    cfg.Batch.Interval,
		maxDelay:    cfg.Batch.MaxDelay,
		maxPending:  4096,
		maxMessage:  int(cfg.Uplink.MaxMessageBytes),
		log:         g.log.With().Str("component", "batcher").Logger(),
		now:         o.Now,
		clock:       g.clock,
		ob:          g.outbox,
		flush:       make(chan chan int),
	}
	for i, s := range g.devs {
		g.pollers = append(g.pollers, sensors.NewPoller(s, specs[i], g.bus.Publish, &sensors.PollerOptions{
			Logger:      g.log.With().Str("component", "sensors").Logger(),
			Now:         o.Now,
			Supervision: supervision(&cfg.Sensors[i]),
			OnHealth:    g.onHealth(cfg.Sensors[i].Labels),
			OnRead:      g.met.read[i].ObserveDuration,
		}))
	}
	if cfg.Metrics.On() {
		mlog := g.log.With().Str("component", "metrics").Logger()
		if g.msrv, err = listenMetrics(cfg.Metrics.Listen, g.MetricsHandler(), mlog); err != nil {
			return startErr(PartMetrics, cfg.Metrics.Listen, err)
		}
	}
	return nil
}

func loadRules(cfg *config.Config, opts *rules.Options) (*rules.Engine, *rules.Set, error) {
	if len(cfg.Rules.Files) == 0 {
		return nil, nil, nil
	}
	set, err := rules.LoadFiles(cfg.Rules.Files...)
	if err != nil {
		return nil, nil, err
	}
	return rules.NewEngine(set, opts), set, nil
}

// rulesOptions are the options of every engine the gateway builds.
func rulesOptions(cfg *config.Config) *rules.Options {
	o := &rules.Options{Gateway: cfg.Gateway.ID, SensorLabels: map[string]map[string]string{}}
	for i := range cfg.Sensors {
		o.SensorLabels[cfg.Sensors[i].ID] = cfg.Sensors[i].Labels
	}
	return o
}

// loadKey reads the gateway's key, or creates it at the first start,
// unless uplink.auth is off; it logs the key's fingerprint, never the
// key.
func (g *Gateway) loadKey() (*outpost.Key, error) {
	mode, file := g.cfg.Uplink.AuthMode(), g.cfg.AuthKeyPath()
	if mode == config.AuthOff {
		return nil, nil
	}
	k, perm, created, err := uplink.LoadOrCreateKey(file)
	if err != nil {
		return nil, err
	}
	msg := "auth key loaded"
	if created {
		msg = "auth key created: register it with the ingest service (outpost key show)"
	}
	g.log.Info().Str("file", file).Str("fingerprint", k.Fingerprint()).Str("auth", mode).Msg(msg)
	if perm&0o070 != 0 {
		g.log.Warn().Str("file", file).Str("mode", fmt.Sprintf("%#o", perm)).
			Msg("the auth key file may be read or written by its group: chmod 600 it")
	}
	return &k, nil
}

// encoder encodes batches as the config asks: compression, and a cap on
// each message's size (larger batches are split when stored), with room
// for the MAC when the uplink signs them.
func encoder(cfg *config.Config, signed bool) (*outpost.Encoder, error) {
	comp, err := outpost.ParseCompression(cfg.Batch.Compression)
	if err != nil {
		return nil, err
	}
	return outpost.NewEncoder(&outpost.EncoderOptions{Compression: comp, MaxMessageBytes: int(cfg.Uplink.MaxMessageBytes), Signed: signed})
}

func uplinkOptions(cfg *config.Config, log zerolog.Logger, now func() time.Time, onConnect func()) (*uplink.Options, error) {
	u := &cfg.Uplink
	o := &uplink.Options{
		Broker:           u.Broker,
		Gateway:          cfg.Gateway.ID,
		ClientID:         cfg.ClientID(),
		TopicPrefix:      u.TopicPrefix,
		Window:           u.Window,
		AckTimeout:       u.AckTimeout,
		Ack:              uplink.AckMode(u.Ack),
		KeepAlive:        u.KeepAlive,
		ConnectTimeout:   u.ConnectTimeout,
		BackoffInitial:   u.Backoff.Initial,
		MaxReconnect:     u.Backoff.Max,
		BacklogBandwidth: int64(u.BacklogBandwidth),
		StatusInterval:   u.StatusEvery(),
		Username:         u.Username,
		OnConnect:        onConnect,
		SensorLabels:     cfg.SensorLabels(),
		Labels:           cfg.Gateway.Labels,
		Logger:           log,
		Now:              now,
	}
	var err error
	if o.Password, err = u.Password(); err != nil {
		return nil, err
	}
	if u.TLS.Enabled() {
		o.TLS, err = uplink.TLSConfig(uplink.TLSFiles{
			CAFile: u.TLS.CAFile, CertFile: u.TLS.CertFile, KeyFile: u.TLS.KeyFile,
			ServerName: u.TLS.ServerName, InsecureSkipVerify: u.TLS.InsecureSkipVerify,
		})
		if err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Start runs the pipeline: the uplink connects in the background while the
// sensors already fill the outbox. Cancelling ctx stops the sensors only:
// the pipeline and the uplink run until Shutdown or Close, one of which
// the caller must call in any case.
func (g *Gateway) Start(ctx context.Context) error {
	if g.dash != nil {
		// Before the uplink, so that its first connect finds it running.
		g.dashWG.Add(1)
		go func() {
			defer g.dashWG.Done()
			g.dash.run()
		}()
	}
	// Not bound to ctx: a graceful stop keeps the uplink delivering
	// after the caller's context (a first signal, say) has ended.
	if err := g.uplink.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.cmds.Start()
	g.pipeWG.Add(1)
	go func() {
		defer g.pipeWG.Done()
		g.batcher.run(context.WithoutCancel(ctx))
	}()
	if g.ruler != nil {
		g.pipeWG.Add(1)
		go func() {
			defer g.pipeWG.Done()
			g.ruler.run()
		}()
		g.startWatcher()
	}
	sctx, cancel := context.WithCancel(ctx)
	g.sensorsCancel = cancel
	for _, p := range g.pollers {
		g.sensorsWG.Add(1)
		go func() {
			defer g.sensorsWG.Done()
			p.Run(sctx)
		}()
	}
	g.started.Store(true)
	g.startMetrics()
	g.log.Info().Int("sensors", len(g.pollers)).Uint64("epoch", g.outbox.Epoch()).Msg("gateway started")
	return nil
}

// StopSensors stops polling and waits until everything the sensors emitted
// is in the outbox. The uplink keeps forwarding. Idempotent.
func (g *Gateway) StopSensors() {
	g.stopOnce.Do(func() {
		if g.sensorsCancel != nil {
			g.sensorsCancel()
		}
		g.sensorsWG.Wait()
		if g.health != nil {
			close(g.health) // no poller is left to report
		}
		g.bus.Close()
		g.pipeWG.Wait()
		if g.dash != nil {
			// The ruler is done: no more alerts. Held live values and
			// alert documents still go out while the uplink runs.
			g.dash.stopRun()
			g.dashWG.Wait()
		}
	})
}

// WaitDrained waits until the outbox is empty (everything acked) or ctx ends.
func (g *Gateway) WaitDrained(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if g.storedBatches() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway: drain: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Close stops the sensors, flushes into the outbox, publishes the offline
// status and closes the outbox, without waiting for anything to be
// delivered: unacked batches stay stored for the next run. ctx bounds
// the wait for the offline status. Idempotent, and safe before Start.
func (g *Gateway) Close(ctx context.Context) error { return g.close(ctx, nil) }

// close is Close; after a grace (Shutdown) it logs what the grace
// delivered and what is left instead of a plain "gateway stopped".
func (g *Gateway) close(ctx context.Context, gr *grace) error {
	g.closeOnce.Do(func() {
		close(g.closing)
		if g.cmds != nil {
			g.cmds.Close() // a running command ends before the parts it reads close
		}
		g.stopWatching()
		g.StopSensors()
		if g.uplink != nil {
			g.closeErr = g.uplink.Close(ctx)
		}
		var left leftover
		if gr != nil {
			left = g.leftover() // before the outbox closes
		}
		tot := g.totals()
		g.closeErr = errors.Join(g.closeErr, g.closeParts())
		if gr != nil {
			gr.log(tot.log(g.log.Info()), left)
		} else {
			tot.log(g.log.Info()).Msg("gateway stopped")
		}
	})
	return g.closeErr
}

// totals are the readings the gateway handled since it started, for its
// last log line.
type totals struct{ emitted, stored, lost int64 }

func (g *Gateway) totals() totals {
	var t totals
	for _, p := range g.pollers {
		t.emitted += p.Readings()
	}
	if g.batcher != nil {
		t.stored, t.lost = g.batcher.stored.Load(), g.batcher.lost.Load()
	}
	t.lost += g.bus.Dropped()["batcher"]
	return t
}

func (t totals) log(ev *zerolog.Event) *zerolog.Event {
	return ev.Int64("readings_emitted", t.emitted).Int64("readings_stored", t.stored).Int64("readings_lost", t.lost)
}

// stopWatching stops the rules-file watcher, once.
func (g *Gateway) stopWatching() { g.watchOnce.Do(g.stopWatcher) }

func (g *Gateway) closeParts() error {
	var errs []error
	if g.msrv != nil {
		errs = append(errs, g.msrv.close())
	}
	for _, s := range g.devs {
		errs = append(errs, s.Close())
	}
	if g.buses != nil {
		errs = append(errs, g.buses.Close())
	}
	if g.outbox != nil {
		errs = append(errs, g.outbox.Close())
	}
	return errors.Join(errs...)
}

// Stats is a snapshot of the pipeline's counters.
type Stats struct {
	ReadingsEmitted int64 // by the sensors
	ReadingsStored  int64 // committed to the outbox
	ReadingsLost    int64 // dropped on the bus or before the outbox
	AlertsLost      int64 // alerts too large for uplink.max_message_bytes, dropped
	BatchesStored   int64
	AlertsRaised    int64
	HealthEvents    int64 // sensor health events (alerts of HealthRule)
	RuleReloads     int64 // rules reloads that swapped the rules in
	RuleReloadFails int64 // rules reloads refused: a bad file, the old rules kept
	RuleStateErrors int64 // failed saves of the rule state
	// Rules are the rule engine's per-rule counters, in rule order, as of
	// its last tick (once a second) or its end; nil without rules. Across
	// a reload an unchanged rule keeps its counts; a new or changed rule
	// starts from zero.
	Rules []rules.RuleStats
	// Sensors are the pollers' views of their sensors, in config order.
	Sensors   []sensors.Status
	Dashboard DashboardStats
	Outbox    buffer.Stats
	Uplink    uplink.Stats
	Clock     ClockStats
}

// Stats returns the counters.
func (g *Gateway) Stats() Stats {
	var st Stats
	for _, p := range g.pollers {
		st.ReadingsEmitted += p.Readings()
		st.Sensors = append(st.Sensors, p.Status())
	}
	st.HealthEvents = g.healthRaised.Load()
	st.ReadingsStored = g.batcher.stored.Load()
	st.BatchesStored = g.batcher.batches.Load()
	st.ReadingsLost = g.batcher.lost.Load()
	st.AlertsLost = g.batcher.lostAlerts.Load()
	if d := g.bus.Dropped()["batcher"]; d > 0 {
		st.ReadingsLost += d
	}
	if g.ruler != nil {
		st.AlertsRaised = g.ruler.raised.Load()
		st.RuleReloads = g.ruler.reloads.Load()
		st.RuleReloadFails = g.reloadFails.Load()
		st.RuleStateErrors = g.ruler.saveErrors.Load()
		st.Rules = g.ruler.ruleStats()
	}
	if g.dash != nil {
		st.Dashboard = g.dash.stats()
		st.Dashboard.LiveDropped = g.bus.Dropped()["live"]
	}
	st.Clock = g.clockStats()
	st.Outbox = g.outbox.Stats()
	st.Uplink = g.uplink.Stats()
	return st
}

// Epoch is the outbox's epoch.
func (g *Gateway) Epoch() uint64 { return g.outbox.Epoch() }
