package firmwaresim

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// replayTimeLayout is the timestamp format of the occupancy data set.
const replayTimeLayout = "2006-01-02 15:04:05"

// Replay is one column of a recorded CSV, replayed as a signal: the value
// at elapsed time e is the last row whose time offset is ≤ e, looping over
// the recording's span.
type Replay struct {
	offsets []time.Duration // from the first row, ascending
	values  []float64
	span    time.Duration // loop length: last offset plus one typical step
}

// LoadReplay reads column from the CSV file at path; see ParseReplay.
func LoadReplay(path, column string) (*Replay, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("firmwaresim: replay: %w", err)
	}
	defer f.Close()
	r, err := ParseReplay(f, column)
	if err != nil {
		return nil, fmt.Errorf("firmwaresim: replay %s: %w", path, err)
	}
	return r, nil
}

// ParseReplay reads the occupancy format: a header naming the columns,
// then rows `"row","YYYY-MM-DD HH:MM:SS",v1,v2,…` whose first field (the
// row number) has no header name. The first column whose value parses as a
// timestamp gives the time of each row; column picks the values by header
// name. Rows must not go back in time.
func ParseReplay(r io.Reader, column string) (*Replay, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	col := -1
	for i, h := range header {
		if strings.TrimSpace(h) == column {
			col = i
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("no column %q in header %q", column, header)
	}
	rp := &Replay{}
	var t0 time.Time
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		shift := len(rec) - len(header) // 1 when the row number has no header
		if shift < 0 || col+shift >= len(rec) {
			return nil, fmt.Errorf("line %d: %d fields for %d columns", line, len(rec), len(header))
		}
		ts, ok := rowTime(rec)
		if !ok {
			return nil, fmt.Errorf("line %d: no %s timestamp", line, replayTimeLayout)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[col+shift]), 64)
		if err != nil {
			return nil, fmt.Errorf("line %d column %q: %w", line, column, err)
		}
		if len(rp.values) == 0 {
			t0 = ts
		}
		off := ts.Sub(t0)
		if n := len(rp.offsets); n > 0 && off < rp.offsets[n-1] {
			return nil, fmt.Errorf("line %d: time goes back", line)
		}
		rp.offsets = append(rp.offsets, off)
		rp.values = append(rp.values, v)
	}
	if len(rp.values) == 0 {
		return nil, errors.New("no rows")
	}
	n := len(rp.offsets)
	rp.span = rp.offsets[n-1]
	if n > 1 {
		rp.span += rp.offsets[n-1] / time.Duration(n-1)
	}
	if rp.span <= 0 {
		rp.span = time.Second
	}
	return rp, nil
}

// Len is the number of rows.
func (rp *Replay) Len() int { return len(rp.values) }

// At returns the value at elapsed time el from the start of the replay.
func (rp *Replay) At(el time.Duration) float64 {
	el %= rp.span
	if el < 0 {
		el += rp.span
	}
	lo, hi := 0, len(rp.offsets) // first offset > el
	for lo < hi {
		m := (lo + hi) / 2
		if rp.offsets[m] <= el {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return rp.values[0]
	}
	return rp.values[lo-1]
}

func rowTime(rec []string) (time.Time, bool) {
	for _, f := range rec {
		if t, err := time.Parse(replayTimeLayout, strings.TrimSpace(f)); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
