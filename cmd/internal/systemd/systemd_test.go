package systemd

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost/internal/liveness"
	"github.com/outposthq/outpost/internal/sdnotify"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// listen is a fake systemd: a unixgram socket whose messages come back
// one per call of next.
func listen(t *testing.T) (path string, next func() string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return path, func() string {
		t.Helper()
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no message: %v", err)
		}
		return string(buf[:n])
	}
}

// A Unit says READY with its status, starts the watchdog with the
// interval systemd asked for, brackets a reload and says STOPPING.
func TestUnit(t *testing.T) {
	path, next := listen(t)
	t.Setenv(sdnotify.EnvSocket, path)
	t.Setenv(sdnotify.EnvWatchdogSec, "2000000") // 2 s
	t.Setenv(sdnotify.EnvWatchdogPID, "")
	u, err := Open(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var got liveness.WatchdogOptions
	u.Ready("started", func(n liveness.Notifier, o liveness.WatchdogOptions) (*liveness.Watchdog, error) {
		got = o
		o.Parts = func() []liveness.Report { return nil }
		o.Status = func() string { return "fine" }
		return liveness.StartWatchdog(n, &o)
	})
	if m := next(); !strings.Contains(m, "READY=1") || !strings.Contains(m, "STATUS=started") {
		t.Fatalf("first message %q", m)
	}
	if got.Every != time.Second || !got.Pet {
		t.Fatalf("watchdog options %+v, want a check every second that pets", got)
	}
	for m := next(); !strings.Contains(m, "WATCHDOG=1"); m = next() {
		t.Logf("before the first pet: %q", m)
	}
	done := u.Reloading("the rules")
	for m := next(); !strings.Contains(m, "RELOADING=1"); m = next() {
		if strings.Contains(m, "READY=1") {
			t.Fatalf("READY before RELOADING: %q", m)
		}
	}
	done()
	for m := next(); !strings.Contains(m, "READY=1"); m = next() {
	}
	u.Stopping("stopping")
	for m := next(); !strings.Contains(m, "STOPPING=1"); m = next() {
	}
	u.Close()
}

// Without $NOTIFY_SOCKET, and on a nil Unit, nothing is said and nothing
// starts; a malformed environment is an error.
func TestUnitOff(t *testing.T) {
	t.Setenv(sdnotify.EnvSocket, "")
	u, err := Open(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	u.Ready("started", func(liveness.Notifier, liveness.WatchdogOptions) (*liveness.Watchdog, error) {
		t.Fatal("a watchdog started without systemd")
		return nil, nil
	})
	u.Reloading("x")()
	u.Stopping("x")
	u.Close()
	var none *Unit
	none.Ready("started", nil)
	none.Reloading("x")()
	none.Stopping("x")
	none.Close()

	t.Setenv(sdnotify.EnvSocket, "relative/path")
	if u, err := Open(zerolog.Nop()); err == nil || u != nil {
		t.Fatalf("a relative socket: %v, %v", u, err)
	}
}
