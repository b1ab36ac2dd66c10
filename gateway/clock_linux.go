package gateway

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// kernelSynced reports whether the kernel says its clock is synchronised
// (an NTP daemon such as chrony or systemd-timesyncd cleared STA_UNSYNC).
// adjtimex(2) with no mode bits only reads; it needs no privilege.
func kernelSynced() (bool, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, fmt.Errorf("gateway: adjtimex: %w", err)
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0, nil
}

// bootClock returns the boot's monotonic clock (CLOCK_BOOTTIME: it counts
// suspend too, and runs on across restarts of the gateway) and the
// kernel's id of this boot; nil if either cannot be read.
func bootClock() (func() time.Duration, string) {
	id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	id = bytes.TrimSpace(id)
	if err != nil || len(id) == 0 || len(id) > 64 {
		return nil, ""
	}
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
		return nil, ""
	}
	return func() time.Duration {
		var ts unix.Timespec
		if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil {
			return 0 // never after the first call succeeded
		}
		return time.Duration(ts.Nano())
	}, string(id)
}
