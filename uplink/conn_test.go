package uplink

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/testenv"
)

func TestBackoff(t *testing.T) {
	const s = time.Second
	for _, c := range []struct {
		name         string
		n            int
		initial, max time.Duration
		r            float64
		want         time.Duration
	}{
		{"first, low end", 0, s, 30 * s, 0, s / 2},
		{"first, high end", 0, s, 30 * s, 1, s},
		{"first, middle", 0, s, 30 * s, 0.5, 750 * time.Millisecond},
		{"doubles", 1, s, 30 * s, 0, s},
		{"doubles again", 3, s, 30 * s, 1, 8 * s},
		{"capped", 5, s, 30 * s, 1, 30 * s},
		{"capped, low end", 5, s, 30 * s, 0, 15 * s},
		{"far past the cap", 1000, s, time.Minute, 1, time.Minute},
		{"huge cap does not overflow", 80, s, time.Duration(1<<63 - 1), 0, time.Duration(1<<63-1) / 2},
		{"initial above max", 0, time.Minute, s, 1, s},
		{"r out of range is clamped", 0, s, 30 * s, 7, s},
		{"tiny", 2, time.Millisecond, 5 * time.Millisecond, 1, 4 * time.Millisecond},
		{"zero initial", 3, 0, s, 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := backoff(c.n, c.initial, c.max, c.r); got != c.want {
				t.Errorf("backoff(%d, %v, %v, %v) = %v, want %v", c.n, c.initial, c.max, c.r, got, c.want)
			}
		})
	}
}

func TestBackoffRange(t *testing.T) {
	for n := range 12 {
		d := min(time.Second<<n, 30*time.Second)
		for _, r := range []float64{0, 0.1, 0.5, 0.999999} {
			if got := backoff(n, time.Second, 30*time.Second, r); got < d/2 || got > d {
				t.Errorf("backoff(%d, r=%v) = %v, outside [%v, %v]", n, r, got, d/2, d)
			}
		}
	}
}

func TestLogLimit(t *testing.T) {
	l := logLimit{every: time.Minute}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		at       time.Duration
		ok       bool
		wantHeld int
	}{
		{0, true, 0}, // the first is logged
		{time.Second, false, 0},
		{30 * time.Second, false, 0},
		{time.Minute, true, 2}, // a minute on, with the two held back
		{time.Minute + time.Second, false, 0},
	}
	for i, s := range steps {
		held, ok := l.allow(t0.Add(s.at))
		if ok != s.ok || held != s.wantHeld {
			t.Errorf("step %d: allow = (%d, %v), want (%d, %v)", i, held, ok, s.wantHeld, s.ok)
		}
	}
	l.reset()
	if _, ok := l.allow(t0.Add(time.Minute + 2*time.Second)); !ok {
		t.Error("after reset the next event is not logged")
	}
}

func TestRejectsUnsupportedScheme(t *testing.T) {
	_, err := New(newMemStore(1), &Options{Broker: "unix:///tmp/x", Gateway: "gw"})
	if err == nil || !strings.Contains(err.Error(), "unsupported scheme") {
		t.Fatalf("New with unix:// = %v, want unsupported scheme", err)
	}
}

// syncBuf collects log output from several goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func captureLog() (*syncBuf, zerolog.Logger) {
	b := &syncBuf{}
	return b, zerolog.New(b).Level(zerolog.DebugLevel)
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A broker that stays unreachable: each attempt fails, the failures are
// counted, the first is logged with the error and the wait, and the
// following ones are held back (the log is rate-limited, and the clock
// does not move).
func TestConnectFailuresCountedAndRateLimited(t *testing.T) {
	logs, log := captureLog()
	addr := closedAddr(t)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	u := startUplink(t, newMemStore(1), Options{
		Broker: "tcp://" + addr, Gateway: "gw", Logger: log,
		BackoffInitial: time.Millisecond, MaxReconnect: 2 * time.Millisecond,
		Jitter: func() float64 { return 1 }, // the top of each range
		Now:    func() time.Time { return now },
	})
	eventually(t, "20 failed attempts", func() bool { return u.Stats().ConnectFailures >= 20 })
	st := u.Stats()
	if st.Connected || st.Connects != 0 {
		t.Errorf("stats %+v, want never connected", st)
	}
	if !strings.Contains(st.LastError, "connection refused") {
		t.Errorf("LastError %q, want connection refused", st.LastError)
	}
	out := logs.String()
	if n := strings.Count(out, "failed"); n != 1 {
		t.Errorf("%d failure lines logged, want 1 (rate-limited):\n%s", n, out)
	}
	if want := "connect to tcp://" + addr + " failed: "; !strings.Contains(out, want) || !strings.Contains(out, "; retrying in 1ms") {
		t.Errorf("log does not say %q …; retrying in 1ms:\n%s", want, out)
	}
}

// Close ends a backoff wait at once, however long the wait.
func TestCloseDuringBackoff(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	u, err := New(newMemStore(1), &Options{
		Broker: "tcp://" + closedAddr(t), Gateway: "gw",
		BackoffInitial: time.Hour, MaxReconnect: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a failed attempt", func() bool { return u.Stats().ConnectFailures == 1 })
	closeWithin(t, u, 10*time.Second)
}

// Close ends a connection attempt stuck in the MQTT or the TLS handshake
// with a broker that never answers, long before ConnectTimeout.
func TestCloseDuringConnectAttempt(t *testing.T) {
	for _, scheme := range []string{"tcp", "ssl"} {
		t.Run(scheme, func(t *testing.T) {
			ln, accepted := silentListener(t)
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			u, err := New(newMemStore(1), &Options{
				Broker: scheme + "://" + ln.Addr().String(), Gateway: "gw",
				ConnectTimeout: time.Hour, BackoffInitial: time.Hour, MaxReconnect: time.Hour,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := u.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			select {
			case <-accepted:
			case <-time.After(30 * time.Second):
				t.Fatal("the uplink did not dial")
			}
			closeWithin(t, u, 10*time.Second)
			if st := u.Stats(); st.Connected || st.Connects != 0 {
				t.Errorf("stats %+v, want never connected", st)
			}
		})
	}
}

// silentListener accepts connections and never writes to them.
func silentListener(t *testing.T) (net.Listener, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln, accepted
}

// closeWithin closes u and fails when that takes longer than d: a bound
// far above what Close needs and far below the waits it must cut short.
func closeWithin(t *testing.T, u *Uplink, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := u.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("Close still running after %v", d)
	}
	if err := u.Close(context.Background()); err != nil { // idempotent
		t.Errorf("second close: %v", err)
	}
}

// OnConnect runs after each connect, with the uplink connected, and may
// publish; Publish drops messages while not connected.
func TestOnConnectAndPublish(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	px := startProxy(t, strings.TrimPrefix(broker, "tcp://"))
	var u *Uplink
	var mu sync.Mutex
	var calls []bool // Publish's result in each OnConnect
	o := Options{
		Broker: "tcp://" + px.addr, Gateway: "gw", TopicPrefix: prefix,
		BackoffInitial: 10 * time.Millisecond, MaxReconnect: 50 * time.Millisecond,
		OnConnect: func() {
			ok := u.Publish(u.Topic("live/s/m"), 0, true, []byte(`{"value":1}`))
			mu.Lock()
			calls = append(calls, ok)
			mu.Unlock()
		},
	}
	var err error
	if u, err = New(newMemStore(1), &o); err != nil {
		t.Fatal(err)
	}
	if got, want := u.Topic("live/s/m"), prefix+"/gw/live/s/m"; got != want {
		t.Errorf("Topic = %q, want %q", got, want)
	}
	if u.Publish(u.Topic("x"), 1, false, nil) {
		t.Error("Publish before Start returned true")
	}
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close(context.Background()) })
	eventually(t, "OnConnect called", func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 1 })
	if got := retained(t, broker, prefix+"/gw/live/s/m"); got != `{"value":1}` {
		t.Errorf("retained %q, want the payload OnConnect published", got)
	}
	px.drop() // the link dies; the uplink reconnects and calls OnConnect again
	eventually(t, "OnConnect called again", func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 2 })
	mu.Lock()
	if !calls[0] || !calls[1] {
		t.Errorf("Publish in OnConnect returned %v, want true each time", calls)
	}
	mu.Unlock()
	if st := u.Stats(); st.Connects != 2 || !strings.Contains(st.LastError, "connection lost") {
		t.Errorf("stats %+v, want 2 connects and the loss as last error", st)
	}
	px.cut()
	eventually(t, "disconnected", func() bool { return !u.Stats().Connected })
	if u.Publish(u.Topic("x"), 1, false, []byte("x")) {
		t.Error("Publish while disconnected returned true")
	}
}

// drop closes the forwarded connections and keeps listening.
func (p *proxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// A broker with a password file: the right password connects, a wrong one
// is refused with a clear error, and neither password (nor the one in a
// broker URL) is ever logged or reported.
func TestPasswordLogin(t *testing.T) {
	const user, pass, wrong, urlPass = "gw1", "s3cret-Pa55", "wr0ng-Pa55", "url-Pa55"
	dir := t.TempDir()
	pwfile := filepath.Join(dir, "passwd")
	bin := "/usr/bin/mosquitto_passwd"
	if _, err := os.Stat(bin); err != nil {
		if testenv.ExternalMQTT() {
			t.Fatalf("%s is set but %s is missing", testenv.EnvMQTT, bin)
		}
		t.Skip("no mosquitto_passwd")
	}
	if out, err := exec.Command(bin, "-b", "-c", pwfile, user, pass).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	m := startMosquitto(t, &testenv.MosquittoOptions{
		Global: "allow_anonymous false\npassword_file " + pwfile,
	})
	logs, log := captureLog()
	base := Options{Gateway: "gw", TopicPrefix: uniquePrefix(), Logger: log, Ack: AckBroker,
		BackoffInitial: 10 * time.Millisecond, MaxReconnect: 50 * time.Millisecond}

	bad := base
	bad.Broker, bad.Username, bad.Password = m.URL("tcp"), user, wrong
	ub := startUplink(t, newMemStore(1), bad)
	eventually(t, "wrong password refused", func() bool { return ub.Stats().ConnectFailures >= 2 })
	if st := ub.Stats(); st.Connected || !strings.Contains(st.LastError, "login refused") {
		t.Errorf("stats %+v, want not connected and a refused login", st)
	}
	ub.Close(context.Background())

	inURL := base
	inURL.Broker = "tcp://" + user + ":" + urlPass + "@" + m.Addr()
	uu := startUplink(t, newMemStore(1), inURL)
	eventually(t, "password in URL refused", func() bool { return uu.Stats().ConnectFailures >= 1 })
	uu.Close(context.Background())

	good := base
	good.Broker, good.Username, good.Password = m.URL("tcp"), user, pass
	s := newMemStore(1)
	s.put(LaneTelemetry, 1, batchBytes(t, outpost.KindTelemetry, 1, 1))
	ug := startUplink(t, s, good)
	eventually(t, "connected and batch delivered", func() bool { return ug.Stats().Connected && s.left() == 0 })
	ug.Close(context.Background())

	out := logs.String()
	if !strings.Contains(out, "login refused by the broker") {
		t.Errorf("log does not say the login was refused:\n%s", out)
	}
	if !strings.Contains(out, "connected") {
		t.Errorf("log does not say connected:\n%s", out)
	}
	for _, p := range []string{pass, wrong, urlPass} {
		if strings.Contains(out, p) {
			t.Errorf("password %q logged:\n%s", p, out)
		}
		for _, st := range []Stats{ub.Stats(), uu.Stats(), ug.Stats()} {
			if strings.Contains(st.LastError, p) {
				t.Errorf("password %q in LastError %q", p, st.LastError)
			}
		}
	}
}

// startMosquitto starts a broker for the test. As root, mosquitto drops
// to its own user, which cannot read the test's files: keep root.
func startMosquitto(t *testing.T, o *testenv.MosquittoOptions) *testenv.Mosquitto {
	t.Helper()
	if os.Geteuid() == 0 {
		o.Global = "user root\n" + o.Global
	}
	return testenv.StartMosquitto(t, o)
}
