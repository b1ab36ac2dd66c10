// Package buffer is the gateway's outbox: a store-and-forward buffer of
// encoded batches in one bbolt file, so readings survive uplink outages and
// restarts. The batcher appends, the uplink reads, sends and deletes on ack.
package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
)

// Lane is a class of batches, stored and evicted separately.
type Lane uint8

const (
	LaneAlert     Lane = 0 // alert batches: read first, evicted last
	LaneTelemetry Lane = 1
)

const numLanes = 2

func (l Lane) String() string {
	switch l {
	case LaneAlert:
		return "alert"
	case LaneTelemetry:
		return "telemetry"
	}
	return fmt.Sprintf("lane(%d)", uint8(l))
}

// Defaults for Options.
const (
	DefaultMaxBatches       = 1_000_000
	DefaultMaxBytes   int64 = 1 << 30
)

// Options tune an Outbox. A nil *Options, and any zero field, mean the
// documented default.
type Options struct {
	// MaxBatches caps the stored batches, both lanes together. Default
	// DefaultMaxBatches. When an Append goes over, the oldest telemetry is
	// evicted first, then the oldest alerts.
	MaxBatches int
	// MaxBytes caps the sum of stored values (each batch plus its 4-byte
	// CRC), both lanes together. Default DefaultMaxBytes (1 GiB). Same
	// eviction order. The file itself is larger: bbolt's pages and free
	// space come on top, and a bbolt file never shrinks.
	MaxBytes int64
	// NoSync skips fsync on commit (bbolt NoSync). Tests and benchmarks
	// only: a crash can then lose or corrupt the file.
	NoSync bool
	// Logger receives the outbox's logs under component=buffer.
	// Default zerolog.Nop().
	Logger zerolog.Logger
	// Now is the clock, used to name a corrupt file moved aside and to
	// rate-limit logs. Default time.Now.
	Now func() time.Time
}

// Entry is one stored batch returned by Read.
type Entry struct {
	Seq  uint64
	Lane Lane
	// Data is the encoded batch (outpost.DecodeBatch decodes it). It is a
	// copy owned by the caller, valid after the transaction; the entries
	// of one Read share one backing array.
	Data []byte
}

// Stats is a snapshot of the outbox's counters.
type Stats struct {
	Epoch           uint64
	NextSeq         uint64
	Batches         [numLanes]int   // stored batches, indexed by Lane
	Bytes           [numLanes]int64 // stored value bytes, indexed by Lane
	Evicted         int64           // batches evicted by the caps since Open
	EvictedReadings int64           // readings in the evicted telemetry batches
}

// Outbox is the bbolt-backed store-and-forward buffer. Its methods are safe
// for concurrent use; bbolt and an internal mutex serialise the writers
// (Append, Delete) while Reads run in parallel.
type Outbox struct {
	db         *bolt.DB
	path       string
	epoch      uint64
	maxBatches int
	maxBytes   int64
	log        zerolog.Logger
	now        func() time.Time
	notify     chan struct{}
	closed     atomic.Bool

	// wmu serialises Append and Delete so the counters change in commit
	// order. The fields below it are owned by the writer holding wmu.
	wmu        sync.Mutex
	next       uint64        // next seq to assign, as persisted
	enc        []byte        // encoded values of one Append, reused
	keys       []byte        // keys of one Append or Delete, reused
	ends       []int         // end offset in enc of each value
	scratch    outpost.Batch // decodes evicted batches to count readings
	lastEvictW time.Time     // last eviction warning, for rate limiting

	// mu guards stats. Writers change stats under wmu and mu, so a writer
	// may read it under wmu alone.
	mu    sync.Mutex
	stats Stats
}

// Open opens or creates the outbox file at path. A new file gets a random
// non-zero 64-bit epoch and seqs from 1. A file that is not a valid outbox
// (not bbolt, truncated, damaged pages or meta) is renamed to
// <path>.corrupt-<UTC time>, logged as an error, and replaced by a new file
// with a new epoch. A file locked by another process, or one that cannot be
// opened for OS reasons, is left alone and an error returned.
func Open(path string, opts *Options) (*Outbox, error) {
	if opts == nil {
		opts = &Options{}
	}
	o := &Outbox{
		path:       path,
		maxBatches: opts.MaxBatches,
		maxBytes:   opts.MaxBytes,
		log:        opts.Logger.With().Str(keyComponent, "buffer").Logger(),
		now:        opts.Now,
		notify:     make(chan struct{}, 1),
	}
	if o.maxBatches <= 0 {
		o.maxBatches = DefaultMaxBatches
	}
	if o.maxBytes <= 0 {
		o.maxBytes = DefaultMaxBytes
	}
	if o.now == nil {
		o.now = time.Now
	}

	db, st, err := openFile(path, opts.NoSync, o.log)
	if fe := (*fileError)(nil); errors.As(err, &fe) {
		aside, mvErr := moveAside(path, o.now())
		if mvErr != nil {
			return nil, fmt.Errorf("buffer: %s: %v; moving it aside: %w", path, fe, mvErr)
		}
		o.log.Error().Str(keyPath, path).Str(keyMovedTo, aside).Str(keyReason, fe.reason).
			Msg("outbox file is corrupt: moved aside, starting a new epoch; batches in it will not be sent")
		db, st, err = openFile(path, opts.NoSync, o.log)
	}
	if err != nil {
		if fe := (*fileError)(nil); errors.As(err, &fe) {
			return nil, fmt.Errorf("buffer: %s: %v", path, fe)
		}
		return nil, err
	}
	o.db, o.epoch, o.next = db, st.epoch, st.next
	o.stats = Stats{Epoch: st.epoch, NextSeq: st.next, Batches: st.batches, Bytes: st.bytes}
	o.log.Info().Str(keyPath, path).Uint64(keyEpoch, st.epoch).Uint64(keyNextSeq, st.next).
		Bool(keyCreated, st.created).Int(keyBatches, st.batches[0]+st.batches[1]).
		Int64(keyBytes, st.bytes[0]+st.bytes[1]).Msg("outbox open")
	return o, nil
}

// Epoch returns the file's epoch, fixed for the life of the file.
func (o *Outbox) Epoch() uint64 { return o.epoch }

// Notify returns a channel that receives after each successful Append.
// Signals coalesce: one pending signal stands for any number of Appends.
// It is never closed; watch a context to stop.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// Append stamps each batch with the epoch and the next seq (consecutive,
// never reused within the epoch), encodes it and stores all of them in one
// durable transaction: alert batches in LaneAlert, others in LaneTelemetry.
// If the caps are exceeded it evicts (oldest telemetry first, then oldest
// alerts) in the same transaction. On error nothing is stored and the
// Epoch and Seq written into bs mean nothing.
func (o *Outbox) Append(bs []*outpost.Batch) error {
	if o.closed.Load() {
		return errClosed
	}
	if len(bs) == 0 {
		return nil
	}
	o.wmu.Lock()
	defer o.wmu.Unlock()

	// Encode outside the transaction; bbolt keeps references to keys and
	// values until commit, so each gets its own bytes in the arenas.
	enc, keys, ends := o.enc[:0], o.keys[:0], o.ends[:0]
	for i, b := range bs {
		if b == nil {
			return fmt.Errorf("buffer: append: batch %d is nil", i)
		}
		b.Epoch, b.Seq = o.epoch, o.next+uint64(i)
		start := len(enc)
		enc = append(enc, 0, 0, 0, 0)
		var err error
		if enc, err = b.MarshalMsg(enc); err != nil {
			return fmt.Errorf("buffer: append: encode batch %d: %w", i, err)
		}
		binary.BigEndian.PutUint32(enc[start:], crc32.Checksum(enc[start+crcLen:], castagnoli))
		ends = append(ends, len(enc))
		keys = putKey(keys, b.Seq)
	}
	o.enc, o.keys, o.ends = enc, keys, ends

	next := o.next + uint64(len(bs))
	var d delta
	err := o.update(func(tx *bolt.Tx) error {
		lanes, err := laneBucketsOf(tx)
		if err != nil {
			return err
		}
		start := 0
		for i, b := range bs {
			lane := laneOf(b)
			v := enc[start:ends[i]]
			start = ends[i]
			if err := lanes[lane].Put(keys[i*keyLen:(i+1)*keyLen], v); err != nil {
				return err
			}
			d.batches[lane]++
			d.bytes[lane] += int64(len(v))
		}
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("%w: meta bucket missing", ErrCorrupt)
		}
		if err := meta.Put(metaNextSeq, putKey(nil, next)); err != nil {
			return err
		}
		return o.evict(lanes, &d)
	})
	if cap(o.enc) > maxKeptArena {
		o.enc = nil // a rare huge Append should not pin its memory
	}
	if err != nil {
		return fmt.Errorf("buffer: append: %w", err)
	}
	o.next = next
	o.apply(&d, next)
	if d.evicted > 0 {
		o.warnEvicted()
	}
	select {
	case o.notify <- struct{}{}:
	default:
	}
	return nil
}

// Read returns up to max entries of lane with seq > after, in ascending seq
// order, appended to dst. Every value's CRC is checked: at a damaged entry
// Read stops and returns the entries before it together with an error
// wrapping ErrCorrupt (a *CorruptError naming the seq, which the caller can
// Delete and report as lost).
func (o *Outbox) Read(lane Lane, after uint64, max int, dst []Entry) ([]Entry, error) {
	if lane >= numLanes {
		return dst, fmt.Errorf("buffer: read: invalid lane %d", uint8(lane))
	}
	if o.closed.Load() {
		return dst, errClosed
	}
	if max <= 0 || after == math.MaxUint64 {
		return dst, nil
	}
	base := len(dst)
	var bad error
	err := o.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(laneBuckets[lane])
		if b == nil {
			return &CorruptError{Lane: lane, Reason: "bucket missing"}
		}
		var from [keyLen]byte
		total := 0
		c := b.Cursor()
		for k, v := c.Seek(putKey(from[:0], after+1)); k != nil && len(dst)-base < max; k, v = c.Next() {
			seq, data, err := checkEntry(lane, k, v)
			if err != nil {
				bad = err
				break
			}
			dst = append(dst, Entry{Seq: seq, Lane: lane, Data: data})
			total += len(data)
		}
		// Data points into the mmap until here: copy it out into one array.
		arena := make([]byte, 0, total)
		for i := base; i < len(dst); i++ {
			n := len(arena)
			arena = append(arena, dst[i].Data...)
			dst[i].Data = arena[n:len(arena):len(arena)]
		}
		return nil
	})
	if err != nil {
		clear(dst[base:]) // drop any slices into the mmap
		return dst[:base], fmt.Errorf("buffer: read %s: %w", lane, err)
	}
	return dst, bad
}

// Delete removes the given seqs from whichever lane holds them, in one
// durable transaction. Seqs not stored are ignored. It returns how many
// entries were deleted.
func (o *Outbox) Delete(seqs []uint64) (int, error) {
	if o.closed.Load() {
		return 0, errClosed
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
	var d delta
	deleted := 0
	err := o.update(func(tx *bolt.Tx) error {
		lanes, err := laneBucketsOf(tx)
		if err != nil {
			return err
		}
		for i := range seqs {
			k := keys[i*keyLen : (i+1)*keyLen]
			for _, lane := range [...]Lane{LaneTelemetry, LaneAlert} {
				v := lanes[lane].Get(k)
				if v == nil {
					continue
				}
				d.batches[lane]--
				d.bytes[lane] -= int64(len(v))
				if err := lanes[lane].Delete(k); err != nil {
					return err
				}
				deleted++
				break
			}
		}
		if deleted == 0 {
			return errNothing // roll back rather than pay an fsync for nothing
		}
		return nil
	})
	if errors.Is(err, errNothing) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("buffer: delete: %w", err)
	}
	o.apply(&d, o.next)
	return deleted, nil
}

// Stats returns a snapshot of the counters. It does no I/O.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// Close closes the file, waiting for transactions in progress. Later calls
// to any method return an error wrapping outpost.ErrClosed; Close itself is
// idempotent.
func (o *Outbox) Close() error {
	if !o.closed.CompareAndSwap(false, true) {
		return nil
	}
	if err := o.db.Close(); err != nil {
		return fmt.Errorf("buffer: close %s: %w", o.path, err)
	}
	return nil
}
