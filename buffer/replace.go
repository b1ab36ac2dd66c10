package buffer

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
)

// Replace deletes the stored batches drop and appends bs in one durable
// transaction, so that a crash leaves either the old batches or the new
// ones, never both and never neither. The new batches take new seqs (an
// old seq is never reused), and are encoded and split as Append does.
// The gateway uses it to re-base the timestamps of batches it stored
// while its clock was not trusted and has never sent: a batch that may
// have been sent must not be replaced, as ingest would then store its
// readings twice. Seqs in drop that are not stored are ignored; the caps
// apply as in Append. On error nothing changed and the Epoch and Seq
// written into bs mean nothing.
func (o *Outbox) Replace(drop []uint64, bs []*outpost.Batch) error {
	if err := o.writable(); err != nil {
		return err
	}
	if len(drop) == 0 && len(bs) == 0 {
		return nil
	}
	o.wmu.Lock()
	defer o.wmu.Unlock()
	if err := o.encode(bs); err != nil {
		return err
	}
	keys := make([]byte, 0, keyLen*len(drop))
	for _, seq := range drop {
		keys = putKey(keys, seq)
	}
	var need int64
	before := o.stats.Counters
	err := o.write(func(tx *bolt.Tx, d *delta) error {
		lanes, err := laneBucketsOf(tx)
		if err != nil {
			return err
		}
		if _, err := deleteSeqs(lanes, keys, d); err != nil {
			return err
		}
		// Forced: the pages the deletes free are reusable only from the
		// next transaction on, so the room check would refuse a batch
		// that merely takes the place of the one it replaces.
		return o.appendTx(true, &need)(tx, d)
	})
	if cap(o.enc) > maxKeptArena {
		o.enc = nil
	}
	if err != nil {
		return fmt.Errorf("buffer: replace: %w", err)
	}
	if o.stats.Counters != before {
		o.warnEvicted()
	}
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return nil
}

// NewestCreated returns the largest Created time (unix ns) of the newest
// batch of each lane, or 0 when the outbox is empty or those batches are
// damaged. The gateway takes it as a floor for its wall clock at start:
// a clock before the newest stored batch has gone back.
func (o *Outbox) NewestCreated() (int64, error) {
	if o.closed.Load() {
		return 0, errClosed
	}
	var newest int64
	err := o.view(func(tx *bolt.Tx) error {
		for l := range numLanes {
			b := tx.Bucket(laneBuckets[l])
			if b == nil {
				return &CorruptError{Lane: Lane(l), Reason: "bucket missing"}
			}
			c := b.Cursor()
			k, _ := c.Last()
			if len(k) < keyLen {
				continue
			}
			k, v := c.Seek(k[:keyLen:keyLen])
			raw, _, _, _ := readEntry(Lane(l), c, k, v, nil)
			data, err := checkEntry(Lane(l), &raw)
			if err != nil {
				continue // damaged: the next Read reports it
			}
			if _, created, ok := batchHead(data); ok {
				newest = max(newest, created)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return 0, fmt.Errorf("buffer: newest: %w", err)
	}
	return newest, nil
}
