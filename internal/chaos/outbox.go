package chaos

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
)

// OutboxState is what an outbox file held when its gateway was dead.
type OutboxState struct {
	Path     string
	Size     int64 // of the file
	Epoch    uint64
	NextSeq  uint64 // every seq below it was committed at some point
	Stored   []uint64
	Sums     map[uint64][sha256.Size]byte // of each stored batch's bytes
	Readings []Row                        // of the stored telemetry batches
	Logged   string                       // what buffer.Open logged at warn or above
	Err      error                        // the file could not be opened or read
	// Unmade: the run died before its outbox's first transaction
	// committed, leaving bbolt's empty layout. There is nothing to check
	// (opening it would make a new outbox, with an epoch of its own).
	Unmade bool
}

// copyOutbox copies the outbox file of a dead gateway to dst, so that it
// can be read later without touching the gateway's own file. It returns
// false if there is no file yet.
func copyOutbox(src, dst string) (bool, error) {
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("chaos: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return false, fmt.Errorf("chaos: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return false, fmt.Errorf("chaos: copy outbox: %w", err)
	}
	if err := out.Close(); err != nil {
		return false, fmt.Errorf("chaos: copy outbox: %w", err)
	}
	return true, nil
}

// unmade reports whether the bbolt file at path holds no bucket at all:
// it was created, and killed before the outbox's first transaction (its
// meta and lanes) committed. A file bbolt cannot open is not unmade:
// buffer.Open judges it.
func unmade(path string) bool {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return false
	}
	defer db.Close()
	empty := false
	_ = db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Cursor().First()
		empty = k == nil
		return nil
	})
	return empty
}

// readOutbox opens the outbox file at path with the buffer package, the
// way a restarting gateway would (Open may repair the file, or move it
// aside if it is damaged, so give it a copy), and reads everything in it.
func readOutbox(path string) *OutboxState {
	st := &OutboxState{Path: path, Sums: make(map[uint64][sha256.Size]byte)}
	if fi, err := os.Stat(path); err == nil {
		st.Size = fi.Size()
	}
	if st.Size == 0 || unmade(path) {
		st.Unmade = true
		return st
	}
	var logged bytes.Buffer
	ob, err := buffer.Open(path, &buffer.Options{Logger: zerolog.New(&logged).Level(zerolog.WarnLevel)})
	defer func() { st.Logged = logged.String() }()
	if err != nil {
		st.Err = err
		return st
	}
	defer func() {
		if err := ob.Close(); err != nil && st.Err == nil {
			st.Err = err
		}
	}()
	s := ob.Stats()
	st.Epoch, st.NextSeq = s.Epoch, s.NextSeq
	var rs []outpost.Reading
	for _, lane := range []buffer.Lane{buffer.LaneAlert, buffer.LaneTelemetry} {
		var after uint64
		for {
			es, err := ob.Read(lane, after, 256, nil)
			if err != nil {
				st.Err = fmt.Errorf("chaos: read %s lane of %s: %w", lane, filepath.Base(path), err)
				return st
			}
			if len(es) == 0 {
				break
			}
			for _, e := range es {
				after = e.Seq
				st.Stored = append(st.Stored, e.Seq)
				st.Sums[e.Seq] = contentSum(e.Data)
				b, err := outpost.DecodeBatch(e.Data)
				if err != nil {
					st.Err = fmt.Errorf("chaos: stored batch %d of %s: %w", e.Seq, filepath.Base(path), err)
					return st
				}
				if b.Epoch != st.Epoch || b.Seq != e.Seq {
					st.Err = fmt.Errorf("chaos: stored batch %d of %s names epoch %x seq %d", e.Seq, filepath.Base(path), b.Epoch, b.Seq)
					return st
				}
				if b.Kind != outpost.KindTelemetry {
					continue
				}
				rs = b.AppendReadings(rs[:0])
				for _, r := range rs {
					st.Readings = append(st.Readings, Row{Sensor: r.Sensor, Metric: r.Metric, TS: r.TS, Value: r.Value})
				}
			}
		}
	}
	return st
}
