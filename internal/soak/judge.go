package soak

import (
	"fmt"
	"time"
)

// Limits are what a soak run must hold to pass.
type Limits struct {
	// Warmup is left out of the judgment: the sample at or just after it
	// is the baseline.
	Warmup time.Duration
	// RSSGrowth is the most VmRSS may grow above the baseline, as a
	// fraction (0.10: 10 %), at any later sample.
	RSSGrowth float64
}

// DefaultLimits are the issue's: 5 minutes of warm-up, 10 % of RSS.
var DefaultLimits = Limits{Warmup: 5 * time.Minute, RSSGrowth: 0.10}

// Verdict is the judgment of a run.
type Verdict struct {
	Baseline Sample // the first sample at or after the warm-up
	PeakRSS  int64  // the most VmRSS seen after the warm-up
	PeakHWM  int64  // the most VmHWM seen: the most RSS the process had
	// Failures say why the run failed; empty when it passed.
	Failures []string
}

// OK reports whether the run passed.
func (v Verdict) OK() bool { return len(v.Failures) == 0 }

// Judge decides a run from its samples, in time order:
//   - VmRSS at any sample after the baseline may not exceed the
//     baseline's by more than lim.RSSGrowth;
//   - goroutines at the last sample may not exceed the baseline's (a leak
//     only grows; one transient goroutine caught mid-run is not a leak,
//     one still there at the end is);
//   - readings may not be lost, and batches must be acked between every
//     two samples after the warm-up (a stalled pipeline hides a leak
//     behind a backlog).
//
// A run with no sample after the warm-up cannot be judged and fails.
func Judge(samples []Sample, lim Limits) Verdict {
	var v Verdict
	base := -1
	for i, s := range samples {
		if s.T >= lim.Warmup.Seconds() {
			base = i
			break
		}
	}
	if base < 0 || base == len(samples)-1 {
		v.Failures = append(v.Failures, fmt.Sprintf("no sample after the warm-up of %v (%d samples): the run is too short to judge", lim.Warmup, len(samples)))
		return v
	}
	v.Baseline = samples[base]
	b := v.Baseline
	last := samples[len(samples)-1]
	// VmHWM only grows, but /proc's counters are approximate per read:
	// the most seen, not the last.
	for _, s := range samples {
		v.PeakHWM = max(v.PeakHWM, s.HWM)
	}
	var peakAt float64
	stalls, firstStall := 0, ""
	for i, s := range samples[base+1:] {
		if s.RSS > v.PeakRSS {
			v.PeakRSS, peakAt = s.RSS, s.T
		}
		prev := samples[base+i]
		if s.BatchesAcked <= prev.BatchesAcked {
			if stalls == 0 {
				firstStall = fmt.Sprintf("%.0f s and %.0f s", prev.T, s.T)
			}
			stalls++
		}
	}
	if stalls > 0 {
		v.Failures = append(v.Failures, fmt.Sprintf("no batch acked between %s (and in %d intervals of %d after the warm-up): the pipeline stalled",
			firstStall, stalls, len(samples)-1-base))
	}
	if limit := float64(b.RSS) * (1 + lim.RSSGrowth); float64(v.PeakRSS) > limit {
		v.Failures = append(v.Failures, fmt.Sprintf("RSS grew %.1f %% after the warm-up: %s at %.0f s, %s at %.0f s (limit +%.0f %%)",
			100*(float64(v.PeakRSS)/float64(b.RSS)-1), MiB(b.RSS), b.T, MiB(v.PeakRSS), peakAt, 100*lim.RSSGrowth))
	}
	if last.Goroutines > b.Goroutines {
		v.Failures = append(v.Failures, fmt.Sprintf("goroutines grew from %d at %.0f s to %d at %.0f s", b.Goroutines, b.T, last.Goroutines, last.T))
	}
	if last.ReadingsLost > 0 {
		v.Failures = append(v.Failures, fmt.Sprintf("%d readings lost on the gateway", last.ReadingsLost))
	}
	return v
}

// MiB formats bytes as mebibytes.
func MiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
