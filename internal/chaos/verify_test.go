package chaos

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/buffer"

	firmwaresim "github.com/outposthq/outpost/firmware-sim"
)

// synth builds the Result a correct gateway would leave: runs killed after
// their up time (the last tailLag of readings not committed), then a
// graceful run, readings made the way firmware-sim makes them.
type synth struct {
	t    *testing.T
	res  *Result
	rows map[int][]Row // per run
}

// The synthetic gateway starts polling synthStartup after its exec and has
// flushed everything but the last synthTailLag when it is killed.
const (
	synthStartup = 5 * time.Millisecond
	synthTailLag = 60 * time.Millisecond
)

func newSynth(t *testing.T, ups ...time.Duration) *synth {
	t.Helper()
	o, err := Options{Broker: "x", DB: "x", Dir: "x", Bin: Binaries{"x", "x"}, Seed: 7, Kills: len(ups) - 1}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	s := &synth{t: t, res: &Result{Options: o, Gateway: "gw"}, rows: make(map[int][]Row)}
	start := time.Unix(1_800_000_000, 0)
	for n, up := range ups {
		kind := Killed
		if n == len(ups)-1 {
			kind = Graceful
		}
		r := &Run{N: n, Kind: kind, Center: runCenter(n), Start: start, Stop: start.Add(up), Exited: start.Add(up + time.Millisecond)}
		if up > synthStartup {
			r.Started = start.Add(synthStartup)
		}
		r.Spec = firmwaresim.SignalSpec{Kind: firmwaresim.KindConstant, Value: r.Center, Noise: noise, Seed: uint64(runSeed(o.Seed, n))}
		s.res.Runs = append(s.res.Runs, r)
		s.emit(r)
		start = r.Exited.Add(2 * time.Millisecond)
	}
	s.seal()
	return s
}

// emit polls every sensor of r from 5ms after its start, each poll a
// little late, and keeps what a gateway would have committed.
func (s *synth) emit(r *Run) {
	o := &s.res.Options
	step := int64(o.step())
	committedUntil := r.Stop.UnixNano()
	if r.Kind == Killed {
		committedUntil -= int64(synthTailLag)
	}
	for i := range o.Sensors {
		sigs := make([]*firmwaresim.Signal, o.Metrics)
		for j := range sigs {
			var err error
			if sigs[j], err = firmwaresim.NewSignal(r.Spec); err != nil {
				s.t.Fatal(err)
			}
		}
		for poll := r.Start.UnixNano() + int64(synthStartup) + int64(i)*1000; poll <= r.Stop.UnixNano(); poll += int64(o.PollInterval) + 300_000 {
			for j, sig := range sigs {
				for k := o.Samples - 1; k >= 0; k-- {
					ts := poll - int64(k)*step
					v := sig.At(ts)
					if poll <= committedUntil {
						s.rows[r.N] = append(s.rows[r.N], Row{Sensor: sensorID(i), Metric: metricName(j), TS: ts, Value: v})
					}
				}
			}
		}
	}
}

// seal fills in the rows, batches and counts from the rows per run.
func (s *synth) seal() {
	res := s.res
	res.Rows = res.Rows[:0]
	for n := range res.Runs {
		res.Rows = append(res.Rows, s.rows[n]...)
	}
	res.Batches = res.Batches[:0]
	for seq, i := uint64(1), 0; i < len(res.Rows); seq, i = seq+1, i+res.Options.MaxReadings {
		res.Batches = append(res.Batches, BatchRow{Epoch: 0xe, Seq: seq, N: int64(min(res.Options.MaxReadings, len(res.Rows)-i)), Kind: "telemetry"})
	}
	res.Counts.Readings, res.Counts.DistinctReadings = int64(len(res.Rows)), int64(len(res.Rows))
}

// drop removes run n's rows of s1/m1 for which keep is false.
func (s *synth) drop(n int, keep func(i int, r Row) bool) {
	var out []Row
	i := 0
	for _, r := range s.rows[n] {
		if r.Sensor == "s1" && r.Metric == "m1" {
			ok := keep(i, r)
			i++
			if !ok {
				continue
			}
		}
		out = append(out, r)
	}
	s.rows[n] = out
	s.seal()
}

func (s *synth) verify() *Report {
	s.t.Helper()
	rep := Verify(s.res)
	// Most of these histories are broken on purpose: show the verdict only
	// when the test fails.
	s.t.Cleanup(func() {
		if s.t.Failed() {
			s.t.Logf("%s\n%s", rep.Summary(), rep.Details())
		}
	})
	return rep
}

func unexplained(rep *Report, kind string) int {
	n := 0
	for _, g := range rep.Gaps {
		if !g.Explained && g.Kind == kind {
			n++
		}
	}
	return n
}

func TestVerifyClean(t *testing.T) {
	s := newSynth(t, time.Second, 700*time.Millisecond, 50*time.Millisecond, 1200*time.Millisecond, time.Second)
	rep := s.verify()
	if !rep.OK() {
		t.Fatal("a clean history failed")
	}
	o := &s.res.Options
	series := o.Sensors * o.Metrics
	// Each series has a gap at each run boundary with data on both sides:
	// run 2 (killed at 50ms) stored nothing, so 1→3 is one gap.
	if len(rep.Gaps) != 3*series || rep.Unexplained != 0 {
		t.Errorf("gaps %d (unexplained %d), want %d explained", len(rep.Gaps), rep.Unexplained, 3*series)
	}
	if rep.TimingGaps == 0 {
		t.Error("late polls not counted as timing gaps")
	}
	for _, k := range rep.PerKill {
		if k.Run != 2 && (k.TailLag < synthTailLag || k.TailLag > synthTailLag+o.PollInterval) {
			t.Errorf("run %d: tail lag %v, want ≈%v", k.Run, k.TailLag, synthTailLag)
		}
	}
}

func TestVerifyDuplicate(t *testing.T) {
	s := newSynth(t, time.Second, time.Second)
	s.rows[0] = append(s.rows[0], s.rows[0][100])
	s.seal()
	s.res.Counts.DistinctReadings--
	rep := s.verify()
	if rep.OK() || rep.Duplicates != 1 {
		t.Errorf("duplicates %d, ok %v", rep.Duplicates, rep.OK())
	}
}

func TestVerifyHole(t *testing.T) {
	// A stretch lost in the middle of a run: a committed batch lost.
	s := newSynth(t, time.Second, time.Second)
	s.drop(0, func(i int, _ Row) bool { return i < 500 || i >= 520 })
	rep := s.verify()
	if unexplained(rep, "hole") != 1 {
		t.Errorf("hole not found")
	}
	for _, g := range rep.Gaps {
		if g.Kind == "hole" && (g.Missing != 20 || !g.Exact) {
			t.Errorf("hole: %d missing, want exactly 20", g.Missing)
		}
	}
	// The head of a run lost, its tail stored.
	s = newSynth(t, time.Second, time.Second)
	s.drop(1, func(i int, _ Row) bool { return i >= 10 })
	if unexplained(s.verify(), "hole") != 1 {
		t.Errorf("lost head not found")
	}
}

func TestVerifySlowStart(t *testing.T) {
	s := newSynth(t, time.Second, 2*time.Second)
	late := s.res.Runs[1].Start.Add(s.res.Options.StartSlack + 50*time.Millisecond).UnixNano()
	s.drop(1, func(_ int, r Row) bool { return r.TS > late })
	rep := s.verify()
	if unexplained(rep, "restart") != 1 {
		t.Error("a restart slower than the start slack not reported")
	}
}

func TestVerifyLossBeforeWindow(t *testing.T) {
	// Readings committed long before the kill (older than the flush
	// window) missing at the end of a killed run.
	s := newSynth(t, 2*time.Second, time.Second)
	stop := s.res.Runs[0].Stop.UnixNano()
	fw := int64(s.res.Options.flushWindow())
	s.drop(0, func(_ int, r Row) bool { return r.TS < stop-fw-int64(100*time.Millisecond) })
	rep := s.verify()
	if unexplained(rep, "restart") != 1 {
		t.Errorf("loss older than the flush window not found")
	}
	// Just inside the window: explained.
	s = newSynth(t, 2*time.Second, time.Second)
	s.drop(0, func(_ int, r Row) bool { return r.TS < stop-fw+int64(10*time.Millisecond) })
	if rep := s.verify(); !rep.OK() {
		t.Errorf("loss inside the flush window reported")
	}
}

func TestVerifyDeadRun(t *testing.T) {
	// A run that lived a second and stored nothing.
	s := newSynth(t, time.Second, time.Second, time.Second)
	s.drop(1, func(int, Row) bool { return false })
	if unexplained(s.verify(), "restart") != 1 {
		t.Error("a run with nothing stored not reported")
	}
	// A run that never said it started polling, though it lived longer
	// than the start slack.
	s = newSynth(t, time.Second, 1500*time.Millisecond, time.Second)
	s.drop(1, func(int, Row) bool { return false })
	s.res.Runs[1].Started = time.Time{}
	if rep := s.verify(); unexplained(rep, "restart") != 1 || !hasProblem(rep, "never logged") {
		t.Error("a run that never started not reported")
	}
	// A run killed 300ms after it began polling may store nothing.
	s = newSynth(t, time.Second, 300*time.Millisecond, time.Second)
	s.drop(1, func(int, Row) bool { return false })
	if rep := s.verify(); !rep.OK() {
		t.Error("a run killed before it could flush reported")
	}
	// Nothing stored of the first run.
	s = newSynth(t, time.Second, time.Second)
	s.drop(0, func(int, Row) bool { return false })
	if unexplained(s.verify(), "start") != 1 {
		t.Error("a first run with nothing stored not reported")
	}
}

func TestVerifyGracefulTail(t *testing.T) {
	// Half of the last poll lost at the graceful stop.
	s := newSynth(t, time.Second, time.Second)
	n := 0
	for _, r := range s.rows[1] {
		if r.Sensor == "s1" && r.Metric == "m1" {
			n++
		}
	}
	s.drop(1, func(i int, _ Row) bool { return i < n-20 })
	if unexplained(s.verify(), "tail") != 1 {
		t.Error("an incomplete last poll not reported")
	}
	// Whole polls lost (more than the flush slack's worth): the last
	// reading long before the stop.
	s = newSynth(t, time.Second, 2*time.Second)
	n = len(s.rows[1]) / (s.res.Options.Sensors * s.res.Options.Metrics)
	s.drop(1, func(i int, _ Row) bool { return i < n-60*s.res.Options.Samples })
	if unexplained(s.verify(), "tail") != 1 {
		t.Error("the last polls lost at the graceful stop not reported")
	}
	// Nothing of the graceful run stored.
	s = newSynth(t, time.Second, time.Second)
	s.drop(1, func(int, Row) bool { return false })
	if unexplained(s.verify(), "tail") != 1 {
		t.Error("a graceful run with nothing stored not reported")
	}
}

func TestVerifyBatches(t *testing.T) {
	s := newSynth(t, time.Second, time.Second)
	s.res.Batches = slices.Delete(s.res.Batches, 2, 3)
	rep := s.verify()
	if !hasProblem(rep, "seqs missing") || !hasProblem(rep, "count") {
		t.Error("a missing seq not reported")
	}
	s = newSynth(t, time.Second, time.Second)
	s.res.Batches[len(s.res.Batches)-1].Epoch = 0xf
	if !hasProblem(s.verify(), "2 epochs") {
		t.Error("a second epoch not reported")
	}
}

func TestVerifyOutbox(t *testing.T) {
	s := newSynth(t, time.Second, time.Second)
	last := s.res.Batches[len(s.res.Batches)-1].Seq
	s.res.Runs[0].Outbox = &OutboxState{Epoch: 0xe, NextSeq: last + 2, Readings: []Row{{Sensor: "s1", Metric: "m1", TS: 1}}}
	rep := s.verify()
	if !hasProblem(rep, "committed seqs") || !hasProblem(rep, "readings it held") {
		t.Error("committed batches and readings missing from the database not reported")
	}
	s.res.Runs[0].Outbox = &OutboxState{Epoch: 0xd, NextSeq: 1}
	if !hasProblem(s.verify(), "epoch d") {
		t.Error("an outbox of another epoch not reported")
	}
}

func TestVerifyForeignValue(t *testing.T) {
	s := newSynth(t, time.Second, time.Second)
	s.rows[0][3].Value += 1e-9
	s.seal()
	if !hasProblem(s.verify(), "no run's signal produced") {
		t.Error("a value no run emitted not reported")
	}
}

func TestVerifyMonitor(t *testing.T) {
	s := newSynth(t, time.Second, time.Second)
	s.res.Monitor = MonitorRecord{Seen: map[batchID]seenBatch{{0xe, 1}: {times: 2, diff: 1}}}
	if !hasProblem(s.verify(), "other bytes") {
		t.Error("a resend with other bytes not reported")
	}
}

func hasProblem(rep *Report, sub string) bool {
	for _, p := range rep.Problems {
		if strings.Contains(p, sub) {
			return true
		}
	}
	return false
}

// A gateway killed before its outbox's first transaction committed
// leaves bbolt's empty layout: nothing to check, not an outbox of
// another epoch. An outbox that was made is read as one.
func TestVerifyUnmadeOutbox(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.db")
	db, err := bolt.Open(empty, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if st := readOutbox(empty); !st.Unmade || st.Epoch != 0 {
		t.Fatalf("bbolt's empty layout read as %+v, want unmade", st)
	}
	made := filepath.Join(dir, "made.db")
	ob, err := buffer.Open(made, nil)
	if err != nil {
		t.Fatal(err)
	}
	epoch := ob.Epoch()
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	if st := readOutbox(made); st.Unmade || st.Epoch != epoch || st.Err != nil {
		t.Fatalf("a made outbox read as %+v, want epoch %x", st, epoch)
	}

	s := newSynth(t, time.Second, time.Second)
	s.res.Runs[0].Outbox = &OutboxState{Unmade: true, Epoch: 0xd}
	if rep := s.verify(); hasProblem(rep, "epoch d") {
		t.Error("an unmade outbox reported as one of another epoch")
	}
}
