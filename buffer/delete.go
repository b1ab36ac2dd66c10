package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
)

// Delete removes the given seqs from whichever lane holds them. Seqs not
// stored are ignored. It returns how many entries were deleted.
//
// They are gone for Read and Stats at once; in the file they are deleted
// by the next write transaction (the next Append's, usually), or by Close,
// or by Delete itself once 4096 wait: an ack costs no fsync of its own. A
// crash before that undoes the delete, and the batch is sent again, which
// ingest deduplicates. With Options.SyncDeletes each Delete commits at
// once, in one durable transaction (rarely several: see deleteRetrying).
func (o *Outbox) Delete(seqs []uint64) (int, error) {
	if err := o.writable(); err != nil {
		return 0, err
	}
	if len(seqs) == 0 {
		return 0, nil
	}
	o.wmu.Lock()
	defer o.wmu.Unlock()

	keys := o.keys[:0]
	for _, s := range seqs {
		keys = putKey(keys, s)
	}
	o.keys = keys
	var n int
	var err error
	if o.syncDel {
		n, err = o.deleteRetrying(keys)
	} else {
		n, err = o.deferDelete(keys)
	}
	if err != nil {
		return n, fmt.Errorf("buffer: delete: %w", err)
	}
	return n, nil
}

// deleteRetrying deletes keys in one transaction. A delete rewrites every
// leaf it touches, so one of seqs scattered over the file can need more
// pages than the hard limit leaves: it is then split in halves, each
// reusing the pages the one before freed, and a single key that still
// does not fit gets room evicted for it. The caller holds wmu.
func (o *Outbox) deleteRetrying(keys []byte) (int, error) {
	n, err := o.deleteTx(keys)
	if !isFull(err) {
		return n, err
	}
	if len(keys) > keyLen {
		half := len(keys) / keyLen / 2 * keyLen
		n1, err := o.deleteRetrying(keys[:half])
		if err != nil {
			return n1, err
		}
		n2, err := o.deleteRetrying(keys[half:])
		return n1 + n2, err
	}
	for try := 1; try <= roomTries && isFull(err); try++ {
		if rerr := o.write(o.roomTx(o.lim.fileCap / 32 << try)); rerr != nil && !errors.Is(rerr, errNothing) {
			return 0, rerr
		}
		n, err = o.deleteTx(keys)
	}
	return n, err
}

// deleteTx deletes keys (8 bytes each) from whichever lane holds them, in
// one durable transaction, and returns how many it deleted.
func (o *Outbox) deleteTx(keys []byte) (int, error) {
	deleted := 0
	err := o.write(func(tx *bolt.Tx, d *delta) error {
		lanes, err := laneBucketsOf(tx)
		if err != nil {
			return err
		}
		if deleted, err = deleteSeqs(lanes, keys, d); err != nil {
			return err
		}
		if deleted == 0 {
			return errNothing // roll back rather than pay an fsync for nothing
		}
		return o.finishTx(tx, lanes, d)
	})
	if errors.Is(err, errNothing) {
		return 0, nil
	}
	return deleted, err
}

// deleteSeqs deletes keys (8 bytes each) from whichever lane holds them,
// within tx, accounting in d, and returns how many it deleted.
func deleteSeqs(lanes [numLanes]*bolt.Bucket, keys []byte, d *delta) (int, error) {
	deleted := 0
	for i := 0; i < len(keys); i += keyLen {
		seq := binary.BigEndian.Uint64(keys[i:])
		for _, lane := range evictOrder {
			size, found, err := deleteEntry(lanes[lane], seq)
			if err != nil {
				return deleted, err
			}
			d.bytes[lane] -= size
			if found {
				d.batches[lane]--
				deleted++
				break
			}
		}
	}
	return deleted, nil
}

// DropCorrupt deletes the stored batch seq, which Read reported damaged (a
// *CorruptError), and stores a loss record for it in the same transaction:
// reason outpost.LossCorrupt, kind by lane; what it held is unknown, so
// Count, From and To are 0 and a telemetry batch's series is "*". A seq
// not stored is ignored; a batch that passes its CRC is refused.
func (o *Outbox) DropCorrupt(seq uint64) error {
	if err := o.writable(); err != nil {
		return err
	}
	o.wmu.Lock()
	defer o.wmu.Unlock()
	key := putKey(nil, seq)
	err := o.write(func(tx *bolt.Tx, d *delta) error {
		e, err := o.newEvictor(tx, d)
		if err != nil {
			return err
		}
		for _, lane := range evictOrder {
			c := e.lanes[lane].Cursor()
			k, v := c.Seek(key)
			if !bytes.HasPrefix(k, key) { // not stored, or deleted already
				continue
			}
			raw, buf, _, _ := readEntry(lane, c, k, v, o.buf[:0])
			o.buf = buf
			if _, err := checkEntry(lane, &raw); err == nil {
				return fmt.Errorf("seq %d passes its CRC: not dropped", seq)
			}
			if err := e.remove(lane, &raw, outpost.LossCorrupt); err != nil {
				return err
			}
			return e.finish()
		}
		return errNothing
	})
	if errors.Is(err, errNothing) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("buffer: drop corrupt: %w", err)
	}
	o.log.Error().Uint64(keySeq, seq).Msg("corrupt batch dropped; loss record stored")
	return nil
}
