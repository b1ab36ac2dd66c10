package ruletest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A test file that is too large, too deep or not a regular file is
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
	fifo := filepath.Join(dir, "pipe.test.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, want string }{
		{"deep", write("deep.test.yaml", "rule_files: "+strings.Repeat("[", 40000)), ":1:76: nested deeper than 64 levels"},
		{"5 MiB", write("large.test.yaml", strings.Repeat("#\n", 5<<20/2)), ":1:1: larger than 1 MiB"},
		{"named pipe", fifo, ":1:1: not a regular file (a named pipe)"},
		{"device", "/dev/zero", ":1:1: not a regular file (a device)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.path); err != nil {
				t.Skip(err)
			}
			done := make(chan error, 1)
			go func() { _, err := Load(tc.path); done <- err }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Load did not return")
			}
			if err == nil || err.Error() != tc.path+tc.want {
				t.Fatalf("got %v, want %s%s", err, tc.path, tc.want)
			}
		})
	}
}
