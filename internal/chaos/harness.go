package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	firmwaresim "github.com/outposthq/outpost/firmware-sim"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
)

// RunKind says how a gateway run ended.
type RunKind int

const (
	Killed   RunKind = iota // SIGKILL at a random moment
	Graceful                // SIGTERM after Options.FinalUp: the last run with the simulated series
	Drain                   // SIGTERM once the database holds every committed batch
)

func (k RunKind) String() string {
	switch k {
	case Killed:
		return "killed"
	case Graceful:
		return "graceful"
	}
	return "drain"
}

// startedMark is what gateway.Start logs once the pollers run. If it
// changes, Verify reports runs that "never started": update it here.
const startedMark = "gateway started"

// Run is one gateway process, as the harness recorded it.
type Run struct {
	N      int
	Kind   RunKind
	Center float64                // the constant its simulated signals are centered on
	Spec   firmwaresim.SignalSpec // of every simulated series of the run
	Config string
	Log    string // stdout and stderr of the process
	Up     time.Duration

	Start time.Time // just before exec
	// Started is when the gateway logged that its sensors are polling
	// (startedMark), as the harness received the line; zero if it never did.
	Started time.Time
	Stop    time.Time // just before SIGKILL or SIGTERM
	Exited  time.Time // when the harness saw it end
	Status  string    // how the process ended
	// SelfExit is set when the process ended before the harness stopped it.
	SelfExit bool

	Outbox *OutboxState // the outbox as this run left it (read after the loop)
	copy   string
}

// Result is everything a kill loop recorded; Verify judges it.
type Result struct {
	Options  Options
	Gateway  string
	Runs     []*Run
	Rows     []Row      // the gateway's readings in the database
	Batches  []BatchRow // its batches rows
	Losses   int64      // rows in gaps (loss records the gateway sent)
	Dead     int64      // dead letters
	Counts   ingest.Counts
	Monitor  MonitorRecord
	Final    *OutboxState // the outbox after the drain
	Problems []string     // seen while running: processes that misbehaved
	Elapsed  time.Duration
}

// Harness runs one kill loop against one broker and database.
type Harness struct {
	t       testing.TB
	o       Options
	gateway string
	prefix  string
	group   string
	dataDir string
	rng     *mrand.Rand

	ingest *proc
	gw     *proc
	mon    *monitor
	res    *Result
}

// New prepares a kill loop; t.Cleanup kills whatever it leaves running.
func New(t testing.TB, o Options) (*Harness, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(rnd[:])
	h := &Harness{
		t: t, o: o,
		gateway: "chaos-" + id,
		prefix:  "chaos/" + id,
		group:   "chaos-" + id,
		dataDir: filepath.Join(o.Dir, "data"),
		rng:     mrand.New(mrand.NewPCG(uint64(o.Seed), 0x6b696c6c)), // "kill"
	}
	h.res = &Result{Options: o, Gateway: h.gateway}
	for _, d := range []string{h.dataDir, filepath.Join(o.Dir, "logs"), filepath.Join(o.Dir, "outbox-copies")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("chaos: %w", err)
		}
	}
	t.Cleanup(h.cleanup)
	return h, nil
}

func (h *Harness) cleanup() {
	if h.gw != nil {
		h.gw.kill()
	}
	if h.ingest != nil {
		h.ingest.kill()
	}
	if h.mon != nil {
		h.mon.close()
		h.mon = nil
	}
}

func (h *Harness) problem(format string, args ...any) {
	h.res.Problems = append(h.res.Problems, fmt.Sprintf(format, args...))
}

// Run runs the loop: ingest up all along; Kills gateway runs each ended
// by SIGKILL; a graceful run; drain runs until the outbox is empty; then it
// reads the database. An error means the loop could not be carried out;
// what it found wrong with the system under test is in Result.Problems and
// in what Verify says.
func (h *Harness) Run(ctx context.Context) (*Result, error) {
	begin := time.Now()
	o := &h.o
	if err := h.startIngest(); err != nil {
		return nil, err
	}
	var err error
	if h.mon, err = startMonitor(o.Broker, h.prefix, h.gateway); err != nil {
		return nil, err
	}
	for i := range o.Kills {
		if err := h.runOnce(ctx, i, Killed, h.upTime()); err != nil {
			return nil, err
		}
	}
	if err := h.runOnce(ctx, o.Kills, Graceful, o.FinalUp); err != nil {
		return nil, err
	}
	if err := h.drain(ctx); err != nil {
		return nil, err
	}
	h.res.Monitor = h.mon.record()
	h.mon.close()
	h.mon = nil
	h.stopIngest()
	for _, r := range h.res.Runs {
		if r.copy != "" {
			r.Outbox = readOutbox(r.copy)
		}
	}
	if err := h.collect(ctx); err != nil {
		return nil, err
	}
	h.res.Elapsed = time.Since(begin)
	return h.res, nil
}

// upTime draws how long the next killed run lives. Early kills are skewed
// toward the first milliseconds (ShortUp·u²), where the gateway opens and
// checks its outbox: a fifth of them land in the first 5ms of 120.
func (h *Harness) upTime() time.Duration {
	o := &h.o
	if h.rng.Float64() < o.ShortShare {
		u := h.rng.Float64()
		return time.Duration(float64(o.ShortUp) * u * u)
	}
	return o.MinUp + time.Duration(h.rng.Int64N(int64(max(o.MaxUp-o.MinUp, 1))))
}

func (h *Harness) startIngest() error {
	o := &h.o
	var err error
	h.ingest, err = startProc("outpost-ingest", filepath.Join(o.Dir, "logs", "ingest.log"), "", o.Bin.Ingest,
		"--broker", o.Broker, "--db", o.DB, "--http", "", "--topic-prefix", h.prefix, "--group", h.group)
	if err != nil {
		return err
	}
	// Subscribed before the first gateway publishes, or the first batches
	// would only arrive after an ack timeout.
	return h.ingest.waitLog("subscribed", 30*time.Second)
}

func (h *Harness) stopIngest() {
	p := h.ingest
	if err := p.signal(syscall.SIGTERM); err != nil {
		h.problem("%v", err)
	}
	if !p.wait(40 * time.Second) {
		h.problem("outpost-ingest did not stop within 40s of SIGTERM; killed:\n%s", tailLog(p.log, 20))
		p.kill()
		return
	}
	if !p.exitedOK() {
		h.problem("outpost-ingest ended %s after SIGTERM:\n%s", p.status(), tailLog(p.log, 20))
	}
}

// startGateway writes run n's config and starts the gateway on it.
func (h *Harness) startGateway(n int, kind RunKind) (*Run, error) {
	o := &h.o
	r := &Run{
		N: n, Kind: kind, Center: runCenter(n),
		Config: filepath.Join(o.Dir, "logs", fmt.Sprintf("gateway-%03d.yaml", n)),
		Log:    filepath.Join(o.Dir, "logs", fmt.Sprintf("gateway-%03d.log", n)),
	}
	c := gwConfig{path: r.Config, id: h.gateway, dataDir: h.dataDir, broker: o.Broker, prefix: h.prefix,
		center: r.Center, seed: runSeed(o.Seed, n), drain: kind == Drain}
	var err error
	if r.Spec, err = c.write(o); err != nil {
		return nil, err
	}
	h.res.Runs = append(h.res.Runs, r)
	r.Start = time.Now()
	h.gw, err = startProc(fmt.Sprintf("gateway run %d", n), r.Log, startedMark, o.Bin.Gateway,
		"run", "--config", r.Config, "--broker", o.Broker, "--data-dir", h.dataDir, "--gateway-id", h.gateway)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// runOnce runs the gateway for up, then kills it (Killed) or stops it
// (Graceful), and copies the outbox it left.
func (h *Harness) runOnce(ctx context.Context, n int, kind RunKind, up time.Duration) error {
	r, err := h.startGateway(n, kind)
	if err != nil {
		return err
	}
	r.Up = up
	if err := h.sleep(ctx, up); err != nil {
		return err
	}
	sig := syscall.SIGKILL
	if kind != Killed {
		sig = syscall.SIGTERM
	}
	h.stopGateway(r, sig)
	if kind == Killed {
		h.o.Logf("kill %d/%d after %v", n+1, h.o.Kills, up.Round(time.Millisecond))
	}
	return h.copyOutbox(r)
}

// stopGateway sends sig to the running gateway and waits for it to end.
func (h *Harness) stopGateway(r *Run, sig syscall.Signal) {
	p := h.gw
	defer func() { h.gw = nil }()
	if p.exited() {
		r.SelfExit = true
	}
	r.Stop = time.Now()
	if err := p.signal(sig); err != nil {
		h.problem("%v", err)
	}
	limit := 20 * time.Second // a graceful stop flushes and says goodbye
	if sig == syscall.SIGKILL {
		limit = 10 * time.Second
	}
	if !p.wait(limit) {
		h.problem("run %d: gateway still running %v after %v; killed:\n%s", r.N, limit, sig, tailLog(r.Log, 20))
		p.kill()
	}
	r.Exited = time.Now()
	r.Status = p.status()
	r.Started = p.marked()
	switch {
	case r.SelfExit:
		h.problem("run %d (%s): the gateway ended by itself (%s) before the harness stopped it:\n%s", r.N, r.Kind, r.Status, tailLog(r.Log, 20))
	case sig == syscall.SIGKILL && !p.killedBy(syscall.SIGKILL):
		h.problem("run %d: after SIGKILL the gateway ended %s:\n%s", r.N, r.Status, tailLog(r.Log, 20))
	case sig != syscall.SIGKILL && !p.exitedOK():
		h.problem("run %d (%s): after SIGTERM the gateway ended %s:\n%s", r.N, r.Kind, r.Status, tailLog(r.Log, 20))
	}
}

// copyOutbox copies the outbox the dead gateway left, to read it later.
func (h *Harness) copyOutbox(r *Run) error {
	dst := filepath.Join(h.o.Dir, "outbox-copies", fmt.Sprintf("after-run-%03d.db", r.N))
	ok, err := copyOutbox(filepath.Join(h.dataDir, gateway.OutboxFile), dst)
	if err != nil {
		return err
	}
	if ok {
		r.copy = dst
	}
	return nil
}

// sleep waits d, failing early if the ingest service dies or ctx ends.
func (h *Harness) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("chaos: %w", ctx.Err())
	case <-h.ingest.done:
		return fmt.Errorf("chaos: outpost-ingest ended (%s) during the loop:\n%s", h.ingest.status(), tailLog(h.ingest.log, 30))
	}
}

// drain runs the gateway with one idle sensor until the database holds
// every batch the outbox ever committed, stops it with SIGTERM, and checks
// the outbox it leaves is empty; it tries again, within DrainTimeout, if an
// ack arrived too late to delete its batch before the stop.
func (h *Harness) drain(ctx context.Context) error {
	o := &h.o
	d, err := openDB(o.DB)
	if err != nil {
		return err
	}
	defer d.close()
	last := h.res.Runs[len(h.res.Runs)-1]
	var st *OutboxState
	if last.copy != "" {
		st = readOutbox(last.copy)
	}
	deadline := time.Now().Add(o.DrainTimeout)
	for attempt := 1; ; attempt++ {
		n := len(h.res.Runs)
		r, err := h.startGateway(n, Drain)
		if err != nil {
			return err
		}
		complete, err := h.waitCommitted(ctx, d, st, deadline)
		if err != nil {
			return err
		}
		if complete {
			// The acks for the last batches are on their way to the
			// gateway; give them a moment to delete.
			if err := h.sleep(ctx, 300*time.Millisecond); err != nil {
				return err
			}
		}
		h.stopGateway(r, syscall.SIGTERM)
		if err := h.copyOutbox(r); err != nil {
			return err
		}
		if r.copy == "" {
			return errors.New("chaos: no outbox file after the drain run")
		}
		st = readOutbox(r.copy)
		h.res.Final = st
		if st.Err == nil && len(st.Stored) == 0 {
			o.Logf("drained in %d run(s)", attempt)
			return nil
		}
		if time.Now().After(deadline) {
			h.problem("outbox not drained within %v: %d batches still stored (seqs %s), epoch %x, next seq %d, err %v",
				o.DrainTimeout, len(st.Stored), seqList(st.Stored, 20), st.Epoch, st.NextSeq, st.Err)
			return nil
		}
		o.Logf("outbox still holds %d batch(es) after drain run %d; again", len(st.Stored), attempt)
	}
}

// waitCommitted waits until the database holds, for the outbox's epoch,
// every seq from 1 to at least st.NextSeq (the drain run adds one batch of
// its own), or until deadline. Without a readable outbox it waits for the
// batch count to stay still for two ack timeouts.
func (h *Harness) waitCommitted(ctx context.Context, d *db, st *OutboxState, deadline time.Time) (bool, error) {
	o := &h.o
	var lastN uint64
	lastChange := time.Now()
	for {
		es, err := d.epochSeqs(ctx, h.gateway)
		if err != nil {
			return false, err
		}
		if st != nil && st.Err == nil {
			if c, ok := es[st.Epoch]; ok && c[0] == c[1] && c[1] >= st.NextSeq {
				return true, nil
			}
		} else {
			var n uint64
			for _, c := range es {
				n += c[0]
			}
			if n != lastN {
				lastN, lastChange = n, time.Now()
			} else if time.Since(lastChange) > 2*o.AckTimeout {
				return true, nil
			}
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		if err := h.sleep(ctx, 100*time.Millisecond); err != nil {
			return false, err
		}
	}
}

// collect reads what the database holds for the gateway.
func (h *Harness) collect(ctx context.Context) error {
	d, err := openDB(h.o.DB)
	if err != nil {
		return err
	}
	defer d.close()
	res := h.res
	if res.Rows, err = d.readings(ctx, h.gateway); err != nil {
		return err
	}
	if res.Batches, err = d.batches(ctx, h.gateway); err != nil {
		return err
	}
	if res.Losses, err = d.count(ctx, "SELECT count(*) FROM gaps WHERE gateway = "+lit(h.gateway)); err != nil {
		return err
	}
	if res.Dead, err = d.count(ctx, "SELECT count(*) FROM dead_letters"); err != nil {
		return err
	}
	// The store's own view, as operators see it (the schema or file is
	// this test's alone).
	s, err := stores.Open(ctx, h.o.DB, zerolog.Nop())
	if err != nil {
		return err
	}
	res.Counts, err = s.Counts(ctx)
	return errors.Join(err, s.Close())
}
