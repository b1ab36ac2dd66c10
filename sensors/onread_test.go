package sensors

import (
	"context"
	"testing"
	"time"

	"github.com/outposthq/outpost"
)

func TestPollerOnReadGetsEachSuccessfulReadsDuration(t *testing.T) {
	s := newScriptSensor(readOK(1), readErr(), readOK(2), readSlow(3))
	var took []time.Duration
	p := NewPoller(s, Spec{ID: "s", Interval: time.Millisecond}, func(context.Context, []outpost.Reading) {},
		&PollerOptions{Now: s.clock.Now, OnRead: func(d time.Duration) { took = append(took, d) }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	select {
	case <-s.idle:
	case <-time.After(30 * time.Second):
		t.Fatal("the script did not finish")
	}
	cancel()
	<-done
	// The failed read is retried at once within its poll; only the reads
	// that gave readings are reported.
	want := []time.Duration{fastRead, fastRead, slowRead}
	if len(took) != len(want) {
		t.Fatalf("OnRead got %v, want %v", took, want)
	}
	for i := range want {
		if took[i] != want[i] {
			t.Fatalf("OnRead got %v, want %v", took, want)
		}
	}
}
