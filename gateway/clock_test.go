package gateway

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/internal/testclock"
	"github.com/outposthq/outpost/uplink"
)

var clockTruth = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func newTestTracker(t *testing.T, mode string, boot time.Time, synced func() (bool, error)) (*clockTracker, *testclock.Clock) {
	t.Helper()
	clk := testclock.New(boot)
	if synced == nil {
		synced = func() (bool, error) { return false, nil }
	}
	c := newClockTracker(config.ClockConfig{Trust: mode}, clockOptions{
		wall: clk.Now, mono: clk.Mono, floor: clockTruth.Add(-24 * time.Hour), synced: synced,
	})
	return c, clk
}

func TestClockTrust(t *testing.T) {
	synced := func() (bool, error) { return true, nil }
	broken := func() (bool, error) { return false, errors.New("no adjtimex") }
	for _, tc := range []struct {
		name    string
		mode    string
		boot    time.Time
		synced  func() (bool, error)
		newest  time.Time // the outbox's newest batch
		trusted bool
	}{
		{"auto, clock past the floor", config.ClockAuto, clockTruth, nil, time.Time{}, true},
		{"auto, 1970", config.ClockAuto, time.Unix(0, 0), nil, time.Time{}, false},
		{"auto, 1970, kernel synchronised", config.ClockAuto, time.Unix(0, 0), synced, time.Time{}, true},
		{"auto, behind the outbox", config.ClockAuto, clockTruth, nil, clockTruth.Add(time.Hour), false},
		{"sync, past the floor, kernel not synchronised", config.ClockSync, clockTruth, nil, time.Time{}, false},
		{"sync, kernel synchronised", config.ClockSync, clockTruth, synced, time.Time{}, true},
		{"sync, no kernel status: the floor decides", config.ClockSync, clockTruth, broken, time.Time{}, true},
		{"always, 1970", config.ClockAlways, time.Unix(0, 0), nil, time.Time{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newTestTracker(t, tc.mode, tc.boot, tc.synced)
			var newest int64
			if !tc.newest.IsZero() {
				newest = tc.newest.UnixNano()
			}
			c.arm(newest)
			if c.isTrusted() != tc.trusted {
				t.Fatalf("trusted %v, want %v", c.isTrusted(), tc.trusted)
			}
			if c.holdAge() == tc.trusted {
				t.Fatalf("holdAge %v with trusted %v", c.holdAge(), tc.trusted)
			}
			if tc.trusted && !c.plain() {
				t.Fatal("trusted from the start but not plain")
			}
		})
	}
}

// A boot at 1970 steps to the truth: readings of before the step are
// classified into the first segment and corrected by the step; those
// after it are not held.
func TestClockStepClassifies(t *testing.T) {
	boot := time.Unix(0, 0)
	c, clk := newTestTracker(t, config.ClockAuto, boot, nil)
	c.arm(0)
	var before []int64
	for range 60 {
		clk.Add(time.Second)
		before = append(before, c.now().UnixNano())
	}
	if c.isTrusted() {
		t.Fatal("trusted at 1970")
	}
	if seg, hold := c.classify(before[10]); seg != 0 || !hold {
		t.Fatalf("untrusted reading: segment %d hold %v", seg, hold)
	}
	clk.Add(time.Second)
	clk.Step(clockTruth.Sub(boot))
	after := c.now().UnixNano()
	if !c.isTrusted() || c.steps.Load() != 1 {
		t.Fatalf("after the step: trusted %v, steps %d", c.isTrusted(), c.steps.Load())
	}
	for _, ts := range before {
		seg, hold := c.classify(ts)
		if seg != 0 || !hold {
			t.Fatalf("reading of before the step: segment %d hold %v", seg, hold)
		}
	}
	if seg, hold := c.classify(after); seg != 1 || hold {
		t.Fatalf("reading of after the step: segment %d hold %v", seg, hold)
	}
	d, ok := c.delta(0)
	if !ok || d != clockTruth.Sub(boot).Nanoseconds() {
		t.Fatalf("delta %d %v, want the step", d, ok)
	}
	// The reading taken 60 s after boot lands 60 s after the true boot.
	if got := time.Unix(0, before[59]+d); !got.Equal(clockTruth.Add(60 * time.Second)) {
		t.Fatalf("re-based reading at %v, want %v", got, clockTruth.Add(60*time.Second))
	}
	// A later step is only counted: the trusted offset stays.
	clk.Step(-3 * time.Second)
	c.now()
	if d2, _ := c.delta(0); d2 != d || c.steps.Load() != 2 {
		t.Fatalf("after a step while trusted: delta %d (was %d), steps %d", d2, d, c.steps.Load())
	}
}

// Slewing below the threshold is no step.
func TestClockSmallDriftIsNoStep(t *testing.T) {
	c, clk := newTestTracker(t, config.ClockAuto, time.Unix(0, 0), nil)
	c.arm(0)
	for range 100 {
		clk.Add(time.Second)
		clk.Step(5 * time.Millisecond)
		c.now()
	}
	if c.steps.Load() != 0 || len(c.segs) != 1 {
		t.Fatalf("%d steps, %d segments from 0.5 s of drift in 5 ms slews", c.steps.Load(), len(c.segs))
	}
}

func TestClockHeldRanges(t *testing.T) {
	c, _ := newTestTracker(t, config.ClockAuto, time.Unix(0, 0), nil)
	c.hold(3, 5, 0, false)
	c.hold(5, 7, 0, true) // extends
	c.hold(9, 10, 1, true)
	for seq, want := range map[uint64]bool{2: false, 3: true, 6: true, 7: false, 8: false, 9: true, 10: false} {
		if c.isHeld(seq) != want {
			t.Fatalf("isHeld(%d) = %v", seq, !want)
		}
	}
	c.holdAppend(20)
	if !c.isHeld(25) || c.isHeld(12) {
		t.Fatal("holdAppend(20) holds 25, not 12")
	}
	c.holdAppend(0)
	c.release(6)
	if r, _ := c.oldestHeld(); r.first != 6 || r.end != 7 {
		t.Fatalf("after release(6): %+v", r)
	}
	c.release(7)
	c.release(10)
	if _, ok := c.oldestHeld(); ok || c.held.Load() != 0 {
		t.Fatal("ranges left after releasing them all")
	}
}

// The batcher holds what it stores under an untrusted clock; the uplink's
// view of the outbox skips it; once the clock is trusted the batcher
// stores it anew, re-based, under new seqs.
func TestBatcherHoldsAndRebases(t *testing.T) {
	boot := time.Unix(0, 0)
	c, clk := newTestTracker(t, config.ClockAuto, boot, nil)
	ob, err := buffer.Open(filepath.Join(t.TempDir(), OutboxFile), &buffer.Options{Now: c.now, HoldAge: c.holdAge, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	c.arm(0)
	bt := &batcher{gateway: "gw", out: ob, ob: ob, clock: c, maxReadings: 10, maxPending: 8, now: c.now,
		interval: time.Hour, lastHeldSeg: -1}
	bt.b = outpost.NewBatchBuilder()
	poll := func() {
		clk.Add(time.Second)
		ts := c.now().UnixNano()
		bt.add([]outpost.Reading{{Sensor: "s", Metric: "m", TS: ts, Value: 1}})
	}
	for range 25 {
		poll()
	}
	bt.seal()
	bt.commit()
	store := &outboxStore{ob: ob, clock: c}
	if got, err := store.Next(int(buffer.LaneTelemetry), 0, 16, nil); err != nil || len(got) != 0 {
		t.Fatalf("uplink sees %d held batches (%v)", len(got), err)
	}
	bt.rebase() // not trusted: nothing happens
	if bt.rebasedBatches.Load() != 0 {
		t.Fatal("re-based before the clock was trusted")
	}

	clk.Step(clockTruth.Sub(boot))
	for range 5 {
		poll()
	}
	bt.seal()
	bt.commit()
	got, err := store.Next(int(buffer.LaneTelemetry), 0, 16, nil)
	if err != nil || len(got) != 1 {
		t.Fatalf("uplink sees %d batches after the step (%v), want the one trusted batch", len(got), err)
	}
	bt.rebase()
	if c.held.Load() != 0 || bt.rebasedBatches.Load() != 3 || bt.rebasedReadings.Load() != 25 {
		t.Fatalf("held %d, re-based %d batches / %d readings; want 0, 3, 25", c.held.Load(), bt.rebasedBatches.Load(), bt.rebasedReadings.Load())
	}
	got, err = store.Next(int(buffer.LaneTelemetry), 0, 16, nil)
	if err != nil || len(got) != 4 {
		t.Fatalf("uplink sees %d batches (%v), want 4", len(got), err)
	}
	var all []outpost.Reading
	for _, s := range got[1:] {
		b, err := outpost.DecodeBatch(s.Data)
		if err != nil {
			t.Fatal(err)
		}
		all = b.AppendReadings(all)
	}
	for i, r := range all {
		want := clockTruth.Add(time.Duration(i+1) * time.Second).UnixNano()
		if r.TS != want {
			t.Fatalf("re-based reading %d at %v, want %v", i, time.Unix(0, r.TS).UTC(), time.Unix(0, want).UTC())
		}
	}
	if st := ob.Stats(); st.Evicted != 0 {
		t.Fatalf("age cap evicted %d batches", st.Evicted)
	}
	var _ uplink.Store = store
}

// The uplink's view of the outbox skips held runs, whatever its window.
func TestStoreSkipsHeld(t *testing.T) {
	c, clk := newTestTracker(t, config.ClockAuto, time.Unix(0, 0), nil)
	ob, err := buffer.Open(filepath.Join(t.TempDir(), OutboxFile), &buffer.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	for i := range 10 {
		b := outpost.NewBatchBuilder()
		b.Add([]outpost.Reading{{Sensor: "s", Metric: "m", TS: int64(i + 1), Value: 1}})
		if err := ob.Append([]*outpost.Batch{b.Take("gw", clk.Now().UnixNano())}); err != nil {
			t.Fatal(err)
		}
	}
	c.hold(3, 5, 0, false)
	c.hold(7, 9, 0, false)
	s := &outboxStore{ob: ob, clock: c}
	seqs := func(after uint64, max int) []uint64 {
		t.Helper()
		got, err := s.Next(int(buffer.LaneTelemetry), after, max, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, g := range got {
			out = append(out, g.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		after uint64
		max   int
		want  []uint64
	}{
		{0, 16, []uint64{1, 2, 5, 6, 9, 10}},
		{0, 3, []uint64{1, 2, 5}},
		{2, 2, []uint64{5, 6}},
		{6, 16, []uint64{9, 10}},
		{10, 16, nil},
	} {
		if got := seqs(tc.after, tc.max); !slices.Equal(got, tc.want) {
			t.Fatalf("Next(after %d, max %d) = %v, want %v", tc.after, tc.max, got, tc.want)
		}
	}
	c.holdAppend(6) // an append of held batches in progress: nothing from 6 on
	if got := seqs(0, 16); !slices.Equal(got, []uint64{1, 2, 5}) {
		t.Fatalf("during a held append: %v", got)
	}
	c.holdAppend(0)
	if got, err := s.Next(int(buffer.LaneAlert), 0, 16, nil); err != nil || len(got) != 0 {
		t.Fatalf("alert lane: %d entries, %v", len(got), err)
	}
}

// Held batches survive a restart of the gateway within one boot: the
// next run restores their runs and segments and re-bases them once the
// clock is trusted; a run in another boot cannot, and holds nothing.
func TestClockHeldSurvivesRestart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		nextBoot string
		rebased  bool
	}{
		{"same boot", "boot-1", true},
		{"another boot", "boot-2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			boot := time.Unix(0, 0)
			clk := testclock.New(boot)
			path := filepath.Join(t.TempDir(), OutboxFile)
			run := func(bootID string) (*clockTracker, *batcher, *buffer.Outbox) {
				c := newClockTracker(config.ClockConfig{Trust: config.ClockAuto}, clockOptions{
					wall: clk.Now, mono: clk.Mono, boot: bootID, floor: clockTruth.Add(-24 * time.Hour),
					synced: func() (bool, error) { return false, nil },
				})
				ob, err := buffer.Open(path, &buffer.Options{Now: c.now, HoldAge: c.holdAge, MaxAge: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				st, err := ob.State(clockStateKey)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.restore(st); err != nil {
					t.Log(err)
				}
				newest, err := ob.NewestCreated()
				if err != nil {
					t.Fatal(err)
				}
				c.arm(newest)
				bt := &batcher{gateway: "gw", out: ob, ob: ob, clock: c, maxReadings: 10, maxPending: 8, now: c.now,
					interval: time.Hour, lastHeldSeg: -1}
				bt.b = outpost.NewBatchBuilder()
				return c, bt, ob
			}
			poll := func(c *clockTracker, bt *batcher) {
				clk.Add(time.Second)
				bt.add([]outpost.Reading{{Sensor: "s", Metric: "m", TS: c.now().UnixNano(), Value: 1}})
			}

			c, bt, ob := run("boot-1")
			for range 20 {
				poll(c, bt)
			}
			bt.seal()
			bt.commit()
			bt.settle()
			if err := ob.Close(); err != nil {
				t.Fatal(err)
			}

			clk.Add(5 * time.Second) // the gateway restarts
			c, bt, ob = run(tc.nextBoot)
			defer ob.Close()
			if got := c.held.Load() > 0; got != tc.rebased {
				t.Fatalf("held after the restart: %v, want %v", got, tc.rebased)
			}
			clk.Step(clockTruth.Sub(boot))
			poll(c, bt)
			bt.seal()
			bt.commit()
			for bt.rebase() {
			}
			bt.persistClock()
			if tc.rebased != (bt.rebasedReadings.Load() == 20) {
				t.Fatalf("re-based %d readings", bt.rebasedReadings.Load())
			}
			es, err := ob.Read(buffer.LaneTelemetry, 0, 100, nil)
			if err != nil {
				t.Fatal(err)
			}
			var all []outpost.Reading
			for _, e := range es {
				b, err := outpost.DecodeBatch(e.Data)
				if err != nil {
					t.Fatal(err)
				}
				all = b.AppendReadings(all)
			}
			if !tc.rebased {
				// No link to the last run's monotonic clock: its batches,
				// dated 1970, are older than the age cap once the clock
				// is right, and go with a loss record (docs/clock.md).
				if len(all) != 1 || ob.Stats().EvictedReadings != 20 {
					t.Fatalf("%d readings stored, %d evicted; want 1 and 20", len(all), ob.Stats().EvictedReadings)
				}
				return
			}
			if len(all) != 21 {
				t.Fatalf("%d readings stored, want 21", len(all))
			}
			slices.SortFunc(all, func(a, b outpost.Reading) int { return int(a.TS/1e9 - b.TS/1e9) })
			for i, r := range all[:20] {
				want := clockTruth.Add(time.Duration(i+1) * time.Second).UnixNano()
				if r.TS != want {
					t.Fatalf("reading %d at %v, want %v", i, time.Unix(0, r.TS).UTC(), time.Unix(0, want).UTC())
				}
			}
			if st, err := ob.State(clockStateKey); err != nil || st != nil {
				t.Fatalf("clock state left: %q, %v", st, err)
			}
		})
	}
}

// FuzzClockRestore: a damaged clock state never panics, and what restore
// accepts is well formed: runs in order, each of a known segment.
func FuzzClockRestore(f *testing.F) {
	f.Add([]byte(`{"boot":"b","segments":[[0,5],[100,9]],"held":[[1,4,0],[6,9,1]]}`))
	f.Add([]byte(`{"boot":"b","segments":[],"held":[]}`))
	f.Add([]byte(`{"boot":"other","segments":[[0,0]],"held":[[1,2,0]]}`))
	f.Add([]byte(`{"boot":"b","segments":[[0,0]],"held":[[3,2,0],[1,2,5]]}`))
	f.Fuzz(func(t *testing.T, val []byte) {
		clk := testclock.New(time.Unix(0, 0))
		c := newClockTracker(config.ClockConfig{Trust: config.ClockAuto}, clockOptions{
			wall: clk.Now, mono: clk.Mono, boot: "b", floor: clockTruth,
			synced: func() (bool, error) { return false, nil },
		})
		if err := c.restore(val); err != nil {
			if c.held.Load() != 0 {
				t.Fatalf("refused state left %d held runs", c.held.Load())
			}
			return
		}
		if len(c.segs) == 0 || len(c.segs) > maxClockSegments || len(c.heldSeqs) > maxHeldRanges {
			t.Fatalf("%d segments, %d runs", len(c.segs), len(c.heldSeqs))
		}
		var prev uint64
		for _, r := range c.heldSeqs {
			if r.first == 0 || r.end <= r.first || r.first < prev || r.seg < 0 || r.seg >= len(c.segs) {
				t.Fatalf("bad run %+v after %d with %d segments", r, prev, len(c.segs))
			}
			prev = r.end
			if _, ok := c.delta(r.seg); ok {
				t.Fatal("a delta before the clock is trusted")
			}
		}
	})
}

// A clock reading that reaches the tracker after a newer one (goroutines
// race from their reads to the lock) is no step back: it only extends
// its own segment, so the reading it stamped is still classified there.
func TestClockStaleReadingIsNoStep(t *testing.T) {
	c, clk := newTestTracker(t, config.ClockAuto, time.Unix(0, 0), nil)
	c.arm(0)
	clk.Add(10 * time.Second)
	staleW, staleM := clk.Now().UnixNano(), int64(clk.Mono())
	clk.Add(time.Millisecond)
	clk.Step(clockTruth.Sub(time.Unix(0, 0)))
	c.now() // the step, noted first
	c.mu.Lock()
	c.observe(staleW, staleM) // the older reading, noted second
	c.mu.Unlock()
	c.now()
	if c.steps.Load() != 1 || len(c.segs) != 2 {
		t.Fatalf("%d steps, %d segments; want 1 and 2", c.steps.Load(), len(c.segs))
	}
	if seg, hold := c.classify(staleW); seg != 0 || !hold {
		t.Fatalf("the stale reading's stamp: segment %d hold %v", seg, hold)
	}
}

// A run stores its trusted clock as the next run's floor once a minute
// and at a graceful stop, so a clock restored to before that time (a
// fake-hwclock save older than the last run's end) is not trusted even
// when the outbox was emptied; a clock after it is.
func TestClockFloorSurvivesEmptyOutbox(t *testing.T) {
	path := filepath.Join(t.TempDir(), OutboxFile)
	run := func(clk *testclock.Clock) (*clockTracker, *batcher, *buffer.Outbox) {
		t.Helper()
		c := newClockTracker(config.ClockConfig{Trust: config.ClockAuto}, clockOptions{
			wall: clk.Now, mono: clk.Mono, floor: clockTruth.Add(-24 * time.Hour),
			synced: func() (bool, error) { return false, nil },
		})
		ob, err := buffer.Open(path, &buffer.Options{Now: c.now, HoldAge: c.holdAge})
		if err != nil {
			t.Fatal(err)
		}
		saved, err := loadFloor(ob)
		if err != nil {
			t.Fatal(err)
		}
		c.arm(saved)
		return c, &batcher{gateway: "gw", out: ob, ob: ob, clock: c, now: c.now}, ob
	}
	floorIn := func(ob *buffer.Outbox) time.Time {
		t.Helper()
		v, err := loadFloor(ob)
		if err != nil {
			t.Fatal(err)
		}
		return time.Unix(0, v).UTC()
	}

	clk := testclock.New(clockTruth)
	c, bt, ob := run(clk)
	if !c.isTrusted() {
		t.Fatal("a clock after the floor is not trusted")
	}
	bt.settle()
	if got := floorIn(ob); !got.Equal(clockTruth) {
		t.Fatalf("floor stored at the first settle: %v, want %v", got, clockTruth)
	}
	clk.Add(30 * time.Second)
	bt.settle()
	if got := floorIn(ob); !got.Equal(clockTruth) {
		t.Fatalf("floor stored again within a minute: %v", got)
	}
	clk.Add(31 * time.Second)
	bt.settle()
	if want := clockTruth.Add(61 * time.Second); !floorIn(ob).Equal(want) {
		t.Fatalf("floor after a minute: %v, want %v", floorIn(ob), want)
	}
	clk.Add(10 * time.Second)
	bt.saveFloor(true) // a graceful stop
	end := clockTruth.Add(71 * time.Second)
	if !floorIn(ob).Equal(end) {
		t.Fatalf("floor at the stop: %v, want %v", floorIn(ob), end)
	}
	if n := ob.Stats().Batches; n != [2]int{} {
		t.Fatalf("%v batches stored; the test wants an empty outbox", n)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}

	// The machine reboots with the time of an hourly save before the end.
	c, bt, ob = run(testclock.New(end.Add(-40 * time.Minute)))
	if c.isTrusted() {
		t.Fatal("a clock 40 minutes before the last run's end is trusted")
	}
	bt.settle()
	bt.saveFloor(true)
	if !floorIn(ob).Equal(end) {
		t.Fatalf("an untrusted clock moved the floor to %v", floorIn(ob))
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}

	// A clock after the end is trusted.
	c, _, ob = run(testclock.New(end.Add(time.Second)))
	defer ob.Close()
	if !c.isTrusted() {
		t.Fatal("a clock after the last run's end is not trusted")
	}

	// A damaged floor is reported and ignored.
	if err := ob.PutState(clockFloorKey, []byte("bad")); err != nil {
		t.Fatal(err)
	}
	if _, err := loadFloor(ob); err == nil {
		t.Fatal("a 3-byte floor was taken")
	}
}
