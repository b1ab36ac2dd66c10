package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/config"
)

const minimalConfig = `gateway: {id: gw-new}
sensors:
  - id: s1
    driver: sim
    metrics: [{name: temperature, signal: {kind: constant, value: 20}}]
uplink: {broker: "tcp://127.0.0.1:1"}
`

// A New that fails returns no gateway and a StartError naming the part,
// and leaves nothing open: the outbox can be opened again at once, and
// goleak (TestMain) finds no goroutine left.
func TestNewFailsCleanly(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, cfg *config.Config)
		part   string
		is     error
	}{
		{
			name: "data dir under a file",
			change: func(t *testing.T, cfg *config.Config) {
				f := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(f, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				cfg.DataDir = filepath.Join(f, "data")
			},
			part: PartDataDir, is: syscall.ENOTDIR,
		},
		{
			name: "outbox locked",
			change: func(t *testing.T, cfg *config.Config) {
				if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
					t.Fatal(err)
				}
				ob, err := buffer.Open(filepath.Join(cfg.DataDir, OutboxFile), &buffer.Options{NoSync: true})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if err := ob.Close(); err != nil {
						t.Error(err)
					}
				})
			},
			part: PartOutbox, is: buffer.ErrLocked,
		},
		{
			// After the outbox is open: it must be closed again.
			name: "uplink fails after the outbox opened",
			change: func(t *testing.T, cfg *config.Config) {
				cfg.Uplink.PasswordFile = filepath.Join(t.TempDir(), "gone")
			},
			part: PartUplink, is: os.ErrNotExist,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg, err := config.Parse(filepath.Join(dir, "gw.yaml"), []byte(minimalConfig))
			if err != nil {
				t.Fatal(err)
			}
			c.change(t, cfg)
			g, err := New(cfg, nil)
			if g != nil {
				t.Fatal("New returned a gateway with its error")
			}
			var se *StartError
			if !errors.As(err, &se) || se.Part != c.part || !errors.Is(err, c.is) {
				t.Fatalf("New = %v (%T), want a StartError of part %q matching %v", err, err, c.part, c.is)
			}
			if c.part == PartUplink {
				ob, err := buffer.Open(filepath.Join(cfg.DataDir, OutboxFile), &buffer.Options{NoSync: true})
				if err != nil {
					t.Fatalf("the outbox is still held after the failed New: %v", err)
				}
				if err := ob.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
