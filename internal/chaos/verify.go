package chaos

import (
	"cmp"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Gap is a stretch of a series with readings missing.
type Gap struct {
	Sensor, Metric string
	Kind           string // restart, start, hole, tail (see Verify)
	From, To       int64  // unix ns of the readings either side (or of a run's start or stop)
	Missing        int    // readings missing: exact for a hole, an estimate otherwise
	Exact          bool   // Missing is exact
	AfterRun       int    // the run of the reading before it, -1 for none
	BeforeRun      int    // the run of the reading after it, -1 for none
	Explained      bool
	Window         [2]int64 // [kill − flush window, next start + start slack]
	Why            string   // why it is not explained
}

// Len is the gap's duration.
func (g *Gap) Len() time.Duration { return time.Duration(g.To - g.From) }

// KillStat describes one killed run.
type KillStat struct {
	Run      int
	Up       time.Duration // from exec to SIGKILL
	Stored   int           // readings of the run in the database
	TailLag  time.Duration // SIGKILL − the run's last stored reading, worst series
	StartLag time.Duration // the next run's startedMark − its exec, -1 if unknown
	Lost     int           // readings emitted but not stored, estimated from the tail lag
	Early    bool          // killed before it logged that its sensors poll
}

// Report is the verdict on a Result.
type Report struct {
	Seed        int64
	Kills       int
	Runs        int
	Rows        int
	Duplicates  int
	Batches     int
	Epochs      int
	MaxSeq      uint64
	Gaps        []Gap // every stretch with readings missing
	Unexplained int
	// Timing gaps are gaps > 1.5 × spacing between readings whose indices
	// are consecutive: a poll came late, nothing is missing.
	TimingGaps    int
	LongestTiming time.Duration
	PerKill       []KillStat
	FinalTail     time.Duration // SIGTERM − the graceful run's last stored reading, worst series
	Published     int           // batch publications the monitor saw
	Resent        int           // of which resends of a seq it had seen
	Elapsed       time.Duration
	Problems      []string
}

// OK reports whether nothing was found wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 && r.Unexplained == 0 && r.Duplicates == 0 }

// LongestGap is the longest gap with readings missing.
func (r *Report) LongestGap() time.Duration {
	var d time.Duration
	for i := range r.Gaps {
		d = max(d, r.Gaps[i].Len())
	}
	return d
}

// Summary is the one-line result.
func (r *Report) Summary() string {
	lost := make([]string, 0, len(r.PerKill))
	early := 0
	for _, k := range r.PerKill {
		lost = append(lost, fmt.Sprint(k.Lost))
		if k.Early {
			early++
		}
	}
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	return fmt.Sprintf("chaos %s: seed=%d kills=%d (%d while starting) runs=%d readings=%d duplicates=%d batches=%d epochs=%d max_seq=%d "+
		"gaps=%d explained=%d unexplained=%d longest_gap=%v timing_gaps=%d (longest %v, nothing missing) "+
		"published=%d resent=%d problems=%d elapsed=%v lost_per_kill≈[%s]",
		verdict, r.Seed, r.Kills, early, r.Runs, r.Rows, r.Duplicates, r.Batches, r.Epochs, r.MaxSeq,
		len(r.Gaps), len(r.Gaps)-r.Unexplained, r.Unexplained, r.LongestGap().Round(time.Microsecond),
		r.TimingGaps, r.LongestTiming.Round(time.Microsecond), r.Published, r.Resent, len(r.Problems),
		r.Elapsed.Round(100*time.Millisecond), strings.Join(lost, " "))
}

// Details lists every kill, every unexplained gap and every problem.
func (r *Report) Details() string {
	var b strings.Builder
	fmt.Fprintf(&b, "per kill (tail lag = SIGKILL − last stored reading; start lag = next run's startup, exec to \"gateway started\"):\n")
	for _, k := range r.PerKill {
		sl := "?"
		if k.StartLag >= 0 {
			sl = k.StartLag.Round(time.Millisecond).String()
		}
		note := ""
		if k.Early {
			note = "  (killed while starting)"
		}
		fmt.Fprintf(&b, "  run %3d: up %8v  stored %7d  tail lag %8v  lost≈%6d  next start lag %v%s\n",
			k.Run, k.Up.Round(100*time.Microsecond), k.Stored, k.TailLag.Round(time.Millisecond), k.Lost, sl, note)
	}
	fmt.Fprintf(&b, "graceful stop: last stored reading %v before SIGTERM (worst series)\n", r.FinalTail.Round(time.Microsecond))
	n := 0
	for i := range r.Gaps {
		if g := &r.Gaps[i]; !g.Explained {
			if n == 0 {
				fmt.Fprintf(&b, "unexplained gaps:\n")
			}
			if n++; n <= 50 {
				fmt.Fprintf(&b, "  %s\n", g)
			}
		}
	}
	if n > 50 {
		fmt.Fprintf(&b, "  … and %d more\n", n-50)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	return b.String()
}

func (g *Gap) String() string {
	missing := fmt.Sprintf("≈%d", g.Missing)
	if g.Exact {
		missing = fmt.Sprint(g.Missing)
	}
	s := fmt.Sprintf("%s/%s %s gap %v long, %s readings missing, %s → %s (after run %d, before run %d)",
		g.Sensor, g.Metric, g.Kind, g.Len().Round(time.Microsecond), missing, stamp(g.From), stamp(g.To), g.AfterRun, g.BeforeRun)
	if g.Why != "" {
		s += ": " + g.Why
	}
	return s
}

func stamp(ns int64) string { return time.Unix(0, ns).UTC().Format("15:04:05.000000") }

// point is one stored reading of a series, identified by the oracle.
type point struct {
	idx int32
	ts  int64
}

// Verify judges a Result:
//
//   - duplicates: rows sharing (sensor, metric, ts);
//   - batches: one epoch, seqs 1..N with none missing, reading counts that
//     add up to the readings table, no loss records, no dead letters;
//   - each outbox left by a run: opens cleanly, same epoch, every seq below
//     its next seq and every reading it holds are in the database, its
//     bytes are those the monitor saw on the wire;
//   - each series, per run: the stored indices are 0..n−1 (a hole is a
//     committed batch lost); between runs, the gap from the last stored
//     reading of one run to the first of the next must lie in a window
//     [kill − flush window, next start + start slack]; after the final
//     graceful stop, at most one poll (plus the run's worst poll lateness)
//     may be missing.
func Verify(res *Result) *Report {
	o := &res.Options
	rep := &Report{Seed: o.Seed, Kills: o.Kills, Rows: len(res.Rows), Elapsed: res.Elapsed}
	rep.Problems = append(rep.Problems, res.Problems...)
	v := &verifier{res: res, o: o, rep: rep, step: int64(o.step())}
	for _, r := range res.Runs {
		if r.Kind != Drain {
			v.runs = append(v.runs, r)
		}
	}
	rep.Runs = len(v.runs)
	if len(v.runs) == 0 {
		rep.Problems = append(rep.Problems, "no gateway runs recorded")
		return rep
	}
	rows := slices.Clone(res.Rows)
	slices.SortFunc(rows, func(a, b Row) int {
		return cmp.Or(cmp.Compare(a.Sensor, b.Sensor), cmp.Compare(a.Metric, b.Metric), cmp.Compare(a.TS, b.TS))
	})
	v.duplicates(rows)
	v.batches()
	v.monitor()
	v.outboxes(rows)
	v.logs()
	v.series(rows)
	return rep
}

type verifier struct {
	res     *Result
	o       *Options
	rep     *Report
	step    int64
	runs    []*Run // killed and graceful, in order; runs[i].N == i
	oracles map[int]*oracle
	epoch   uint64 // the database's only epoch, 0 if not exactly one
	dbSeqs  map[uint64]bool
}

func (v *verifier) problem(format string, args ...any) {
	v.rep.Problems = append(v.rep.Problems, fmt.Sprintf(format, args...))
}

// explain decides whether a gap is one the kills account for. The gap runs
// from the last stored reading of run g.AfterRun (-1: none before) to the
// first stored reading of run g.BeforeRun. It is explained when it lies in
// the window [kill − flush window, next start + start slack], that is:
//
//   - run AfterRun was killed, and its last stored reading is no earlier
//     than its kill minus the flush window (batch.interval + poll interval
//   - FlushSlack): only readings not yet flushed were lost;
//   - run BeforeRun emitted its first stored reading (index 0, checked
//     apart) no later than StartSlack after its exec;
//   - every run in between stored nothing of the series because it was
//     killed before it could flush: it began polling (logged startedMark)
//     less than the flush window before its kill, or never did.
func (v *verifier) explain(g *Gap) {
	fw, ss := int64(v.o.flushWindow()), int64(v.o.StartSlack)
	lo, first := int64(math.MinInt64), 0
	if i := g.AfterRun; i >= 0 {
		r := v.runs[i]
		lo, first = r.Stop.UnixNano()-fw, i+1
		if r.Kind != Killed {
			g.Why = fmt.Sprintf("run %d was not killed", i)
			return
		}
		if g.From < lo {
			g.Why = fmt.Sprintf("run %d lost readings from %v before its kill, more than the flush window %v",
				i, time.Duration(r.Stop.UnixNano()-g.From).Round(time.Millisecond), time.Duration(fw))
			return
		}
	}
	next := v.runs[g.BeforeRun]
	hi := next.Start.UnixNano() + ss
	g.Window = [2]int64{lo, hi}
	if g.To > hi {
		g.Why = fmt.Sprintf("run %d's first reading came %v after its exec, more than the start slack %v",
			g.BeforeRun, time.Duration(g.To-next.Start.UnixNano()).Round(time.Millisecond), v.o.StartSlack)
		return
	}
	for k := first; k < g.BeforeRun; k++ {
		r := v.runs[k]
		if r.Started.IsZero() {
			if up := r.Stop.Sub(r.Start); up > v.o.StartSlack {
				g.Why = fmt.Sprintf("run %d stored nothing and never logged %q in %v", k, startedMark, up.Round(time.Millisecond))
				return
			}
			continue
		}
		if polling := r.Stop.Sub(r.Started); polling > v.o.flushWindow() {
			g.Why = fmt.Sprintf("run %d stored nothing though it polled for %v before its kill, more than the flush window %v",
				k, polling.Round(time.Millisecond), v.o.flushWindow())
			return
		}
	}
	g.Explained = true
}

func (v *verifier) duplicates(rows []Row) {
	var listed []string
	for i := 1; i < len(rows); i++ {
		a, b := &rows[i-1], &rows[i]
		if a.TS == b.TS && a.Sensor == b.Sensor && a.Metric == b.Metric {
			v.rep.Duplicates++
			if len(listed) < 10 {
				listed = append(listed, fmt.Sprintf("%s/%s ts %d (%s) values %v, %v", a.Sensor, a.Metric, a.TS, stamp(a.TS), a.Value, b.Value))
			}
		}
	}
	if len(listed) > 0 {
		v.problem("%d duplicate readings, first: %s", v.rep.Duplicates, strings.Join(listed, "; "))
	}
	if c := v.res.Counts; c.Readings != c.DistinctReadings {
		v.problem("store counts %d readings but %d distinct", c.Readings, c.DistinctReadings)
	}
}

func (v *verifier) batches() {
	res := v.res
	v.rep.Batches = len(res.Batches)
	byEpoch := make(map[uint64][]uint64)
	var n int64
	for _, b := range res.Batches {
		byEpoch[b.Epoch] = append(byEpoch[b.Epoch], b.Seq)
		if b.Kind == "telemetry" {
			n += b.N
		}
	}
	v.rep.Epochs = len(byEpoch)
	if len(byEpoch) != 1 {
		var es []string
		for e, seqs := range byEpoch {
			es = append(es, fmt.Sprintf("%x: %d batches, seqs %d..%d", e, len(seqs), slices.Min(seqs), slices.Max(seqs)))
		}
		slices.Sort(es)
		v.problem("%d epochs in the database, want 1 (a new epoch means the outbox file was replaced): %s", len(byEpoch), strings.Join(es, "; "))
	}
	v.dbSeqs = make(map[uint64]bool)
	for e, seqs := range byEpoch {
		if len(byEpoch) == 1 {
			v.epoch = e
			for _, s := range seqs {
				v.dbSeqs[s] = true
			}
		}
		slices.Sort(seqs)
		v.rep.MaxSeq = max(v.rep.MaxSeq, seqs[len(seqs)-1])
		var missing []uint64
		next := uint64(1)
		for _, s := range seqs {
			for ; next < s && len(missing) < 1000; next++ {
				missing = append(missing, next)
			}
			next = s + 1
		}
		if len(missing) > 0 {
			v.problem("epoch %x: seqs missing from the batches table (committed on the gateway, never stored): %s", e, seqList(missing, 30))
		}
	}
	if n != int64(len(res.Rows)) {
		v.problem("the telemetry batches stored count %d readings, the readings table holds %d", n, len(res.Rows))
	}
	if res.Losses > 0 {
		v.problem("the gateway sent %d loss records (gaps table): it dropped data it had", res.Losses)
	}
	if res.Dead > 0 {
		v.problem("%d dead letters: ingest refused messages", res.Dead)
	}
	if f := res.Final; f != nil && f.Err == nil && len(f.Stored) > 0 {
		v.problem("the outbox still holds %d batches after the drain: %s", len(f.Stored), seqList(f.Stored, 20))
	}
}

func (v *verifier) monitor() {
	m := &v.res.Monitor
	v.rep.Published = m.Messages
	var diff []string
	for id, s := range m.Seen {
		v.rep.Resent += s.times - 1
		if s.diff > 0 {
			diff = append(diff, fmt.Sprintf("epoch %x seq %d: %d of %d sends differ", id.epoch, id.seq, s.diff, s.times))
		}
	}
	if len(diff) > 0 {
		slices.Sort(diff)
		v.problem("resends with other bytes than the first send: %s", strings.Join(diff[:min(len(diff), 20)], "; "))
	}
	if len(m.Malformed) > 0 {
		v.problem("the monitor could not decode %d payloads: %s", len(m.Malformed), strings.Join(m.Malformed, "; "))
	}
}

// outboxes checks each outbox copy against the database and the wire.
func (v *verifier) outboxes(rows []Row) {
	type key struct {
		sensor, metric string
		ts             int64
	}
	stored := make(map[key]bool, len(rows))
	for _, r := range rows {
		stored[key{r.Sensor, r.Metric, r.TS}] = true
	}
	var prevNext uint64
	for _, r := range v.res.Runs {
		st := r.Outbox
		if st == nil || st.Unmade {
			continue
		}
		name := fmt.Sprintf("outbox after run %d (%s)", r.N, r.Kind)
		if st.Err != nil {
			v.problem("%s: %v", name, st.Err)
		}
		if st.Logged != "" {
			v.problem("%s: opening it logged: %s", name, strings.TrimSpace(st.Logged))
		}
		if st.Err != nil && st.Epoch == 0 {
			continue
		}
		if v.epoch != 0 && st.Epoch != v.epoch {
			v.problem("%s: epoch %x, the database's is %x", name, st.Epoch, v.epoch)
			continue
		}
		if st.NextSeq < prevNext {
			v.problem("%s: next seq %d went back from %d", name, st.NextSeq, prevNext)
		}
		prevNext = st.NextSeq
		var missing []uint64
		for s := uint64(1); s < st.NextSeq && v.epoch != 0; s++ {
			if !v.dbSeqs[s] {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			v.problem("%s: committed seqs (below next seq %d) not in the database: %s", name, st.NextSeq, seqList(missing, 30))
		}
		var lost []string
		nlost := 0
		for _, rd := range st.Readings {
			if !stored[key{rd.Sensor, rd.Metric, rd.TS}] {
				if nlost++; len(lost) < 5 {
					lost = append(lost, fmt.Sprintf("%s/%s %s", rd.Sensor, rd.Metric, stamp(rd.TS)))
				}
			}
		}
		if nlost > 0 {
			v.problem("%s: %d readings it held are not in the database: %s", name, nlost, strings.Join(lost, ", "))
		}
		for seq, sum := range st.Sums {
			if s, ok := v.res.Monitor.Seen[batchID{st.Epoch, seq}]; ok && s.sum != sum {
				v.problem("%s: stored bytes of seq %d differ from those published", name, seq)
			}
		}
	}
}

// logs looks for signs of damage in the gateways' logs: errors, panics,
// and the outbox's own repair messages, which a kill must never cause.
func (v *verifier) logs() {
	for _, r := range v.res.Runs {
		if r.Log == "" {
			continue
		}
		for _, line := range strings.Split(tailLog(r.Log, 100000), "\n") {
			line = ansi.ReplaceAllString(line, "")
			l := strings.ToLower(line)
			if strings.Contains(line, " ERR ") || strings.Contains(line, " FTL ") || strings.Contains(line, " PNC ") ||
				strings.Contains(l, "panic") || strings.Contains(l, "fatal error") || strings.Contains(l, "corrupt") ||
				strings.Contains(l, "malformed") || strings.Contains(l, "moved forward") {
				v.problem("run %d log: %s", r.N, line)
			}
		}
	}
}

// ansi matches the colour codes of zerolog's console writer.
var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// series checks every simulated series, run by run.
func (v *verifier) series(rows []Row) {
	o := v.o
	v.oracles = make(map[int]*oracle)
	want := make(map[[2]string]bool)
	for i := range o.Sensors {
		for j := range o.Metrics {
			want[[2]string{sensorID(i), metricName(j)}] = true
		}
	}
	kills := make([]KillStat, len(v.runs))
	for i, r := range v.runs {
		if up := r.Stop.Sub(r.Start); r.Started.IsZero() && up > o.StartSlack {
			v.problem("run %d never logged %q in its %v (gateway stuck starting, or the message changed: see startedMark)", i, startedMark, up.Round(time.Millisecond))
		}
		kills[i] = KillStat{Run: i, Up: r.Stop.Sub(r.Start), StartLag: -1, Early: r.Started.IsZero() || r.Started.After(r.Stop)}
		if i+1 < len(v.runs) && !v.runs[i+1].Started.IsZero() {
			kills[i].StartLag = v.runs[i+1].Started.Sub(v.runs[i+1].Start)
		}
	}
	for start := 0; start < len(rows); {
		end := start + 1
		for end < len(rows) && rows[end].Sensor == rows[start].Sensor && rows[end].Metric == rows[start].Metric {
			end++
		}
		s, m := rows[start].Sensor, rows[start].Metric
		switch {
		case want[[2]string{s, m}]:
			delete(want, [2]string{s, m})
			v.oneSeries(s, m, rows[start:end], kills)
		case s == drainSensor:
		default:
			v.problem("unexpected series %s/%s (%d readings)", s, m, end-start)
		}
		start = end
	}
	for k := range want {
		v.problem("series %s/%s has no readings at all", k[0], k[1])
	}
	for i := range v.runs {
		if v.runs[i].Kind == Killed {
			v.rep.PerKill = append(v.rep.PerKill, kills[i])
		}
	}
	slices.SortFunc(v.rep.Gaps, func(a, b Gap) int { return cmp.Compare(a.From, b.From) })
}

// limit is how many readings a series of run r can have emitted at most.
func (v *verifier) limit(r *Run) int {
	polls := int(r.Exited.Sub(r.Start)/v.o.PollInterval) + 2
	return polls*v.o.Samples + 1000
}

func (v *verifier) oracle(r *Run) *oracle {
	if or, ok := v.oracles[r.N]; ok {
		return or
	}
	or, err := newOracle(r.Spec)
	if err != nil {
		v.problem("%v", err)
	}
	v.oracles[r.N] = or
	return or
}

// oneSeries sorts a series' rows into runs by value, turns each into its
// index, and finds holes, timing gaps and the gaps between runs.
func (v *verifier) oneSeries(sensor, metric string, rows []Row, kills []KillStat) {
	o := v.o
	perRun := make([][]point, len(v.runs))
	var foreign []string
	nforeign := 0
	type amb struct {
		run  int
		ts   int64
		cand []int32
	}
	var ambs []amb
	for _, r := range rows {
		n := int(math.Round(r.Value - 1)) // runCenter(n) = n+1
		if r.Null || n < 0 || n >= len(v.runs) || v.oracle(v.runs[n]) == nil {
			if nforeign++; len(foreign) < 5 {
				foreign = append(foreign, fmt.Sprintf("%v at %s", r.Value, stamp(r.TS)))
			}
			continue
		}
		run := v.runs[n]
		switch c := v.oracle(run).lookup(r.Value, v.limit(run)); len(c) {
		case 0:
			if nforeign++; len(foreign) < 5 {
				foreign = append(foreign, fmt.Sprintf("%v at %s (run %d never emitted it)", r.Value, stamp(r.TS), n))
			}
		case 1:
			perRun[n] = append(perRun[n], point{c[0], r.TS})
		default:
			ambs = append(ambs, amb{n, r.TS, c})
		}
		if r.TS < run.Start.UnixNano()-int64(o.PollInterval) || r.TS > run.Exited.UnixNano() {
			v.problem("%s/%s: a reading of run %d has ts %s, outside the run's life %s..%s", sensor, metric, n,
				stamp(r.TS), stamp(run.Start.UnixNano()), stamp(run.Exited.UnixNano()))
		}
	}
	if nforeign > 0 {
		v.problem("%s/%s: %d values no run's signal produced: %s", sensor, metric, nforeign, strings.Join(foreign, ", "))
	}
	// A value the generator drew twice (rare): take the index that fits
	// between its neighbours in time.
	for _, a := range ambs {
		pts := perRun[a.run]
		var lo, hi int32 = -1, math.MaxInt32
		for _, p := range pts {
			if p.ts < a.ts {
				lo = max(lo, p.idx)
			} else if p.ts > a.ts {
				hi = min(hi, p.idx)
			}
		}
		ok := false
		for _, c := range a.cand {
			if lo < c && c < hi {
				perRun[a.run] = append(perRun[a.run], point{c, a.ts})
				ok = true
				break
			}
		}
		if !ok {
			v.problem("%s/%s: value at %s of run %d matches indices %v, none between its neighbours", sensor, metric, stamp(a.ts), a.run, a.cand)
		}
	}

	step := v.step
	prevRun, prevTS := -1, int64(0)
	for n, pts := range perRun {
		run := v.runs[n]
		if len(pts) == 0 {
			continue
		}
		slices.SortFunc(pts, func(a, b point) int { return cmp.Or(cmp.Compare(a.idx, b.idx), cmp.Compare(a.ts, b.ts)) })
		pts = slices.Compact(pts) // the same row twice is a duplicate, counted already
		perRun[n] = pts
		// Within the run: indices 0..len−1, timestamps rising with them.
		expect := int32(0)
		lastTS := run.Start.UnixNano()
		for i, p := range pts {
			if i > 0 && p.idx == pts[i-1].idx {
				v.problem("%s/%s run %d: reading #%d stored with two timestamps, %s and %s", sensor, metric, n, p.idx, stamp(pts[i-1].ts), stamp(p.ts))
				continue
			}
			if i > 0 && p.ts <= pts[i-1].ts {
				v.problem("%s/%s run %d: reading #%d at %s is not after #%d at %s", sensor, metric, n, p.idx, stamp(p.ts), pts[i-1].idx, stamp(pts[i-1].ts))
			}
			if p.idx != expect {
				v.rep.Gaps = append(v.rep.Gaps, Gap{
					Sensor: sensor, Metric: metric, Kind: "hole", From: lastTS, To: p.ts,
					Missing: int(p.idx - expect), Exact: true, AfterRun: n, BeforeRun: n,
					Why: fmt.Sprintf("readings #%d..#%d of run %d missing while later ones are stored: a committed batch was lost", expect, p.idx-1, n),
				})
				v.rep.Unexplained++
			} else if i > 0 {
				if d := p.ts - pts[i-1].ts; d > step*3/2 {
					v.rep.TimingGaps++
					v.rep.LongestTiming = max(v.rep.LongestTiming, time.Duration(d))
				}
			}
			expect, lastTS = p.idx+1, p.ts
		}
		first, last := pts[0], pts[len(pts)-1]
		// Between runs: from the last reading stored before to this run's first.
		switch {
		case prevRun < 0 && n > 0:
			g := Gap{Sensor: sensor, Metric: metric, Kind: "start", From: v.runs[0].Start.UnixNano(), To: first.ts, AfterRun: -1, BeforeRun: n}
			v.addGap(&g)
		case prevRun >= 0:
			g := Gap{Sensor: sensor, Metric: metric, Kind: "restart", From: prevTS, To: first.ts, AfterRun: prevRun, BeforeRun: n}
			v.addGap(&g)
		}
		if run.Kind == Killed {
			k := &kills[n]
			k.Stored += len(pts)
			k.TailLag = max(k.TailLag, run.Stop.Sub(time.Unix(0, last.ts)))
		}
		if run.Kind == Graceful {
			v.gracefulTail(sensor, metric, run, pts)
		}
		prevRun, prevTS = n, last.ts
	}
	if last := len(v.runs) - 1; prevRun >= 0 && prevRun != last {
		g := Gap{Sensor: sensor, Metric: metric, Kind: "tail", From: prevTS, To: v.runs[last].Stop.UnixNano(),
			AfterRun: prevRun, BeforeRun: -1, Why: "nothing stored of the final, graceful run"}
		g.Missing = v.estimate(g.From, g.To)
		v.rep.Gaps = append(v.rep.Gaps, g)
		v.rep.Unexplained++
	}
	// Lost readings per kill, per series: from the last stored reading
	// (or the start) to the kill.
	for n, run := range v.runs {
		if run.Kind != Killed {
			continue
		}
		// Nothing stored: all it emitted was lost, from when it began
		// polling (if it did before the kill).
		from := run.Stop.UnixNano()
		if !run.Started.IsZero() {
			from = min(from, run.Started.UnixNano())
		}
		if pts := perRun[n]; len(pts) > 0 {
			from = pts[len(pts)-1].ts
		} else {
			kills[n].TailLag = max(kills[n].TailLag, run.Stop.Sub(run.Start))
		}
		kills[n].Lost += int(max(0, run.Stop.UnixNano()-from) / step)
	}
}

// gracefulTail checks the end of the run stopped with SIGTERM, which must
// lose nothing. Exactly: every poll emits Samples readings per series and a
// poll in progress at the stop still delivers, so the run's readings of a
// series are whole polls (batch boundaries cut polls, so a lost tail
// usually leaves half a poll). By time: the last reading comes from the
// last poll, at most a poll interval before SIGTERM, plus FlushSlack for a
// poll that was late right then.
func (v *verifier) gracefulTail(sensor, metric string, run *Run, pts []point) {
	o := v.o
	last := pts[len(pts)-1]
	if n := len(pts) % o.Samples; n != 0 {
		g := Gap{Sensor: sensor, Metric: metric, Kind: "tail", From: last.ts, To: run.Stop.UnixNano(),
			Missing: o.Samples - n, Exact: true, AfterRun: run.N, BeforeRun: -1,
			Why: fmt.Sprintf("after the graceful stop the last poll is incomplete: %d of %d readings stored", n, o.Samples)}
		v.rep.Gaps = append(v.rep.Gaps, g)
		v.rep.Unexplained++
		return
	}
	allowed := int64(o.PollInterval + o.FlushSlack)
	if d := run.Stop.UnixNano() - last.ts; d > allowed {
		g := Gap{Sensor: sensor, Metric: metric, Kind: "tail", From: last.ts, To: run.Stop.UnixNano(),
			Missing: int((d - int64(o.PollInterval)) / v.step), AfterRun: run.N, BeforeRun: -1,
			Why: fmt.Sprintf("after the graceful stop the last reading is %v before SIGTERM, more than a poll interval + flush slack (%v)",
				time.Duration(d).Round(time.Microsecond), time.Duration(allowed))}
		v.rep.Gaps = append(v.rep.Gaps, g)
		v.rep.Unexplained++
	}
	v.rep.FinalTail = max(v.rep.FinalTail, time.Duration(run.Stop.UnixNano()-last.ts))
}

// addGap records a gap between runs, explained or not.
func (v *verifier) addGap(g *Gap) {
	g.Missing = v.estimate(g.From, g.To)
	v.explain(g)
	if !g.Explained {
		v.rep.Unexplained++
	}
	v.rep.Gaps = append(v.rep.Gaps, *g)
}

// estimate counts the readings a series emitted in (from, to): the time
// any run was alive in it, over the spacing.
func (v *verifier) estimate(from, to int64) int {
	var alive int64
	for _, r := range v.runs {
		lo, hi := max(from, r.Start.UnixNano()), min(to, r.Stop.UnixNano())
		if hi > lo {
			alive += hi - lo
		}
	}
	return int(alive / v.step)
}

// seqList formats up to n seqs, compressing runs.
func seqList(seqs []uint64, n int) string {
	seqs = slices.Clone(seqs)
	slices.Sort(seqs)
	var parts []string
	for i := 0; i < len(seqs) && len(parts) < n; {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprint(seqs[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", seqs[i], seqs[j]))
		}
		i = j + 1
	}
	s := strings.Join(parts, ",")
	if len(parts) == n {
		s += ",…"
	}
	return s
}
