package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen is a fake systemd: a unixgram socket in a temporary directory.
func listen(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return name, c
}

// recv reads one datagram, failing after a generous guard.
func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestMessages(t *testing.T) {
	name, c := listen(t)
	n, err := New(name, "", "", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !n.Enabled() || n.Watchdog() != 0 {
		t.Fatalf("enabled %v, watchdog %v", n.Enabled(), n.Watchdog())
	}
	steps := []struct {
		send func() error
		want string
	}{
		{func() error { return n.Ready("") }, "READY=1"},
		{func() error { return n.Ready("up") }, "READY=1\nSTATUS=up"},
		{func() error { return n.Pet("") }, "WATCHDOG=1"},
		{func() error { return n.Status("readings 5/s,\nuplink connected") }, "STATUS=readings 5/s, uplink connected"},
		{func() error { return n.Stopping("bye") }, "STOPPING=1\nSTATUS=bye"},
	}
	for _, s := range steps {
		if err := s.send(); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, c); got != s.want {
			t.Errorf("got %q, want %q", got, s.want)
		}
	}
	if err := n.Reloading(""); err != nil {
		t.Fatal(err)
	}
	got := recv(t, c)
	usec, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
	if v, err := strconv.ParseInt(usec, 10, 64); !ok || err != nil || v <= 0 {
		t.Errorf("reloading: %q", got)
	}
	// A long status is cut on a rune boundary.
	if err := n.Status(strings.Repeat("é", 300)); err != nil {
		t.Fatal(err)
	}
	got = strings.TrimPrefix(recv(t, c), "STATUS=")
	if len(got) > maxStatus || !strings.HasPrefix(got, "éé") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("long status sent as %q", got)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(""); err != nil {
		t.Errorf("after Close: %v", err)
	}
}

func TestAbstractSocket(t *testing.T) {
	name := "@outpost-sdnotify-test-" + strconv.Itoa(os.Getpid())
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Skipf("no abstract sockets here: %v", err)
	}
	defer c.Close()
	n, err := New(name, "", "", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Ready(""); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); got != "READY=1" {
		t.Errorf("got %q", got)
	}
}

func TestDisabled(t *testing.T) {
	for _, n := range []*Notifier{nil, {}, mustNew(t, "", "1000000", "")} {
		if n.Enabled() || n.Watchdog() != 0 {
			t.Errorf("%+v: enabled", n)
		}
		for _, f := range []func(string) error{n.Ready, n.Stopping, n.Reloading, n.Status, n.Pet} {
			if err := f("x"); err != nil {
				t.Error(err)
			}
		}
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	}
}

func mustNew(t *testing.T, socket, usec, wpid string) *Notifier {
	t.Helper()
	n, err := New(socket, usec, wpid, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestWatchdogInterval(t *testing.T) {
	name, _ := listen(t)
	pid := strconv.Itoa(os.Getpid())
	for _, c := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"2000000", "", 2 * time.Second},
		{"2000000", pid, 2 * time.Second},
		{"2000000", strconv.Itoa(os.Getpid() + 1), 0}, // meant for our parent
	} {
		if got := mustNew(t, name, c.usec, c.pid).Watchdog(); got != c.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", c.usec, c.pid, got, c.want)
		}
	}
}

func TestBadEnvironment(t *testing.T) {
	name, _ := listen(t)
	for _, c := range []struct{ socket, usec, pid, want string }{
		{name, "0", "", "WATCHDOG_USEC"},
		{name, "-5", "", "WATCHDOG_USEC"},
		{name, "1s", "", "WATCHDOG_USEC"},
		{name, "99999999999999999999", "", "WATCHDOG_USEC"},
		{name, "1000", "x", "WATCHDOG_PID"},
		{name, "1000", "-1", "WATCHDOG_PID"},
		{"relative/sock", "", "", "absolute"},
		{"/" + strings.Repeat("a", 200), "", "", "longer"},
		{filepath.Join(t.TempDir(), "absent"), "", "", "sdnotify:"},
	} {
		n, err := New(c.socket, c.usec, c.pid, os.Getpid())
		if err == nil || n != nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%.30q, %q, %q) = %v, %v; want an error with %q", c.socket, c.usec, c.pid, n, err, c.want)
		}
	}
}

// A receiver that went away is an error of the send, not a panic or a hang.
func TestReceiverGone(t *testing.T) {
	name, c := listen(t)
	n := mustNew(t, name, "", "")
	c.Close()
	os.Remove(name)
	if err := n.Pet(""); err == nil {
		t.Error("no error after the socket went away")
	}
}
