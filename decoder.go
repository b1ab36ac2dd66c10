package outpost

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// MaxBodyBytes caps a decompressed batch body: about three times the
// largest valid telemetry body (MaxBatchReadings readings of at most 19
// bytes, MaxBatchSeries series headers), so a small zstd frame cannot
// make a decoder allocate without bound.
const MaxBodyBytes = 64 << 20

// DefaultDecompressBudget is a Decoder's DecompressBudget when its options
// leave it zero: room for two bodies of the largest size at once, with
// the slack of each (zstdSlack).
const DefaultDecompressBudget = 130 << 20

// DecoderOptions bound what a Decoder accepts and the memory its calls
// take together. A nil *DecoderOptions, and zero fields, mean the
// defaults.
type DecoderOptions struct {
	// MaxSeries, MaxReadings and MaxAlerts cap the series, readings and
	// alerts of one batch. Zero means the wire limits (MaxBatchSeries,
	// MaxBatchReadings, MaxBatchAlerts), which are also the most they
	// may be. The decoder checks each count before it allocates for it.
	MaxSeries, MaxReadings, MaxAlerts int
	// DecompressBudget caps the bytes that the decompressed bodies of
	// all the Decoder's calls take at once; a call waits for its share.
	// A frame that declares its content size takes that size (at most
	// MaxBodyBytes); one that does not takes MaxBodyBytes, so a budget
	// below MaxBodyBytes refuses such frames. Default
	// DefaultDecompressBudget.
	DecompressBudget int64
}

// Decoder decodes batches within limits, and bounds the memory that its
// concurrent calls spend on decompression together. It is safe for
// concurrent use; share one between the goroutines whose memory it is
// to bound.
type Decoder struct {
	lim    limits
	budget *byteSem
}

// limits are what a batch may hold, checked as it is decoded.
type limits struct {
	series, readings, alerts int
}

var wireLimits = limits{series: MaxBatchSeries, readings: MaxBatchReadings, alerts: MaxBatchAlerts}

// defaultDecoder backs DecodeBatch and Batch.UnmarshalMsg: the wire
// limits and the default budget, shared by every caller in the process.
var defaultDecoder = &Decoder{lim: wireLimits, budget: newByteSem(DefaultDecompressBudget)}

// NewDecoder returns a decoder; nil opts mean the wire limits and the
// default budget. It fails for a negative field or a limit above the
// wire's.
func NewDecoder(opts *DecoderOptions) (*Decoder, error) {
	var o DecoderOptions
	if opts != nil {
		o = *opts
	}
	lim := wireLimits
	for _, f := range []struct {
		name     string
		v, limit int
		dst      *int
	}{
		{"series", o.MaxSeries, MaxBatchSeries, &lim.series},
		{"readings", o.MaxReadings, MaxBatchReadings, &lim.readings},
		{"alerts", o.MaxAlerts, MaxBatchAlerts, &lim.alerts},
	} {
		switch {
		case f.v < 0 || f.v > f.limit:
			return nil, fmt.Errorf("outpost: decoder: max %s %d, want 0 (the wire limit) to %d", f.name, f.v, f.limit)
		case f.v > 0:
			*f.dst = f.v
		}
	}
	budget := o.DecompressBudget
	switch {
	case budget < 0:
		return nil, fmt.Errorf("outpost: decoder: decompress budget %d is negative", budget)
	case budget == 0:
		budget = DefaultDecompressBudget
	}
	return &Decoder{lim: lim, budget: newByteSem(budget)}, nil
}

// DecodeBatch decodes and validates one encoded batch, as the package's
// DecodeBatch does, within the decoder's limits. A batch over a limit is
// an error wrapping ErrInvalidBatch and ErrOverLimit. It waits, within
// ctx, for its share of the decompression budget; then the error is
// ctx's, wrapping neither sentinel.
func (d *Decoder) DecodeBatch(ctx context.Context, p []byte) (*Batch, error) {
	bt := new(Batch)
	rest, err := bt.unmarshal(ctx, d, p)
	switch {
	case err == nil:
	case errors.Is(err, ErrUnsupportedVersion):
		return nil, err
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return nil, err
	default:
		return nil, fmt.Errorf("%w: decode: %w", ErrInvalidBatch, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrInvalidBatch, len(rest))
	}
	if err := bt.Validate(); err != nil {
		return nil, err
	}
	return bt, nil
}

// The zstd decoder is shared by every Decoder: DecodeAll may be called
// concurrently and runs on the caller's goroutine, so nothing needs
// closing. DecodeAll decodes into the buffer it is given, which is the
// output and the window both, and fails once the output passes the
// buffer's capacity (WithDecodeAllCapLimit), the frame's declared size or
// MaxBodyBytes, each checked after every block. So that the block that
// passes a limit still fits, the buffer has a block's worth of slack:
// a decompression takes the bytes reserved for it and a small constant,
// whatever the frame says.
var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderMaxMemory(MaxBodyBytes),
		zstd.WithDecoderMaxWindow(MaxBodyBytes),
		zstd.WithDecodeAllCapLimit(true))
})

const (
	// zstdSlack is the room past a limit that the block crossing it
	// takes: the largest block, and the over-allocation of the decoder's
	// fast copies.
	zstdSlack = 128<<10 + 64
	// The guessed size for a frame without a content size is zstdGuess
	// times its compressed size, within the bounds below: gateways leave
	// the size out of frames of less than 256 bytes only.
	zstdGuess    = 16
	minZstdGuess = 4 << 10
	maxZstdGuess = 1 << 20
)

// decompress returns the content of the zstd frame z, at most
// MaxBodyBytes, and the function that gives its bytes back to the budget
// once the caller is done with it.
func (d *Decoder) decompress(ctx context.Context, z []byte) ([]byte, func(), error) {
	var h zstd.Header
	if err := h.Decode(z); err != nil {
		return nil, nil, fmt.Errorf("zstd: frame header: %w", err)
	}
	if h.Skippable {
		return nil, nil, errors.New("zstd: a skippable frame, not the body")
	}
	if h.HasFCS {
		if h.FrameContentSize > MaxBodyBytes {
			return nil, nil, fmt.Errorf("%w: zstd content of %d bytes, limit %d", ErrOverLimit, h.FrameContentSize, MaxBodyBytes)
		}
		return d.decompressInto(ctx, z, int64(h.FrameContentSize))
	}
	// A frame without a content size is decoded first into a buffer of
	// a guessed size, and if that fails into one of MaxBodyBytes.
	guess := min(max(int64(len(z))*zstdGuess, minZstdGuess), maxZstdGuess)
	body, release, err := d.decompressInto(ctx, z, guess)
	if errors.Is(err, errZstdCap) {
		body, release, err = d.decompressInto(ctx, z, MaxBodyBytes)
	}
	return body, release, err
}

// errZstdCap is a frame whose content did not fit the buffer it was
// decoded into.
var errZstdCap = errors.New("zstd: content larger than its buffer")

// decompressInto decodes z into a buffer of max bytes (and the slack),
// reserved from the budget until the returned function is called.
func (d *Decoder) decompressInto(ctx context.Context, z []byte, max int64) ([]byte, func(), error) {
	need := max + zstdSlack
	if err := d.budget.acquire(ctx, need); err != nil {
		return nil, nil, err
	}
	buf := getBody(need)
	release := func() {
		putBody(buf)
		d.budget.release(need)
	}
	zd, err := zstdDecoder()
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("zstd: %w", err)
	}
	body, err := zd.DecodeAll(z, (*buf)[:0:need])
	if err == nil && int64(len(body)) <= max {
		return body, release, nil
	}
	release()
	switch {
	case max < MaxBodyBytes:
		// Too large for a guess: a frame that fills its buffer may
		// fail with other errors than ErrDecoderSizeExceeded, so any
		// failure is worth the full buffer.
		return nil, nil, errZstdCap
	case err == nil, errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return nil, nil, fmt.Errorf("%w: zstd content over %d bytes", ErrOverLimit, MaxBodyBytes)
	}
	return nil, nil, fmt.Errorf("zstd: %w", err)
}

// The buffers bodies are decompressed into are kept for the next body,
// up to maxPooledBody each: a batch's body is read into new memory as it
// is decoded and nothing refers to it after. Each pooled buffer is a
// multiple of pooledBodyUnit, so that the next body, about as large,
// usually fits.
var bodyBufs sync.Pool // of *[]byte

const (
	maxPooledBody  = 2 << 20
	pooledBodyUnit = 256 << 10
)

// getBody returns a buffer of at least need bytes of capacity.
func getBody(need int64) *[]byte {
	if need > maxPooledBody {
		b := make([]byte, 0, need)
		return &b
	}
	if p, ok := bodyBufs.Get().(*[]byte); ok && int64(cap(*p)) >= need {
		return p
	}
	b := make([]byte, 0, (need+pooledBodyUnit-1)/pooledBodyUnit*pooledBodyUnit)
	return &b
}

// putBody gives a buffer from getBody back for the next body.
func putBody(p *[]byte) {
	if cap(*p) <= maxPooledBody {
		bodyBufs.Put(p)
	}
}

// byteSem is a semaphore of bytes: acquire waits, first come first
// served, until the bytes asked for are free.
type byteSem struct {
	mu      sync.Mutex
	size    int64
	free    int64
	peak    int64 // the most bytes taken at once
	waiters []*semWaiter
}

type semWaiter struct {
	n     int64
	ready chan struct{} // closed when the bytes are granted
}

func newByteSem(size int64) *byteSem { return &byteSem{size: size, free: size} }

// acquire takes n bytes, waiting for them within ctx. More than the
// whole budget is an error at once, and so is a ctx already done.
func (s *byteSem) acquire(ctx context.Context, n int64) error {
	if n > s.size {
		return fmt.Errorf("%w: zstd body needs %d bytes, more than the decompression budget of %d", ErrOverLimit, n, s.size)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if len(s.waiters) == 0 && s.free >= n {
		s.take(n)
		s.mu.Unlock()
		return nil
	}
	w := &semWaiter{n: n, ready: make(chan struct{})}
	s.waiters = append(s.waiters, w)
	s.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		s.free += n
		s.grant()
	default:
		for i, o := range s.waiters {
			if o == w {
				s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
				break
			}
		}
		if len(s.waiters) > 0 {
			s.grant() // the first waiter may have waited behind this one
		}
	}
	return ctx.Err()
}

func (s *byteSem) release(n int64) {
	s.mu.Lock()
	s.free += n
	s.grant()
	s.mu.Unlock()
}

// grant wakes the waiters at the head of the queue whose bytes are free.
// The caller holds mu.
func (s *byteSem) grant() {
	for len(s.waiters) > 0 && s.free >= s.waiters[0].n {
		w := s.waiters[0]
		s.take(w.n)
		close(w.ready)
		s.waiters[0] = nil
		s.waiters = s.waiters[1:]
	}
}

// take takes n free bytes. The caller holds mu.
func (s *byteSem) take(n int64) {
	s.free -= n
	s.peak = max(s.peak, s.size-s.free)
}

// peakUse returns the most bytes taken at once so far.
func (s *byteSem) peakUse() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// waiting returns how many acquire calls wait.
func (s *byteSem) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters)
}
