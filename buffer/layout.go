package buffer

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// The file layout (docs/buffer.md). One bucket per lane. A stored batch is
// its value: a 4-byte big-endian CRC32C of the batch bytes, then the batch
// bytes. The value is split into chunks of at most chunkSize bytes: the
// first under the 8-byte big-endian seq, chunk i (from 1) under the seq
// and a 4-byte big-endian i, so a cursor meets a batch's chunks in order,
// before the next seq. A value that fits one chunk is stored as in format
// version 1, which this version reads as it is.
//
// The meta bucket holds 8-byte big-endian integers: the format version,
// the epoch, the next seq, and the counters of what was evicted since the
// file was created (a file without them counts from zero).
//
// The state bucket, created by the first PutState, holds small named
// values apart from the lanes (state.go): each a 4-byte big-endian CRC32C
// and the value, in chunks like a batch's, chunk i (from 1) under the key,
// a NUL and a 4-byte big-endian i. Nothing else reads it; a build that
// does not know it ignores it, so it needs no new format version.
const (
	formatVersion = 2
	crcLen        = 4
	keyLen        = 8  // the first chunk's key: the seq
	chunkKeyLen   = 12 // the seq and the chunk index
)

var (
	bucketMeta  = []byte("meta")
	bucketState = []byte("state")
	laneBuckets = [numLanes][]byte{LaneAlert: []byte("alert"), LaneTelemetry: []byte("telemetry")}

	metaVersion = []byte("version")
	metaEpoch   = []byte("epoch")
	metaNextSeq = []byte("next_seq")

	// metaCounters are in the order of Counters.fields.
	metaCounters = [...][]byte{
		[]byte("evicted"), []byte("evicted_readings"), []byte("evicted_alerts"),
		[]byte("loss_batches"), []byte("corrupt"),
	}
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func putKey(dst []byte, seq uint64) []byte { return binary.BigEndian.AppendUint64(dst, seq) }

// chunkSize is the most bytes stored under one key: four such elements fill
// a page. bbolt does not split a node of four elements or fewer, so then
// every node is one page, every page bbolt allocates is a single page, and
// free pages are always reusable: no run of contiguous pages is ever
// needed, so free space cannot fragment and grow the file.
func chunkSize(page int64) int {
	return int((page-pageHeaderSize)/4 - elemSize - chunkKeyLen)
}

// chunks is the number of chunks of a value of n bytes.
func chunks(n, size int) int { return max(1, (n+size-1)/size) }

// appendKeys appends the keys of the chunks of a value of n bytes.
func appendKeys(dst []byte, seq uint64, n, size int) []byte {
	dst = putKey(dst, seq)
	for i := 1; i < chunks(n, size); i++ {
		dst = binary.BigEndian.AppendUint32(putKey(dst, seq), uint32(i))
	}
	return dst
}

// keysLen is the length of the keys appendKeys appends.
func keysLen(n, size int) int { return keyLen + (chunks(n, size)-1)*chunkKeyLen }

// putEntry stores val in chunks under keys (from appendKeys). bbolt keeps
// references to both until the commit: they must not change until then.
func putEntry(b *bolt.Bucket, keys, val []byte, size int) error {
	for k := keys[:keyLen]; len(val) > 0 || k != nil; {
		n := min(len(val), size)
		if err := b.Put(k, val[:n]); err != nil {
			return err
		}
		val, keys, k = val[n:], keys[len(k):], nil
		if len(val) > 0 {
			k = keys[:chunkKeyLen]
		}
	}
	return nil
}

// rawEntry is one stored batch as a cursor found it.
type rawEntry struct {
	seq uint64
	val []byte // CRC and batch; the transaction's memory if one chunk, else buf
	err error  // a malformed key or chunk: the entry is corrupt
}

// readEntry reads the batch whose first key the cursor is on (k, v): the
// chunks under its seq, appended to buf when there are several (else val
// is v). It returns the entry, the grown buf, and the cursor's next key
// and value. A chunk without its first key, or chunks out of order, make a
// corrupt entry.
func readEntry(lane Lane, c *bolt.Cursor, k, v, buf []byte) (rawEntry, []byte, []byte, []byte) {
	if len(k) != keyLen && len(k) != chunkKeyLen {
		nk, nv := c.Next()
		return rawEntry{err: &CorruptError{Lane: lane, Reason: "key of " + strconv.Itoa(len(k)) + " bytes"}}, buf, nk, nv
	}
	e := rawEntry{seq: binary.BigEndian.Uint64(k), val: v}
	if len(k) != keyLen {
		e.err = &CorruptError{Lane: lane, Seq: e.seq, Reason: "chunk without its first"}
	}
	prefix := k[:keyLen:keyLen]
	start := len(buf)
	nk, nv := c.Next()
	for i := uint32(1); len(nk) == chunkKeyLen && bytes.HasPrefix(nk, prefix); i++ {
		if i == 1 {
			buf = append(buf, e.val...)
		}
		if binary.BigEndian.Uint32(nk[keyLen:]) != i && e.err == nil {
			e.err = &CorruptError{Lane: lane, Seq: e.seq, Reason: "chunks out of order"}
		}
		buf = append(buf, nv...)
		e.val = buf[start:]
		nk, nv = c.Next()
	}
	if e.val == nil && e.err == nil { // a nested bucket
		e.err = &CorruptError{Lane: lane, Seq: e.seq, Reason: "bucket in a lane"}
	}
	return e, buf, nk, nv
}

// deleteEntry deletes every key of seq and returns the bytes of their
// values and whether seq's first key was among them.
func deleteEntry(b *bolt.Bucket, seq uint64) (size int64, found bool, err error) {
	var first [keyLen]byte
	putKey(first[:0], seq)
	c := b.Cursor()
	for k, v := c.Seek(first[:]); bytes.HasPrefix(k, first[:]) && (len(k) == keyLen || len(k) == chunkKeyLen); k, v = c.Seek(first[:]) {
		found = found || len(k) == keyLen
		size += int64(len(v))
		if err := c.Delete(); err != nil {
			return size, found, err
		}
	}
	return size, found, nil
}

// checkEntry validates a stored entry and returns its batch bytes.
func checkEntry(lane Lane, e *rawEntry) ([]byte, error) {
	switch {
	case e.err != nil:
		return nil, e.err
	case len(e.val) < crcLen:
		return nil, &CorruptError{Lane: lane, Seq: e.seq, Reason: "value shorter than its CRC"}
	}
	data := e.val[crcLen:]
	if binary.BigEndian.Uint32(e.val) != crc32.Checksum(data, castagnoli) {
		return nil, &CorruptError{Lane: lane, Seq: e.seq, Reason: "CRC mismatch"}
	}
	// A damaged key can move a sound value to another seq: acks, which
	// name the seq inside, would then never delete it.
	if seq, _, ok := batchHead(data); !ok || seq != e.seq {
		return nil, &CorruptError{Lane: lane, Seq: e.seq, Reason: "seq differs from its key"}
	}
	return data, nil
}

// batchHead reads the seq and the created time from the head of an
// encoded batch, a msgp array: version, kind, flags (small uints), gateway
// (str), epoch, seq (uints), created (int).
func batchHead(p []byte) (seq uint64, created int64, ok bool) {
	if len(p) == 0 || p[0]&0xf0 != 0x90 { // fixarray
		return 0, 0, false
	}
	p = p[1:]
	for i := range 7 {
		var v uint64
		n := 0
		switch i {
		case 3:
			n = msgpStrLen(p)
		case 6:
			created, n = msgpInt(p)
		default:
			v, n = msgpUint(p)
		}
		if n <= 0 || n > len(p) {
			return 0, 0, false
		}
		if i == 5 {
			seq = v
		}
		p = p[n:]
	}
	return seq, created, true
}

// msgpInt decodes a msgp integer that fits an int64 and its length (0: not
// one).
func msgpInt(p []byte) (int64, int) {
	if len(p) == 0 {
		return 0, 0
	}
	switch b := p[0]; {
	case b >= 0xe0: // negative fixint
		return int64(int8(b)), 1
	case b == 0xd0 && len(p) >= 2:
		return int64(int8(p[1])), 2
	case b == 0xd1 && len(p) >= 3:
		return int64(int16(binary.BigEndian.Uint16(p[1:]))), 3
	case b == 0xd2 && len(p) >= 5:
		return int64(int32(binary.BigEndian.Uint32(p[1:]))), 5
	case b == 0xd3 && len(p) >= 9:
		return int64(binary.BigEndian.Uint64(p[1:])), 9
	}
	if v, n := msgpUint(p); n > 0 && v <= math.MaxInt64 {
		return int64(v), n
	}
	return 0, 0
}

// msgpUint decodes a msgp unsigned integer and its length (0: not one).
func msgpUint(p []byte) (uint64, int) {
	if len(p) == 0 {
		return 0, 0
	}
	switch b := p[0]; {
	case b <= 0x7f:
		return uint64(b), 1
	case b == 0xcc && len(p) >= 2:
		return uint64(p[1]), 2
	case b == 0xcd && len(p) >= 3:
		return uint64(binary.BigEndian.Uint16(p[1:])), 3
	case b == 0xce && len(p) >= 5:
		return uint64(binary.BigEndian.Uint32(p[1:])), 5
	case b == 0xcf && len(p) >= 9:
		return binary.BigEndian.Uint64(p[1:]), 9
	}
	return 0, 0
}

// msgpStrLen returns the encoded length of a msgp str (0: not one).
func msgpStrLen(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	switch b := p[0]; {
	case b&0xe0 == 0xa0:
		return 1 + int(b&0x1f)
	case b == 0xd9 && len(p) >= 2:
		return 2 + int(p[1])
	case b == 0xda && len(p) >= 3:
		return 3 + int(binary.BigEndian.Uint16(p[1:]))
	case b == 0xdb && len(p) >= 5:
		return 5 + int(binary.BigEndian.Uint32(p[1:]))
	}
	return 0
}
