package sensors

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost"
)

// countingSensor reads 1, 2, 3, … and notes whether two reads ever ran
// at once.
type countingSensor struct {
	n       atomic.Int64
	busy    atomic.Bool
	overlap atomic.Bool
}

func (s *countingSensor) Read(_ context.Context, now time.Time, dst []outpost.Reading) ([]outpost.Reading, error) {
	if !s.busy.CompareAndSwap(false, true) {
		s.overlap.Store(true)
	}
	defer s.busy.Store(false)
	time.Sleep(100 * time.Microsecond) // a bus transaction's length, for overlap to show
	return append(dst, outpost.Reading{Metric: "n", TS: now.UnixNano(), Value: float64(s.n.Add(1))}), nil
}

func (s *countingSensor) Close() error { return nil }

// Test reads the sensor once on the poller's own goroutine, between its
// polls, and emits nothing; a poller that is not running answers its
// context's error.
func TestPollerTest(t *testing.T) {
	s := &countingSensor{}
	var mu sync.Mutex
	emitted := map[float64]bool{}
	p := NewPoller(s, Spec{ID: "probe", Interval: time.Millisecond}, func(_ context.Context, rs []outpost.Reading) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range rs {
			emitted[r.Value] = true
		}
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	var tested []float64
	for range 20 {
		rs, took, err := p.Test(context.Background())
		if err != nil || len(rs) != 1 || rs[0].Metric != "n" || took < 0 {
			t.Fatalf("Test = %v, %v, %v", rs, took, err)
		}
		tested = append(tested, rs[0].Value)
	}
	for s.n.Load() < 40 { // polls go on beside the tests
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for _, v := range tested {
		if emitted[v] {
			t.Errorf("the test read %v was emitted", v)
		}
	}
	if len(emitted) == 0 {
		t.Error("the poller emitted nothing beside the tests")
	}
	if s.overlap.Load() {
		t.Error("a test read ran beside a poll")
	}
	if st := p.Status(); st.Readings != int64(len(emitted)) {
		t.Errorf("status counts %d readings, %d were emitted: the test reads were counted", st.Readings, len(emitted))
	}

	// Not running: the caller's context ends the wait.
	tctx, tcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer tcancel()
	if _, _, err := p.Test(tctx); err == nil {
		t.Fatal("Test of a stopped poller succeeded")
	}
}
