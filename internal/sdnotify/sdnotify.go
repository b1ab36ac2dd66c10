// Package sdnotify speaks systemd's notification protocol (sd_notify(3)):
// a service of Type=notify tells systemd it is ready, reloading or
// stopping, gives it a one-line status, and, with WatchdogSec= set, pets
// the watchdog. Each message is one datagram of newline-separated
// KEY=VALUE lines to the unix socket named by $NOTIFY_SOCKET (an abstract
// socket when the name starts with '@').
//
// Without $NOTIFY_SOCKET (not run by systemd, or a unit that is not
// Type=notify) a Notifier is disabled and every method does nothing, so
// callers need no special case.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Environment variables systemd sets for the service.
const (
	EnvSocket      = "NOTIFY_SOCKET"
	EnvWatchdogSec = "WATCHDOG_USEC"
	EnvWatchdogPID = "WATCHDOG_PID"
)

// maxSocketName is the longest socket name: sun_path holds 108 bytes,
// the last a NUL.
const maxSocketName = 107

// maxStatus bounds a STATUS= line; systemd shows one short line.
const maxStatus = 200

// Notifier sends notifications to systemd. Its methods may be called from
// several goroutines. The zero value and a Notifier made without
// $NOTIFY_SOCKET are disabled: their methods do nothing and return nil.
type Notifier struct {
	mu       sync.Mutex
	conn     *net.UnixConn // nil: disabled
	watchdog time.Duration
}

// FromEnv returns a Notifier for the socket in $NOTIFY_SOCKET, disabled
// when it is unset or empty. Its watchdog interval is $WATCHDOG_USEC when
// $WATCHDOG_PID is unset or names this process. An invalid value is an
// error, and so is a socket that cannot be dialled; on an error the
// Notifier returned is nil.
func FromEnv() (*Notifier, error) {
	return New(os.Getenv(EnvSocket), os.Getenv(EnvWatchdogSec), os.Getenv(EnvWatchdogPID), os.Getpid())
}

// New is FromEnv with the environment's values given: socket (empty:
// disabled), watchdogUsec and watchdogPID (either may be empty), and this
// process's pid.
func New(socket, watchdogUsec, watchdogPID string, pid int) (*Notifier, error) {
	n := &Notifier{}
	if socket == "" {
		return n, nil
	}
	wd, err := watchdogInterval(watchdogUsec, watchdogPID, pid)
	if err != nil {
		return nil, err
	}
	if len(socket) > maxSocketName {
		return nil, fmt.Errorf("sdnotify: %s is longer than a unix socket name may be", EnvSocket)
	}
	if socket[0] != '/' && socket[0] != '@' {
		return nil, fmt.Errorf("sdnotify: %s %q is neither an absolute path nor an abstract name (@…)", EnvSocket, socket)
	}
	// Go reads a leading '@' as an abstract socket name, as systemd means it.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("sdnotify: %w", err)
	}
	n.conn, n.watchdog = conn, wd
	return n, nil
}

// watchdogInterval parses WATCHDOG_USEC; 0 when unset or meant for
// another process.
func watchdogInterval(usec, wpid string, pid int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if wpid != "" {
		p, err := strconv.Atoi(wpid)
		if err != nil || p <= 0 {
			return 0, fmt.Errorf("sdnotify: %s %q is not a pid", EnvWatchdogPID, wpid)
		}
		if p != pid {
			return 0, nil // set for another process (we were forked by it)
		}
	}
	v, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || v == 0 || v > uint64(time.Duration(1<<62)/time.Microsecond) {
		return 0, fmt.Errorf("sdnotify: %s %q is not a positive number of microseconds", EnvWatchdogSec, usec)
	}
	return time.Duration(v) * time.Microsecond, nil
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.conn != nil }

// Watchdog is the watchdog interval systemd asked for (WatchdogSec=), 0
// when the watchdog is off. Pet it (Pet) at least every half of it.
func (n *Notifier) Watchdog() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Ready says the service has started: READY=1, with an optional status.
func (n *Notifier) Ready(status string) error { return n.send("READY=1", status) }

// Stopping says the service is stopping: STOPPING=1.
func (n *Notifier) Stopping(status string) error { return n.send("STOPPING=1", status) }

// Reloading says the service reloads its configuration: RELOADING=1
// with MONOTONIC_USEC, as Type=notify-reload (systemd 253) wants. Send
// Ready once the reload is over.
func (n *Notifier) Reloading(status string) error {
	usec, err := monotonicUsec()
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return n.send("RELOADING=1\nMONOTONIC_USEC="+strconv.FormatInt(usec, 10), status)
}

// Status sets the one-line status systemctl status shows: STATUS=….
func (n *Notifier) Status(status string) error { return n.send("", status) }

// Pet pets the watchdog: WATCHDOG=1, with an optional status.
func (n *Notifier) Pet(status string) error { return n.send("WATCHDOG=1", status) }

// Close closes the socket; later calls do nothing. Idempotent.
func (n *Notifier) Close() error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}

// send writes one datagram: state, then STATUS= if status is not empty.
func (n *Notifier) send(state, status string) error {
	if !n.Enabled() {
		return nil
	}
	msg := state
	if status != "" {
		if msg != "" {
			msg += "\n"
		}
		msg += "STATUS=" + oneLine(status)
	}
	if msg == "" {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil // closed meanwhile
	}
	if _, err := n.conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// oneLine makes status one short line: a newline would start a new
// assignment in the datagram.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxStatus {
		i := maxStatus
		for i > 0 && !utf8RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
