package buffer

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen feeds damaged files to Open: it must never panic or crash, and an
// outbox it opens must work.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed.db")
	o, err := Open(seed, &Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 8 {
		if err := o.Append(batches(telemetry(20, i), alert("a"))); err != nil {
			f.Fatal(err)
		}
	}
	if _, err := o.Delete([]uint64{3, 4}); err != nil {
		f.Fatal(err)
	}
	if err := o.Close(); err != nil {
		f.Fatal(err)
	}
	p, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p)
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, p []byte) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		if err := os.WriteFile(path, p, 0o600); err != nil {
			t.Fatal(err)
		}
		o, err := Open(path, &Options{NoSync: true})
		if err != nil {
			return // an OS error or a newer format; not moved aside, not a crash
		}
		defer o.Close()
		for l := range numLanes {
			es, _ := o.Read(Lane(l), 0, 1000, nil)
			seqs := seqsOf(es)
			if _, err := o.Delete(append(seqs, 3)); err != nil {
				t.Logf("Delete: %v", err)
			}
		}
		if err := o.Append(batches(telemetry(5, 1))); err != nil {
			t.Logf("Append: %v", err)
		}
	})
}
