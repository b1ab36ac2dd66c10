package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Mosquitto is a broker process a test starts for itself, for setups the
// shared broker cannot have (TLS with a generated CA, a tiny message
// queue) and for stopping and starting a broker under a running gateway.
// It listens on loopback only, on a free port that stays the same across
// Stop and Start.
type Mosquitto struct {
	t    testing.TB
	dir  string
	port int

	binary string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// MosquittoOptions add lines to the broker's config file.
type MosquittoOptions struct {
	// Global lines, e.g. "max_queued_messages 5".
	Global string
	// Listener lines, placed after the listener line, e.g. TLS settings
	// ("cafile …", "certfile …", "keyfile …", "require_certificate true").
	Listener string
}

// StartMosquitto starts a mosquitto process for this test and stops it at
// the test's end. Without a mosquitto binary the test is skipped, except
// when OUTPOST_TEST_MQTT is set (as in CI): then it fails, because the
// machine was promised to have Mosquitto.
func StartMosquitto(t testing.TB, opts *MosquittoOptions) *Mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err != nil {
		if ExternalMQTT() {
			t.Fatalf("testenv: %s is set but no mosquitto binary is installed (scripts/dev-services installs it)", EnvMQTT)
		}
		t.Skip("testenv: no mosquitto binary; scripts/dev-services installs it")
	}
	if opts == nil {
		opts = &MosquittoOptions{}
	}
	m := &Mosquitto{t: t, dir: t.TempDir(), port: freePort(t), binary: bin}
	conf := fmt.Sprintf("per_listener_settings false\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\n%s\nlistener %d 127.0.0.1\n%s\n",
		opts.Global, m.port, opts.Listener)
	if err := os.WriteFile(filepath.Join(m.dir, "mosquitto.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	m.Start()
	return m
}

// Addr is the broker's host:port.
func (m *Mosquitto) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)) }

// URL is the broker's URL with the given scheme ("tcp", "ssl").
func (m *Mosquitto) URL(scheme string) string { return scheme + "://" + m.Addr() }

// Dir is the test's directory holding the broker's config and log; put
// certificates here.
func (m *Mosquitto) Dir() string { return m.dir }

// Log returns what the broker wrote to its log so far.
func (m *Mosquitto) Log() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
	return string(b)
}

// Start starts the broker (again) and waits until it accepts
// connections. Starting a running broker does nothing.
func (m *Mosquitto) Start() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done != nil {
		select {
		case <-m.done: // it died on its own: start it again
		default:
			return
		}
	}
	log, err := os.OpenFile(filepath.Join(m.dir, "mosquitto.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.t.Fatal(err)
	}
	cmd := exec.Command(m.binary, "-c", filepath.Join(m.dir, "mosquitto.conf"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		m.t.Fatalf("testenv: start mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		cmd.Wait() //nolint:errcheck // a stopped broker exits with a signal status
		log.Close()
	}()
	m.cmd, m.done = cmd, done
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			m.t.Fatalf("testenv: mosquitto exited at start:\n%s", m.Log())
		default:
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("testenv: mosquitto does not listen on %s: %v\n%s", m.Addr(), err, m.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the broker (SIGTERM, then SIGKILL after 5 s) and waits for
// it. Stopping a stopped broker does nothing.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil {
		return
	}
	cmd, done := m.cmd, m.done
	m.cmd, m.done = nil, nil
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		m.t.Errorf("testenv: stop mosquitto: %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			m.t.Errorf("testenv: kill mosquitto: %v", err)
		}
		<-done
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
