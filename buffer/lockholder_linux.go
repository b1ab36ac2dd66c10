//go:build linux

package buffer

import (
	"os"
	"syscall"
)

// lockHolder returns the pid of a process holding bbolt's lock (flock) on
// the file at path, as /proc/locks lists it, or 0 if it cannot tell.
func lockHolder(path string) int {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer f.Close() // read-only: nothing to lose on close
	dev := uint64(st.Dev)
	// glibc's gnu_dev_major and gnu_dev_minor.
	major := uint32(dev>>8&0xfff | dev>>32&0xfffff000)
	minor := uint32(dev&0xff | dev>>12&0xffffff00)
	return flockHolder(f, major, minor, uint64(st.Ino))
}
