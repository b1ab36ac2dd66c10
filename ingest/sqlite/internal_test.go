package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
)

// The reader pool cannot write: a statement that would is refused.
func TestReadersQueryOnly(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "ingest.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.r.Exec(`DELETE FROM batches`); err == nil {
		t.Fatal("a reader connection deleted rows")
	}
}
