package gateway

import (
	"fmt"

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
