package gateway

import (
	"testing"
	"time"

	"github.com/outposthq/outpost/config"
)

// BenchmarkClockNow is the cost of the gateway's clock, which every
// poll and every part reads through the tracker, against time.Now.
func BenchmarkClockNow(b *testing.B) {
	b.Run("time.Now", func(b *testing.B) {
		for b.Loop() {
			_ = time.Now()
		}
	})
	b.Run("tracker", func(b *testing.B) {
		c := newClockTracker(config.ClockConfig{Trust: config.ClockAuto}, clockOptions{wall: time.Now,
			floor: time.Unix(0, 0), synced: func() (bool, error) { return true, nil }})
		c.arm(0)
		for b.Loop() {
			_ = c.now()
		}
	})
}

// BenchmarkClockClassify is the batcher's cost per poll after a step:
// each slice of readings is classified into its clock segment.
func BenchmarkClockClassify(b *testing.B) {
	c, clk := newTestTracker(&testing.T{}, config.ClockAuto, time.Unix(0, 0), nil)
	c.arm(0)
	clk.Add(time.Minute)
	c.now()
	clk.Step(clockTruth.Sub(time.Unix(0, 0)))
	ts := c.now().UnixNano()
	if !c.isTrusted() {
		b.Fatal("not trusted")
	}
	for b.Loop() {
		if _, hold := c.classify(ts); hold {
			b.Fatal("held")
		}
	}
}
