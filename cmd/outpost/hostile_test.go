package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// outpost check refuses, at once and by name, a config or rules file that
// is a device, a named pipe, nested too deep or too large; before, a
// config naming /dev/zero was read until memory ran out.
func TestCheckHostileFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	deep := writeFile(t, dir, "deep.yaml", strings.Repeat("[", 40000))
	large := writeFile(t, dir, "large.yaml", validRules+strings.Repeat("#\n", 5<<20/2))
	withRules := func(f string) string {
		return writeFile(t, dir, "gw.yaml", strings.Replace(validConfig, "files: [rules.yaml]", "files: ["+f+"]", 1))
	}
	for _, tc := range []struct {
		name   string
		config func() string
		want   string
	}{
		{"rules file /dev/zero", func() string { return withRules("/dev/zero") }, "/dev/zero:1:1: not a regular file (a device)"},
		{"rules file a pipe", func() string { return withRules(fifo) }, fifo + ":1:1: not a regular file (a named pipe)"},
		{"rules file deep", func() string { return withRules(deep) }, deep + ":1:64: nested deeper than 64 levels"},
		{"rules file large", func() string { return withRules(large) }, large + ":1:1: larger than 1 MiB"},
		{"config /dev/zero", func() string { return "/dev/zero" }, "/dev/zero:1:1: not a regular file (a device)"},
		{"config a pipe", func() string { return fifo }, fifo + ":1:1: not a regular file (a named pipe)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.config()
			if _, err := os.Stat(cfg); err != nil {
				t.Skip(err)
			}
			var out, errOut bytes.Buffer
			done := make(chan int, 1)
			go func() { done <- run([]string{"check", "--config", cfg}, &out, &errOut) }()
			var code int
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("outpost check did not return")
			}
			if code != 2 || !strings.Contains(errOut.String(), tc.want+"\n") {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, errOut.String(), tc.want)
			}
		})
	}
}
