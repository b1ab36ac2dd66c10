package gateway

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
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
	out         appender
	maxReadings int
	interval    time.Duration
	maxPending  int // sealed batches held while the outbox fails, beyond which the oldest are dropped
	log         zerolog.Logger
	now         func() time.Time

	b       *outpost.BatchBuilder
	pending []*outpost.Batch

	stored   atomic.Int64 // readings committed to the outbox
	batches  atomic.Int64 // batches committed
	lost     atomic.Int64 // readings dropped because the outbox kept failing
	failures int
}

// groupMax is how many sealed batches one transaction takes at most.
const groupMax = 32

func (bt *batcher) run(ctx context.Context) {
	bt.b = outpost.NewBatchBuilder()
	tick := time.NewTicker(bt.interval)
	defer tick.Stop()
	in, alerts := bt.in, bt.alerts
	for in != nil || alerts != nil {
		select {
		case rs, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			bt.add(rs)
			// Commit when the queue is momentarily empty or enough is sealed:
			// under load this groups many batches into one fsync.
			if len(bt.pending) >= groupMax || (len(bt.pending) > 0 && len(in) == 0) {
				bt.commit()
			}
		case as, ok := <-alerts:
			if !ok {
				alerts = nil
				continue
			}
			bt.commitAlerts(as)
		case <-tick.C:
			bt.seal()
			bt.commit()
		}
	}
	// Inputs closed: store what is left.
	bt.seal()
	bt.commit()
	if len(bt.pending) > 0 {
		bt.log.Error().Int("batches", len(bt.pending)).Msg("outbox failed at shutdown; unflushed batches lost")
	}
}

// add appends rs, sealing a batch each time one reaches maxReadings.
func (bt *batcher) add(rs []outpost.Reading) {
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
	if over := len(bt.pending) - bt.maxPending; over > 0 {
		for _, b := range bt.pending[:over] {
			bt.lost.Add(int64(b.Len()))
		}
		bt.pending = append(bt.pending[:0], bt.pending[over:]...)
		bt.log.Error().Int("batches", over).Msg("outbox unavailable too long; oldest unflushed batches dropped")
	}
}

func (bt *batcher) commit() {
	for len(bt.pending) > 0 {
		n := min(len(bt.pending), groupMax)
		if err := bt.out.Append(bt.pending[:n]); err != nil {
			bt.failures++
			if bt.failures == 1 || bt.failures%100 == 0 {
				bt.log.Error().Err(err).Int("failures", bt.failures).Msg("outbox append failed; keeping batches in memory")
			}
			return
		}
		bt.failures = 0
		for _, b := range bt.pending[:n] {
			bt.stored.Add(int64(b.Len()))
		}
		bt.batches.Add(int64(n))
		clear(bt.pending[:n])
		bt.pending = append(bt.pending[:0], bt.pending[n:]...)
	}
}

// commitAlerts stores alerts at once, ahead of any telemetry backlog.
func (bt *batcher) commitAlerts(as []outpost.Alert) {
	b := &outpost.Batch{
		Version: outpost.WireVersion,
		Kind:    outpost.KindAlert,
		Gateway: bt.gateway,
		Created: bt.now().UnixNano(),
		Alerts:  as,
	}
	// Alerts are rare and precious: retry a few times before giving up.
	for attempt := 1; ; attempt++ {
		err := bt.out.Append([]*outpost.Batch{b})
		if err == nil {
			bt.batches.Add(1)
			return
		}
		if attempt == 3 {
			bt.lost.Add(int64(len(as)))
			bt.log.Error().Err(err).Int("alerts", len(as)).Msg("outbox append of alerts failed; alerts lost")
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
