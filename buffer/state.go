package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// MaxStateKey is the longest key PutState accepts.
const MaxStateKey = 64

// PutState stores value under key in the file's state bucket, apart from
// the lanes, in one durable transaction (which, like every write, also
// commits the deletes waiting). It is for small state the gateway keeps
// across restarts (the rule engine's): nothing reads, sends, counts or
// evicts it, and Open and compaction keep it. A nil value deletes the
// key. A key is 1 to MaxStateKey bytes without a NUL byte.
//
// The value's pages count towards the file's caps: when the file is at
// its hard size limit, PutState evicts batches to make room, as Append
// does.
func (o *Outbox) PutState(key string, value []byte) error {
	if err := o.writable(); err != nil {
		return err
	}
	if err := checkStateKey(key); err != nil {
		return err
	}
	var val []byte
	if value != nil {
		val = make([]byte, crcLen, crcLen+len(value))
		binary.BigEndian.PutUint32(val, crc32.Checksum(value, castagnoli))
		val = append(val, value...)
	}
	o.wmu.Lock()
	defer o.wmu.Unlock()
	err := o.write(o.putStateTx(key, val))
	for try := 1; try <= roomTries && isFull(err); try++ {
		need := int64(len(val)) + o.page*(2+int64(chunks(len(val), o.chunk)))
		if rerr := o.write(o.roomTx(need << try)); rerr != nil && !errors.Is(rerr, errNothing) {
			return fmt.Errorf("buffer: put state %q: %w", key, rerr)
		}
		err = o.write(o.putStateTx(key, val))
	}
	if err != nil {
		return fmt.Errorf("buffer: put state %q: %w", key, err)
	}
	return nil
}

// State returns the value PutState stored under key, or nil if there is
// none. The value is a copy owned by the caller. A value that fails its
// CRC returns an error wrapping ErrCorrupt. It works read-only too.
func (o *Outbox) State(key string) ([]byte, error) {
	if o.closed.Load() {
		return nil, errClosed
	}
	if err := checkStateKey(key); err != nil {
		return nil, err
	}
	var out []byte
	err := o.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState)
		if b == nil {
			return nil // no state was ever stored
		}
		var err error
		out, err = getState(b, key)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("buffer: state %q: %w", key, err)
	}
	return out, nil
}

// putStateTx replaces key's chunks by those of val (CRC and value; nil:
// none).
func (o *Outbox) putStateTx(key string, val []byte) func(*bolt.Tx, *delta) error {
	return func(tx *bolt.Tx, d *delta) error {
		b, err := tx.CreateBucketIfNotExists(bucketState)
		if err != nil {
			return err
		}
		if err := deleteState(b, key); err != nil {
			return err
		}
		for i := 0; i < chunks(len(val), o.chunk) && val != nil; i++ {
			part := val[i*o.chunk : min(len(val), (i+1)*o.chunk)]
			if err := b.Put(stateKey(key, i), part); err != nil {
				return err
			}
		}
		lanes, err := laneBucketsOf(tx)
		if err != nil {
			return err
		}
		return o.finishTx(tx, lanes, d)
	}
}

// stateKey is the key of chunk i of a state value: the key itself for the
// first, then the key, a NUL and the 4-byte big-endian index. Keys hold no
// NUL, so a value's chunks follow its first key, before any other key.
func stateKey(key string, i int) []byte {
	k := []byte(key)
	if i == 0 {
		return k
	}
	return binary.BigEndian.AppendUint32(append(k, 0), uint32(i))
}

// getState assembles and checks key's value.
func getState(b *bolt.Bucket, key string) ([]byte, error) {
	c := b.Cursor()
	first := []byte(key)
	k, v := c.Seek(first)
	if !bytes.Equal(k, first) {
		return nil, nil
	}
	val := bytes.Clone(v)
	prefix := append(bytes.Clone(first), 0)
	for i := 1; ; i++ {
		k, v = c.Next()
		if !bytes.HasPrefix(k, prefix) {
			break
		}
		if !bytes.Equal(k, stateKey(key, i)) {
			return nil, fmt.Errorf("%w: state %q: chunks out of order", ErrCorrupt, key)
		}
		val = append(val, v...)
	}
	if len(val) < crcLen || binary.BigEndian.Uint32(val) != crc32.Checksum(val[crcLen:], castagnoli) {
		return nil, fmt.Errorf("%w: state %q: CRC mismatch", ErrCorrupt, key)
	}
	return val[crcLen:], nil
}

// deleteState deletes every chunk of key.
func deleteState(b *bolt.Bucket, key string) error {
	first := []byte(key)
	prefix := append(bytes.Clone(first), 0)
	c := b.Cursor()
	for k, _ := c.Seek(first); k != nil && (bytes.Equal(k, first) || bytes.HasPrefix(k, prefix)); k, _ = c.Seek(first) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

func checkStateKey(key string) error {
	if len(key) == 0 || len(key) > MaxStateKey || bytes.IndexByte([]byte(key), 0) >= 0 {
		return fmt.Errorf("buffer: state key %q: want 1 to %d bytes, no NUL", key, MaxStateKey)
	}
	return nil
}
