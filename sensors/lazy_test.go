package sensors

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/outposthq/outpost"
)

// flakyFactory fails its first fails calls with a device error.
type flakyFactory struct {
	fails, calls int
	built        *fakeSensor
}

func (f *flakyFactory) new(Spec) (Sensor, error) {
	f.calls++
	if f.calls <= f.fails {
		return nil, errors.New("no ACK at 0x76")
	}
	f.built = &fakeSensor{}
	return f.built, nil
}

func TestNewOrLater(t *testing.T) {
	f := &flakyFactory{fails: 2}
	r := NewRegistry()
	if err := r.Register("flaky", f.new); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("bad", func(s Spec) (Sensor, error) {
		return nil, fmt.Errorf("bad: %w: option x", ErrSpec)
	}); err != nil {
		t.Fatal(err)
	}

	s, err := r.NewOrLater(Spec{ID: "env", Driver: "flaky"})
	if s == nil || err == nil {
		t.Fatalf("NewOrLater = %v, %v; want a sensor to retry and the first error", s, err)
	}
	now := time.Unix(1_700_000_000, 0)
	if _, err := s.Read(context.Background(), now, nil); err == nil {
		t.Fatal("read succeeded while the device is still absent")
	}
	rs, err := s.Read(context.Background(), now, nil)
	if err != nil || len(rs) != 1 {
		t.Fatalf("read once the device answers = %v, %v", rs, err)
	}
	if f.calls != 3 {
		t.Fatalf("factory called %d times, want 3 (once at start, once per read until built)", f.calls)
	}
	if _, err := s.Read(context.Background(), now, nil); err != nil || f.calls != 3 {
		t.Fatalf("a built sensor is built again: calls %d, err %v", f.calls, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if s, err := r.NewOrLater(Spec{ID: "x", Driver: "bad"}); s != nil || !errors.Is(err, ErrSpec) {
		t.Fatalf("a spec error = %v, %v; want no sensor and the error", s, err)
	}
	if s, err := r.NewOrLater(Spec{ID: "x", Driver: "nope"}); s != nil || err == nil {
		t.Fatalf("an unknown driver = %v, %v; want no sensor and an error", s, err)
	}
}

// A sensor built later watches once built, and a Watch waiting for the
// device returns when its ctx ends.
func TestNewOrLaterWatch(t *testing.T) {
	f := &flakyFactory{fails: 1}
	r := NewRegistry()
	if err := r.Register("flaky", f.new); err != nil {
		t.Fatal(err)
	}
	s, _ := r.NewOrLater(Spec{ID: "env", Driver: "flaky"})
	w, ok := s.(Watcher)
	if !ok {
		t.Fatal("a sensor built later is not a Watcher")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Watch(ctx, func([]outpost.Reading) {}) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch before the device answered: %v", err)
	}
	// Close before the device ever answered closes nothing, and a later
	// read says it is closed.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(context.Background(), time.Now(), nil); err == nil {
		t.Fatal("read after Close succeeded")
	}
}
