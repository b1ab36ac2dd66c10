package rules

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/yamlpos"
)

// loadPromptly runs LoadFiles with a generous guard: a refused file must
// not be read forever.
func loadPromptly(t *testing.T, paths ...string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := LoadFiles(paths...); done <- err }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("LoadFiles did not return")
		return nil
	}
}

// A rules file that is too large, too deep or not a regular file is
// refused before it is parsed, with a positioned error among the others.
func TestLoadFilesRefusesHostileFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "rules:\n  - {name: hot, select: {metric: t}, above: 30}\n")
	bad := write("bad.yaml", "rules:\n  - {name: cold, select: {metric: t}, below: cold}\n")
	fifo := filepath.Join(dir, "pipe.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"deep", write("deep.yaml", strings.Repeat("[", 40000)), ":1:64: nested deeper than 64 levels"},
		{"deep rule", write("deeprule.yaml", "rules:\n  - name: "+strings.Repeat("{a: ", 40000)), ":2:255: nested deeper than 64 levels"},
		{"wide", write("wide.yaml", "rules:\n  - name: x\n"+strings.Repeat("    labels: {}\n", yamlpos.MaxKeys+1)), ":1002:5: a mapping with more than 1000 keys"},
		{"5 MiB", write("large.yaml", strings.Repeat("#\n", 5<<20/2)), ":1:1: larger than 1 MiB"},
		{"named pipe", fifo, ":1:1: not a regular file (a named pipe)"},
		{"device", "/dev/zero", ":1:1: not a regular file (a device)"},
		{"directory", dir, ":1:1: not a regular file (a directory)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.path); err != nil {
				t.Skip(err)
			}
			err := loadPromptly(t, good, tc.path, bad)
			var list yamlpos.ErrorList
			if !errors.As(err, &list) || len(list) != 3 {
				t.Fatalf("got %v, want three positioned errors", err)
			}
			if got := err.Error(); !strings.Contains(got, tc.path+tc.want) || !strings.Contains(got, bad+":2:") {
				t.Fatalf("got\n%v\nwant %s%s and the other file's error", got, tc.path, tc.want)
			}
		})
	}
}

// TestLoadDeepFileAllocs measures what refusing the file that took a
// gateway down costs: a scan of its 40000 bytes, not a parse (go-yaml
// takes gigabytes for it; see yamlpos.TestShapeAllocs for the trend).
func TestLoadDeepFileAllocs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "deep.yaml")
	if err := os.WriteFile(p, []byte(strings.Repeat("[", 40000)), 0o644); err != nil {
		t.Fatal(err)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	_, err := LoadFile(p)
	runtime.ReadMemStats(&m1)
	if err == nil {
		t.Fatal("loaded")
	}
	alloc := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("refusing %s allocated %d bytes (the file is 40000)", filepath.Base(p), alloc)
	if alloc > 1<<20 {
		t.Errorf("refusing the deep file allocated %d bytes, want < 1 MiB", alloc)
	}
}
