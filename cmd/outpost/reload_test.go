package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/testenv"
)

// SIGHUP to a running `outpost run` reloads the rules.
func TestSIGHUPReloadsRules(t *testing.T) {
	// Caught here too, so that a SIGHUP sent before Serve listens cannot
	// end the test process.
	guard := make(chan os.Signal, 16)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	dir := t.TempDir()
	cfg := writeFile(t, dir, "gw.yaml", validConfig)
	writeFile(t, dir, "rules.yaml", validRules)
	m := &Main{}
	logs := &testenv.Buffer{}
	err := m.ParseFlags([]string{"--config", cfg, "--broker", "tcp://127.0.0.1:1", "--data-dir", filepath.Join(dir, "data"), "--log-format", "console"}, io.Discard, logs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan os.Signal)
	go func() { done <- m.Serve(sigs) }()
	deadline := time.Now().Add(15 * time.Second)
	for m.Gateway.Stats().RuleReloads == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no reload after SIGHUP")
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sigs <- syscall.SIGTERM
	if s := <-done; s != syscall.SIGTERM {
		t.Errorf("Serve returned %v, want SIGTERM", s)
	}
	cancel()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "SIGHUP: reloading the rules") {
		t.Errorf("no SIGHUP log line:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "rule stats since start") {
		t.Errorf("no rule stats line at shutdown:\n%s", logs.String())
	}
}
