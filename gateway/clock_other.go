//go:build !linux

package gateway

import (
	"errors"
	"time"
)

// kernelSynced has no kernel to ask outside Linux: clock.trust sync then
// falls back to the floor (docs/clock.md).
func kernelSynced() (bool, error) {
	return false, errors.New("gateway: the kernel's clock status is read on Linux only")
}

// bootClock has no boot-wide monotonic clock to offer outside Linux: the
// tracker uses the process's own, and held batches do not survive a
// restart.
func bootClock() (func() time.Duration, string) { return nil, "" }
