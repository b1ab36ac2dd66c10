//go:build !linux

package soak

import (
	"context"
	"errors"
)

// Run fails: the soak samples the gateway from /proc and asks it for
// stats with SIGUSR1, so it runs on Linux only.
func Run(context.Context, Options) (*Result, error) {
	return nil, errors.New("soak: needs Linux (/proc and SIGUSR1)")
}
