package buffer

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// procLocksMax bounds what is read of /proc/locks: one line per lock held
// on the machine, some 60 bytes each.
const procLocksMax = 1 << 20

// flockHolder reads a /proc/locks listing from r and returns the pid of
// the first process holding a flock(2) lock (FLOCK, not a waiter "->")
// on the file with device major:minor and inode ino, or 0 if there is
// none. A line it cannot parse is skipped; a line longer than a few KiB
// ends the search.
//
// A line reads "1: FLOCK  ADVISORY  WRITE 1234 fe:00:9978268 0 EOF": the
// device in hex, the inode in decimal. A pid of 0 means the holder is
// outside this process's pid namespace.
func flockHolder(r io.Reader, major, minor uint32, ino uint64) int {
	sc := bufio.NewScanner(io.LimitReader(r, procLocksMax))
	sc.Buffer(make([]byte, 0, 256), 4096)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" {
			continue // a waiter ("->"), another kind of lock, or junk
		}
		pid, err := strconv.Atoi(f[4])
		if err != nil || pid <= 0 {
			continue
		}
		maj, rest, ok1 := strings.Cut(f[5], ":")
		mnr, in, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			continue
		}
		a, errA := strconv.ParseUint(maj, 16, 32)
		b, errB := strconv.ParseUint(mnr, 16, 32)
		n, errN := strconv.ParseUint(in, 10, 64)
		if errA == nil && errB == nil && errN == nil && uint32(a) == major && uint32(b) == minor && n == ino {
			return pid
		}
	}
	return 0
}
