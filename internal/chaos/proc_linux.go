package chaos

import (
	"os/exec"
	"syscall"
)

// setDeathSignal has the kernel kill the child if the harness dies first.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
