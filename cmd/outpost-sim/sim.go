package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/embedbroker"
	"github.com/outposthq/outpost/sensors"
)

// parallelism bounds the goroutines that stop, drain and close gateways
// at the end.
const parallelism = 64

// sampleEvery is how often the progress loop looks for "all connected"
// before that happens; afterwards it samples only to print.
const sampleEvery = 250 * time.Millisecond

// Sim is a fleet of simulated gateways in one process, each a real
// gateway.Gateway with its own id, data dir, outbox and MQTT client. Run
// drives it; Close releases what Run left (the embedded parts, the temp
// dir). Tests drive it too.
type Sim struct {
	// Flags.
	Gateways int
	Sensors  int
	Metrics  []string
	// Driver is config.SimDriver (values straight from signals) or
	// config.DriverBME280: the periph driver reading a simulated BME280
	// on its own simulated I2C bus per sensor, register by register.
	Driver         string
	Interval       time.Duration
	Samples        int
	Broker         string
	Embedded       bool
	DataDir        string
	Keep           bool
	IDPrefix       string
	Duration       time.Duration
	Every          time.Duration
	Ramp           time.Duration
	DrainTimeout   time.Duration
	Seed           int64
	BufferMaxBytes config.ByteSize
	Ack            string
	Live           bool
	SummaryPath    string
	// HTTP, with Embedded, is the address where the embedded ingest
	// serves its HTTP API and web console; "" serves none.
	HTTP string
	// Commands turns on every gateway's remote commands, each with a
	// rules file of its own (DIR/<id>/rules.yaml) that rules.set may
	// replace, and, with Embedded, the ingest's command courier: a fleet
	// to try `outpost-ingest rules push` on (docs/commands.md).
	Commands bool

	log     zerolog.Logger
	out     io.Writer // progress and summary lines; default io.Discard
	tmpDir  string
	started time.Time
	cpu0    time.Duration

	broker *embedbroker.Broker
	store  ingest.Store
	ingest *ingest.Service
	http   *http.Server
	httpWG sync.WaitGroup // http's Serve

	startWG sync.WaitGroup // the starter goroutine

	mu           sync.Mutex
	httpAddr     string // where http listens, once it does
	gws          []*gateway.Gateway
	ids          []string
	startErr     error
	allConnected time.Duration // since started; 0 until every gateway was connected at once
	emitted      map[string]int64
	peakGor      int
}

// Summary is what the run did, summed over the gateways' own counters;
// Ingest holds what the embedded ingest store holds.
type Summary struct {
	Gateways          int      `json:"gateways"`
	GatewaysStarted   int      `json:"gateways_started"`
	SensorsPerGateway int      `json:"sensors_per_gateway"`
	Metrics           []string `json:"metrics"`
	DurationS         float64  `json:"duration_s"`
	// AllConnectedS is when every gateway was connected at once, from the
	// start of the first; absent if that never happened.
	AllConnectedS    *float64       `json:"all_connected_s,omitempty"`
	ReadingsEmitted  int64          `json:"readings_emitted"`
	ReadingsStored   int64          `json:"readings_stored"` // into the outboxes
	ReadingsLost     int64          `json:"readings_lost"`
	ReadingsPerSec   float64        `json:"readings_per_sec"` // emitted / duration
	BatchesStored    int64          `json:"batches_stored"`
	BatchesPublished int64          `json:"batches_published"`
	BatchesResent    int64          `json:"batches_resent"`
	BatchesAcked     int64          `json:"batches_acked"`
	BytesSent        int64          `json:"bytes_sent"`
	BytesPerReading  float64        `json:"bytes_per_reading"` // sent / stored
	ConnectFailures  int64          `json:"connect_failures"`
	DrainS           float64        `json:"drain_s"`
	NotDrained       []string       `json:"not_drained,omitempty"`
	PeakRSSBytes     int64          `json:"peak_rss_bytes"`
	PeakGoroutines   int            `json:"peak_goroutines"`
	CPUS             float64        `json:"cpu_s"`
	Ingest           *IngestSummary `json:"ingest,omitempty"`
}

// IngestSummary counts the embedded ingest store's rows.
type IngestSummary struct {
	Readings    int64 `json:"readings"`
	Duplicates  int64 `json:"duplicates"`
	Batches     int64 `json:"batches"`
	DeadLetters int64 `json:"dead_letters"`
}

// Run starts the fleet, prints progress until ctx ends (or Duration
// passes, or a gateway fails to start), then drains and closes the
// gateways and returns the summary. The caller calls Close afterwards.
func (s *Sim) Run(ctx context.Context) (*Summary, error) {
	if s.out == nil {
		s.out = io.Discard
	}
	if s.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Duration)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := s.start(ctx, cancel); err != nil {
		return nil, err
	}
	s.progress(ctx)
	s.startWG.Wait()
	sum, err := s.finish()
	s.mu.Lock()
	err = errors.Join(s.startErr, err)
	s.mu.Unlock()
	return sum, err
}

// start prepares the data dir and the embedded parts, then starts the
// gateways in the background, spread over Ramp.
func (s *Sim) start(ctx context.Context, abort context.CancelFunc) error {
	if s.DataDir == "" {
		dir, err := os.MkdirTemp("", "outpost-sim-")
		if err != nil {
			return fmt.Errorf("outpost-sim: %w", err)
		}
		s.DataDir = dir
		if !s.Keep {
			s.tmpDir = dir
		}
	}
	if err := os.MkdirAll(s.DataDir, 0o755); err != nil {
		return fmt.Errorf("outpost-sim: %w", err)
	}
	bg := context.WithoutCancel(ctx)
	if s.Embedded {
		if err := s.startEmbedded(bg); err != nil {
			return err
		}
	}
	s.emitted = map[string]int64{}
	s.started = time.Now()
	s.cpu0 = cpuTime()
	reg := gateway.DefaultRegistry()
	s.startWG.Add(1)
	go func() {
		defer s.startWG.Done()
		if err := s.startGateways(ctx, reg); err != nil {
			s.mu.Lock()
			s.startErr = err
			s.mu.Unlock()
			abort()
		}
	}()
	return nil
}

func (s *Sim) startEmbedded(ctx context.Context) error {
	b, err := embedbroker.Start()
	if err != nil {
		return fmt.Errorf("outpost-sim: %w", err)
	}
	s.broker, s.Broker = b, b.URL()
	if s.store, err = stores.Open(ctx, "sqlite:"+filepath.Join(s.DataDir, "ingest.db"), s.log); err != nil {
		return fmt.Errorf("outpost-sim: %w", err)
	}
	s.ingest = ingest.New(s.store, &ingest.Options{Broker: s.Broker, TopicPrefix: config.DefaultTopicPrefix, Logger: s.log,
		Commands: s.Commands})
	if err := s.ingest.Start(ctx); err != nil {
		return fmt.Errorf("outpost-sim: %w", err)
	}
	if s.Commands {
		fmt.Fprintf(s.out, "commands on: outpost-ingest rules push --db sqlite:%s --broker %s --rules FILE --all\n",
			filepath.Join(s.DataDir, "ingest.db"), s.Broker)
	}
	if s.HTTP == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.HTTP)
	if err != nil {
		return fmt.Errorf("outpost-sim: --http: %w", err)
	}
	s.http = &http.Server{Handler: s.ingest.Handler(), ReadHeaderTimeout: 10 * time.Second}
	s.httpWG.Add(1)
	go func() {
		defer s.httpWG.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Msg("http server")
		}
	}()
	s.mu.Lock()
	s.httpAddr = ln.Addr().String()
	s.mu.Unlock()
	fmt.Fprintf(s.out, "console and API on http://%s/\n", ln.Addr())
	return nil
}

// HTTPAddr is where the embedded ingest serves HTTP (--http), once it
// does; "" before.
func (s *Sim) HTTPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpAddr
}

// startGateways builds and starts gateway i at i/N of the ramp, until all
// run or ctx ends. Gateways outlive ctx: finish stops them.
func (s *Sim) startGateways(ctx context.Context, reg *sensors.Registry) error {
	bg := context.WithoutCancel(ctx)
	t := time.NewTimer(0)
	defer t.Stop()
	for i := range s.Gateways {
		at := s.started.Add(s.Ramp * time.Duration(i) / time.Duration(s.Gateways))
		if d := time.Until(at); d > 0 {
			t.Reset(d)
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			return nil
		}
		cfg, err := s.config(i)
		if err != nil {
			return err
		}
		g, err := gateway.New(cfg, &gateway.Options{Logger: s.log, Registry: reg})
		if err != nil {
			return fmt.Errorf("outpost-sim: gateway %d of %d: %w", i+1, s.Gateways, err)
		}
		if err := g.Start(bg); err != nil {
			return errors.Join(fmt.Errorf("outpost-sim: gateway %s: %w", cfg.Gateway.ID, err), g.Close(bg))
		}
		// Only started gateways join the fleet that progress samples.
		s.mu.Lock()
		s.gws = append(s.gws, g)
		s.ids = append(s.ids, cfg.Gateway.ID)
		s.mu.Unlock()
	}
	return nil
}

// config builds gateway i's config: Sensors sim sensors of the Metrics,
// each metric's signal seeded apart from every other in the fleet.
func (s *Sim) config(i int) (*config.Config, error) {
	id := fmt.Sprintf("%s%04d", s.IDPrefix, i+1)
	live := s.Live
	cfg := &config.Config{
		// Labels to select gateways by: the fleet, and a group of
		// every tenth.
		Gateway: config.GatewayConfig{ID: id, Labels: map[string]string{"fleet": "sim", "group": strconv.Itoa(i % 10)}},
		DataDir: filepath.Join(s.DataDir, id),
		Buffer:  config.BufferConfig{MaxBytes: s.BufferMaxBytes},
		Uplink:  config.UplinkConfig{Broker: s.Broker, Ack: s.Ack, Commands: s.Commands},
		// Live topics are for dashboards; ingest ignores them.
		Dashboard: config.DashboardConfig{Live: &live},
	}
	for j := range s.Sensors {
		sn := config.Sensor{ID: fmt.Sprintf("dev%d", j+1), Driver: config.SimDriver,
			Interval: s.Interval, Samples: s.Samples, Labels: map[string]string{"fleet": "sim"}}
		bme := s.Driver == config.DriverBME280
		if bme {
			sn.Driver, sn.Bus = config.DriverBME280, fmt.Sprintf("sim-i2c%d", j)
			sn.Sim = &config.SimChip{Signals: map[string]config.Signal{}}
		}
		for k, m := range s.Metrics {
			seed := s.Seed*1_000_003 + int64(i)*10_007 + int64(j)*101 + int64(k) + 1
			mt := metric(m, seed)
			if bme {
				sn.Sim.Signals[m] = mt.Signal
				mt = config.Metric{Name: m}
			}
			sn.Metrics = append(sn.Metrics, mt)
		}
		cfg.Sensors = append(cfg.Sensors, sn)
	}
	if s.Commands {
		rulesFile := filepath.Join(cfg.DataDir, "rules.yaml")
		if _, err := os.Stat(rulesFile); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
				return nil, fmt.Errorf("outpost-sim: %w", err)
			}
			if err := os.WriteFile(rulesFile, []byte("# rules of "+id+", replaced by rules.set\nrules: []\n"), 0o644); err != nil {
				return nil, fmt.Errorf("outpost-sim: %w", err)
			}
		}
		cfg.Rules.Files = []string{rulesFile}
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("outpost-sim: config of %s: %w", id, err)
	}
	return cfg, nil
}

// metric is a named metric with a signal like examples/gateway.yaml's:
// random walks and sines, quantized; an unknown name gets a random walk.
func metric(name string, seed int64) config.Metric {
	switch name {
	case "temperature":
		return config.Metric{Name: name, Unit: "Cel", Signal: config.Signal{Kind: config.SignalSine,
			Base: 22, Amplitude: 3, Period: time.Minute, Noise: 0.05, Resolution: 0.01, Seed: seed}}
	case "humidity":
		return config.Metric{Name: name, Unit: "%RH", Signal: config.Signal{Kind: config.SignalRandomWalk,
			Base: 45, Step: 0.2, Min: 20, Max: 80, HasMin: true, HasMax: true, Resolution: 0.01, Seed: seed}}
	case "pressure":
		return config.Metric{Name: name, Unit: "Pa", Signal: config.Signal{Kind: config.SignalRandomWalk,
			Base: 101325, Step: 3, Min: 95000, Max: 105000, HasMin: true, HasMax: true, Resolution: 0.1, Seed: seed}}
	}
	return config.Metric{Name: name, Signal: config.Signal{Kind: config.SignalRandomWalk,
		Base: 50, Step: 0.5, Resolution: 0.01, Seed: seed}}
}

// fleet is the gateways started so far, with their ids.
func (s *Sim) fleet() ([]*gateway.Gateway, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gws[:len(s.gws):len(s.gws)], s.ids[:len(s.ids):len(s.ids)]
}

// sample sums the fleet's counters.
type sample struct {
	at                 time.Time
	running, connected int
	emitted, stored    int64
	lost, batches      int64
	published, resent  int64
	acked, bytes       int64
	connFails          int64
	inFlight, backlog  int
	cpu                time.Duration
	rss                int64
}

func (s *Sim) sample() sample {
	gws, _ := s.fleet()
	sm := sample{at: time.Now(), running: len(gws), cpu: cpuTime(), rss: procStatus("VmRSS")}
	for _, g := range gws {
		st := g.Stats()
		if st.Uplink.Connected {
			sm.connected++
		}
		sm.emitted += st.ReadingsEmitted
		sm.stored += st.ReadingsStored
		sm.lost += st.ReadingsLost
		sm.batches += st.BatchesStored
		sm.published += st.Uplink.Published
		sm.resent += st.Uplink.Resent
		sm.acked += st.Uplink.Acked
		sm.bytes += st.Uplink.BytesSent
		sm.connFails += st.Uplink.ConnectFailures
		sm.inFlight += st.Uplink.InFlight
		sm.backlog += st.Outbox.Batches[0] + st.Outbox.Batches[1]
	}
	return sm
}

// progress prints a line every Every until ctx ends, and notes when every
// gateway is first connected at once.
func (s *Sim) progress(ctx context.Context) {
	t := time.NewTicker(min(sampleEvery, s.Every))
	defer t.Stop()
	last := sample{at: s.started, cpu: s.cpu0}
	next := s.started.Add(s.Every)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			waiting := s.allConnected == 0
			s.mu.Unlock()
			if !waiting && now.Before(next) {
				continue
			}
			sm := s.sample()
			s.notePeaks(sm)
			if !now.Before(next) {
				s.printLine(last, sm)
				last, next = sm, next.Add(s.Every)
			}
		}
	}
}

func (s *Sim) notePeaks(sm sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.allConnected == 0 && sm.running == s.Gateways && sm.connected == s.Gateways {
		s.allConnected = sm.at.Sub(s.started)
		fmt.Fprintf(s.out, "all %d gateways connected after %.1fs\n", s.Gateways, s.allConnected.Seconds())
	}
	s.peakGor = max(s.peakGor, runtime.NumGoroutine())
}

func (s *Sim) printLine(a, b sample) {
	dt := b.at.Sub(a.at).Seconds()
	rate := func(x, y int64) float64 { return float64(y-x) / dt }
	var perReading float64
	if d := b.stored - a.stored; d > 0 {
		perReading = float64(b.bytes-a.bytes) / float64(d)
	}
	fmt.Fprintf(s.out, "%5.0fs  gw %d/%d conn %d  %8.0f rd/s  stored %d  acked %5.0f/s  in flight %d  backlog %d  wire %7.1f KiB/s %5.1f B/rd  rss %d MiB  goroutines %d  cpu %3.0f%%\n",
		b.at.Sub(s.started).Seconds(), b.running, s.Gateways, b.connected, rate(a.emitted, b.emitted),
		b.stored, rate(a.acked, b.acked), b.inFlight, b.backlog, rate(a.bytes, b.bytes)/1024, perReading,
		b.rss>>20, runtime.NumGoroutine(), 100*float64(b.cpu-a.cpu)/float64(b.at.Sub(a.at)))
}

// finish stops the sensors of every gateway, waits up to DrainTimeout for
// their outboxes to drain, sums the counters and closes the gateways.
func (s *Sim) finish() (*Summary, error) {
	gws, ids := s.fleet()
	elapsed := time.Since(s.started)
	fmt.Fprintf(s.out, "stopping %d gateways; draining (up to %s)…\n", len(gws), s.DrainTimeout)
	each(gws, func(_ int, g *gateway.Gateway) { g.StopSensors() })
	ctx, cancel := context.WithTimeout(context.Background(), s.DrainTimeout)
	defer cancel()
	undrained := make([]bool, len(gws))
	t0 := time.Now()
	each(gws, func(i int, g *gateway.Gateway) { undrained[i] = g.WaitDrained(ctx) != nil })
	drain := time.Since(t0)

	sm := s.sample()
	s.notePeaks(sm)
	for i, g := range gws {
		s.emitted[ids[i]] = g.Stats().ReadingsEmitted
	}
	sum := &Summary{
		Gateways: s.Gateways, GatewaysStarted: len(gws), SensorsPerGateway: s.Sensors, Metrics: s.Metrics,
		DurationS: elapsed.Seconds(), ReadingsEmitted: sm.emitted, ReadingsStored: sm.stored,
		ReadingsLost: sm.lost, BatchesStored: sm.batches, BatchesPublished: sm.published,
		BatchesResent: sm.resent, BatchesAcked: sm.acked, BytesSent: sm.bytes, ConnectFailures: sm.connFails,
		DrainS: drain.Seconds(), PeakRSSBytes: procStatus("VmHWM"), CPUS: (sm.cpu - s.cpu0).Seconds(),
	}
	s.mu.Lock()
	sum.PeakGoroutines = s.peakGor
	if s.allConnected > 0 {
		v := s.allConnected.Seconds()
		sum.AllConnectedS = &v
	}
	s.mu.Unlock()
	if elapsed > 0 {
		sum.ReadingsPerSec = float64(sm.emitted) / elapsed.Seconds()
	}
	if sm.stored > 0 {
		sum.BytesPerReading = float64(sm.bytes) / float64(sm.stored)
	}
	for i, u := range undrained {
		if u {
			sum.NotDrained = append(sum.NotDrained, ids[i])
		}
	}

	errs := make([]error, len(gws))
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	each(gws, func(i int, g *gateway.Gateway) {
		if err := g.Close(cctx); err != nil {
			errs[i] = fmt.Errorf("close %s: %w", ids[i], err)
		}
	})
	if s.store != nil {
		c, err := s.store.Counts(cctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("outpost-sim: ingest counts: %w", err))
		} else {
			sum.Ingest = &IngestSummary{Readings: c.Readings, Duplicates: c.Readings - c.DistinctReadings,
				Batches: c.Batches, DeadLetters: c.DeadLetters}
		}
	}
	s.printSummary(sum)
	return sum, errors.Join(errs...)
}

func (s *Sim) printSummary(sum *Summary) {
	conn := "never all connected"
	if sum.AllConnectedS != nil {
		conn = fmt.Sprintf("all connected after %.1fs", *sum.AllConnectedS)
	}
	fmt.Fprintf(s.out, "%d/%d gateways over %.1fs (%s): emitted %d readings (%.0f/s), stored %d, lost %d; batches acked %d of %d published (%d resent); %.1f B/reading on the wire; drained in %.1fs, %d not drained\n",
		sum.GatewaysStarted, sum.Gateways, sum.DurationS, conn, sum.ReadingsEmitted, sum.ReadingsPerSec,
		sum.ReadingsStored, sum.ReadingsLost, sum.BatchesAcked, sum.BatchesPublished, sum.BatchesResent,
		sum.BytesPerReading, sum.DrainS, len(sum.NotDrained))
	fmt.Fprintf(s.out, "peak RSS %d MiB, peak goroutines %d, CPU %.1fs (%.0f%% of one core)\n",
		sum.PeakRSSBytes>>20, sum.PeakGoroutines, sum.CPUS, 100*sum.CPUS/max(sum.DurationS+sum.DrainS, 1e-9))
	if n := len(sum.NotDrained); n > 0 {
		fmt.Fprintf(s.out, "not drained: %s\n", head(sum.NotDrained, 20))
	}
	if in := sum.Ingest; in != nil {
		fmt.Fprintf(s.out, "ingest store: %d readings, %d duplicates, %d batches, %d dead letters\n",
			in.Readings, in.Duplicates, in.Batches, in.DeadLetters)
	}
}

// Close releases what Run leaves: gateways a failed run did not close, the
// embedded ingest, store and broker, and the temp data dir. Idempotent.
func (s *Sim) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gws, _ := s.fleet()
	var mu sync.Mutex
	var errs []error
	each(gws, func(_ int, g *gateway.Gateway) {
		if err := g.Close(ctx); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	if s.http != nil {
		// At the end of a run, open pages and streams are cut, not waited for.
		errs = append(errs, s.http.Close())
		s.httpWG.Wait()
		s.http = nil
	}
	if s.ingest != nil {
		errs = append(errs, s.ingest.Close(ctx))
		s.ingest = nil
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
		s.store = nil
	}
	if s.broker != nil {
		errs = append(errs, s.broker.Close())
	}
	if s.tmpDir != "" {
		errs = append(errs, os.RemoveAll(s.tmpDir))
		s.tmpDir = ""
	}
	return errors.Join(errs...)
}

// each calls f on every gateway, at most parallelism at a time.
func each(gws []*gateway.Gateway, f func(i int, g *gateway.Gateway)) {
	sem := make(chan struct{}, parallelism)
	var wg sync.WaitGroup
	for i, g := range gws {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i, g)
		}()
	}
	wg.Wait()
}

// procStatus reads a "kB" field of /proc/self/status in bytes; 0 where
// there is none.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(k) != field {
			continue
		}
		f := bytes.Fields(v)
		if len(f) == 0 {
			return 0
		}
		n, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0
		}
		return n << 10
	}
	return 0
}

func head(ids []string, n int) string {
	if len(ids) <= n {
		return fmt.Sprint(ids)
	}
	return fmt.Sprintf("%v and %d more", ids[:n], len(ids)-n)
}
