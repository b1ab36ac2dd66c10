//go:build !unix

package main

import "os"

// statsSignal is nil where there is no SIGUSR1: no signal asks for stats.
var statsSignal os.Signal
