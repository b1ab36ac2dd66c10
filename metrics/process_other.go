//go:build !linux

package metrics

// WriteProcess writes nothing outside Linux: the process metrics come
// from /proc.
func WriteProcess(*Writer) error { return nil }
