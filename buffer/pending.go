package buffer

import (
	"bytes"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// maxPendingDeletes bounds the acked seqs held in memory: Delete commits
// them itself when there are more.
const maxPendingDeletes = 4096

// pendingDelete is an acked batch whose delete rides along with the next
// write transaction.
type pendingDelete struct {
	lane  Lane
	bytes int64
}

// deferDelete marks the stored seqs of keys deleted at once, for Read and
// Stats, and leaves their removal from the file to the next write
// transaction (Append's, usually): an ack then costs no fsync of its own.
// A crash before that loses the delete; the batch is resent and ingest
// deduplicates it. The caller holds wmu.
func (o *Outbox) deferDelete(keys []byte) (int, error) {
	var d delta
	d.next = o.next
	add := make(map[uint64]pendingDelete)
	err := o.view(func(tx *bolt.Tx) error {
		for i := 0; i < len(keys); i += keyLen {
			seq := binary.BigEndian.Uint64(keys[i:])
			if _, ok := o.pending[seq]; ok {
				continue
			}
			if _, ok := add[seq]; ok {
				continue
			}
			for _, lane := range evictOrder {
				if size, ok := entrySize(tx.Bucket(laneBuckets[lane]), seq); ok {
					add[seq] = pendingDelete{lane, size}
					d.batches[lane]--
					d.bytes[lane] -= size
					break
				}
			}
		}
		for l := range numLanes {
			d.oldest[l], _, _ = o.headCreated(tx.Bucket(laneBuckets[l]), Lane(l), add)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	o.pmu.Lock()
	for seq, p := range add {
		o.pending[seq] = p
	}
	o.pmu.Unlock()
	o.apply(&d, false)
	if len(o.pending) >= maxPendingDeletes {
		err = o.flushDeletes()
	}
	return len(add), err
}

// flushDeletes commits the pending deletes. The caller holds wmu.
func (o *Outbox) flushDeletes() error {
	if len(o.pending) == 0 {
		return nil
	}
	return o.write(func(tx *bolt.Tx, d *delta) error {
		lanes, err := laneBucketsOf(tx)
		if err != nil {
			return err
		}
		return o.finishTx(tx, lanes, d)
	})
}

// applyPending deletes the pending deletes from the file, at the start of
// a write transaction; their counts left Stats when Delete took them. It
// returns the page bytes they free. The caller holds wmu.
func (o *Outbox) applyPending(tx *bolt.Tx) (int64, error) {
	var freed int64
	for seq, p := range o.pending {
		b := tx.Bucket(laneBuckets[p.lane])
		if b == nil {
			return 0, &CorruptError{Lane: p.lane, Reason: "bucket missing"}
		}
		size, _, err := deleteEntry(b, seq)
		if err != nil {
			return 0, err
		}
		freed += pageCost(int(size), o.chunk)
	}
	return freed, nil
}

// entrySize returns the stored bytes of seq in b, if it is there.
func entrySize(b *bolt.Bucket, seq uint64) (int64, bool) {
	if b == nil {
		return 0, false
	}
	var first [keyLen]byte
	putKey(first[:0], seq)
	c := b.Cursor()
	k, v := c.Seek(first[:])
	if !bytes.Equal(k, first[:]) {
		return 0, false
	}
	size := int64(len(v))
	for k, v = c.Next(); len(k) == chunkKeyLen && bytes.HasPrefix(k, first[:]); k, v = c.Next() {
		size += int64(len(v))
	}
	return size, true
}
