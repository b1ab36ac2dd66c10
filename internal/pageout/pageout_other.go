//go:build !linux

package pageout

import "errors"

// Release does nothing where the kernel has no MADV_PAGEOUT.
func Release() (Result, error) {
	return Result{}, errors.ErrUnsupported
}
