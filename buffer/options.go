package buffer

import (
	"math"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
)

// Defaults for Options.
const (
	DefaultMaxBatches       = 1_000_000
	DefaultMaxBytes   int64 = 1 << 30
	DefaultMaxAge           = 7 * 24 * time.Hour

	// MinFileBytes is the smallest file cap. A working outbox file takes a
	// few bbolt pages, so with MaxBytes below this the stored batch bytes
	// stay within MaxBytes but the file may grow to MinFileBytes.
	MinFileBytes int64 = 1 << 20
)

// Options tune an Outbox. A nil *Options, and any zero field, mean the
// documented default.
type Options struct {
	// MaxBatches caps the stored batches, both lanes together, loss
	// batches included. Default DefaultMaxBatches.
	MaxBatches int
	// MaxBytes caps the file on disk, bbolt's pages and free space
	// included, and with it the stored batch bytes. Default
	// DefaultMaxBytes (1 GiB). Eviction keeps the file within
	// max(MaxBytes, MinFileBytes); bbolt refuses to grow it past that plus
	// a slack of max(1/32 of it, 256 KiB) (docs/buffer.md says when the
	// slack is used). A larger file found by Open (the cap was lowered) is
	// evicted down and compacted.
	MaxBytes int64
	// MaxAge evicts batches whose Created time is older than now - MaxAge,
	// checked on Open and on every Append. Zero or negative means the
	// default, DefaultMaxAge (7 days); there is no "no age cap".
	MaxAge time.Duration
	// Gateway is the gateway id written into a loss batch when no evicted
	// batch names one (a corrupt batch dropped by DropCorrupt). Default: the
	// id in the batches appended, or in a stored batch.
	Gateway string
	// ReadOnly opens an existing file for inspection under a shared lock:
	// no repair, eviction, compaction or move-aside; Append, Delete and
	// DropCorrupt fail with ErrReadOnly. It fails while a gateway holds the
	// file.
	ReadOnly bool
	// SyncDeletes makes each Delete commit (and fsync) at once, instead of
	// riding along with the next write transaction.
	SyncDeletes bool
	// NoSync skips fsync on commit (bbolt NoSync). Tests and benchmarks
	// only: a crash can then lose or corrupt the file.
	NoSync bool
	// Encoder encodes the appended batches and the loss batches: its
	// compression, and its byte cap, under which a batch that would
	// exceed it is stored as several batches with consecutive seqs.
	// Default: no compression, no cap. Stored batches, of any encoding
	// and wire version, stay as they are.
	Encoder *outpost.Encoder
	// Logger receives the outbox's logs under component=buffer.
	// Default zerolog.Nop().
	Logger zerolog.Logger
	// OnCommit, when set, is called with the duration of each write
	// transaction's commit that succeeded: bbolt writing the dirty pages
	// and the fsyncs (without NoSync), measured from the end of the
	// transaction's work. It runs under the writer's lock and must return
	// at once (a histogram's Observe).
	OnCommit func(time.Duration)
	// Now is the clock: the age cap, loss record times, the name of a
	// corrupt file moved aside, log rate limits. Default time.Now.
	Now func() time.Time
	// HoldAge, if set, is asked before every age check: while it returns
	// true MaxAge evicts nothing (the gateway's clock is not trusted yet,
	// so neither now nor the stored Created times can be judged). The
	// other caps still apply. It is called inside write transactions and
	// must return quickly. Default: never hold.
	HoldAge func() bool
}

// When a cap is exceeded the outbox evicts down to 63/64 of it (for the
// age cap: everything older than 63/64 of MaxAge), so that one eviction
// and one loss record cover a stretch of data instead of every Append
// evicting a batch and writing a loss batch of its own.
const lowWater = 64

// limits are the caps in effect, derived from Options.
type limits struct {
	maxBatches int
	maxBytes   int64 // stored value bytes
	maxAge     time.Duration
	fileCap    int64 // eviction keeps the file within this
	fileHard   int64 // bbolt's MaxSize: the file never grows past this
	allocSize  int   // bbolt's AllocSize: the step the file grows by
}

func newLimits(opts *Options) limits {
	l := limits{maxBatches: opts.MaxBatches, maxBytes: opts.MaxBytes, maxAge: opts.MaxAge}
	if l.maxBatches <= 0 {
		l.maxBatches = DefaultMaxBatches
	}
	if l.maxBytes <= 0 {
		l.maxBytes = DefaultMaxBytes
	}
	if l.maxAge <= 0 {
		l.maxAge = DefaultMaxAge
	}
	// The hard limit must fit an int: on 32-bit systems about 1.9 GiB.
	l.fileCap = min(max(l.maxBytes, MinFileBytes), math.MaxInt/33*32)
	l.fileHard = l.fileCap + slack(l.fileCap)
	l.allocSize = int(min(max(l.fileCap/128, 32<<10), 16<<20))
	return l
}

// slack is how far past its cap the file may grow: room for the eviction
// transaction that must run when a write did not fit (docs/buffer.md).
func slack(fileCap int64) int64 { return max(fileCap/32, 256<<10) }

// target returns the page bytes the stored data may take after a write
// transaction (high), and what eviction brings it down to once over
// (low). Below the cap it leaves the growth step and a reserve for the
// next transaction's pages, as bbolt reuses the pages a transaction frees
// only from the next transaction on: twice this one's new pages, at least
// 1/64 of the cap, and 32 pages for the leaves and branches a transaction
// rewrites besides its new ones (txPages). txCost is the page cost of this
// transaction's new values.
func (l *limits) target(txCost, page int64) (high, low int64) {
	reserve := min(l.fileCap/4, max(l.fileCap/64, 2*txCost)) + txPages*page
	high = l.fileCap - int64(l.allocSize) - page - reserve
	return high, high - l.fileCap/lowWater
}

// txPages bounds the pages a write transaction rewrites besides those of
// its new values: the lanes' first and last leaves and the branches above
// them, the root, the meta bucket.
const txPages = 32

// hardRoom is the page bytes the file can hold at its hard limit.
func (l *limits) hardRoom(page int64) int64 {
	return l.fileHard - int64(l.allocSize) - page
}

// pageCost estimates the page bytes a stored value of n bytes takes: its
// chunks and their keys and element headers, pages filled whole. It only
// steers eviction within one transaction: each write transaction starts
// from bbolt's exact count of pages in use.
func pageCost(n, chunk int) int64 {
	return int64(n + chunks(n, chunk)*(elemSize+chunkKeyLen))
}
