package outpost

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/tinylib/msgp/msgp"
)

// Compression says how an Encoder compresses batch bodies.
type Compression uint8

const (
	CompressNone Compression = 0 // bodies as they are
	CompressZstd Compression = 1 // zstd, per message, where it makes the message smaller
)

// ParseCompression maps a config name ("none" or empty, "zstd") to a
// Compression.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "", "none":
		return CompressNone, nil
	case "zstd":
		return CompressZstd, nil
	}
	return 0, fmt.Errorf("outpost: unknown compression %q (want none or zstd)", s)
}

func (c Compression) String() string {
	switch c {
	case CompressNone:
		return "none"
	case CompressZstd:
		return "zstd"
	}
	return "invalid"
}

// MinMessageBytes is the smallest byte cap an Encoder takes: a message of
// one reading or one loss record, with ids and unit of the longest valid
// length, fits in it.
const MinMessageBytes = 1024

// EncoderOptions tune an Encoder. A nil *EncoderOptions, and zero fields,
// mean no compression and no cap.
type EncoderOptions struct {
	// Compression of the batch body. CompressZstd compresses each
	// message's body and keeps the result only where it is smaller.
	Compression Compression
	// MaxMessageBytes caps each encoded message; 0 means no cap, else at
	// least MinMessageBytes. AppendParts splits a batch that would exceed
	// it.
	MaxMessageBytes int
	// Signed says that each message will be signed when it is sent
	// (SignBatch): with a cap, messages are held to MaxMessageBytes less
	// SignedOverhead, so that the signed message stays within the cap.
	Signed bool
}

// Encoder writes batches in wire version 2. It is safe for concurrent use.
type Encoder struct {
	zstd *zstd.Encoder // nil: no compression
	max  int           // the most bytes a message takes; 0: no cap
}

// plainEncoder backs Batch.MarshalMsg.
var plainEncoder = &Encoder{}

// The zstd encoder is shared by every Encoder: EncodeAll may be called
// concurrently, and runs on the caller's goroutine, so nothing needs
// closing. Its frames declare their content size (the decoder reserves
// exactly that much) and, beyond 8 MiB, a window of 8 MiB.
//
// It keeps one encoder state, not one per CPU (the library's default),
// and a gateway encodes on one goroutine, its batcher; concurrent callers
// take turns. The lower-memory mode grows the block buffers as batches
// need them instead of allocating their 128 KiB maximum up front. The
// level is the fastest: its match tables take 0.3 MiB where the default
// level's take 1.3 MiB, most of a gateway's live heap, for output within
// 2 % of the default's on the office recordings (larger on some columns,
// smaller on others) and smaller on the simulated signals of the
// benchmarks (docs/benchmarks.md, "Soak: memory over time").
var zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	// The frame checksum is left out: MQTT runs over TCP, the outbox
	// has a CRC per batch, and the decoder checks the structure.
	return zstd.NewWriter(nil, zstd.WithEncoderCRC(false), zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
})

// NewEncoder returns an encoder; nil opts mean no compression and no cap.
func NewEncoder(opts *EncoderOptions) (*Encoder, error) {
	if opts == nil {
		opts = &EncoderOptions{}
	}
	e := &Encoder{max: opts.MaxMessageBytes}
	if e.max != 0 && e.max < MinMessageBytes {
		return nil, fmt.Errorf("outpost: max message bytes %d, want 0 (no cap) or at least %d", e.max, MinMessageBytes)
	}
	if e.max != 0 && opts.Signed {
		e.max -= SignedOverhead
	}
	switch opts.Compression {
	case CompressNone:
	case CompressZstd:
		z, err := zstdEncoder()
		if err != nil {
			return nil, fmt.Errorf("outpost: zstd: %w", err)
		}
		e.zstd = z
	default:
		return nil, fmt.Errorf("outpost: unknown compression %d", opts.Compression)
	}
	return e, nil
}

// MaxMessageBytes returns the most bytes a message it writes takes: the
// cap, less SignedOverhead for a signing encoder; 0 for no cap.
func (e *Encoder) MaxMessageBytes() int { return e.max }

// Encode appends the encoding of b, numbered b.Seq, to dst as one message
// in wire version 2 whatever b.Version says. It fails with an error
// wrapping ErrMessageTooLarge if the message exceeds the cap; AppendParts
// splits instead.
func (e *Encoder) Encode(dst []byte, b *Batch) ([]byte, error) {
	if err := checkBatch(b); err != nil {
		return dst, err
	}
	sc := getScratch()
	defer putScratch(sc)
	sc.body = appendBody(sc.body[:0], b, wholeBatch(b, sc.pieces[:0]))
	start := len(dst)
	dst = e.appendMessage(dst, b, b.Seq, sc)
	if e.max > 0 && len(dst)-start > e.max {
		return dst[:start], fmt.Errorf("%w: %d bytes, cap %d", ErrMessageTooLarge, len(dst)-start, e.max)
	}
	return dst, nil
}

// AppendParts appends the encoding of b to dst: one message, or, when that
// would exceed the cap, several, each within it. Telemetry splits by
// series and within a series by readings; alert and loss batches split by
// alerts or records. Part i is numbered b.Seq+i and carries b's other
// header fields; the parts together hold exactly b's readings (alerts,
// records), in order. Before each message AppendParts appends reserve
// zero bytes for the caller's framing (the outbox's CRC), and after it
// appends the end offset of the message in dst to ends.
//
// A single reading, alert or loss record that cannot fit under the cap is
// an error wrapping ErrMessageTooLarge. On error dst and ends come back
// as they were given.
func (e *Encoder) AppendParts(dst []byte, b *Batch, reserve int, ends []int) ([]byte, []int, error) {
	if err := checkBatch(b); err != nil {
		return dst, ends, err
	}
	sc := getScratch()
	defer putScratch(sc)
	whole := wholeBatch(b, sc.pieces[:0])
	sc.body = appendBody(sc.body[:0], b, whole)
	start := len(dst)
	dst = appendZeros(dst, reserve)
	dst = e.appendMessage(dst, b, b.Seq, sc)
	size := len(dst) - start - reserve
	if e.max == 0 || size <= e.max {
		return dst, append(ends, len(dst)), nil
	}
	dst = dst[:start]
	out, outEnds, err := e.appendSplit(dst, b, reserve, ends, whole, len(sc.body), size, sc)
	if err != nil {
		return dst, ends, err
	}
	return out, outEnds, nil
}

// piece is a range of one series' readings (lo to hi, t0 the timestamp of
// reading lo), or for alert and loss batches a range of the list.
type piece struct {
	s      int
	lo, hi int
	t0     int64
}

// bodyOverhead bounds a body's bytes besides its elements: the array(3)
// header, the header of the list (at most 5 bytes), two empty lists.
const bodyOverhead = 1 + 5 + 2

// appendSplit encodes b in parts that fit the cap. plain and msg are the
// sizes of the whole body and of the message it made.
func (e *Encoder) appendSplit(dst []byte, b *Batch, reserve int, ends []int, whole []piece, plain, msg int, sc *scratch) ([]byte, []int, error) {
	room := e.max - len(appendHeader(sc.tmp[:0], b, FlagHistorical|FlagZstd, math.MaxUint64))
	// room is what a body may take. Uncompressed, the plain budget is
	// room; with zstd a part's plain body may be larger by the ratio the
	// whole batch compressed at, less a margin. A part that then does not
	// fit is packed again with a smaller budget, and finally with room,
	// which always fits (the encoder keeps the plain body when zstd does
	// not make it smaller).
	budget := room
	if e.zstd != nil && msg < plain+(e.max-room) {
		budget = max(room, int(float64(room)*float64(plain)/float64(msg)*0.9))
	}
	queue, err := pack(b, whole, budget, sc)
	if err != nil {
		return dst, ends, err
	}
	seq := b.Seq
	for len(queue) > 0 {
		part := queue[0]
		sc.body = appendBody(sc.body[:0], b, part.pieces)
		start := len(dst)
		dst = appendZeros(dst, reserve)
		dst = e.appendMessage(dst, b, seq, sc)
		if size := len(dst) - start - reserve; size > e.max {
			dst = dst[:start]
			if part.budget <= room {
				return dst, ends, fmt.Errorf("outpost: split batch: part of %d bytes over the cap %d", size, e.max)
			}
			next := int(float64(part.budget) * float64(room) / float64(size-(e.max-room)) * 0.9)
			if next <= room*9/8 {
				next = room
			}
			again, err := pack(b, part.pieces, next, sc)
			if err != nil {
				return dst, ends, err
			}
			queue = append(again, queue[1:]...)
			continue
		}
		ends = append(ends, len(dst))
		queue = queue[1:]
		seq++
	}
	return dst, ends, nil
}

// part is the content of one message and the plain budget it was packed
// for.
type part struct {
	pieces []piece
	budget int
}

// pack splits pieces into parts whose plain bodies take at most budget
// bytes.
func pack(b *Batch, in []piece, budget int, sc *scratch) ([]part, error) {
	avail := budget - bodyOverhead
	if b.Kind != KindTelemetry {
		return packItems(b, in[0], budget, avail, sc)
	}
	var parts []part
	var cur []piece
	used := 0
	flush := func() {
		parts = append(parts, part{pieces: cur, budget: budget})
		cur, used = nil, 0
	}
	for _, pc := range in {
		s := &b.Series[pc.s]
		sc.tmp = appendSeries(sc.tmp[:0], s, pc.lo, pc.hi, pc.t0)
		size := len(sc.tmp)
		density := float64(size) / float64(pc.hi-pc.lo)
		for pc.lo < pc.hi {
			if size > 0 && used+size <= avail {
				cur = append(cur, pc)
				used += size
				break
			}
			m, msize := fitPrefix(s, pc, avail-used, density, sc)
			if m == 0 {
				if len(cur) == 0 {
					return nil, fmt.Errorf("%w: one reading of series %s/%s does not fit in %d bytes",
						ErrMessageTooLarge, s.Sensor, s.Metric, budget)
				}
				flush()
				size = -1
				continue
			}
			cur = append(cur, piece{s: pc.s, lo: pc.lo, hi: pc.lo + m, t0: pc.t0})
			used += msize
			if pc.lo+m == pc.hi {
				break
			}
			flush()
			for _, d := range s.TS[pc.lo+1 : pc.lo+m+1] {
				pc.t0 += d
			}
			pc.lo += m
			size = -1 // unknown: fitPrefix measures what it tries
		}
	}
	if len(cur) > 0 {
		flush()
	}
	return parts, nil
}

// fitPrefix finds how many readings from pc.lo fit in avail bytes, near
// the most, and their encoded size; 0 if not one. density (bytes per
// reading) gives the first guess.
func fitPrefix(s *Series, pc piece, avail int, density float64, sc *scratch) (best, bestSize int) {
	n := pc.hi - pc.lo
	m := min(max(int(float64(avail)/density), 1), n)
	for range 8 {
		sc.tmp = appendSeries(sc.tmp[:0], s, pc.lo, pc.lo+m, pc.t0)
		size := len(sc.tmp)
		if size <= avail {
			best, bestSize = m, size
			if m == n || size >= avail-avail/32 {
				break
			}
			m = min(max(int(float64(m)*float64(avail)/float64(size)), m+1), n)
			continue
		}
		if m == 1 || m-1 <= best {
			break
		}
		m = max(min(int(float64(m)*float64(avail)/float64(size)*0.98), m-1), best+1)
	}
	return best, bestSize
}

// packItems splits the alerts or loss records of pc.
func packItems(b *Batch, pc piece, budget, avail int, sc *scratch) ([]part, error) {
	var parts []part
	lo, used := pc.lo, 0
	for i := pc.lo; i < pc.hi; i++ {
		var err error
		if b.Kind == KindAlert {
			sc.tmp, err = b.Alerts[i].MarshalMsg(sc.tmp[:0])
		} else {
			sc.tmp, err = b.Losses[i].MarshalMsg(sc.tmp[:0])
		}
		if err != nil {
			return nil, err
		}
		if len(sc.tmp) > avail {
			return nil, fmt.Errorf("%w: %s %d alone takes %d bytes, room for %d",
				ErrMessageTooLarge, b.Kind, i, len(sc.tmp), avail)
		}
		if used+len(sc.tmp) > avail {
			parts = append(parts, part{pieces: []piece{{lo: lo, hi: i}}, budget: budget})
			lo, used = i, 0
		}
		used += len(sc.tmp)
	}
	return append(parts, part{pieces: []piece{{lo: lo, hi: pc.hi}}, budget: budget}), nil
}

// wholeBatch returns the pieces of all of b.
func wholeBatch(b *Batch, dst []piece) []piece {
	switch b.Kind {
	case KindAlert:
		return append(dst, piece{hi: len(b.Alerts)})
	case KindLoss:
		return append(dst, piece{hi: len(b.Losses)})
	}
	for i := range b.Series {
		s := &b.Series[i]
		var t0 int64
		if len(s.TS) > 0 {
			t0 = s.TS[0]
		}
		dst = append(dst, piece{s: i, hi: len(s.Values), t0: t0})
	}
	return dst
}

// appendBody appends [series, alerts, losses] holding the pieces.
func appendBody(dst []byte, b *Batch, ps []piece) []byte {
	dst = msgp.AppendArrayHeader(dst, bodyFields)
	switch b.Kind {
	case KindAlert:
		dst = msgp.AppendArrayHeader(dst, 0)
		dst = msgp.AppendArrayHeader(dst, uint32(ps[0].hi-ps[0].lo))
		for i := range b.Alerts[ps[0].lo:ps[0].hi] {
			dst, _ = b.Alerts[ps[0].lo+i].MarshalMsg(dst) // cannot fail
		}
		return msgp.AppendArrayHeader(dst, 0)
	case KindLoss:
		dst = msgp.AppendArrayHeader(dst, 0)
		dst = msgp.AppendArrayHeader(dst, 0)
		dst = msgp.AppendArrayHeader(dst, uint32(ps[0].hi-ps[0].lo))
		for i := range b.Losses[ps[0].lo:ps[0].hi] {
			dst, _ = b.Losses[ps[0].lo+i].MarshalMsg(dst) // cannot fail
		}
		return dst
	}
	dst = msgp.AppendArrayHeader(dst, uint32(len(ps)))
	for _, pc := range ps {
		dst = appendSeries(dst, &b.Series[pc.s], pc.lo, pc.hi, pc.t0)
	}
	dst = msgp.AppendArrayHeader(dst, 0)
	return msgp.AppendArrayHeader(dst, 0)
}

// appendMessage appends the header and the body in sc.body, compressed
// if that makes it smaller.
func (e *Encoder) appendMessage(dst []byte, b *Batch, seq uint64, sc *scratch) []byte {
	flags := b.Flags &^ FlagZstd
	if e.zstd != nil {
		sc.z = e.zstd.EncodeAll(sc.body, sc.z[:0])
		if len(sc.z)+binHeaderLen(len(sc.z)) < len(sc.body) {
			dst = appendHeader(dst, b, flags|FlagZstd, seq)
			return msgp.AppendBytes(dst, sc.z)
		}
	}
	dst = appendHeader(dst, b, flags, seq)
	return append(dst, sc.body...)
}

// appendHeader appends the array header and the fields before the body.
// Version, kind and flags are positive fixints (checkBatch), so the flags
// are the byte at offset 3 (SetHistorical).
func appendHeader(dst []byte, b *Batch, flags uint8, seq uint64) []byte {
	dst = msgp.AppendArrayHeader(dst, v2Fields)
	dst = msgp.AppendUint8(dst, WireVersion)
	dst = msgp.AppendUint8(dst, uint8(b.Kind))
	dst = msgp.AppendUint8(dst, flags)
	dst = msgp.AppendString(dst, b.Gateway)
	dst = msgp.AppendUint64(dst, b.Epoch)
	dst = msgp.AppendUint64(dst, seq)
	return msgp.AppendInt64(dst, b.Created)
}

// checkBatch checks what the encoding relies on; the rest of the contract
// is Validate's.
func checkBatch(b *Batch) error {
	if b.Kind > KindLoss {
		return fmt.Errorf("outpost: encode: unknown kind %d", b.Kind)
	}
	if b.Flags&^(FlagHistorical|FlagZstd) != 0 {
		return fmt.Errorf("outpost: encode: unknown flags %#x", b.Flags)
	}
	if b.Kind != KindTelemetry && len(b.Series) != 0 || b.Kind != KindAlert && len(b.Alerts) != 0 ||
		b.Kind != KindLoss && len(b.Losses) != 0 {
		return fmt.Errorf("outpost: encode: %s batch carries other kinds of content", b.Kind)
	}
	if uint64(len(b.Series)) > math.MaxUint32 {
		return errors.New("outpost: encode: too many series")
	}
	for i := range b.Series {
		if err := checkSeries(&b.Series[i]); err != nil {
			return fmt.Errorf("outpost: encode: series %d: %w", i, err)
		}
	}
	return nil
}

func binHeaderLen(n int) int {
	switch {
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	}
	return 5
}

func appendZeros(dst []byte, n int) []byte {
	for range n {
		dst = append(dst, 0)
	}
	return dst
}

// scratch holds an encoding's buffers; pooled, as encoders are shared.
type scratch struct {
	body, z, tmp []byte
	pieces       []piece
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// putScratch keeps buffers of up to 4 MiB for the next encoding.
func putScratch(sc *scratch) {
	if cap(sc.body) > 4<<20 || cap(sc.z) > 4<<20 || cap(sc.tmp) > 4<<20 {
		return
	}
	scratchPool.Put(sc)
}
