package sensors

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outposthq/outpost"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeSensor struct {
	mu    sync.Mutex
	fails int // fail this many reads first
	reads int
}

func (f *fakeSensor) Read(_ context.Context, now time.Time, dst []outpost.Reading) ([]outpost.Reading, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.reads <= f.fails {
		return dst, errors.New("bus NACK")
	}
	return append(dst, outpost.Reading{Sensor: "s", Metric: "m", TS: now.UnixNano(), Value: float64(f.reads)}), nil
}

func (f *fakeSensor) Close() error { return nil }

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	f := func(Spec) (Sensor, error) { return &fakeSensor{}, nil }
	if err := r.Register("fake", f); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("fake", f); err == nil {
		t.Fatal("duplicate registration accepted")
	}
	if _, err := r.New(Spec{ID: "a", Driver: "fake"}); err != nil {
		t.Fatal(err)
	}
	_, err := r.New(Spec{ID: "b", Driver: "nope"})
	if err == nil || !strings.Contains(err.Error(), `unknown driver "nope" (known: fake)`) {
		t.Fatalf("unknown driver error = %v", err)
	}
}
