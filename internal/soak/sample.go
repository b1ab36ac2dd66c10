// Package soak is the soak test of the gateway (scripts/soak): the real
// outpost binary at a steady rate of simulated readings for a long time,
// through the real broker and ingest, sampled from outside every 10 s
// (memory and file descriptors from /proc, the Go heap and goroutines
// from the gateway's SIGUSR1 "stats" log line), written to a CSV and
// drawn as an SVG, and judged: RSS must not grow more than 10 % after
// the warm-up, and goroutines not at all. Test harness only: nothing
// here ships in a binary.
package soak

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Sample is one observation of the gateway process.
type Sample struct {
	T float64 // seconds since the gateway started

	// From /proc/PID/status, in bytes.
	RSS, HWM, RSSAnon, RSSFile int64
	// From /proc/PID/fd.
	FDs int64
	// From /proc/PID/stat: user and system CPU time, in milliseconds.
	CPUMillis int64

	// From the gateway's "stats" line.
	Heap, HeapGoal, GoTotal int64
	Goroutines              int64
	GCCycles                int64
	ReadingsEmitted         int64
	ReadingsStored          int64
	ReadingsLost            int64
	BatchesAcked            int64
	BatchesInFlight         int64
	OutboxFileBytes         int64
}

// columns are the CSV's header and the fields in that order.
var columns = []struct {
	name string
	get  func(*Sample) *int64
}{
	{"rss_bytes", func(s *Sample) *int64 { return &s.RSS }},
	{"hwm_bytes", func(s *Sample) *int64 { return &s.HWM }},
	{"rss_anon_bytes", func(s *Sample) *int64 { return &s.RSSAnon }},
	{"rss_file_bytes", func(s *Sample) *int64 { return &s.RSSFile }},
	{"heap_bytes", func(s *Sample) *int64 { return &s.Heap }},
	{"heap_goal_bytes", func(s *Sample) *int64 { return &s.HeapGoal }},
	{"go_total_bytes", func(s *Sample) *int64 { return &s.GoTotal }},
	{"goroutines", func(s *Sample) *int64 { return &s.Goroutines }},
	{"fds", func(s *Sample) *int64 { return &s.FDs }},
	{"cpu_ms", func(s *Sample) *int64 { return &s.CPUMillis }},
	{"gc_cycles", func(s *Sample) *int64 { return &s.GCCycles }},
	{"readings_emitted", func(s *Sample) *int64 { return &s.ReadingsEmitted }},
	{"readings_stored", func(s *Sample) *int64 { return &s.ReadingsStored }},
	{"readings_lost", func(s *Sample) *int64 { return &s.ReadingsLost }},
	{"batches_acked", func(s *Sample) *int64 { return &s.BatchesAcked }},
	{"batches_in_flight", func(s *Sample) *int64 { return &s.BatchesInFlight }},
	{"outbox_file_bytes", func(s *Sample) *int64 { return &s.OutboxFileBytes }},
}

// CSVWriter writes samples as CSV rows, header first, flushing each row
// so that a run cut short keeps what it measured.
type CSVWriter struct {
	w *csv.Writer
}

// NewCSVWriter writes the header to w.
func NewCSVWriter(w io.Writer) (*CSVWriter, error) {
	c := &CSVWriter{w: csv.NewWriter(w)}
	head := []string{"time_s"}
	for _, col := range columns {
		head = append(head, col.name)
	}
	if err := c.w.Write(head); err != nil {
		return nil, err
	}
	c.w.Flush()
	return c, c.w.Error()
}

// Write writes one row.
func (c *CSVWriter) Write(s Sample) error {
	row := []string{strconv.FormatFloat(s.T, 'f', 1, 64)}
	for _, col := range columns {
		row = append(row, strconv.FormatInt(*col.get(&s), 10))
	}
	if err := c.w.Write(row); err != nil {
		return err
	}
	c.w.Flush()
	return c.w.Error()
}

// maxCSVRows bounds what ReadCSV takes: a week of samples 10 s apart.
const maxCSVRows = 7 * 24 * 360

// ReadCSV reads what a CSVWriter wrote. Columns are found by name, so a
// file with columns added later still reads; a missing column reads as 0.
func ReadCSV(r io.Reader) ([]Sample, error) {
	cr := csv.NewReader(r)
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("soak: csv header: %w", err)
	}
	if len(head) == 0 || head[0] != "time_s" {
		return nil, errors.New("soak: csv: the first column is not time_s")
	}
	idx := make([]int, len(columns))
	for i, col := range columns {
		idx[i] = -1
		for j, h := range head {
			if h == col.name {
				idx[i] = j
			}
		}
	}
	var out []Sample
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("soak: csv: %w", err)
		}
		if len(out) == maxCSVRows {
			return nil, fmt.Errorf("soak: csv: more than %d rows", maxCSVRows)
		}
		var s Sample
		if s.T, err = strconv.ParseFloat(rec[0], 64); err != nil {
			return nil, fmt.Errorf("soak: csv line %d: time_s: %w", line, err)
		}
		for i, col := range columns {
			if idx[i] < 0 {
				continue
			}
			v, err := strconv.ParseInt(rec[idx[i]], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("soak: csv line %d: %s: %w", line, col.name, err)
			}
			*col.get(&s) = v
		}
		out = append(out, s)
	}
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// readProc fills s's RSS, HWM, RSSAnon, RSSFile, FDs and CPUMillis from
// /proc.
func readProc(pid int, s *Sample) error {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err
	}
	defer f.Close()
	want := map[string]*int64{"VmRSS": &s.RSS, "VmHWM": &s.HWM, "RssAnon": &s.RSSAnon, "RssFile": &s.RSSFile}
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		p := want[key]
		if !ok || p == nil {
			continue
		}
		// "VmRSS:	   12345 kB"
		num, unit, _ := strings.Cut(strings.TrimSpace(val), " ")
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || unit != "kB" {
			return fmt.Errorf("soak: /proc/%d/status: %s: %q", pid, key, val)
		}
		*p = n << 10
		found++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if found != len(want) {
		return fmt.Errorf("soak: /proc/%d/status: %d of VmRSS, VmHWM, RssAnon, RssFile found", pid, found)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return err
	}
	s.FDs = int64(len(fds))
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return err
	}
	// "pid (comm) state ppid ...": comm may hold spaces; utime and stime
	// are fields 14 and 15, the 12th and 13th after the comm.
	i := bytes.LastIndexByte(stat, ')')
	fields := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(fields) < 13 {
		return fmt.Errorf("soak: /proc/%d/stat: %q", pid, stat)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("soak: /proc/%d/stat: utime %q stime %q", pid, fields[11], fields[12])
	}
	s.CPUMillis = (utime + stime) * 1000 / clockTicks
	return nil
}
