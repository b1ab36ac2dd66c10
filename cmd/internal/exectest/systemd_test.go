package exectest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/testenv"
)

// notifySocket is a fake systemd: the unixgram socket a Type=notify unit
// finds in $NOTIFY_SOCKET, and the datagrams sent to it.
type notifySocket struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	s := &notifySocket{path: filepath.Join(t.TempDir(), "notify"), msgs: make(chan string, 4096)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(s.path, 0o777); err != nil { // the binary may run as another user
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(s.msgs)
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			select {
			case s.msgs <- string(buf[:n]):
			default:
			}
		}
	})
	t.Cleanup(func() {
		c.Close()
		wg.Wait()
	})
	return s
}

// next is the next datagram, failing after a minute.
func (s *notifySocket) next(t *testing.T) string {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-time.After(time.Minute):
		t.Fatal("no notification within a minute")
	}
	return ""
}

// until reads datagrams until one starts with prefix.
func (s *notifySocket) until(t *testing.T, prefix string) string {
	t.Helper()
	for {
		if m := s.next(t); strings.HasPrefix(m, prefix) {
			return m
		}
	}
}

// startNotified starts a binary with $NOTIFY_SOCKET and $WATCHDOG_USEC set,
// as systemd starts a Type=notify unit with WatchdogSec=.
func startNotified(t *testing.T, s *notifySocket, watchdog time.Duration, name string, args ...string) *proc {
	t.Helper()
	cmd := command(t, name, args...)
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET="+s.path, fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds()))
	return startCmd(t, cmd)
}

// downGatewayFiles writes loadConfig for a gateway whose broker is down:
// nothing listens at its port, so it leaves nothing retained anywhere.
func downGatewayFiles(t *testing.T) (cfg, dir string) {
	t.Helper()
	dir = t.TempDir()
	body := strings.NewReplacer("GW", "gw-systemd", "GRACE", "1s", "BROKER", "tcp://127.0.0.1:1", "PREFIX", "outpost-exectest").Replace(loadConfig)
	return write(t, filepath.Join(dir, "gw.yaml"), body, 0o644), dir
}

// The gateway under systemd: READY=1 once the outbox is open and the
// sensors started, WATCHDOG=1 again and again while the broker is down
// (nothing listens at its port), STOPPING=1 at SIGTERM, and a clean exit.
func TestGatewayNotifiesSystemd(t *testing.T) {
	s := listenNotify(t)
	cfg, dir := downGatewayFiles(t)
	// WatchdogSec=2s: a step (an fsync) may take up to 2s before it is
	// a wedge, which a loaded test machine stays within.
	gw := startNotified(t, s, 2*time.Second, "outpost", "run", "--config", cfg, "--log-format", "json")

	if m := s.next(t); m != "READY=1\nSTATUS=started" {
		t.Fatalf("first notification %q, want READY=1", m)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "outbox.db")); err != nil {
		t.Errorf("READY=1 before the outbox was opened: %v", err)
	}
	gw.await(t, "gateway started") // logged before Start returned, so before READY=1
	for range 4 {
		m := s.until(t, "WATCHDOG=1")
		if !strings.Contains(m, "STATUS=readings ") || !strings.Contains(m, "uplink connecting") {
			t.Errorf("pet %q: want the status line, uplink connecting", m)
		}
	}
	if !strings.Contains(gw.stderr(), "connect to tcp://127.0.0.1:1 failed") {
		t.Errorf("the broker was not down:\n%s", gw.stderr())
	}
	// SIGHUP reloads the rules: RELOADING=1 with the monotonic clock,
	// then READY=1 once done, as Type=notify-reload wants.
	gw.signal(t, syscall.SIGHUP)
	if m := s.until(t, "RELOADING=1"); !strings.Contains(m, "\nMONOTONIC_USEC=") {
		t.Errorf("reloading %q: want MONOTONIC_USEC", m)
	}
	s.until(t, "READY=1")
	s.until(t, "WATCHDOG=1")
	gw.signal(t, syscall.SIGTERM)
	s.until(t, "STOPPING=1")
	if code := gw.wait(t); code != 0 {
		t.Fatalf("outpost exit %d:\n%s", code, gw.stderr())
	}
	if strings.Contains(gw.stderr(), "wedged") {
		t.Errorf("a healthy gateway reported a wedge:\n%s", gw.stderr())
	}
}

// A malformed systemd environment is a start-up failure that says so.
func TestGatewayBadNotifyEnvironment(t *testing.T) {
	cfg, _ := downGatewayFiles(t)
	cmd := command(t, "outpost", "run", "--config", cfg)
	cmd.Env = append(cmd.Env, "NOTIFY_SOCKET=relative/socket")
	r := runCmd(t, cmd)
	if r.code != 1 || !strings.Contains(r.stderr, "NOTIFY_SOCKET") {
		t.Fatalf("want exit 1 naming NOTIFY_SOCKET:\n%s", r)
	}
}

// The ingest service under systemd: READY=1 once the database is open
// and the subscription made, watchdog pets while its consumer lives,
// STOPPING=1 at SIGTERM.
func TestIngestNotifiesSystemd(t *testing.T) {
	broker, db := testenv.MQTT(t), testenv.DB(t)
	s := listenNotify(t)
	dir := t.TempDir()
	ing := startNotified(t, s, 400*time.Millisecond, "outpost-ingest", "--broker", broker, "--db", db, "--http", "",
		"--topic-prefix", "outpost-exectest/"+filepath.Base(dir), "--group", "exectest-"+filepath.Base(dir), "--log-format", "json")
	if m := s.next(t); m != "READY=1\nSTATUS=started" {
		t.Fatalf("first notification %q, want READY=1", m)
	}
	ing.await(t, "subscribed")
	for range 5 {
		if m := s.until(t, "WATCHDOG=1"); !strings.Contains(m, "STATUS=batches ") {
			t.Errorf("pet %q: want the status line", m)
		}
	}
	ing.signal(t, syscall.SIGTERM)
	s.until(t, "STOPPING=1")
	if code := ing.wait(t); code != 0 {
		t.Fatalf("outpost-ingest exit %d:\n%s", code, ing.stderr())
	}
}
