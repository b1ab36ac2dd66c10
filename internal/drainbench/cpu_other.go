//go:build !unix

package drainbench

import "time"

// selfCPU is not measured here.
func selfCPU() time.Duration { return 0 }
