package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/yamlpos"
)

// A config file that is too large, too deep or not a regular file is
// refused before it is parsed, at once, with a positioned error.
func TestLoadRefusesHostileFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "pipe.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"deep", write("deep.yaml", "gateway:\n  id: "+strings.Repeat("[", 40000)), ":2:69: nested deeper than 64 levels"},
		{"5 MiB", write("large.yaml", "gateway: {id: gw-1}\n"+strings.Repeat("#\n", 5<<20/2)), ":1:1: larger than 1 MiB"},
		{"named pipe", fifo, ":1:1: not a regular file (a named pipe)"},
		{"device", "/dev/zero", ":1:1: not a regular file (a device)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.path); err != nil {
				t.Skip(err)
			}
			for _, load := range []func(string) error{
				func(p string) error { _, err := Load(p); return err },
				func(p string) error { _, err := LoadPartial(p, nil); return err },
			} {
				done := make(chan error, 1)
				go func() { done <- load(tc.path) }()
				var err error
				select {
				case err = <-done:
				case <-time.After(30 * time.Second):
					t.Fatal("loading did not return")
				}
				var list yamlpos.ErrorList
				if !errors.As(err, &list) || err.Error() != tc.path+tc.want {
					t.Fatalf("got %v, want %s%s", err, tc.path, tc.want)
				}
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := Load(filepath.Join(dir, "nope.yaml"))
		if err == nil || !strings.HasPrefix(err.Error(), "config: open ") {
			t.Fatalf("got %v", err)
		}
	})
}
