//go:build unix

package main

import (
	"os"
	"syscall"
)

// statsSignal asks a running gateway for a stats line.
var statsSignal os.Signal = syscall.SIGUSR1
