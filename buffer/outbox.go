// Package buffer is the gateway's outbox: a store-and-forward buffer of
// encoded batches in one bbolt file, so readings survive uplink outages and
// restarts. The batcher appends, the uplink reads, sends and deletes on ack.
package buffer

import (
	"fmt"
	"math"
	"slices"
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
	Epoch         uint64
	NextSeq       uint64
	Batches       [numLanes]int   // stored batches, indexed by Lane
	Bytes         [numLanes]int64 // stored value bytes (batch + CRC), indexed by Lane
	OldestCreated [numLanes]int64 // Created (unix ns) of each lane's oldest batch; 0 if empty or damaged
	FileBytes     int64           // size of the file
	Counters                      // since Open
	Persisted     Counters        // since the file was created
}

// Counters count what the outbox dropped, and the loss batches that
// report it upstream.
type Counters struct {
	Evicted         int64 `json:"batches"`      // telemetry and alert batches evicted by the caps
	EvictedReadings int64 `json:"readings"`     // readings in them
	EvictedAlerts   int64 `json:"alerts"`       // alerts in them
	LossRecords     int64 `json:"loss_batches"` // loss batches written
	Corrupt         int64 `json:"corrupt"`      // batches dropped because they failed their CRC
}

func (c *Counters) fields() [5]*int64 {
	return [...]*int64{&c.Evicted, &c.EvictedReadings, &c.EvictedAlerts, &c.LossRecords, &c.Corrupt}
}

func (c *Counters) add(d *Counters) {
	ds := d.fields()
	for i, p := range c.fields() {
		*p += *ds[i]
	}
}

// Outbox is the bbolt-backed store-and-forward buffer. Its methods are safe
// for concurrent use; bbolt and an internal mutex serialise the writers
// (Append, Delete, DropCorrupt) while Reads run in parallel.
type Outbox struct {
	db       *bolt.DB
	path     string
	epoch    uint64
	lim      limits
	page     int64 // bbolt page size
	chunk    int   // chunkSize(page)
	readOnly bool
	noSync   bool
	onCommit func(time.Duration) // Options.OnCommit
	syncDel  bool
	log      zerolog.Logger
	now      func() time.Time
	holdAge  func() bool // Options.HoldAge; nil: never hold
	notify   chan struct{}
	closed   atomic.Bool

	// wmu serialises the writers so the counters change in commit order.
	// The fields below it are owned by the writer holding wmu.
	wmu        sync.Mutex
	next       uint64 // next seq to assign, as persisted
	gateway    string // for loss batches no evicted batch names
	enc        []byte // encoded values of one Append, reused
	keys       []byte // keys of one Append or Delete, reused
	ends       []int  // end offsets in enc and keys of each value of one Append
	lanes      []Lane // lane of each value of one Append
	msgEnds    []int  // end offsets of the messages of one batch, reused
	encoder    *outpost.Encoder
	buf        []byte // a value of several chunks, assembled
	scratch    outpost.Batch
	heads      [numLanes]head
	lastEvictW time.Time // last eviction warning, for rate limiting

	// pmu guards pending, the acked seqs not yet deleted from the file,
	// which Read skips. Writers change it under wmu and pmu, so a writer
	// may read it under wmu alone.
	pmu     sync.RWMutex
	pending map[uint64]pendingDelete

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
//
// On error Open returns a nil *Outbox and has closed what it opened. A file
// that another Outbox holds gives a *LockedError (errors.Is(err,
// ErrLocked)). An OS error is reported as "buffer: OP outbox PATH: REASON"
// and wraps the reason: errors.Is(err, fs.ErrNotExist) when the file (read
// only) or its directory is missing, fs.ErrPermission when the directory
// or file may not be written (or is on a read-only file system).
//
// Open then applies the caps: it evicts batches past MaxAge, or beyond a
// cap that was lowered, with their loss records, and compacts a file that
// has grown past its hard limit. With Options.ReadOnly it only reads.
func Open(path string, opts *Options) (*Outbox, error) {
	if opts == nil {
		opts = &Options{}
	}
	o := &Outbox{
		path:     path,
		lim:      newLimits(opts),
		readOnly: opts.ReadOnly,
		noSync:   opts.NoSync,
		syncDel:  opts.SyncDeletes,
		onCommit: opts.OnCommit,
		gateway:  opts.Gateway,
		pending:  make(map[uint64]pendingDelete),
		log:      opts.Logger.With().Str(keyComponent, "buffer").Logger(),
		now:      opts.Now,
		holdAge:  opts.HoldAge,
		notify:   make(chan struct{}, 1),
		encoder:  opts.Encoder,
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.encoder == nil {
		o.encoder = defaultEncoder
	}
	st, err := o.openFile()
	if err != nil {
		return nil, err
	}
	if !o.readOnly {
		if st, err = o.maintainOrMoveAside(st); err != nil {
			return nil, err
		}
	}
	now := o.Stats()
	o.log.Info().Str(keyPath, path).Uint64(keyEpoch, now.Epoch).Uint64(keyNextSeq, now.NextSeq).
		Bool(keyCreated, st.created).Int(keyBatches, now.Batches[0]+now.Batches[1]).
		Int64(keyBytes, now.Bytes[0]+now.Bytes[1]).Int64(keyFileBytes, now.FileBytes).Msg("outbox open")
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
// durable transaction: alert and loss batches in LaneAlert, telemetry in
// LaneTelemetry. A batch that Options.Encoder splits to fit its byte cap
// is stored as several batches and takes as many seqs: its Seq is the
// first. A reading, alert or loss record that alone exceeds the cap fails
// the Append (outpost.ErrMessageTooLarge).
//
// Append does not fail because the outbox is full. In the same transaction
// it applies the caps: batches past MaxAge go, then while a cap is
// exceeded the oldest telemetry, then the oldest of the alert lane, and
// what they held is stored as loss records (outpost.KindLoss, next seqs,
// alert lane). A batch that does not fit under the caps even alone is
// evicted like the others: its seq is used, its loss record stored.
// Rarely, when the file is at its hard size limit, Append first commits an
// eviction of its own. The transaction also commits the deletes of the
// Delete calls before it.
//
// On error nothing of this call is stored and the Epoch and Seq written
// into bs mean nothing.
func (o *Outbox) Append(bs []*outpost.Batch) error {
	return o.appendWith(bs, nil)
}

// AppendDeletingState is Append that also deletes the state stored under
// key (PutState), in the same transaction: the batches are stored and the
// state gone, or neither. The gateway keeps the readings of a batch not
// yet sealed as state, and stores the sealed batch so: its readings are
// never both a batch and state, nor neither.
func (o *Outbox) AppendDeletingState(bs []*outpost.Batch, key string) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	return o.appendWith(bs, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState)
		if b == nil {
			return nil // no state was ever stored
		}
		return deleteState(b, key)
	})
}

// appendWith is Append, running pre first in its transaction.
func (o *Outbox) appendWith(bs []*outpost.Batch, pre func(*bolt.Tx) error) error {
	if err := o.writable(); err != nil {
		return err
	}
	if len(bs) == 0 {
		return nil
	}
	o.wmu.Lock()
	defer o.wmu.Unlock()
	if err := o.encode(bs); err != nil {
		return err
	}
	before := o.stats.Counters
	err := o.appendRetrying(bs, pre)
	if cap(o.enc) > maxKeptArena {
		o.enc = nil // a rare huge Append should not pin its memory
	}
	if err != nil {
		return fmt.Errorf("buffer: append: %w", err)
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

// readPrealloc bounds the entries Read sizes its array for at first.
const readPrealloc = 64

// Read returns up to max entries of lane with seq > after, in ascending seq
// order, appended to dst. Every value's CRC is checked: at a damaged entry
// Read stops and returns the entries before it together with an error
// wrapping ErrCorrupt (a *CorruptError naming the seq, which the caller can
// pass to DropCorrupt, which drops it and reports it lost).
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
	o.pmu.RLock()
	defer o.pmu.RUnlock()
	err := o.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(laneBuckets[lane])
		if b == nil {
			return &CorruptError{Lane: lane, Reason: "bucket missing"}
		}
		// Values are copied out of the mmap into one array, sized after
		// the first; ends holds where each ends, as the array may move
		// while it grows.
		var arena []byte
		var ends []int
		var from [keyLen]byte
		c := b.Cursor()
		k, v := c.Seek(putKey(from[:0], after+1))
		for k != nil && len(ends) < max {
			start := len(arena)
			var raw rawEntry
			raw, arena, k, v = readEntry(lane, c, k, v, arena)
			if _, ok := o.pending[raw.seq]; ok && raw.err == nil {
				arena = arena[:start] // deleted; not yet in the file
				continue
			}
			if _, err := checkEntry(lane, &raw); err != nil {
				arena = arena[:start]
				bad = err
				break
			}
			if len(arena) == start { // one chunk: still in the mmap
				arena = append(arena, raw.val...)
			}
			if start == 0 {
				arena = slices.Grow(arena, len(arena)*(min(max, readPrealloc)-1))
			}
			ends = append(ends, len(arena))
			dst = append(dst, Entry{Seq: raw.seq, Lane: lane})
		}
		start := 0
		for i, end := range ends {
			dst[base+i].Data = arena[start+crcLen : end : end]
			start = end
		}
		return nil
	})
	if err != nil {
		clear(dst[base:])
		return dst[:base], fmt.Errorf("buffer: read %s: %w", lane, err)
	}
	return dst, bad
}

// Stats returns a snapshot of the counters. It does no I/O.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// Close commits the deletes still pending and closes the file, waiting
// for transactions in progress. Later calls
// to any method return an error wrapping outpost.ErrClosed; Close itself is
// idempotent.
func (o *Outbox) Close() error {
	if !o.closed.CompareAndSwap(false, true) {
		return nil
	}
	o.wmu.Lock()
	if err := o.flushDeletes(); err != nil {
		o.log.Error().Err(err).Int(keyBatches, len(o.pending)).
			Msg("close: committing acked deletes failed; those batches will be sent again")
	}
	o.wmu.Unlock()
	if err := o.db.Close(); err != nil {
		return fmt.Errorf("buffer: close %s: %w", o.path, err)
	}
	return nil
}

func (o *Outbox) writable() error {
	switch {
	case o.closed.Load():
		return errClosed
	case o.readOnly:
		return fmt.Errorf("buffer: %w", ErrReadOnly)
	}
	return nil
}
