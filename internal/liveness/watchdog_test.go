package liveness

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeNotifier records what the watchdog sends, and can fail.
type fakeNotifier struct {
	msgs chan string
	fail atomic.Bool
}

func (f *fakeNotifier) send(m string) error {
	if f.fail.Load() {
		return errors.New("socket gone")
	}
	select {
	case f.msgs <- m:
	default:
	}
	return nil
}

func (f *fakeNotifier) Pet(status string) error    { return f.send("PET " + status) }
func (f *fakeNotifier) Status(status string) error { return f.send("STATUS " + status) }

func (f *fakeNotifier) next(t *testing.T) string {
	t.Helper()
	select {
	case m := <-f.msgs:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("nothing sent within 30s")
		return ""
	}
}

func (f *fakeNotifier) until(t *testing.T, prefix string) string {
	t.Helper()
	for range 100000 {
		if m := f.next(t); strings.HasPrefix(m, prefix) {
			return m
		}
	}
	t.Fatalf("never sent %q", prefix)
	return ""
}

func TestWatchdogPetsOnlyWhileNoLoopIsWedged(t *testing.T) {
	var loop Beat
	n := &fakeNotifier{msgs: make(chan string, 64)}
	w, err := StartWatchdog(n, &WatchdogOptions{
		Every:  5 * time.Millisecond,
		Pet:    true,
		Limit:  20 * time.Millisecond,
		Parts:  func() []Report { return []Report{loop.Report("loop")} },
		Status: func() string { return "fine" },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if m := n.next(t); m != "PET fine" {
		t.Fatalf("idle loop: %q", m)
	}

	loop.Busy() // and never returns
	if m := n.until(t, "STATUS WEDGED"); !strings.HasPrefix(m, "STATUS WEDGED: loop busy for ") {
		t.Errorf("wedged status %q", m)
	}
	for range 20 {
		if m := n.next(t); !strings.HasPrefix(m, "STATUS WEDGED") {
			t.Fatalf("sent %q while the loop is wedged", m)
		}
	}

	loop.Idle()
	n.until(t, "PET fine")

	// A step with an allowance is not wedged within it.
	loop.BusyFor(time.Hour)
	for range 20 {
		if m := n.next(t); m != "PET fine" {
			t.Fatalf("sent %q within the step's allowance", m)
		}
	}
	loop.Idle()

	// Failing sends are counted and logged, and the watchdog goes on.
	n.fail.Store(true)
	time.Sleep(20 * time.Millisecond)
	n.fail.Store(false)
	n.until(t, "PET fine")
	w.Stop()
	w.Stop() // idempotent
}

func TestWatchdogStatusOnly(t *testing.T) {
	n := &fakeNotifier{msgs: make(chan string, 64)}
	w, err := StartWatchdog(n, &WatchdogOptions{Every: 5 * time.Millisecond,
		Parts: func() []Report { return nil }, Status: func() string { return "s" }})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for range 5 {
		if m := n.next(t); m != "STATUS s" {
			t.Fatalf("got %q, want the status alone", m)
		}
	}
}

func TestStartWatchdogRefuses(t *testing.T) {
	parts := func() []Report { return nil }
	n := &fakeNotifier{msgs: make(chan string, 1)}
	for _, c := range []struct {
		n Notifier
		o *WatchdogOptions
	}{
		{nil, &WatchdogOptions{Every: time.Second, Parts: parts}},
		{n, nil},
		{n, &WatchdogOptions{Parts: parts}},
		{n, &WatchdogOptions{Every: time.Second}},
	} {
		if w, err := StartWatchdog(c.n, c.o); err == nil || w != nil {
			t.Errorf("%+v: %v, %v", c.o, w, err)
		}
	}
}
