package gateway

import (
	"context"
	"errors"
	"maps"
	"slices"
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

// journal is the outbox as the batcher keeps the readings of its open
// batch durable between seals, with batch.max_delay longer than the
// interval: as state, replaced every interval, and deleted in the
// transaction that stores the sealed batch.
type journal interface {
	PutState(key string, value []byte) error
	State(key string) ([]byte, error)
	AppendDeletingState(bs []*outpost.Batch, key string) error
}

// openKey is the outbox state key of the open batch's readings.
const openKey = "batcher.open"

// journalMax is the most readings a batch keeps open across a tick: the
// journal rewrites them all at every interval, so a batch that has this
// many is sealed, as at a rate max_delay is not for.
const journalMax = 16384

// batcher turns reading slices into columnar batches and stores them in the
// outbox, several sealed batches per durable transaction (group commit).
// Alerts are stored at once in batches of their own.
//
// A batch is sealed when it holds maxReadings, or at an interval tick;
// with maxDelay longer than the interval, a batch is sealed at the first
// tick after its first reading has waited maxDelay, and at the ticks
// before that its readings are written to the journal instead, so that
// a power cut loses no more than it would without maxDelay, while a
// low-rate gateway sends far fewer, larger batches.
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
	maxDelay    time.Duration // batch.max_delay; at most interval: seal at every tick
	// flush, when set, asks run to seal the open batch and store what is
	// sealed now (the buffer.flush command); run answers on the channel
	// it is given (buffered) with the readings it sealed.
	flush chan chan int

	// journal is out, when it can keep an open batch (the outbox does);
	// nil: no open batch is kept across ticks, nor recovered.
	journal journal

	openSince  time.Time      // when the open batch got its first reading
	journaledN int            // readings of the open batch in the journal, 0: none
	carrier    *outpost.Batch // the sealed batch holding the journaled readings, not yet stored
	jbuf       []byte

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
	bt.journal, _ = bt.out.(journal)
	bt.recoverOpen()
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
		case done := <-bt.flush:
			bt.beat.Busy()
			n := bt.b.Len()
			bt.seal()
			bt.commit()
			bt.settle()
			done <- n
		case <-tick.C:
			bt.beat.Busy()
			if !bt.keepOpen() {
				bt.seal()
			}
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
	if bt.b.Len() == 0 && len(rs) > 0 {
		bt.openSince = bt.now()
	}
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
	if bt.journaledN > 0 {
		bt.carrier, bt.journaledN = bt.pending[len(bt.pending)-1], 0
	}
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
			if b == bt.carrier {
				// Its readings are lost with it: the next journal write
				// replaces them, and batches may stay open again.
				bt.carrier = nil
			}
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
		var err error
		if carried := bt.carrier != nil && slices.Contains(bt.pending[:n], bt.carrier); carried {
			// Its readings leave the journal as the batch is stored.
			if err = bt.journal.AppendDeletingState(bt.pending[:n], openKey); err == nil {
				bt.carrier = nil
			}
		} else {
			err = bt.out.Append(bt.pending[:n])
		}
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

// keepOpen reports whether the open batch stays open at this tick, its
// readings written to the journal, rather than being sealed: with
// maxDelay longer than the interval, while its first reading has waited
// less than maxDelay, it holds fewer than journalMax readings, the wall
// clock needs no re-basing, and no earlier journaled readings wait to be
// stored (their batch clears the journal when it is). A failed journal
// write seals, as without maxDelay.
func (bt *batcher) keepOpen() bool {
	if bt.maxDelay <= bt.interval || bt.journal == nil || bt.carrier != nil || bt.b.Len() == 0 || bt.b.Len() >= journalMax ||
		bt.openHold || bt.clock != nil && !bt.clock.plain() || bt.now().Sub(bt.openSince) >= bt.maxDelay {
		return false
	}
	if bt.journaledN == bt.b.Len() {
		return true // nothing new since the last write
	}
	snap := bt.b.Snapshot(bt.gateway, bt.now().UnixNano())
	snap.Epoch, snap.Seq = 1, 1 // never sent: what a batch must have to decode
	p, err := snap.MarshalMsg(bt.jbuf[:0])
	if err == nil {
		bt.jbuf = p
		err = bt.journal.PutState(openKey, p)
	}
	if err != nil {
		bt.appendOK(err)
		return false
	}
	bt.journaledN = bt.b.Len()
	return true
}

// recoverOpen takes back the readings of an open batch that the last run
// journaled and never sealed (it was killed, or lost power): they open
// this run's first batch, which clears the journal when it is stored. A
// journal that does not decode is dropped, loudly.
func (bt *batcher) recoverOpen() {
	if bt.journal == nil {
		return
	}
	p, err := bt.journal.State(openKey)
	if err == nil && p == nil {
		return
	}
	var b *outpost.Batch
	if err == nil {
		b, err = outpost.DecodeBatch(p)
	}
	if err == nil && b.Kind != outpost.KindTelemetry {
		err = errors.New("not a telemetry batch")
	}
	if err != nil {
		bt.log.Error().Err(err).Int("bytes", len(p)).Msg("the open batch of the last run is unreadable; its readings are lost")
		if err := bt.journal.PutState(openKey, nil); err != nil {
			bt.log.Error().Err(err).Msg("dropping the unreadable open batch")
		}
		return
	}
	rs := b.AppendReadings(nil)
	if len(rs) == 0 {
		if err := bt.journal.PutState(openKey, nil); err != nil {
			bt.log.Error().Err(err).Msg("dropping the empty open batch")
		}
		return
	}
	bt.openSince = bt.now()
	bt.b.Add(rs)
	bt.journaledN = len(rs)
	bt.log.Info().Int("readings", len(rs)).Msg("the open batch of the last run is taken back")
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
