package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/bits"

	bolt "go.etcd.io/bbolt"
)

// checkPages validates the page tree of a bbolt file by reading it, before
// bbolt maps it for writing. bbolt trusts its pages: on a damaged one it can
// loop forever (a page cycle), copy gigabytes (a wild key size) or fault in
// a goroutine of its own, which no recover reaches. This reads the meta
// pages, then page headers, element tables and keys, never values: one or
// two small reads per page.
//
// The layout (bbolt's, native byte order) is in go.etcd.io/bbolt's
// internal/common: page.go, meta.go, inbucket.go.
func checkPages(r io.ReaderAt, size int64) error {
	c := &pageChecker{r: r, size: size}
	m, err := c.meta()
	if err != nil {
		return err
	}
	c.pageSize, c.hwm = int64(m.pageSize), m.hwm
	if m.hwm < 2 || m.hwm > uint64(size)/uint64(m.pageSize) {
		return badFile("truncated: %d bytes, pages up to %d", size, m.hwm*uint64(m.pageSize))
	}
	c.seen = make([]uint64, (m.hwm+63)/64)
	c.mark(0)
	c.mark(1)
	if _, _, err := c.bucketPage(m.root, nil, nil, 0); err != nil {
		return err
	}
	if m.freelist != noFreelist {
		return c.freelist(m.freelist)
	}
	return nil
}

// bbolt's on-disk constants.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	elemSize         = 16 // branch: pos, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	metaSize         = 64 // magic, version, pageSize, flags u32; root, sequence, freelist, pgid, txid, checksum u64
	bucketHeaderSize = 16 // root, sequence u64
	flagBranch       = 0x01
	flagLeaf         = 0x02
	flagFreelist     = 0x10
	leafFlagBucket   = 0x01
	noFreelist       = ^uint64(0)
	maxTreeDepth     = 32 // a B+tree of 4 KiB pages is a handful of levels deep
)

var ne = binary.NativeEndian

type pageChecker struct {
	r        io.ReaderAt
	size     int64
	pageSize int64
	hwm      uint64   // pages below the high-water mark are in use or free
	seen     []uint64 // bitset of pages reached
	nested   bool     // inside a bucket below the root bucket
}

type metaPage struct {
	pageSize                  uint32
	root, freelist, hwm, txid uint64
}

// meta picks the meta page bbolt would: the valid one with the higher txid.
func (c *pageChecker) meta() (metaPage, error) {
	m0, err0 := c.readMeta(0)
	if osError(err0) {
		return metaPage{}, err0
	}
	pageSize := m0.pageSize
	if err0 != nil {
		// Like bbolt, find the second meta page by trying page sizes.
		for i := 0; i <= 14; i++ {
			off := int64(1024) << i
			if off >= c.size-1024 {
				break
			}
			if m, err := c.readMeta(off); err == nil {
				pageSize = m.pageSize
				break
			}
		}
	}
	if pageSize < 1024 || pageSize > 1<<24 || bits.OnesCount32(pageSize) != 1 {
		return metaPage{}, badFile("no valid meta page")
	}
	m1, err1 := c.readMeta(int64(pageSize))
	if osError(err1) {
		return metaPage{}, err1
	}
	if m1.txid > m0.txid {
		m0, err0, m1, err1 = m1, err1, m0, err0
	}
	switch {
	case err0 == nil:
		return m0, nil
	case err1 == nil:
		return m1, nil
	}
	return metaPage{}, badFile("no valid meta page")
}

func (c *pageChecker) readMeta(off int64) (metaPage, error) {
	var b [pageHeaderSize + metaSize]byte
	if err := c.read(b[:], off); err != nil {
		return metaPage{}, err
	}
	p := b[pageHeaderSize:]
	m := metaPage{
		pageSize: ne.Uint32(p[8:]),
		root:     ne.Uint64(p[16:]),
		freelist: ne.Uint64(p[32:]),
		hwm:      ne.Uint64(p[40:]),
		txid:     ne.Uint64(p[48:]),
	}
	h := fnv.New64a()
	h.Write(p[:56])
	if ne.Uint32(p) != boltMagic || ne.Uint32(p[4:]) != boltVersion || ne.Uint64(p[56:]) != h.Sum64() {
		return m, badFile("invalid meta page")
	}
	return m, nil
}

// page reads the header of page id, marks the pages it spans as reached,
// and returns its first page of bytes and the length of its span.
func (c *pageChecker) page(id uint64) (p []byte, span uint64, err error) {
	if id < 2 || id >= c.hwm {
		return nil, 0, badFile("page %d out of range", id)
	}
	p = make([]byte, c.pageSize)
	if err := c.read(p, int64(id)*c.pageSize); err != nil {
		return nil, 0, err
	}
	overflow := uint64(ne.Uint32(p[12:]))
	if ne.Uint64(p) != id || overflow >= c.hwm-id {
		return nil, 0, badFile("page %d: bad header", id)
	}
	for i := id; i <= id+overflow; i++ {
		if !c.mark(i) {
			return nil, 0, badFile("page %d reached twice", i)
		}
	}
	return p, (overflow + 1) * uint64(c.pageSize), nil
}

// mark records page id as reached and reports whether it was new.
func (c *pageChecker) mark(id uint64) bool {
	w, bit := id/64, uint64(1)<<(id%64)
	if c.seen[w]&bit != 0 {
		return false
	}
	c.seen[w] |= bit
	return true
}

// bucketPage checks the tree of branch and leaf pages rooted at page id,
// whose keys must lie in [lo, hi) (nil: unbounded), and returns its first
// and last key. The key order rules are bbolt's (tx_check.go), so a file
// that passes here passes the check bbolt runs when it rebuilds the
// freelist. One rule is stricter: a branch key must equal its child's
// first key. bbolt writes them so, and its updates rely on it: it finds a
// child's entry in the parent by the child's first key, and a mismatch
// leaves a second entry pointing at the freed page.
func (c *pageChecker) bucketPage(id uint64, lo, hi []byte, depth int) (first, last []byte, err error) {
	if depth > maxTreeDepth {
		return nil, nil, badFile("tree too deep at page %d", id)
	}
	p, span, err := c.page(id)
	if err != nil {
		return nil, nil, err
	}
	return c.nodePage(p, span, int64(id)*c.pageSize, lo, hi, depth)
}

// nodePage checks one branch or leaf page: p holds its first bytes (all of
// an inline page), span its length, base its file offset (-1 if inline).
// Keys are slices of p or fresh reads, so they stay valid.
func (c *pageChecker) nodePage(p []byte, span uint64, base int64, lo, hi []byte, depth int) (first, last []byte, err error) {
	flags, count := ne.Uint16(p[8:]), uint64(ne.Uint16(p[10:]))
	if flags != flagBranch && flags != flagLeaf {
		return nil, nil, badFile("page type %#x", flags)
	}
	if pageHeaderSize+count*elemSize > span || (flags == flagBranch && count == 0) {
		return nil, nil, badFile("%d elements on a page of %d bytes", count, span)
	}
	p, err = c.span(p, pageHeaderSize+count*elemSize, base)
	if err != nil {
		return nil, nil, err
	}
	elem := func(i uint64) []byte { return p[pageHeaderSize+i*elemSize:][:elemSize] }
	keyAt := func(i, pos, ksize uint64) ([]byte, error) {
		k, err := c.bytes(p, span, base, pageHeaderSize+i*elemSize+pos, ksize)
		if err == nil && (len(k) == 0 || len(k) > bolt.MaxKeySize) {
			err = badFile("key of %d bytes", len(k))
		}
		return k, err
	}
	if flags == flagBranch {
		keys := make([][]byte, count)
		for i := range count {
			e := elem(i)
			if keys[i], err = keyAt(i, uint64(ne.Uint32(e)), uint64(ne.Uint32(e[4:]))); err != nil {
				return nil, nil, err
			}
		}
		floor := lo
		for i := range count {
			if err := keyOrder(keys[i], i, floor, hi); err != nil {
				return nil, nil, err
			}
			next := hi
			if i+1 < count {
				next = keys[i+1]
			}
			childFirst, childLast, err := c.bucketPage(ne.Uint64(elem(i)[8:]), keys[i], next, depth+1)
			if err != nil {
				return nil, nil, err
			}
			if !bytes.Equal(childFirst, keys[i]) {
				return nil, nil, badFile("branch key differs from its child's first key")
			}
			floor, last = childLast, childLast
		}
		return keys[0], last, nil
	}
	floor := lo
	for i := range count {
		e := elem(i)
		pos, ksize, vsize := uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
		key, err := keyAt(i, pos, ksize)
		if err != nil {
			return nil, nil, err
		}
		if err := keyOrder(key, i, floor, hi); err != nil {
			return nil, nil, err
		}
		if i == 0 {
			first = key
		}
		floor, last = key, key
		off := pageHeaderSize + i*elemSize + pos + ksize
		if vsize > span || off > span-vsize {
			return nil, nil, badFile("value overflows its page")
		}
		if ne.Uint32(e)&leafFlagBucket != 0 {
			if err := c.subBucket(p, span, base, off, vsize, depth); err != nil {
				return nil, nil, err
			}
		}
	}
	return first, last, nil
}

// keyOrder is bbolt's verifyKeyOrder: key i of a page must be above the
// previous one (the first at least the ancestor's), and below hi.
func keyOrder(key []byte, i uint64, prev, hi []byte) error {
	switch {
	case i == 0 && prev != nil && bytes.Compare(prev, key) > 0,
		i > 0 && bytes.Compare(prev, key) >= 0,
		hi != nil && bytes.Compare(key, hi) >= 0:
		return badFile("keys out of order")
	}
	return nil
}

// subBucket checks a bucket stored as a leaf value: a header naming its
// root page, or, for a small inline bucket, followed by the page itself.
func (c *pageChecker) subBucket(p []byte, span uint64, base int64, off, n uint64, depth int) error {
	if n < bucketHeaderSize || c.nested { // the outbox nests no buckets
		return badFile("unexpected bucket")
	}
	v, err := c.bytes(p, span, base, off, n)
	if err != nil {
		return err
	}
	c.nested = true
	defer func() { c.nested = false }()
	if root := ne.Uint64(v); root != 0 {
		_, _, err := c.bucketPage(root, nil, nil, depth+1)
		return err
	}
	inline := v[bucketHeaderSize:]
	if len(inline) < pageHeaderSize {
		return badFile("inline bucket too short")
	}
	_, _, err = c.nodePage(inline, uint64(len(inline)), -1, nil, nil, depth+1)
	return err
}

// bytes returns n bytes at offset off of a page, from p when they lie in
// it, else read from the file.
func (c *pageChecker) bytes(p []byte, span uint64, base int64, off, n uint64) ([]byte, error) {
	if off > span || n > span-off {
		return nil, badFile("element overflows its page")
	}
	if off+n <= uint64(len(p)) {
		return p[off : off+n], nil
	}
	if base < 0 {
		return nil, badFile("element overflows its inline page")
	}
	b := make([]byte, n)
	return b, c.read(b, base+int64(off))
}

// span extends p to at least n bytes of the page at base.
func (c *pageChecker) span(p []byte, n uint64, base int64) ([]byte, error) {
	if n <= uint64(len(p)) {
		return p, nil
	}
	if base < 0 {
		return nil, badFile("element table overflows its inline page")
	}
	q := make([]byte, n)
	return q, c.read(q, base)
}

func osError(err error) bool {
	var fe *fileError
	return err != nil && !errors.As(err, &fe)
}

// read fills b from the file at off. A short read means the file is cut
// short; other errors are the OS's, returned as such (the file may be fine).
func (c *pageChecker) read(b []byte, off int64) error {
	_, err := c.r.ReadAt(b, off)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		return badFile("cut short at %d", off)
	}
	return fmt.Errorf("buffer: %w", err)
}

// freelist checks a synced freelist page (a file last written with freelist
// sync on, e.g. by the bbolt tool): every id must be a page in range that
// the tree does not use.
func (c *pageChecker) freelist(id uint64) error {
	p, span, err := c.page(id)
	if err != nil {
		return err
	}
	if ne.Uint16(p[8:]) != flagFreelist {
		return badFile("freelist page type")
	}
	start, count := uint64(pageHeaderSize), uint64(ne.Uint16(p[10:]))
	if count == 0xFFFF { // the real count is the first element
		count, start = ne.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > (span-start)/8 {
		return badFile("freelist overflows its page")
	}
	ids, err := c.bytes(p, span, int64(id)*c.pageSize, start, count*8)
	if err != nil {
		return err
	}
	for i := uint64(0); i < count; i++ {
		free := ne.Uint64(ids[i*8:])
		if free < 2 || free >= c.hwm || c.seen[free/64]&(1<<(free%64)) != 0 {
			return badFile("freelist holds page %d", free)
		}
	}
	return nil
}
