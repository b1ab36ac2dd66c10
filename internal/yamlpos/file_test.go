package yamlpos

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, size int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Repeat("#\n", size/2)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const max = 64 << 10
	fifo := filepath.Join(dir, "pipe.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		want       string // "" for the file's content
	}{
		{"small", write("small.yaml", 100), ""},
		{"at the limit", write("limit.yaml", max), ""},
		{"past it", write("large.yaml", max+2), ":1:1: larger than 64 KiB"},
		{"a directory", dir, ":1:1: not a regular file (a directory)"},
		{"a named pipe", fifo, ":1:1: not a regular file (a named pipe)"},
		{"a device", "/dev/zero", ":1:1: not a regular file (a device)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.path); err != nil {
				t.Skip(err)
			}
			done := make(chan struct{})
			var data []byte
			var err error
			go func() {
				defer close(done)
				data, err = ReadFile(tc.path, max)
			}()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("ReadFile did not return")
			}
			if tc.want == "" {
				if want, _ := os.ReadFile(tc.path); err != nil || string(data) != string(want) {
					t.Fatalf("got %d bytes, %v; want the file's %d", len(data), err, len(want))
				}
				return
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) != 1 || list[0].Error() != tc.path+tc.want {
				t.Fatalf("got %v, want %s%s as an ErrorList", err, tc.path, tc.want)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := ReadFile(filepath.Join(dir, "nope.yaml"), max)
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Op != "open" || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("got %v, want open's error", err)
		}
	})
}

// TestReadFileBoundsTheRead checks the bound holds where the size taken
// before reading is wrong, as for a file that grows: a file of /proc says
// it is empty, and what is read still stops past max.
func TestReadFileBoundsTheRead(t *testing.T) {
	const p = "/proc/self/maps"
	if fi, err := os.Stat(p); err != nil || fi.Size() != 0 {
		t.Skip("no /proc/self/maps of size 0")
	}
	_, err := ReadFile(p, 100)
	if err == nil || err.Error() != p+":1:1: larger than 100 bytes" {
		t.Fatalf("got %v", err)
	}
	if data, err := ReadFile(p, 1<<20); err != nil || len(data) == 0 {
		t.Fatalf("got %d bytes, %v", len(data), err)
	}
}

func TestSizeString(t *testing.T) {
	for n, want := range map[int64]string{1 << 20: "1 MiB", 4 << 20: "4 MiB", 64 << 10: "64 KiB", 1000: "1000 bytes", 1536 << 10: "1536 KiB"} {
		if got := sizeString(n); got != want {
			t.Errorf("sizeString(%d) = %q, want %q", n, got, want)
		}
	}
}
