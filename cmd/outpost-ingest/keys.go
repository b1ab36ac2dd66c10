package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/outposthq/outpost/ingest"
)

// loadKeys loads the --auth-keys file. It holds every gateway's key,
// with which anyone may forge any gateway's batches: a file other users
// may read or write is refused, as the gateway refuses its own key file.
func loadKeys(name string) (*ingest.Keys, error) {
	if err := checkKeysMode(name); err != nil {
		return nil, err
	}
	return ingest.LoadKeys(name)
}

// checkKeysMode refuses a keys file that other users may read or write.
func checkKeysMode(name string) error {
	fi, err := os.Stat(name)
	if err != nil {
		return fmt.Errorf("auth keys file: %w", err)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o007 != 0 {
		return fmt.Errorf("auth keys file %s: other users may read or write it (mode %#o): chmod 600 it (or 640 for the service's group), and replace the keys if someone may have read them", name, perm)
	}
	return nil
}
