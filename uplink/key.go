package uplink

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/outposthq/outpost"
)

// A key file (uplink.auth_key_file) holds the gateway's key as one line
// of 64 hex digits (base64 is read too), readable by the gateway's user
// only. The gateway creates it at its first start; the ingest service
// needs a copy (outpost key show).

// maxKeyFile bounds a key file: it holds one short line.
const maxKeyFile = 4 << 10

// LoadKey reads the key in the file name and returns it with the file's
// permission bits (a caller warns when its group may read or write it).
// It refuses a file that other users may read or write, and one that
// holds no key; its errors never show what the file holds.
func LoadKey(name string) (outpost.Key, fs.FileMode, error) {
	k, perm, _, err := loadKey(name)
	return k, perm, err
}

// loadKey is LoadKey that also reports an empty file (empty true, with
// an error).
func loadKey(name string) (k outpost.Key, perm fs.FileMode, empty bool, err error) {
	fail := func(format string, args ...any) (outpost.Key, fs.FileMode, bool, error) {
		return outpost.Key{}, perm, empty, fmt.Errorf("uplink: key file %s: "+format, append([]any{name}, args...)...)
	}
	// Stat first: opening a FIFO would wait for a writer.
	fi, err := os.Stat(name)
	switch {
	case err != nil:
		return outpost.Key{}, 0, false, fmt.Errorf("uplink: key file: %w", err)
	case !fi.Mode().IsRegular():
		return fail("not a regular file")
	case fi.Size() > maxKeyFile:
		return fail("larger than %d bytes: it holds one line, the key", maxKeyFile)
	}
	perm = fi.Mode().Perm()
	if runtime.GOOS != "windows" && perm&0o007 != 0 {
		return fail("other users may read or write it (mode %#o): chmod 600 it, and make a new key if someone may have read it", perm)
	}
	f, err := os.Open(name)
	if err != nil {
		return outpost.Key{}, perm, false, fmt.Errorf("uplink: key file: %w", err)
	}
	defer f.Close() // read-only: nothing to flush
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return outpost.Key{}, perm, false, fmt.Errorf("uplink: key file: %w", err)
	}
	if len(b) == 0 {
		empty = true
		return fail("empty")
	}
	if k, err = outpost.ParseKey(b); err != nil {
		return fail("%v", err)
	}
	return k, perm, false, nil
}

// CreateKey writes a new random key to the file name, which must not
// exist yet (fs.ErrExist), in a directory that does: mode 0600, as 64
// hex digits and a newline, synced to disk with the directory entry
// before it returns. The key is written and synced under a temporary
// name and then linked to name, so nobody ever reads name half written:
// two gateways started at once on one file end up with one key.
func CreateKey(name string) (outpost.Key, error) {
	k := outpost.NewKey()
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".new-*")
	if err != nil {
		return outpost.Key{}, fmt.Errorf("uplink: create key file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the link, or on failure: name keeps the key
	werr := f.Chmod(0o600)
	if werr == nil {
		_, werr = io.WriteString(f, k.Hex()+"\n")
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		// link(2) fails with EEXIST when name exists: a create-if-absent
		// that publishes the whole file at once.
		if werr = os.Link(tmp, name); werr != nil {
			var le *os.LinkError
			if errors.As(werr, &le) {
				werr = le.Err
			}
			if errors.Is(werr, fs.ErrExist) {
				return outpost.Key{}, fmt.Errorf("uplink: create key file %s: %w", name, fs.ErrExist)
			}
		}
	}
	if werr == nil {
		werr = syncDir(dir)
	}
	if werr != nil {
		return outpost.Key{}, fmt.Errorf("uplink: create key file: %w", werr)
	}
	return k, nil
}

// LoadOrCreateKey loads the key file name (LoadKey) or, when there is
// none, creates it (CreateKey): created says which. An empty file is
// replaced by a new key: it is what a power cut leaves of a creation
// before the key reached the disk, so nobody can have copied that key.
func LoadOrCreateKey(name string) (k outpost.Key, perm fs.FileMode, created bool, err error) {
	k, perm, empty, err := loadKey(name)
	switch {
	case err == nil:
		return k, perm, false, nil
	case empty:
		if rerr := os.Remove(name); rerr != nil {
			return outpost.Key{}, perm, false, fmt.Errorf("uplink: key file %s: empty, and cannot be replaced: %w", name, rerr)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return outpost.Key{}, perm, false, err
	}
	k, err = CreateKey(name)
	if errors.Is(err, fs.ErrExist) {
		// Created meanwhile by someone else: that one is the key.
		k, perm, err = LoadKey(name)
		return k, perm, false, err
	}
	return k, 0o600, err == nil, err
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for Sync there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	if cerr := d.Close(); serr == nil {
		serr = cerr
	}
	return serr
}
