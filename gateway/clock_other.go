//go:build !linux

package gateway

import "errors"

// kernelSynced has no kernel to ask outside Linux: clock.trust sync then
// falls back to the floor (docs/clock.md).
func kernelSynced() (bool, error) {
	return false, errors.New("gateway: the kernel's clock status is read on Linux only")
}
