package gateway

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/internal/liveness"
	"github.com/outposthq/outpost/internal/sdnotify"
)

// fakeSystemd is a unixgram socket standing in for $NOTIFY_SOCKET, and
// a real sdnotify.Notifier that sends to it.
type fakeSystemd struct {
	n    *sdnotify.Notifier
	msgs chan string
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := sdnotify.New(name, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSystemd{n: n, msgs: make(chan string, 1024)}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(f.msgs)
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			select {
			case f.msgs <- string(buf[:k]):
			default: // the test reads what it needs; never block the reader
			}
		}
	})
	t.Cleanup(func() {
		n.Close()
		c.Close()
		wg.Wait()
	})
	return f
}

// next is the next message, failing after a generous guard.
func (f *fakeSystemd) next(t *testing.T) string {
	t.Helper()
	select {
	case m, ok := <-f.msgs:
		if !ok {
			t.Fatal("notify socket closed")
		}
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no notification within 30s")
	}
	return ""
}

// until reads messages until one satisfies cond, and returns it.
func (f *fakeSystemd) until(t *testing.T, what string, cond func(string) bool) string {
	t.Helper()
	for range 10000 {
		if m := f.next(t); cond(m) {
			return m
		}
	}
	t.Fatalf("no notification %s", what)
	return ""
}

func isPet(m string) bool    { return strings.HasPrefix(m, "WATCHDOG=1\n") }
func isWedged(m string) bool { return strings.HasPrefix(m, "STATUS=WEDGED: ") }

// gateAppender is the outbox behind a gate the test can shut: Append then
// blocks, as on a disk that stopped answering.
type gateAppender struct {
	inner appender
	gate  sync.RWMutex // the test holds it to wedge Append
}

func (a *gateAppender) Append(bs []*outpost.Batch) error {
	a.gate.RLock()
	defer a.gate.RUnlock()
	return a.inner.Append(bs)
}

// watchdogConfig is one fast simulated sensor and a broker that is down.
func watchdogConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: "gw-watchdog"},
		DataDir: t.TempDir(),
		Sensors: []config.Sensor{{ID: "dev1", Driver: SimDriver, Interval: 5 * time.Millisecond, Samples: 4,
			Metrics: []config.Metric{{Name: "temperature", Unit: "Cel", Signal: config.Signal{Kind: config.SignalSine, Base: 20, Amplitude: 2, Period: time.Minute}}}}},
		Batch:  config.BatchConfig{MaxReadings: 50, Interval: 50 * time.Millisecond},
		Uplink: config.UplinkConfig{Broker: "tcp://127.0.0.1:1"}, // nothing listens on port 1
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testLimit is how long a step may take in these tests before it counts
// as wedged: long enough for an fsync on a loaded machine.
const testLimit = 2 * time.Second

func startWatchdog(t *testing.T, g *Gateway, n Notifier) *liveness.Watchdog {
	t.Helper()
	w, err := StartWatchdog(g, n, &WatchdogOptions{Every: 20 * time.Millisecond, Pet: true, Limit: testLimit,
		Logger: zerolog.New(testWriter{t})})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// A wedged outbox stops the petting while the broker is down does not;
// when the outbox answers again the petting resumes.
func TestWatchdogWedgedOutbox(t *testing.T) {
	sd := newFakeSystemd(t)
	g, err := New(watchdogConfig(t), &Options{Logger: zerolog.New(testWriter{t})})
	if err != nil {
		t.Fatal(err)
	}
	gate := &gateAppender{inner: g.batcher.out}
	g.batcher.out = gate
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := startWatchdog(t, g, sd.n)
	defer func() {
		closeGateway(t, g)
		w.Stop()
		w.Stop() // idempotent
	}()

	// The broker is down: the uplink fails and backs off, readings are
	// stored, and the watchdog is petted.
	waitUntil(t, "failed connection attempts and stored readings", func() bool {
		st := g.Stats()
		return st.Uplink.ConnectFailures >= 2 && st.ReadingsStored > 0
	})
	for range 5 {
		m := sd.until(t, "petting with the broker down", func(m string) bool { return isPet(m) || isWedged(m) })
		if !isPet(m) || !strings.Contains(m, "uplink connecting") {
			t.Fatalf("broker down: got %q, want a pet", m)
		}
	}

	gate.gate.Lock() // the next commit blocks
	sd.until(t, "saying the pipeline is wedged", isWedged)
	if wd := g.Health().Wedged(testLimit); len(wd) == 0 || wd[0].Part != LoopBatcher {
		t.Errorf("wedged parts %+v, want the batcher", wd)
	}
	for range 10 {
		if m := sd.next(t); isPet(m) {
			t.Fatalf("petted while the outbox is wedged: %q", m)
		} else if !isWedged(m) {
			t.Fatalf("got %q, want the wedged status", m)
		}
	}

	gate.gate.Unlock()
	sd.until(t, "petting after the outbox answers again", isPet)
	if wd := g.Health().Wedged(testLimit); len(wd) != 0 {
		t.Errorf("still wedged: %+v", wd)
	}
}

// A rule engine that deadlocks (here its alert hook never returns) stops
// the petting too.
func TestWatchdogWedgedRules(t *testing.T) {
	sd := newFakeSystemd(t)
	dir := t.TempDir()
	writeRules(t, dir, twoRules)
	release := make(chan struct{})
	hook := func(a outpost.Alert) {
		if a.Rule == "hot" {
			<-release
		}
	}
	g, err := New(rulesConfig(t, dir, 40), &Options{OnAlert: hook, Logger: zerolog.New(testWriter{t})})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := startWatchdog(t, g, sd.n)
	defer func() {
		close(release)
		closeGateway(t, g)
		w.Stop()
	}()
	m := sd.until(t, "saying the rules are wedged", isWedged)
	if !strings.Contains(m, LoopRules+" busy for") {
		t.Errorf("status %q does not name the rules", m)
	}
	for range 5 {
		if m := sd.next(t); isPet(m) {
			t.Fatalf("petted while the rules are wedged: %q", m)
		}
	}
}

// Without Pet the watchdog reports the status only; an idle pipeline
// (no sensors) is healthy.
func TestWatchdogStatusOnly(t *testing.T) {
	sd := newFakeSystemd(t)
	cfg := watchdogConfig(t)
	cfg.Sensors = nil
	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	w, err := StartWatchdog(g, sd.n, &WatchdogOptions{Every: 10 * time.Millisecond, Limit: testLimit})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		closeGateway(t, g)
		w.Stop()
	}()
	for range 20 {
		if m := sd.next(t); !strings.HasPrefix(m, "STATUS=readings 0/s, outbox 0 batches, uplink connecting") {
			t.Fatalf("got %q", m)
		}
	}
	if wd := g.Health().Wedged(testLimit); len(wd) != 0 {
		t.Errorf("idle pipeline wedged: %+v", wd)
	}
}

func TestStartWatchdogRefusesBadOptions(t *testing.T) {
	g, err := New(watchdogConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeGateway(t, g)
	for _, c := range []struct {
		g *Gateway
		n Notifier
		o *WatchdogOptions
	}{
		{nil, &sdnotify.Notifier{}, &WatchdogOptions{Every: time.Second}},
		{&Gateway{}, &sdnotify.Notifier{}, &WatchdogOptions{Every: time.Second}},
		{g, nil, &WatchdogOptions{Every: time.Second}},
		{g, &sdnotify.Notifier{}, nil},
		{g, &sdnotify.Notifier{}, &WatchdogOptions{}},
		{g, &sdnotify.Notifier{}, &WatchdogOptions{Every: -time.Second}},
	} {
		if w, err := StartWatchdog(c.g, c.n, c.o); err == nil || w != nil {
			t.Errorf("%+v: %v, %v", c, w, err)
		}
	}
}
