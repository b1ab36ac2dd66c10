package buffer

import (
	"errors"
	"fmt"
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
	errNothing = errors.New("nothing to commit") // rolls back an empty Delete
)

// delta is what one write transaction changes in the counters.
type delta struct {
	batches         [numLanes]int
	bytes           [numLanes]int64
	evicted         int64
	evictedReadings int64
}

// evict deletes the oldest batches, telemetry before alerts, while the caps
// are exceeded. d holds this transaction's changes so far.
func (o *Outbox) evict(lanes [numLanes]*bolt.Bucket, d *delta) error {
	for _, lane := range [...]Lane{LaneTelemetry, LaneAlert} {
		c := lanes[lane].Cursor()
		for k, v := c.First(); k != nil && o.overCap(d); k, v = c.First() {
			size, readings := int64(len(v)), o.readingsIn(lane, v)
			if err := c.Delete(); err != nil {
				return err
			}
			d.batches[lane]--
			d.bytes[lane] -= size
			d.evicted++
			d.evictedReadings += int64(readings)
		}
	}
	return nil
}

// overCap reports whether the stored batches plus d exceed a cap. The
// caller holds wmu, so it may read o.stats without mu.
func (o *Outbox) overCap(d *delta) bool {
	n, bytes := 0, int64(0)
	for l := range numLanes {
		n += o.stats.Batches[l] + d.batches[l]
		bytes += o.stats.Bytes[l] + d.bytes[l]
	}
	return n > o.maxBatches || bytes > o.maxBytes
}

// readingsIn counts the readings in a stored telemetry value, for the loss
// count. A value that does not decode counts as none.
func (o *Outbox) readingsIn(lane Lane, v []byte) int {
	if lane != LaneTelemetry || len(v) < crcLen {
		return 0
	}
	// UnmarshalMsg copies what it keeps, so scratch holds nothing of the
	// mmap, and it reuses scratch's slices.
	if _, err := o.scratch.UnmarshalMsg(v[crcLen:]); err != nil {
		return 0
	}
	return o.scratch.Len()
}

// apply publishes a committed transaction's changes. The caller holds wmu.
func (o *Outbox) apply(d *delta, next uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for l := range numLanes {
		o.stats.Batches[l] += d.batches[l]
		o.stats.Bytes[l] += d.bytes[l]
	}
	o.stats.NextSeq = next
	o.stats.Evicted += d.evicted
	o.stats.EvictedReadings += d.evictedReadings
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
		Msg("outbox full: evicting the oldest batches")
}

func (o *Outbox) update(fn func(*bolt.Tx) error) error {
	return o.guard(func() error { return closedErr(o.db.Update(fn)) })
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
	if b.Kind == outpost.KindAlert {
		return LaneAlert
	}
	return LaneTelemetry
}

func laneBucketsOf(tx *bolt.Tx) ([numLanes]*bolt.Bucket, error) {
	var bs [numLanes]*bolt.Bucket
	for l := range numLanes {
		if bs[l] = tx.Bucket(laneBuckets[l]); bs[l] == nil {
			return bs, &CorruptError{Lane: Lane(l), Reason: "bucket missing"}
		}
	}
	return bs, nil
}
