package buffer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// maintainOrMoveAside runs maintain; should it find damage that the page
// check let through (ErrCorrupt), the file is moved aside like one that
// failed the check, and a new one opened.
func (o *Outbox) maintainOrMoveAside(st state) (state, error) {
	err := o.maintain()
	if errors.Is(err, ErrCorrupt) {
		if cerr := o.db.Close(); cerr != nil {
			return st, fmt.Errorf("buffer: %s: close: %w", o.path, cerr)
		}
		aside, mvErr := moveAside(o.path, o.now())
		if mvErr != nil {
			return st, asideError(o.path, strings.TrimPrefix(err.Error(), "buffer: "), mvErr)
		}
		o.log.Error().Str(keyPath, o.path).Str(keyMovedTo, aside).Str(keyReason, err.Error()).
			Msg("outbox file is corrupt: moved aside, starting a new epoch; batches in it will not be sent")
		o.stats.Counters = Counters{}
		var db *bolt.DB
		if db, st, err = openDB(o.path, false, o.noSync, o.log); err != nil {
			return st, err
		}
		o.setDB(db, st)
		err = o.maintain()
	}
	if err != nil {
		if cerr := o.db.Close(); cerr != nil {
			o.log.Error().Err(cerr).Str(keyPath, o.path).Msg("close after failed open")
		}
		return st, err
	}
	return st, nil
}

// maintain applies the caps to the file just opened, before o is shared:
// it evicts what is past MaxAge or beyond a cap that was lowered, with the
// loss records, and compacts a file larger than its hard limit (bbolt
// never shrinks a file).
func (o *Outbox) maintain() error {
	size, err := fileSize(o.path)
	if err != nil {
		return pathError("open", o.path, err)
	}
	over := size > o.lim.fileHard
	if !over {
		// An oversized file may need pages past the limit to evict at all.
		o.db.MaxSize = int(o.lim.fileHard)
	}
	if err := o.write(o.maintainTx); err != nil && !errors.Is(err, errNothing) {
		return fmt.Errorf("buffer: open: %w", err)
	}
	if c := o.stats.Counters; c != (Counters{}) {
		o.log.Warn().Int64(keyEvicted, c.Evicted).Int64(keyEvictedReadings, c.EvictedReadings).
			Int64(keyEvictedAlerts, c.EvictedAlerts).Int64(keyCorrupt, c.Corrupt).
			Msg("outbox caps applied at open: evicted batches past max age or over the caps; loss records stored")
	}
	if over {
		if err := o.compact(size); err != nil {
			return err
		}
	}
	o.db.MaxSize = int(o.lim.fileHard)
	return nil
}

// compact rewrites the file densely into <path>.compact, syncs it, renames
// it over the file and syncs the directory, so a crash leaves one whole
// file, then reopens it. A failed copy (a full disk) is logged and the
// large file kept.
func (o *Outbox) compact(size int64) error {
	tmp := o.path + compactSuffix
	if err := compactInto(o.db, tmp, o.lim.allocSize); err != nil {
		o.log.Error().Err(err).Str(keyPath, o.path).Int64(keyFileBytes, size).
			Msg("compacting the outbox file failed: it stays larger than its cap")
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			o.log.Error().Err(rerr).Str(keyPath, tmp).Msg("remove")
		}
		return nil
	}
	if err := os.Rename(tmp, o.path); err != nil {
		return pathError("compact", o.path, err)
	}
	if err := syncDir(filepath.Dir(o.path)); err != nil {
		return pathError("compact", o.path, err)
	}
	if err := o.db.Close(); err != nil {
		return fmt.Errorf("buffer: compact outbox %s: close: %w", o.path, err)
	}
	db, st, err := openDB(o.path, false, o.noSync, o.log)
	if err != nil {
		return fmt.Errorf("buffer: reopen after compaction: %w", err)
	}
	o.setDB(db, st)
	o.log.Warn().Str(keyPath, o.path).Int64(keyCompactedFrom, size).Int64(keyFileBytes, o.stats.FileBytes).
		Msg("outbox file was larger than its cap: compacted")
	return nil
}

func compactInto(src *bolt.DB, path string, allocSize int) (err error) {
	dst, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout, NoSync: true,
		NoFreelistSync: true, FreelistType: freelistType, PageSize: src.Info().PageSize})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
	}()
	dst.AllocSize = allocSize
	if err := bolt.Compact(dst, src, compactTxMax); err != nil {
		return err
	}
	return dst.Sync()
}
