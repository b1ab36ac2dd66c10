package gateway

import (
	"context"
	"errors"
	"maps"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/internal/liveness"
)

// appender is what the batcher needs from the outbox.
type appender interface {
	Append(bs []*outpost.Batch) error
}

// batcher turns reading slices into columnar batches and stores them in the
// outbox, several sealed batches per durable transaction (group commit).
// Alerts are stored at once in batches of their own.
type batcher struct {
	gateway     string
	in          <-chan []outpost.Reading
	alerts      <-chan []outpost.Alert
	health      <-chan []outpost.Alert // sensor health events, stored like alerts
	out         appender
	maxReadings int
	interval    time.Duration
	maxPending  int // sealed batches held while the outbox fails, beyond which the oldest are dropped
	maxMessage  int // uplink.max_message_bytes: alert texts are cut to a quarter of it
	log         zerolog.Logger
	now         func() time.Time

	b          *outpost.BatchBuilder
	pending    []*outpost.Batch // sealed telemetry not yet stored
	alertsHeld []*outpost.Batch // alert batches not yet stored

	stored     atomic.Int64 // readings committed to the outbox
	batches    atomic.Int64 // batches committed
	lost       atomic.Int64 // readings dropped because the outbox kept failing
	lostAlerts atomic.Int64 // alerts dropped because they cannot fit a message
	failures   int

	beat liveness.Beat // busy while it handles an input or commits
	// Wall-clock trust (rebase.go, docs/clock.md); clock nil: none.
	clock           *clockTracker
	ob              rebaseStore
	openSeg         int                    // clock segment of the open batch's readings
	openHold        bool                   // the open batch is to be held and re-based
	lastHeldSeg     int                    // segment of the last telemetry stored if held, else -1
	segOf           map[*outpost.Batch]int // held sealed batches not yet stored → segment
	rebaseBuf       []buffer.Entry
	rebaseFails     int
	rebasedBatches  atomic.Int64
	rebasedReadings atomic.Int64
	uncorrected     atomic.Int64
	floorSaved      int64 // unix ns of the trusted wall clock last stored as the floor (clock_state.go)
}

// groupMax is how many sealed batches one transaction takes at most.
const groupMax = 32

func (bt *batcher) run(ctx context.Context) {
	bt.b = outpost.NewBatchBuilder()
	bt.lastHeldSeg = -1
	tick := time.NewTicker(bt.interval)
	defer tick.Stop()
	in, alerts, health := bt.in, bt.alerts, bt.health
	defer bt.beat.Idle()
	for in != nil || alerts != nil || health != nil {
		bt.beat.Idle()
		select {
		case rs, ok := <-in:
			bt.beat.Busy()
			if !ok {
				in = nil
				continue
			}
			bt.add(rs)
			// Commit when the queue is momentarily empty or enough is sealed:
			// under load this groups many batches into one fsync.
			if len(bt.pending) >= groupMax || (len(bt.pending) > 0 && len(in) == 0) {
				bt.commit()
				bt.settle()
			}
		case as, ok := <-alerts:
			bt.beat.Busy()
			if !ok {
				alerts = nil
				continue
			}
			bt.commitAlerts(as)
		case as, ok := <-health:
			bt.beat.Busy()
			if !ok {
				health = nil
				continue
			}
			bt.commitAlerts(as)
		case <-tick.C:
			bt.beat.Busy()
			bt.seal()
			bt.commit()
			bt.settle()
		}
	}
	// Inputs closed: store what is left, and re-base what is held if the
	// clock is trusted by now (bounded: a failing outbox keeps them held).
	bt.beat.Busy()
	bt.seal()
	bt.commit()
	for i := 0; i < 1024 && bt.rebase(); i++ {
	}
	bt.persistClock()
	bt.saveFloor(true)
	if n := len(bt.pending) + len(bt.alertsHeld); n > 0 {
		bt.log.Error().Int("batches", n).Msg("outbox failed at shutdown; unflushed batches lost")
	}
}

// add appends rs, sealing a batch each time one reaches maxReadings.
func (bt *batcher) add(rs []outpost.Reading) {
	if bt.clock != nil && len(rs) > 0 && !bt.clock.plain() {
		bt.addClassified(rs)
		return
	}
	bt.addPlain(rs)
}

func (bt *batcher) addPlain(rs []outpost.Reading) {
	for len(rs) > 0 {
		n := min(len(rs), bt.maxReadings-bt.b.Len())
		bt.b.Add(rs[:n])
		rs = rs[n:]
		if bt.b.Len() >= bt.maxReadings {
			bt.seal()
		}
	}
}

func (bt *batcher) seal() {
	if bt.b.Len() == 0 {
		return
	}
	bt.pending = append(bt.pending, bt.b.Take(bt.gateway, bt.now().UnixNano()))
	if bt.openHold {
		if bt.segOf == nil {
			bt.segOf = map[*outpost.Batch]int{}
		}
		bt.segOf[bt.pending[len(bt.pending)-1]] = bt.openSeg
	}
	if over := len(bt.pending) - bt.maxPending; over > 0 {
		for _, b := range bt.pending[:over] {
			bt.lost.Add(int64(b.Len()))
			delete(bt.segOf, b)
		}
		bt.pending = append(bt.pending[:0], bt.pending[over:]...)
		bt.log.Error().Int("batches", over).Msg("outbox unavailable too long; oldest unflushed batches dropped")
	}
}

// commit stores held alert batches, then sealed telemetry, each in as few
// transactions as it can. On failure everything stays held for the next
// try (the next seal or tick); only telemetry beyond maxPending is dropped.
func (bt *batcher) commit() {
	if len(bt.alertsHeld) > 0 {
		err := bt.out.Append(bt.alertsHeld)
		switch {
		case errors.Is(err, outpost.ErrMessageTooLarge):
			if bt.storeAlertsOneByOne(); len(bt.alertsHeld) > 0 {
				return
			}
		case !bt.appendOK(err):
			return
		default:
			bt.batches.Add(int64(len(bt.alertsHeld)))
			clear(bt.alertsHeld)
			bt.alertsHeld = bt.alertsHeld[:0]
		}
	}
	for len(bt.pending) > 0 {
		n := min(len(bt.pending), groupMax)
		guard := bt.guardHeld(bt.pending[:n])
		err := bt.out.Append(bt.pending[:n])
		if err == nil {
			bt.noteHeld(bt.pending[:n])
		}
		if guard {
			bt.clock.holdAppend(0)
		}
		if !bt.appendOK(err) {
			return
		}
		for _, b := range bt.pending[:n] {
			bt.stored.Add(int64(b.Len()))
		}
		bt.batches.Add(int64(n))
		clear(bt.pending[:n])
		bt.pending = append(bt.pending[:0], bt.pending[n:]...)
	}
}

// appendOK counts and logs a failed append (err from Append); it reports
// whether the append succeeded.
func (bt *batcher) appendOK(err error) bool {
	if err != nil {
		bt.failures++
		if bt.failures == 1 || bt.failures%100 == 0 {
			bt.log.Error().Err(err).Int("failures", bt.failures).Msg("outbox append failed; keeping batches in memory")
		}
		return false
	}
	bt.failures = 0
	return true
}

// commitAlerts stores alerts at once, ahead of any telemetry backlog. While
// the outbox fails they are held (never dropped: they are few) and go first
// on the next try. The message and each annotation value are cut to a
// quarter of the message cap, and to what a valid alert may hold.
func (bt *batcher) commitAlerts(as []outpost.Alert) {
	n := outpost.MaxAlertTextLen
	if bt.maxMessage > 0 {
		n = min(n, bt.maxMessage/4)
	}
	for i := range as {
		as[i].Message = cut(as[i].Message, n)
		as[i].Annotations = cutValues(as[i].Annotations, n)
	}
	bt.alertsHeld = append(bt.alertsHeld, &outpost.Batch{
		Version: outpost.WireVersion,
		Kind:    outpost.KindAlert,
		Gateway: bt.gateway,
		Created: bt.now().UnixNano(),
		Alerts:  as,
	})
	bt.commit()
}

// storeAlertsOneByOne stores held alerts one per batch when together they
// did not fit: an alert that cannot fit the message cap on its own (huge
// labels) is dropped with an error instead of blocking the alert lane
// forever. Other failures keep the rest held.
func (bt *batcher) storeAlertsOneByOne() {
	var keep []*outpost.Batch
	for _, b := range bt.alertsHeld {
		for _, a := range b.Alerts {
			one := *b
			one.Alerts = []outpost.Alert{a}
			err := bt.out.Append([]*outpost.Batch{&one})
			switch {
			case err == nil:
				bt.batches.Add(1)
			case errors.Is(err, outpost.ErrMessageTooLarge):
				bt.lostAlerts.Add(1)
				bt.log.Error().Err(err).Str("rule", a.Rule).Msg("alert larger than uplink.max_message_bytes; dropped")
			default:
				bt.appendOK(err)
				keep = append(keep, &one)
			}
		}
	}
	bt.alertsHeld = keep
}

// cutValues returns m with every value cut to n bytes. m is shared (the
// dashboard keeps the alerts it observed), so a map with a value to cut is
// copied, not changed.
func cutValues(m map[string]string, n int) map[string]string {
	var out map[string]string
	for k, v := range m {
		if len(v) > n {
			if out == nil {
				out = maps.Clone(m)
			}
			out[k] = cut(v, n)
		}
	}
	if out == nil {
		return m
	}
	return out
}

// cut shortens s to at most n bytes, on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	i := max(n-len(mark), 0)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + mark
}
