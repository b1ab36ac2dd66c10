package drainbench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU is a snapshot of CPU time spent so far: by the whole machine, by
// this process, and by the processes of the broker and the database, so
// that a benchmark can say who used the cores while it ran. Everything
// but Self comes from Linux's /proc and is zero elsewhere.
type CPU struct {
	At        time.Time
	Busy      time.Duration // all cores, not idle or iowait
	Self      time.Duration // this process: gateway and ingest
	Mosquitto time.Duration // every process named mosquitto
	Postgres  time.Duration // every process named postgres
}

// clockTick is USER_HZ, the unit of /proc's CPU times: 100 on every
// Linux architecture Go runs on.
const clockTick = 10 * time.Millisecond

// ReadCPU takes a snapshot; parts it cannot read stay zero.
func ReadCPU() CPU {
	c := CPU{At: time.Now(), Busy: machineBusy(), Self: selfCPU()}
	c.Mosquitto, c.Postgres = processTimes()
	return c
}

// Cores returns the cores each part kept busy between c and the later
// snapshot d.
func (c CPU) Cores(d CPU) (busy, self, mosquitto, postgres float64) {
	el := d.At.Sub(c.At).Seconds()
	if el <= 0 {
		return 0, 0, 0, 0
	}
	f := func(a, b time.Duration) float64 { return (b - a).Seconds() / el }
	return f(c.Busy, d.Busy), f(c.Self, d.Self), f(c.Mosquitto, d.Mosquitto), f(c.Postgres, d.Postgres)
}

// machineBusy sums the non-idle times of the "cpu" line of /proc/stat:
// user nice system idle iowait irq softirq steal.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fs := strings.Fields(string(line))
	if len(fs) < 9 || fs[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, f := range fs[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick
}

// processTimes sums utime+stime of the mosquitto and postgres processes.
func processTimes() (mosquitto, postgres time.Duration) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, 0
	}
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process ended
		}
		// pid (comm) state ppid … utime is field 14, stime 15; comm may
		// hold spaces, so count from the closing parenthesis.
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		comm := string(b[open+1 : end])
		if comm != "mosquitto" && comm != "postgres" {
			continue
		}
		fs := strings.Fields(string(b[end+1:]))
		if len(fs) < 13 {
			continue
		}
		u, err1 := strconv.ParseInt(fs[11], 10, 64)
		s, err2 := strconv.ParseInt(fs[12], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		d := time.Duration(u+s) * clockTick
		if comm == "mosquitto" {
			mosquitto += d
		} else {
			postgres += d
		}
	}
	return mosquitto, postgres
}
