package gateway

import (
	"errors"
	"math"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
)

// rebaseStore is what the batcher needs from the outbox to re-base held
// batches.
type rebaseStore interface {
	Read(lane buffer.Lane, after uint64, max int, dst []buffer.Entry) ([]buffer.Entry, error)
	Replace(drop []uint64, bs []*outpost.Batch) error
	DropCorrupt(seq uint64) error
	Stats() buffer.Stats
	PutState(key string, value []byte) error
	State(key string) ([]byte, error)
}

// ClockStats is the gateway's view of its wall clock (docs/clock.md).
type ClockStats struct {
	Trusted bool  // the wall clock is trusted
	Steps   int64 // steps of the wall clock seen since start
	// HeldRanges are the runs of telemetry batches held back from the
	// uplink until the clock is trusted and they are re-based.
	HeldRanges int64
	// RebasedBatches and RebasedReadings count the held batches (and the
	// readings in them) whose timestamps were corrected and stored anew.
	RebasedBatches  int64
	RebasedReadings int64
	// Uncorrected counts held batches sent with their times as stored:
	// they could not be decoded or shifted (logged).
	Uncorrected int64
}

// armClock restores the held runs of an earlier run in this boot and
// gives the clock its floor from the outbox just opened: a wall clock
// before the newest stored batch has gone back.
func (g *Gateway) armClock() {
	st, err := g.outbox.State(clockStateKey)
	if err == nil {
		err = g.clock.restore(st)
	}
	if err != nil {
		g.log.Warn().Err(err).Msg("the held telemetry of the last run is sent with its times as stored")
	}
	newest, err := g.outbox.NewestCreated()
	if err != nil {
		g.log.Warn().Err(err).Msg("reading the newest stored batch for the clock's floor")
	}
	saved, err := loadFloor(g.outbox)
	if err != nil {
		g.log.Warn().Err(err).Msg("the clock's floor of the last run is ignored")
	}
	g.clock.arm(max(newest, saved))
}

// settle re-bases what it can and stores the clock's held runs: after
// every commit and tick of the batcher.
func (bt *batcher) settle() {
	bt.rebase()
	bt.persistClock()
	bt.saveFloor(false)
}

func (g *Gateway) clockStats() ClockStats {
	return ClockStats{
		Trusted:         g.clock.isTrusted(),
		Steps:           g.clock.steps.Load(),
		HeldRanges:      g.clock.held.Load(),
		RebasedBatches:  g.batcher.rebasedBatches.Load(),
		RebasedReadings: g.batcher.rebasedReadings.Load(),
		Uncorrected:     g.batcher.uncorrected.Load(),
	}
}

// addClassified adds one poll's readings (stamped under one clock
// offset) to the open batch, sealing it first if they belong to another
// clock segment or differ in being held.
func (bt *batcher) addClassified(rs []outpost.Reading) {
	seg, hold := bt.clock.classify(rs[len(rs)-1].TS)
	if bt.b.Len() > 0 && (seg != bt.openSeg || hold != bt.openHold) {
		bt.seal()
	}
	bt.openSeg, bt.openHold = seg, hold
	bt.addPlain(rs)
}

// guardHeld holds every seq the append of bs may take, if one of bs is
// to be held, until noteHeld has named the held ones; it reports whether
// it did.
func (bt *batcher) guardHeld(bs []*outpost.Batch) bool {
	if len(bt.segOf) == 0 || bt.ob == nil {
		return false
	}
	for _, b := range bs {
		if _, ok := bt.segOf[b]; ok {
			bt.clock.holdAppend(max(bt.ob.Stats().NextSeq, 1))
			return true
		}
	}
	return false
}

// noteHeld tells the clock which seqs the held batches of bs, just
// stored, took: a batch split when stored took several, up to the next
// batch's first (or the outbox's next seq).
func (bt *batcher) noteHeld(bs []*outpost.Batch) {
	if len(bt.segOf) == 0 {
		bt.lastHeldSeg = -1
		return
	}
	for i, b := range bs {
		seg, ok := bt.segOf[b]
		if !ok {
			bt.lastHeldSeg = -1 // telemetry not held comes between
			continue
		}
		delete(bt.segOf, b)
		follows := bt.lastHeldSeg == seg
		bt.lastHeldSeg = seg
		end := b.Seq + 1
		if i+1 < len(bs) {
			end = bs[i+1].Seq
		} else if bt.ob != nil {
			end = max(end, bt.ob.Stats().NextSeq)
		}
		bt.clock.hold(b.Seq, end, seg, follows)
	}
}

// rebase re-bases up to groupMax held batches once the clock is trusted:
// it decodes them, adds their segment's correction to every timestamp
// and to the created time, and stores them anew in place of the old ones
// (buffer.Outbox.Replace, one transaction). The old ones were never sent,
// so ingest never sees both. Called from the batcher's goroutine, the
// outbox's one writer of telemetry.
// It reports whether it did anything.
func (bt *batcher) rebase() bool {
	if bt.clock == nil || bt.ob == nil || !bt.clock.isTrusted() {
		return false
	}
	r, ok := bt.clock.oldestHeld()
	if !ok {
		return false
	}
	// Stored anew even when delta is 0 (trusted in the segment they were
	// taken in): the uplink has skipped their seqs, so they go out under
	// new ones.
	delta, _ := bt.clock.delta(r.seg)
	es, err := bt.ob.Read(buffer.LaneTelemetry, r.first-1, groupMax, bt.rebaseBuf[:0])
	bt.rebaseBuf = es[:0]
	var ce *buffer.CorruptError
	if err != nil && !(errors.As(err, &ce) && ce.Seq != 0) {
		bt.rebaseFailed(err)
		return false
	}
	var drop []uint64
	var bs []*outpost.Batch
	done := r.end // how far the range is dealt with after this round
	for _, e := range es {
		if e.Seq >= r.end {
			break
		}
		b, err := outpost.DecodeBatch(e.Data)
		if err == nil {
			err = shiftBatch(b, delta)
		}
		if err != nil {
			bt.uncorrected.Add(1)
			bt.log.Error().Err(err).Uint64("seq", e.Seq).Msg("held batch cannot be re-based: sent with its times as stored")
			continue
		}
		drop = append(drop, e.Seq)
		bs = append(bs, b)
	}
	switch {
	case ce != nil && ce.Seq < r.end:
		// Damaged while held: dropped with a loss record, as the uplink
		// would. Read stopped there; the rest comes next round.
		if err := bt.ob.DropCorrupt(ce.Seq); err != nil {
			bt.rebaseFailed(err)
			return false
		}
		done = ce.Seq + 1
	case len(es) == groupMax && es[len(es)-1].Seq < r.end:
		done = es[len(es)-1].Seq + 1
	}
	if len(bs) > 0 {
		if err := bt.ob.Replace(drop, bs); err != nil {
			bt.rebaseFailed(err)
			return false
		}
		n := 0
		for _, b := range bs {
			n += b.Len()
		}
		bt.rebasedBatches.Add(int64(len(bs)))
		bt.rebasedReadings.Add(int64(n))
		bt.lastHeldSeg = -1 // the re-based batches are telemetry not held
	}
	bt.rebaseFails = 0
	bt.clock.release(done)
	if _, more := bt.clock.oldestHeld(); !more {
		bt.log.Info().Int64("batches", bt.rebasedBatches.Load()).Int64("readings", bt.rebasedReadings.Load()).
			Dur("correction", time.Duration(delta)).Msg("held telemetry re-based and released to the uplink")
	}
	return true
}

// rebaseFailed logs a failed re-base round (the first, then every 100th);
// the batches stay held for the next round.
func (bt *batcher) rebaseFailed(err error) {
	bt.rebaseFails++
	if bt.rebaseFails == 1 || bt.rebaseFails%100 == 0 {
		bt.log.Error().Err(err).Int("failures", bt.rebaseFails).Msg("re-basing held telemetry failed; will retry")
	}
}

// shiftBatch adds delta ns to the created time and every timestamp of a
// telemetry batch: TS[0] of each series is absolute, the rest deltas.
func shiftBatch(b *outpost.Batch, delta int64) error {
	if b.Kind != outpost.KindTelemetry {
		return errors.New("gateway: rebase: not a telemetry batch")
	}
	var ok bool
	if b.Created, ok = addNs(b.Created, delta); !ok {
		return errors.New("gateway: rebase: created time out of range")
	}
	for i := range b.Series {
		s := &b.Series[i]
		if len(s.TS) == 0 {
			continue
		}
		if s.TS[0], ok = addNs(s.TS[0], delta); !ok {
			return errors.New("gateway: rebase: timestamp out of range")
		}
	}
	// Every later timestamp moves too: the whole series must stay in
	// range, which Validate checks with the rest of the wire contract.
	return b.Validate()
}

func addNs(a, b int64) (int64, bool) {
	if b > 0 && a > math.MaxInt64-b || b < 0 && a < math.MinInt64-b {
		return 0, false
	}
	return a + b, true
}
