package gateway

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
)

// fakeNow is a clock the test moves.
type fakeNow struct{ ns atomic.Int64 }

func (f *fakeNow) now() time.Time          { return time.Unix(0, f.ns.Load()) }
func (f *fakeNow) advance(d time.Duration) { f.ns.Add(int64(d)) }

// openBatcher runs a batcher on a real outbox, ticking every 5 ms of
// real time, its age of batches read from clock; stop closes its input
// and waits for it.
func openBatcher(t *testing.T, ob *buffer.Outbox, maxDelay time.Duration, clock *fakeNow) (in chan<- []outpost.Reading, stop func()) {
	t.Helper()
	ch := make(chan []outpost.Reading, 64)
	alerts := make(chan []outpost.Alert)
	bt := &batcher{gateway: "gw", in: ch, alerts: alerts, out: ob, maxReadings: 1000,
		interval: 5 * time.Millisecond, maxDelay: maxDelay, maxPending: 8, now: clock.now, log: zerolog.Nop()}
	done := make(chan struct{})
	go func() { defer close(done); bt.run(context.Background()) }()
	return ch, func() {
		close(ch)
		close(alerts)
		<-done
	}
}

// journaled is the readings the outbox holds as the open batch, -1 for
// none, -2 for bytes that do not decode.
func journaled(t *testing.T, ob *buffer.Outbox) int {
	t.Helper()
	p, err := ob.State(openKey)
	if err != nil {
		t.Fatal(err)
	}
	if p == nil {
		return -1
	}
	b, err := outpost.DecodeBatch(p)
	if err != nil {
		return -2 // not a batch
	}
	return b.Len()
}

// outboxTelemetry is the telemetry batches in the outbox and their readings.
func outboxTelemetry(t *testing.T, ob *buffer.Outbox) (batches, readings int) {
	t.Helper()
	es, err := ob.Read(buffer.LaneTelemetry, 0, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, err := outpost.DecodeBatch(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		readings += b.Len()
	}
	return len(es), readings
}

// With batch.max_delay, a low-rate batch stays open across ticks, its
// readings in the outbox's journal after each, and is sealed once its
// first reading has waited max_delay: one batch, and the journal gone
// in the same transaction.
func TestBatcherMaxDelay(t *testing.T) {
	ob, err := buffer.Open(filepath.Join(t.TempDir(), OutboxFile), &buffer.Options{Gateway: "gw", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	clock := &fakeNow{}
	clock.ns.Store(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC).UnixNano())
	in, stop := openBatcher(t, ob, time.Minute, clock)
	in <- readings("a", 3, 1)
	waitFor(t, func() bool { return journaled(t, ob) == 3 })
	clock.advance(30 * time.Second)
	in <- readings("b", 2, 10)
	waitFor(t, func() bool { return journaled(t, ob) == 5 })
	if n, _ := outboxTelemetry(t, ob); n != 0 {
		t.Fatalf("%d batches stored before max_delay", n)
	}
	clock.advance(30 * time.Second)
	waitFor(t, func() bool { n, _ := outboxTelemetry(t, ob); return n == 1 })
	if n, r := outboxTelemetry(t, ob); n != 1 || r != 5 || journaled(t, ob) != -1 {
		t.Fatalf("%d batches of %d readings stored, %d journaled; want one of 5, none", n, r, journaled(t, ob))
	}
	// The next batch opens with the next reading, and what is open at the
	// end is stored.
	in <- readings("a", 1, 100)
	waitFor(t, func() bool { return journaled(t, ob) == 1 })
	stop()
	if n, r := outboxTelemetry(t, ob); n != 2 || r != 6 || journaled(t, ob) != -1 {
		t.Fatalf("after stop: %d batches of %d readings, %d journaled; want 2 of 6, none", n, r, journaled(t, ob))
	}
}

// An open batch that a run journaled and never sealed (killed, power
// cut) opens the next run's first batch: stored once, with its
// readings, and the journal gone. One that does not decode is dropped.
func TestBatcherRecoversOpenBatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), OutboxFile)
	ob, err := buffer.Open(path, &buffer.Options{Gateway: "gw", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	bb := outpost.NewBatchBuilder()
	bb.Add(readings("a", 4, 1))
	b := bb.Take("gw", 1)
	b.Epoch, b.Seq = 1, 1
	p, err := b.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.PutState(openKey, p); err != nil {
		t.Fatal(err)
	}
	clock := &fakeNow{}
	clock.ns.Store(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC).UnixNano())
	in, stop := openBatcher(t, ob, 0, clock) // no max_delay now: sealed at the first tick
	waitFor(t, func() bool { n, _ := outboxTelemetry(t, ob); return n == 1 })
	in <- readings("b", 2, 10)
	stop()
	if n, r := outboxTelemetry(t, ob); n != 2 || r != 6 || journaled(t, ob) != -1 {
		t.Fatalf("%d batches of %d readings, %d journaled; want 2 of 6, none", n, r, journaled(t, ob))
	}

	if err := ob.PutState(openKey, []byte("not a batch")); err != nil {
		t.Fatal(err)
	}
	_, stop = openBatcher(t, ob, time.Minute, clock)
	waitFor(t, func() bool { return journaled(t, ob) == -1 })
	stop()
	if n, r := outboxTelemetry(t, ob); n != 2 || r != 6 {
		t.Fatalf("after an unreadable journal: %d batches of %d readings, want 2 of 6", n, r)
	}
}

// flakyOutbox is the outbox, with appends that fail on demand.
type flakyOutbox struct {
	*buffer.Outbox
	failing atomic.Bool
	failed  atomic.Int64 // appends refused
}

func (f *flakyOutbox) Append(bs []*outpost.Batch) error {
	if f.failing.Load() {
		f.failed.Add(1)
		return errors.New("disk full")
	}
	return f.Outbox.Append(bs)
}

func (f *flakyOutbox) AppendDeletingState(bs []*outpost.Batch, key string) error {
	if f.failing.Load() {
		f.failed.Add(1)
		return errors.New("disk full")
	}
	return f.Outbox.AppendDeletingState(bs, key)
}

// While the outbox fails, the batch holding journaled readings waits
// with the others, and the journal stays; dropped beyond maxPending, its
// readings are counted lost, and batches are kept open again once the
// outbox works: nothing is stored twice.
func TestBatcherMaxDelayOutboxFails(t *testing.T) {
	ob, err := buffer.Open(filepath.Join(t.TempDir(), OutboxFile), &buffer.Options{Gateway: "gw", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	out := &flakyOutbox{Outbox: ob}
	clock := &fakeNow{}
	clock.ns.Store(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC).UnixNano())
	in := make(chan []outpost.Reading, 64)
	alerts := make(chan []outpost.Alert)
	bt := &batcher{gateway: "gw", in: in, alerts: alerts, out: out, maxReadings: 1000,
		interval: 5 * time.Millisecond, maxDelay: time.Minute, maxPending: 2, now: clock.now, log: zerolog.Nop()}
	done := make(chan struct{})
	go func() { defer close(done); bt.run(context.Background()) }()

	in <- readings("a", 3, 1)
	waitFor(t, func() bool { return journaled(t, ob) == 3 })
	out.failing.Store(true)
	clock.advance(time.Minute) // sealed at the next tick; its append fails
	waitFor(t, func() bool { return out.failed.Load() > 0 })
	if journaled(t, ob) != 3 {
		t.Fatal("the journal went while its batch was not stored")
	}
	// Two more batches (by count) push the first out of the two held.
	in <- readings("b", 1000, 10)
	in <- readings("c", 1000, 10)
	waitFor(t, func() bool { return bt.lost.Load() == 3 })
	out.failing.Store(false)
	in <- readings("d", 2, 100)
	waitFor(t, func() bool { n, _ := outboxTelemetry(t, ob); return n == 2 && journaled(t, ob) == 2 })
	close(in)
	close(alerts)
	<-done
	if n, r := outboxTelemetry(t, ob); n != 3 || r != 2002 || journaled(t, ob) != -1 {
		t.Fatalf("%d batches of %d readings, %d journaled; want 3 of 2002, none", n, r, journaled(t, ob))
	}
}
