package sqlite_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/sqlite"
	"github.com/outposthq/outpost/ingest/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sqlite.Open(ctx, path, zerolog.Nop())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ingest.Store {
		return open(t, filepath.Join(t.TempDir(), "ingest.db"))
	})
}

// TestReopen checks that the schema is idempotent and data survives.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingest.db")
	s := open(t, path)
	b := storetest.Telemetry("gw", 1, 1, storetest.Series("s", "t", storetest.T0, time.Second, 3, 0)...)
	if _, err := s.Commit(context.Background(), b, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()
	dup, err := s.Commit(context.Background(), b, 1)
	if err != nil || !dup {
		t.Fatalf("commit after reopen: dup %v, err %v; want a duplicate", dup, err)
	}
}

func TestOpenRejects(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "a?b.db")} {
		if s, err := sqlite.Open(context.Background(), p, zerolog.Nop()); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		} else if !strings.HasPrefix(err.Error(), "sqlite: ") {
			t.Errorf("Open(%q) error %q lacks the package prefix", p, err)
		}
	}
}

func TestOpenMissingDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no", "such", "dir", "x.db")
	if s, err := sqlite.Open(context.Background(), p, zerolog.Nop()); err == nil {
		s.Close()
		t.Fatal("Open in a missing directory succeeded")
	}
}

func BenchmarkCommit(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	defer s.Close()
	storetest.BenchCommit(b, s)
}

func BenchmarkCommitParallel(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	defer s.Close()
	storetest.BenchCommitParallel(b, s)
}
