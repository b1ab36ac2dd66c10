//go:build !linux

package chaos

import "os/exec"

// setDeathSignal does nothing where the kernel has no parent-death signal;
// t.Cleanup still kills the children when the test ends normally.
func setDeathSignal(*exec.Cmd) {}
