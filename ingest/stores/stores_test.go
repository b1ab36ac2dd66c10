package stores_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/ingest/stores"
)

func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	for _, dsn := range []string{"sqlite:" + filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")} {
		s, err := stores.Open(context.Background(), dsn, zerolog.Nop())
		if err != nil {
			t.Fatalf("Open(%q): %v", dsn, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	for _, dsn := range []string{"", "mysql://u@h/db", "redis:6379", "file:x.db"} {
		s, err := stores.Open(context.Background(), dsn, zerolog.Nop())
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if !strings.Contains(err.Error(), "want postgres://") && !strings.HasPrefix(err.Error(), "sqlite: ") {
			t.Errorf("Open(%q): unclear error %q", dsn, err)
		}
	}
}
