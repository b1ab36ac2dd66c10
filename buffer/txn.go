package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
)

// Log keys.
const (
	keyComponent       = "component"
	keyPath            = "path"
	keyMovedTo         = "moved_to"
	keyReason          = "reason"
	keyEpoch           = "epoch"
	keyNextSeq         = "next_seq"
	keyCreated         = "created"
	keyBatches         = "batches"
	keyBytes           = "bytes"
	keyEvicted         = "evicted"
	keyEvictedReadings = "evicted_readings"
	keyEvictedAlerts   = "evicted_alerts"
	keyLossRecords     = "loss_batches"
	keyCorrupt         = "corrupt"
	keyFileBytes       = "file_bytes"
	keySeq             = "seq"
	keyCompactedFrom   = "compacted_from"
	keyPanic           = "panic"
	keyDropped         = "dropped"
	keyLane            = "lane"
	keyFixedNextSeq    = "fixed_next_seq"
)

const (
	maxKeptArena   = 16 << 20    // largest encoding arena kept between Appends
	evictWarnEvery = time.Minute // at most one eviction warning per interval
)

var (
	errClosed  = fmt.Errorf("buffer: %w", outpost.ErrClosed)
	errNothing = errors.New("nothing to commit") // rolls back a write with nothing to do
)

// delta is what one write transaction changes in the counters.
type delta struct {
	batches [numLanes]int
	bytes   [numLanes]int64
	oldest  [numLanes]int64 // Created of each lane's oldest batch after the transaction
	next    uint64          // the next seq after the transaction
	counts  Counters
	freed   int64 // page bytes of the pending deletes the transaction applied
}

// write runs fn in a write transaction and publishes its changes to the
// counters after the commit. The caller holds wmu.
func (o *Outbox) write(fn func(tx *bolt.Tx, d *delta) error) error {
	var d delta
	err := o.update(func(tx *bolt.Tx) error {
		d = delta{next: o.next}
		var err error
		if d.freed, err = o.applyPending(tx); err != nil {
			return err
		}
		return fn(tx, &d)
	})
	if err != nil {
		// A rolled-back seq may be stored again with other bytes.
		o.heads = [numLanes]head{}
		return err
	}
	o.apply(&d, true)
	return nil
}

// finishTx ends every write transaction: it stores the next seq and the
// persisted counters if they changed, and notes each lane's oldest batch.
func (o *Outbox) finishTx(tx *bolt.Tx, lanes [numLanes]*bolt.Bucket, d *delta) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return fmt.Errorf("%w: meta bucket missing", ErrCorrupt)
	}
	if d.next != o.next {
		if err := meta.Put(metaNextSeq, putKey(nil, d.next)); err != nil {
			return err
		}
	}
	if d.counts != (Counters{}) {
		sum := o.stats.Persisted
		sum.add(&d.counts)
		for i, p := range sum.fields() {
			if err := meta.Put(metaCounters[i], putKey(nil, uint64(*p))); err != nil {
				return err
			}
		}
	}
	for l := range numLanes {
		d.oldest[l], _, _ = o.headCreated(lanes[l], Lane(l), nil)
	}
	return nil
}

// apply publishes a committed transaction's changes, or those of deletes
// deferred (not committed), to the counters. The caller holds wmu.
func (o *Outbox) apply(d *delta, committed bool) {
	o.next = d.next
	size, err := o.stats.FileBytes, error(nil)
	if committed {
		size, err = fileSize(o.path)
		if len(o.pending) > 0 { // applied by the transaction
			o.pmu.Lock()
			clear(o.pending)
			o.pmu.Unlock()
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for l := range numLanes {
		o.stats.Batches[l] += d.batches[l]
		o.stats.Bytes[l] += d.bytes[l]
	}
	o.stats.OldestCreated = d.oldest
	o.stats.NextSeq = d.next
	o.stats.Counters.add(&d.counts)
	o.stats.Persisted.add(&d.counts)
	if err == nil {
		o.stats.FileBytes = size
	}
}

// head remembers the Created time of a lane's oldest entry, which each
// write transaction asks for.
type head struct {
	seq     uint64
	created int64
	ok      bool
}

// headCreated returns the Created time of a lane's oldest entry, past
// those pending delete or in skip: ok is false if the entry is damaged,
// found if the lane holds any. The caller holds wmu (or is Open).
func (o *Outbox) headCreated(b *bolt.Bucket, l Lane, skip map[uint64]pendingDelete) (created int64, ok, found bool) {
	c := b.Cursor()
	k, v := c.First()
	for len(o.pending)+len(skip) > 0 && len(k) >= keyLen {
		seq := binary.BigEndian.Uint64(k)
		_, p := o.pending[seq]
		_, s := skip[seq]
		if !p && !s || seq == math.MaxUint64 {
			break
		}
		k, v = c.Seek(putKey(nil, seq+1))
	}
	if k == nil {
		return 0, false, false
	}
	if h := o.heads[l]; len(k) == keyLen && h.seq == binary.BigEndian.Uint64(k) && h.seq != 0 {
		return h.created, h.ok, true
	}
	raw, buf, _, _ := readEntry(l, c, k, v, o.buf[:0])
	o.buf = buf
	h := head{seq: raw.seq}
	if data, err := checkEntry(l, &raw); err == nil {
		_, h.created, h.ok = batchHead(data)
	}
	if len(k) == keyLen {
		o.heads[l] = h
	}
	return h.created, h.ok, true
}

// gatewayFor returns the gateway id for a loss batch that no evicted batch
// names: Options.Gateway, the last appended, or a stored batch's. (It
// walks forward: bbolt's Cursor.Last can loop forever in a write
// transaction whose deletes left a bucket's leaves empty.)
func (o *Outbox) gatewayFor(tx *bolt.Tx) string {
	if o.gateway != "" {
		return o.gateway
	}
	for l, name := range laneBuckets {
		b := tx.Bucket(name)
		if b == nil {
			continue
		}
		c := b.Cursor()
		k, v := c.First()
		for range 16 {
			if k == nil {
				break
			}
			var raw rawEntry
			raw, o.buf, k, v = readEntry(Lane(l), c, k, v, o.buf[:0])
			if data, err := checkEntry(Lane(l), &raw); err == nil {
				if _, err := o.scratch.UnmarshalMsg(data); err == nil && o.scratch.Gateway != "" {
					o.gateway = o.scratch.Gateway
					return o.gateway
				}
			}
		}
	}
	return "unknown"
}

// warnEvicted logs that the caps are evicting data, at most once per
// evictWarnEvery. The caller holds wmu.
func (o *Outbox) warnEvicted() {
	now := o.now()
	if now.Sub(o.lastEvictW) < evictWarnEvery {
		return
	}
	o.lastEvictW = now
	st := o.Stats()
	o.log.Warn().Int64(keyEvicted, st.Evicted).Int64(keyEvictedReadings, st.EvictedReadings).
		Int64(keyEvictedAlerts, st.EvictedAlerts).Int64(keyLossRecords, st.LossRecords).
		Msg("outbox full: evicting the oldest batches; loss records sent upstream")
}

func (o *Outbox) update(fn func(*bolt.Tx) error) error {
	if o.onCommit != nil {
		fn = o.timed(fn)
	}
	return o.guard(func() error { return closedErr(o.db.Update(fn)) })
}

// timed makes fn report its commit's duration to Options.OnCommit: the
// clock starts when fn's work is done, and the report comes from bbolt's
// OnCommit hook, which runs only after a commit that succeeded.
func (o *Outbox) timed(fn func(*bolt.Tx) error) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		start := time.Now()
		tx.OnCommit(func() { o.onCommit(time.Since(start)) })
		return nil
	}
}

func (o *Outbox) view(fn func(*bolt.Tx) error) error {
	return o.guard(func() error { return closedErr(o.db.View(fn)) })
}

// guard turns a bbolt panic or a memory fault on a damaged page into an
// error wrapping ErrCorrupt: a bad file must not crash the gateway. bbolt's
// Update and View roll the transaction back as the panic unwinds.
func (o *Outbox) guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			o.log.Error().Str(keyPath, o.path).Str(keyPanic, fmt.Sprint(r)).
				Msg("bbolt panicked: the outbox file is damaged")
			err = fmt.Errorf("%w: bbolt panicked: %v", ErrCorrupt, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return fn()
}

// closedErr maps bbolt's error for a closed database, which a call racing
// Close can see, to outpost.ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return outpost.ErrClosed
	}
	return err
}

func laneOf(b *outpost.Batch) Lane {
	if b.Kind == outpost.KindAlert || b.Kind == outpost.KindLoss {
		return LaneAlert
	}
	return LaneTelemetry
}

// laneBucketsOf returns the lane buckets of a write transaction. Keys are
// appended in order, so leaves are filled whole rather than half: the file
// holds close to twice as much small data.
func laneBucketsOf(tx *bolt.Tx) ([numLanes]*bolt.Bucket, error) {
	var bs [numLanes]*bolt.Bucket
	for l := range numLanes {
		if bs[l] = tx.Bucket(laneBuckets[l]); bs[l] == nil {
			return bs, &CorruptError{Lane: Lane(l), Reason: "bucket missing"}
		}
		bs[l].FillPercent = 1
	}
	return bs, nil
}
