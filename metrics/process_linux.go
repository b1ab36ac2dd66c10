package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
)

// userHZ is the unit of the CPU times in /proc/self/stat: the kernel's
// USER_HZ, 100 on every Linux architecture.
const userHZ = 100

// maxProcFile bounds what is read of one /proc file.
const maxProcFile = 64 << 10

// WriteProcess writes the process's metrics (CPU time, memory, threads,
// file descriptors, start time) from /proc. What it could read is
// written even when it returns an error for the rest.
func WriteProcess(w *Writer) error {
	stat, err := readProc("/proc/self/stat")
	if err != nil {
		return err
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing one, the 3rd field (state) first.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return errors.New("metrics: /proc/self/stat: no command name")
	}
	f := bytes.Fields(stat[i+1:])
	field := func(n int) (uint64, error) { // n as man 5 proc numbers it
		if n-3 >= len(f) {
			return 0, fmt.Errorf("metrics: /proc/self/stat: %d fields, want %d", len(f)+2, n)
		}
		return strconv.ParseUint(string(f[n-3]), 10, 64)
	}
	var v [6]uint64 // utime, stime, num_threads, starttime, vsize, rss
	for j, n := range []int{14, 15, 20, 22, 23, 24} {
		if v[j], err = field(n); err != nil {
			return fmt.Errorf("metrics: /proc/self/stat field %d: %w", n, err)
		}
	}
	w.Single("process_cpu_seconds_total", Counter, "User and system CPU time spent, in seconds.", float64(v[0]+v[1])/userHZ)
	w.Single("process_resident_memory_bytes", Gauge, "Resident memory size in bytes.", float64(v[5])*float64(os.Getpagesize()))
	w.Single("process_virtual_memory_bytes", Gauge, "Virtual memory size in bytes.", float64(v[4]))
	w.Single("process_threads", Gauge, "OS threads of the process.", float64(v[2]))
	if fds, err := openFDs(); err == nil {
		w.Single("process_open_fds", Gauge, "Open file descriptors.", float64(fds))
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		w.Single("process_max_fds", Gauge, "The limit on open file descriptors.", float64(rl.Cur))
	}
	boot, err := bootTime()
	if err != nil {
		return err
	}
	w.Single("process_start_time_seconds", Gauge, "Start time of the process since the Unix epoch, in seconds.", float64(boot)+float64(v[3])/userHZ)
	return nil
}

func readProc(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProcFile))
	if err != nil {
		return nil, fmt.Errorf("metrics: %s: %w", path, err)
	}
	return b, nil
}

// bootTime is the btime line of /proc/stat: the boot time in seconds
// since the epoch, the base of a process's start time.
func bootTime() (uint64, error) {
	b, err := readProc("/proc/stat")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			return strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, errors.New("metrics: /proc/stat: no btime")
}

// openFDs counts the entries of /proc/self/fd, in chunks.
func openFDs() (int, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	defer d.Close()
	n := 0
	for {
		names, err := d.Readdirnames(256)
		n += len(names)
		if errors.Is(err, io.EOF) {
			return n - 1, nil // less the one d itself holds
		}
		if err != nil {
			return 0, err
		}
	}
}
