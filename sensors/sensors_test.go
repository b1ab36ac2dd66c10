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

func TestPollerBacksOffAndRecovers(t *testing.T) {
	s := &fakeSensor{fails: 3}
	var mu sync.Mutex
	var got []outpost.Reading
	p := NewPoller(s, Spec{ID: "s", Interval: time.Millisecond}, func(_ context.Context, rs []outpost.Reading) {
		mu.Lock()
		got = append(got, rs...)
		mu.Unlock()
	}, &PollerOptions{MaxBackoff: 4 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for p.Readings() < 5 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if p.Errors() != 3 {
		t.Errorf("errors %d, want 3", p.Errors())
	}
	mu.Lock()
	defer mu.Unlock()
	if int64(len(got)) != p.Readings() || len(got) < 5 {
		t.Fatalf("emitted %d readings, counter %d", len(got), p.Readings())
	}
	for i := 1; i < len(got); i++ {
		if got[i].TS <= got[i-1].TS {
			t.Fatalf("timestamps not increasing at %d", i)
		}
	}
}

func TestBackoffDoublesToCap(t *testing.T) {
	p := NewPoller(&fakeSensor{}, Spec{Interval: time.Second}, nil, &PollerOptions{MaxBackoff: 10 * time.Second})
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := p.backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
}
