//go:build !unix

package sdnotify

import "errors"

// monotonicUsec: systemd runs on Linux only.
func monotonicUsec() (int64, error) { return 0, errors.New("no CLOCK_MONOTONIC on this platform") }
