package buffer

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
)

// freelistType is bbolt's array freelist: first fit, so it keeps runs of
// free pages whole, where the hashmap one splits any larger run for a
// small allocation. In this layout every node is one page (chunkSize),
// but a version 1 file holds leaves of several pages until its batches
// are gone.
var freelistType = bolt.FreelistArrayType

const (
	lockTimeout   = time.Second
	compactSuffix = ".compact"
	compactTxMax  = 64 << 20 // bytes copied per transaction while compacting
)

// state is what Open learns from the file.
type state struct {
	epoch, next uint64
	batches     [numLanes]int
	bytes       [numLanes]int64
	counters    Counters
	created     bool
}

// openFile opens the file and loads its state into o. Unless read-only, a
// corrupt file is moved aside and a new one created in its place.
func (o *Outbox) openFile() (state, error) {
	if !o.readOnly {
		// Left by a compaction that did not finish; the file itself is whole.
		// ENOTDIR: no directory, so no file either; opening it says so.
		err := os.Remove(o.path + compactSuffix)
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return state{}, pathError("remove the unfinished compaction of", o.path, err)
		}
	}
	db, st, err := openDB(o.path, o.readOnly, o.noSync, o.log)
	if fe := (*fileError)(nil); errors.As(err, &fe) && !o.readOnly {
		aside, mvErr := moveAside(o.path, o.now())
		if mvErr != nil {
			return state{}, asideError(o.path, fe.reason, mvErr)
		}
		o.log.Error().Str(keyPath, o.path).Str(keyMovedTo, aside).Str(keyReason, fe.reason).
			Msg("outbox file is corrupt: moved aside, starting a new epoch; batches in it will not be sent")
		db, st, err = openDB(o.path, false, o.noSync, o.log)
	}
	if err != nil {
		if fe := (*fileError)(nil); errors.As(err, &fe) {
			return state{}, fmt.Errorf("buffer: %s: %v", o.path, fe)
		}
		return state{}, err
	}
	o.setDB(db, st)
	return st, nil
}

// setDB makes db the outbox's file, with the state loaded from it. The
// counters since Open are kept.
func (o *Outbox) setDB(db *bolt.DB, st state) {
	o.db, o.epoch, o.next = db, st.epoch, st.next
	o.page = int64(db.Info().PageSize)
	o.chunk = chunkSize(o.page)
	if !o.readOnly {
		db.AllocSize = o.lim.allocSize
	}
	o.heads = [numLanes]head{}
	o.stats = Stats{Epoch: st.epoch, NextSeq: st.next, Batches: st.batches, Bytes: st.bytes,
		Counters: o.stats.Counters, Persisted: st.counters}
	if size, err := fileSize(o.path); err == nil {
		o.stats.FileBytes = size
	}
	err := o.view(func(tx *bolt.Tx) error {
		for l := range numLanes {
			if b := tx.Bucket(laneBuckets[l]); b != nil {
				o.stats.OldestCreated[l], _, _ = o.headCreated(b, Lane(l), nil)
			}
		}
		return nil
	})
	if err != nil {
		o.log.Error().Err(err).Str(keyPath, o.path).Msg("reading the oldest batches")
	}
}

// openDB opens the outbox file at path and loads its state. An error of
// type *fileError means the file's content is unusable.
func openDB(path string, readOnly, noSync bool, log zerolog.Logger) (*bolt.DB, state, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !readOnly:
	case err != nil:
		return nil, state{}, pathError("open", path, err)
	case fi.IsDir():
		return nil, state{}, pathError("open", path, syscall.EISDIR)
	case !fi.Mode().IsRegular():
		// Never moved aside as corrupt: it is not ours (and opening a
		// FIFO would block).
		return nil, state{}, fmt.Errorf("buffer: open outbox %s: not a regular file", path)
	case fi.Size() == 0 && !readOnly:
		// A kill between creating the file and bbolt's first write leaves
		// it empty. It holds nothing to keep: start it anew, quietly
		// enough not to look like corruption.
		log.Warn().Str(keyPath, path).Msg("outbox file is empty (a crash while it was created?); starting a new one")
		if err := os.Remove(path); err != nil {
			return nil, state{}, pathError("remove empty", path, err)
		}
	case fi.Size() == 0:
		return nil, state{}, badFile("empty file")
	default:
		if err := precheck(path); err != nil {
			return nil, state{}, err
		}
	}
	db, err := openBolt(path, bolt.Options{
		Timeout:        lockTimeout,
		ReadOnly:       readOnly,
		FreelistType:   freelistType,
		NoFreelistSync: true, // faster commits; bbolt rebuilds the freelist on open
		NoSync:         noSync,
	})
	if err != nil {
		return nil, state{}, err
	}
	var st state
	if readOnly {
		st, err = loadReadOnly(db)
	} else {
		st, err = load(db, log)
	}
	if err != nil {
		if cerr := db.Close(); cerr != nil {
			log.Error().Err(cerr).Str(keyPath, path).Msg("close after failed load")
		}
		if fe := (*FormatError)(nil); errors.As(err, &fe) {
			fe.Path = path
		}
		return nil, state{}, err
	}
	if st.created {
		// bbolt syncs the file, not the directory entry that names it.
		if err := syncDir(filepath.Dir(path)); err != nil {
			log.Warn().Err(err).Str(keyPath, path).Msg("sync directory of new outbox file")
		}
	}
	return db, st, nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// openBolt opens the bbolt file, classifying failures: a lock timeout is a
// *LockedError, an OS error a pathError, anything about the content (bad
// meta page, short file, a panic or memory fault while bbolt reads it) a
// fileError.
func openBolt(path string, bo bolt.Options) (db *bolt.DB, err error) {
	var f *os.File
	bo.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		var err error
		f, err = os.OpenFile(name, flag, perm)
		return f, err
	}
	defer func() {
		if r := recover(); r != nil {
			if f != nil {
				f.Close() // release the lock; the mapping leaks until exit
			}
			db, err = nil, badFile("bbolt panicked opening it: %v", r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))

	db, err = bolt.Open(path, 0o600, &bo)
	var pe *fs.PathError
	var errno syscall.Errno
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolt.ErrTimeout):
		return nil, &LockedError{Path: path, PID: lockHolder(path)}
	case errors.As(err, &pe), errors.As(err, &errno):
		return nil, pathError("open", path, err)
	}
	return nil, badFile("%v", err)
}

// precheck checks an existing file's pages (checkPages) under bbolt's
// shared lock, before bbolt opens it for writing: the read-write open walks
// every page in a goroutine of its own, where a damaged page would crash or
// hang the process.
func precheck(path string) (err error) {
	db, err := openBolt(path, bolt.Options{Timeout: lockTimeout, ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("buffer: close %s after check: %w", path, cerr)
		}
	}()
	// bbolt holds a shared lock now: no writer changes the file under us.
	f, err := os.Open(path)
	if err != nil {
		return pathError("check", path, err)
	}
	defer f.Close() // read-only: nothing to lose on close
	fi, err := f.Stat()
	if err != nil {
		return pathError("check", path, err)
	}
	if err := checkPages(f, fi.Size()); err != nil {
		return err
	}
	// A file of a newer format is refused before bbolt opens it for
	// writing: it stays byte for byte as the newer build left it.
	if v := fileVersion(db); v > formatVersion {
		return &FormatError{Path: path, Version: v, Supported: formatVersion}
	}
	return nil
}

// fileVersion reads the format version from the meta bucket of a file
// whose pages passed checkPages; 0 when it has none (load then judges
// the file).
func fileVersion(db *bolt.DB) (v uint64) {
	defer func() {
		if recover() != nil {
			v = 0
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	_ = db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			v = getUint(meta, metaVersion)
		}
		return nil
	})
	return v
}

// load initialises a new file or reads an existing one's meta and counts
// its entries. It repairs what it safely can: it deletes entries whose key
// or value is malformed, and moves the next seq past the highest stored.
func load(db *bolt.DB, log zerolog.Logger) (st state, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = badFile("bbolt panicked loading it: %v", r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if k, _ := tx.Cursor().First(); k != nil {
				return badFile("no meta bucket but bucket %q", k)
			}
			return create(tx, &st)
		}
		if err := readMeta(meta, &st); err != nil {
			return err
		}
		// Version 1 files are version 2 files without chunks: mark them 2
		// before chunks are written, so that an older build refuses them.
		dirty := getUint(meta, metaVersion) < formatVersion
		if dirty {
			if err := meta.Put(metaVersion, putKey(nil, formatVersion)); err != nil {
				return err
			}
		}
		for l := range numLanes {
			fixed, err := countLane(tx, Lane(l), &st, true, log)
			if err != nil {
				return err
			}
			dirty = dirty || fixed
		}
		if st.next == 0 { // the highest seq was MaxUint64
			return badFile("seq space exhausted")
		}
		if prev := getUint(meta, metaNextSeq); st.next != prev {
			log.Warn().Uint64(keyNextSeq, prev).Uint64(keyFixedNextSeq, st.next).Msg("next seq behind stored batches: moved forward")
			if err := meta.Put(metaNextSeq, putKey(nil, st.next)); err != nil {
				return err
			}
			dirty = true
		}
		if !dirty {
			return errNothing // nothing changed: skip the commit's fsync
		}
		return nil
	})
	if errors.Is(err, errNothing) {
		err = nil
	}
	return st, err
}

// loadReadOnly reads an existing file's state without changing it:
// malformed entries are left out of the counts, not deleted.
func loadReadOnly(db *bolt.DB) (st state, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = badFile("bbolt panicked loading it: %v", r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return badFile("no meta bucket")
		}
		if err := readMeta(meta, &st); err != nil {
			return err
		}
		for l := range numLanes {
			if _, err := countLane(tx, Lane(l), &st, false, zerolog.Nop()); err != nil {
				return err
			}
		}
		if st.next == 0 {
			return badFile("seq space exhausted")
		}
		return nil
	})
	return st, err
}

// create lays out a new file.
func create(tx *bolt.Tx, st *state) error {
	epoch, err := newEpoch()
	if err != nil {
		return err
	}
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return err
	}
	for _, name := range laneBuckets {
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	for _, kv := range [...]struct {
		k []byte
		v uint64
	}{{metaVersion, formatVersion}, {metaEpoch, epoch}, {metaNextSeq, 1}} {
		if err := meta.Put(kv.k, putKey(nil, kv.v)); err != nil {
			return err
		}
	}
	*st = state{epoch: epoch, next: 1, created: true}
	return nil
}

func readMeta(meta *bolt.Bucket, st *state) error {
	for _, k := range [][]byte{metaVersion, metaEpoch, metaNextSeq} {
		if v := meta.Get(k); len(v) != 8 {
			return badFile("meta %s is %d bytes", k, len(v))
		}
	}
	switch v := getUint(meta, metaVersion); {
	case v > formatVersion:
		// Written by a newer build: refuse rather than discard its data.
		// (precheck finds it first; openDB names the file.)
		return &FormatError{Version: v, Supported: formatVersion}
	case v < 1:
		return badFile("format version %d", v)
	}
	st.epoch, st.next = getUint(meta, metaEpoch), getUint(meta, metaNextSeq)
	if st.epoch == 0 || st.next == 0 {
		return badFile("zero epoch or next seq")
	}
	for i, p := range st.counters.fields() {
		*p = int64(getUint(meta, metaCounters[i])) // absent: 0
	}
	return nil
}

// countLane adds a lane's entries to st and raises st.next past the
// highest seq. With repair it deletes malformed entries (a key of another
// length, a chunk without its first, a value shorter than its CRC) and
// reports whether it did; else it leaves them out of the counts. It reads
// keys and sizes, not values.
func countLane(tx *bolt.Tx, lane Lane, st *state, repair bool, log zerolog.Logger) (bool, error) {
	b := tx.Bucket(laneBuckets[lane])
	if b == nil {
		return false, badFile("%s bucket missing", lane)
	}
	var badKeys [][]byte
	var badSeqs []uint64
	var seq uint64
	var size int64
	open := false
	flush := func() {
		switch {
		case !open:
		case size < crcLen:
			badSeqs = append(badSeqs, seq)
		default:
			st.batches[lane]++
			st.bytes[lane] += size
			if seq >= st.next {
				st.next = seq + 1
			}
		}
		open = false
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		switch {
		case v == nil:
			return false, badFile("bucket nested in %s lane", lane)
		case len(k) == keyLen:
			flush()
			seq, size, open = binary.BigEndian.Uint64(k), int64(len(v)), true
		case len(k) == chunkKeyLen && open && binary.BigEndian.Uint64(k) == seq:
			size += int64(len(v))
		default:
			badKeys = append(badKeys, bytes.Clone(k))
		}
	}
	flush()
	if !repair || len(badKeys)+len(badSeqs) == 0 {
		return false, nil
	}
	for _, k := range badKeys {
		if err := b.Delete(k); err != nil {
			return false, err
		}
	}
	for _, seq := range badSeqs {
		if _, _, err := deleteEntry(b, seq); err != nil {
			return false, err
		}
	}
	log.Error().Str(keyLane, lane.String()).Int(keyDropped, len(badKeys)+len(badSeqs)).
		Msg("malformed entries in outbox: deleted")
	return true, nil
}

func getUint(b *bolt.Bucket, k []byte) uint64 {
	if v := b.Get(k); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func newEpoch() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("buffer: new epoch: %w", err)
		}
		if e := binary.BigEndian.Uint64(b[:]); e != 0 {
			return e, nil
		}
	}
}

// moveAside renames a corrupt file to <path>.corrupt-<UTC time>, adding a
// counter rather than overwrite an earlier one, and returns the new name.
// Its errors are the OS's, without the paths (see asideError).
func moveAside(path string, now time.Time) (string, error) {
	base := path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	aside := base
	for i := 1; ; i++ {
		_, err := os.Lstat(aside)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			_, reason := osReason(err)
			return "", reason
		}
		if i > 1000 {
			return "", fmt.Errorf("too many files named %s.N", base)
		}
		aside = fmt.Sprintf("%s.%d", base, i)
	}
	// The directory is synced when the new file is created in its place.
	if err := os.Rename(path, aside); err != nil {
		_, reason := osReason(err)
		return "", reason
	}
	return aside, nil
}

// asideError says that the outbox file at path is damaged (why) and
// could not be moved aside (err, from moveAside). It wraps err, like
// pathError.
func asideError(path, why string, err error) error {
	return fmt.Errorf("buffer: outbox %s is damaged (%s) and cannot be moved aside: %w", path, why, matchMore(err))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}
