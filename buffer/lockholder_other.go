//go:build !linux

package buffer

// lockHolder returns 0: finding a lock's holder is done on Linux only.
func lockHolder(string) int { return 0 }
