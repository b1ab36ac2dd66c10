package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/outposthq/outpost"
)

// roomTries bounds the evict-and-retry rounds of one Append at the file's
// hard limit; each evicts twice as much as the one before.
const roomTries = 3

// errNoRoom rolls back an append transaction whose new pages would not fit
// under the file's hard limit.
var errNoRoom = errors.New("no room under the file size limit")

// defaultEncoder is used when Options.Encoder is nil.
var defaultEncoder = func() *outpost.Encoder {
	e, err := outpost.NewEncoder(nil)
	if err != nil {
		panic(err) // nil options cannot fail
	}
	return e
}()

// encode stamps and encodes bs into o.enc (values), o.keys (the keys of
// their chunks), o.ends (end offsets in both) and o.lanes: bbolt keeps
// references to keys and values until commit, so each gets its own
// bytes. A batch the encoder splits becomes several values with
// consecutive seqs. The caller holds wmu.
func (o *Outbox) encode(bs []*outpost.Batch) error {
	enc, keys, ends, lanes := o.enc[:0], o.keys[:0], o.ends[:0], o.lanes[:0]
	seq := o.next
	for i, b := range bs {
		if b == nil {
			return fmt.Errorf("buffer: append: batch %d is nil", i)
		}
		b.Epoch, b.Seq = o.epoch, seq
		start := len(enc)
		var err error
		if enc, o.msgEnds, err = o.encoder.AppendParts(enc, b, crcLen, o.msgEnds[:0]); err != nil {
			return fmt.Errorf("buffer: append: encode batch %d: %w", i, err)
		}
		for _, end := range o.msgEnds {
			binary.BigEndian.PutUint32(enc[start:], crc32.Checksum(enc[start+crcLen:end], castagnoli))
			keys = appendKeys(keys, seq, end-start, o.chunk)
			ends = append(ends, end, len(keys))
			lanes = append(lanes, laneOf(b))
			start = end
			seq++
		}
		if o.gateway == "" {
			o.gateway = b.Gateway
		}
	}
	o.enc, o.keys, o.ends, o.lanes = enc, keys, ends, lanes
	return nil
}

// appendRetrying runs the append transaction, pre (if set) first in it.
// When the file is at its hard limit (the estimate says the new pages
// will not fit, or bbolt refused to grow the file) it commits an eviction
// first, because the pages a transaction frees are reusable only from the
// next one, and tries again, evicting more each round. The caller holds
// wmu.
func (o *Outbox) appendRetrying(bs []*outpost.Batch, pre func(*bolt.Tx) error) error {
	var need int64
	err := o.write(withPre(pre, o.appendTx(false, &need)))
	for try := 1; try <= roomTries && isFull(err); try++ {
		o.log.Warn().Err(err).Int64(keyFileBytes, o.Stats().FileBytes).
			Msg("outbox file at its size limit: evicting in a transaction of its own")
		next := o.next
		if rerr := o.write(o.roomTx(need << try)); rerr != nil && !errors.Is(rerr, errNothing) {
			return rerr
		}
		if o.next != next {
			// The eviction stored loss batches under the seqs bs were
			// encoded with: encode them again with the next ones.
			if err := o.encode(bs); err != nil {
				return err
			}
		}
		err = o.write(withPre(pre, o.appendTx(try == roomTries, &need)))
	}
	return err
}

// withPre runs pre, if set, before fn in fn's transaction.
func withPre(pre func(*bolt.Tx) error, fn func(*bolt.Tx, *delta) error) func(*bolt.Tx, *delta) error {
	if pre == nil {
		return fn
	}
	return func(tx *bolt.Tx, d *delta) error {
		if err := pre(tx); err != nil {
			return err
		}
		return fn(tx, d)
	}
}

func isFull(err error) bool {
	return errors.Is(err, errNoRoom) || errors.Is(err, berrors.ErrMaxSizeReached)
}

// appendTx stores the encoded batches (o.enc), then applies the caps.
// Unless force is set, it gives up with errNoRoom when its new pages would
// not fit under the hard limit and older batches could make room. need
// receives its estimate of the pages it needs.
func (o *Outbox) appendTx(force bool, need *int64) func(*bolt.Tx, *delta) error {
	return func(tx *bolt.Tx, d *delta) error {
		e, err := o.newEvictor(tx, d)
		if err != nil {
			return err
		}
		var txCost int64
		start := 0
		for i := 0; i < len(o.ends); i += 2 {
			txCost += pageCost(o.ends[i]-start, o.chunk)
			start = o.ends[i]
		}
		*need = txCost + txPages*o.page
		if !force && e.used+*need > o.lim.hardRoom(o.page) && o.stats.Batches != [numLanes]int{} {
			return errNoRoom
		}
		start, kstart := 0, 0
		for i, lane := range o.lanes {
			end, kend := o.ends[2*i], o.ends[2*i+1]
			if err := putEntry(e.lanes[lane], o.keys[kstart:kend], o.enc[start:end], o.chunk); err != nil {
				return err
			}
			d.batches[lane]++
			d.bytes[lane] += int64(end - start)
			start, kstart = end, kend
		}
		d.next = o.next + uint64(len(o.lanes))
		e.used += txCost
		e.high, e.low = o.lim.target(txCost, o.page)
		if err := e.expire(); err != nil {
			return err
		}
		if err := e.squeeze(); err != nil {
			return err
		}
		return e.finish()
	}
}

// roomTx evicts until need page bytes are free under the hard limit, and
// applies the caps. It rolls back with errNothing if nothing was evicted.
func (o *Outbox) roomTx(need int64) func(*bolt.Tx, *delta) error {
	return func(tx *bolt.Tx, d *delta) error {
		e, err := o.newEvictor(tx, d)
		if err != nil {
			return err
		}
		// Free need bytes at least, even if the count says there is room:
		// readers may hold freed pages.
		limit := min(o.lim.hardRoom(o.page), e.used) - need
		e.high, e.low = min(e.high, limit), min(e.low, limit)
		return e.run()
	}
}

// maintainTx applies the caps to the stored batches alone (at Open). It
// rolls back with errNothing if nothing was evicted.
func (o *Outbox) maintainTx(tx *bolt.Tx, d *delta) error {
	e, err := o.newEvictor(tx, d)
	if err != nil {
		return err
	}
	return e.run()
}

// run expires, squeezes and, if anything was evicted, finishes.
func (e *evictor) run() error {
	if err := e.expire(); err != nil {
		return err
	}
	if err := e.squeeze(); err != nil {
		return err
	}
	if !e.changed() {
		return errNothing
	}
	return e.finish()
}
