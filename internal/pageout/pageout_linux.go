package pageout

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxMapsBytes bounds how much of /proc/self/maps is read: a Go process
// has a few dozen mappings, well under 1 MiB.
const maxMapsBytes = 1 << 20

// Release advises the kernel (madvise MADV_PAGEOUT, Linux 5.4 and later)
// that the pages of every mapping of the running executable may be
// reclaimed. Pages that another process maps too stay. An error means
// nothing was advised, or only part; the process runs on either way.
func Release() (Result, error) {
	var r Result
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return r, fmt.Errorf("pageout: %w", err)
	}
	maps, err := readMaps()
	if err != nil {
		return r, err
	}
	r.FileBefore = rssFile()
	for _, m := range exeMappings(maps, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino) {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_PAGEOUT); errno != 0 {
			r.FileAfter = rssFile()
			return r, fmt.Errorf("pageout: madvise %#x-%#x: %w", m.start, m.end, errno)
		}
		r.Mappings++
	}
	r.FileAfter = rssFile()
	return r, nil
}

func readMaps() ([]byte, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil, fmt.Errorf("pageout: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMapsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("pageout: read maps: %w", err)
	}
	if len(b) > maxMapsBytes {
		return nil, fmt.Errorf("pageout: /proc/self/maps over %d bytes", maxMapsBytes)
	}
	return b, nil
}

type mapping struct{ start, end uintptr }

// exeMappings parses /proc/self/maps ("start-end perms offset maj:min
// inode path") for the mappings of the file on device maj:min with inode
// ino. Lines it cannot read are skipped.
func exeMappings(maps []byte, maj, min uint32, ino uint64) []mapping {
	var ms []mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue // anonymous
		}
		if n, err := strconv.ParseUint(f[4], 10, 64); err != nil || n != ino {
			continue
		}
		dmaj, dmin, ok := strings.Cut(f[3], ":")
		a, errA := strconv.ParseUint(dmaj, 16, 32)
		b, errB := strconv.ParseUint(dmin, 16, 32)
		if !ok || errA != nil || errB != nil || uint32(a) != maj || uint32(b) != min {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, errS := strconv.ParseUint(lo, 16, 64)
		end, errE := strconv.ParseUint(hi, 16, 64)
		if !ok || errS != nil || errE != nil || end <= start {
			continue
		}
		ms = append(ms, mapping{uintptr(start), uintptr(end)})
	}
	return ms
}

// rssFile is RssFile of /proc/self/status in bytes, or -1.
func rssFile() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}
