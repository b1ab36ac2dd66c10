//go:build linux

package soak

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/testenv"
)

// Run runs the soak and judges it. An error means the run itself failed
// (a build, a process that died, a sample that could not be taken); a
// run that completes returns its Result, whose Verdict may still fail.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.Rate <= 0 || o.Duration <= 0 {
		return nil, fmt.Errorf("soak: rate %d and duration %v must be > 0", o.Rate, o.Duration)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, err
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	bin := filepath.Join(out, "bin")
	for _, name := range []string{"outpost", "outpost-ingest"} {
		fmt.Fprintf(progress, "soak: building %s\n", name)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(bin, name), "./cmd/"+name)
		cmd.Dir = o.Repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("soak: build %s: %v\n%s", name, err, b)
		}
	}

	// Two soaks started in the same second get ids, hence schemas and
	// topic prefixes, of their own.
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	id := fmt.Sprintf("soak-%d-%x", time.Now().Unix(), rnd)
	prefix := "outpost-soak/" + id
	dsn, dropDB, err := database(ctx, o.DB, id, out)
	if err != nil {
		return nil, err
	}
	defer dropDB()
	defer clearRetained(o.Broker, prefix, progress)

	ing, err := startProc(filepath.Join(out, "ingest.log"), filepath.Join(bin, "outpost-ingest"),
		"--broker", o.Broker, "--db", dsn, "--http", "", "--topic-prefix", prefix, "--group", id, "--log-format", "json")
	if err != nil {
		return nil, err
	}
	defer ing.stop()
	if _, err := ing.await(ctx, "subscribed", time.Minute); err != nil {
		return nil, fmt.Errorf("soak: ingest: %w", err)
	}

	cfg, err := writeConfig(out, id, prefix, o.Broker, o.Rate)
	if err != nil {
		return nil, err
	}
	gw, err := startProc(filepath.Join(out, "gateway.log"), filepath.Join(bin, "outpost"), "run", "--config", cfg, "--log-format", "json")
	if err != nil {
		return nil, err
	}
	defer gw.stop()
	started := time.Now()
	fmt.Fprintf(progress, "soak: gateway %s (pid %d) at ~%d readings/s for %v; samples every %v into %s\n",
		id, gw.cmd.Process.Pid, o.Rate, o.Duration, o.Interval, filepath.Join(out, "soak.csv"))

	res := &Result{CSV: filepath.Join(out, "soak.csv"), SVG: filepath.Join(out, "soak.svg")}
	f, err := os.Create(res.CSV)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cw, err := NewCSVWriter(f)
	if err != nil {
		return nil, err
	}
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	var runErr error
sampling:
	for {
		select {
		case <-ctx.Done():
			runErr = fmt.Errorf("soak: cut short: %w", ctx.Err())
			break sampling
		case <-gw.done:
			runErr = fmt.Errorf("soak: the gateway ended after %v:\n%s", time.Since(started).Round(time.Second), gw.tail())
			break sampling
		case <-tick.C:
		}
		s, err := sample(ctx, gw)
		if err != nil {
			runErr = err
			break
		}
		s.T = time.Since(started).Seconds()
		res.Samples = append(res.Samples, s)
		if err := cw.Write(s); err != nil {
			return nil, err
		}
		fmt.Fprintf(progress, "soak: %4.0fs rss %s hwm %s anon %s file %s heap %s goroutines %d fds %d cpu %.1fs emitted %d acked %d batches\n",
			s.T, MiB(s.RSS), MiB(s.HWM), MiB(s.RSSAnon), MiB(s.RSSFile), MiB(s.Heap), s.Goroutines, s.FDs, float64(s.CPUMillis)/1000, s.ReadingsEmitted, s.BatchesAcked)
		if time.Since(started) >= o.Duration {
			break
		}
	}

	// The graceful stop: the gateway delivers what it holds, then ingest
	// commits the rest.
	gw.signal(syscall.SIGTERM)
	lastLine, err := gw.await(context.Background(), "", time.Minute) // until the gateway's stderr ends
	if err != nil && runErr == nil {
		runErr = fmt.Errorf("soak: gateway stop: %w", err)
	}
	if lastLine != nil {
		res.ReadingsEmitted, res.ReadingsStored = num(lastLine["readings_emitted"]), num(lastLine["readings_stored"])
	}
	time.Sleep(2 * time.Second) // ingest's last commits
	ing.signal(syscall.SIGTERM)
	if _, err := ing.await(context.Background(), "", time.Minute); err != nil && runErr == nil {
		runErr = fmt.Errorf("soak: ingest stop: %w", err)
	}
	res.GatewayErrors = gw.problems()
	dbErr := error(nil)
	if res.DB, dbErr = counts(dsn); dbErr != nil {
		fmt.Fprintf(progress, "soak: counting the database's readings: %v\n", dbErr)
	}

	if len(res.Samples) > 0 {
		svg, err := os.Create(res.SVG)
		if err != nil {
			return nil, err
		}
		err = Plot(svg, res.Samples, PlotOptions{
			Title:  fmt.Sprintf("outpost run at ~%d readings/s for %v: memory, goroutines, open files, CPU", o.Rate, o.Duration),
			Limits: o.Limits, GoalBytes: o.Goal,
		})
		if cerr := svg.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	res.Verdict = Judge(res.Samples, o.Limits)
	if dbErr == nil {
		if dup := res.DB.Readings - res.DB.DistinctReadings; dup != 0 {
			res.Verdict.Failures = append(res.Verdict.Failures, fmt.Sprintf("%d readings twice in the database", dup))
		}
		if res.DB.DeadLetters != 0 {
			res.Verdict.Failures = append(res.Verdict.Failures, fmt.Sprintf("%d batches dead-lettered by ingest", res.DB.DeadLetters))
		}
	}
	if len(res.GatewayErrors) > 0 {
		res.Verdict.Failures = append(res.Verdict.Failures, fmt.Sprintf("the gateway logged %d warnings or errors, the first: %s",
			len(res.GatewayErrors), res.GatewayErrors[0]))
	}
	return res, runErr
}

// sample reads /proc and asks the gateway for its stats line.
func sample(ctx context.Context, gw *proc) (Sample, error) {
	var s Sample
	if err := readProc(gw.cmd.Process.Pid, &s); err != nil {
		return s, fmt.Errorf("soak: %w", err)
	}
	gw.signal(syscall.SIGUSR1)
	st, err := gw.await(ctx, "stats", 10*time.Second)
	if err != nil {
		return s, fmt.Errorf("soak: gateway stats: %w", err)
	}
	s.Heap, s.HeapGoal, s.GoTotal = num(st["heap_bytes"]), num(st["heap_goal_bytes"]), num(st["go_total_bytes"])
	s.Goroutines, s.GCCycles = num(st["goroutines"]), num(st["gc_cycles"])
	s.ReadingsEmitted, s.ReadingsStored, s.ReadingsLost = num(st["readings_emitted"]), num(st["readings_stored"]), num(st["readings_lost"])
	s.BatchesAcked, s.BatchesInFlight = num(st["batches_acked"]), num(st["batches_in_flight"])
	s.OutboxFileBytes = num(st["outbox_file_bytes"])
	return s, nil
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// configTemplate is the gateway under soak: DEVICES simulated environment
// sensors of three metrics each, SAMPLES readings per metric every
// 100 ms, a rule that fires and resolves every minute on each sensor, and
// otherwise the defaults an operator gets (batches of 1000 readings or
// 1 s, zstd, the dashboard on).
const configTemplate = `gateway: {id: ID}
data_dir: data
sensors:
SENSORS
uplink: {broker: "BROKER", topic_prefix: PREFIX}
rules: {files: [rules.yaml]}
`

const sensorTemplate = `  - {id: devN, driver: sim, interval: 100ms, samples: SAMPLES, metrics: [
      {name: temperature, unit: Cel, signal: {kind: sine, base: 25, amplitude: 3, period: 1m, noise: 0.05, resolution: 0.01, seed: N1}},
      {name: humidity, unit: "%RH", signal: {kind: random_walk, base: 45, step: 0.05, min: 0, max: 100, resolution: 0.01, seed: N2}},
      {name: pressure, unit: Pa, signal: {kind: sine, base: 101325, amplitude: 150, period: 10m, noise: 2, resolution: 1, seed: N3}}]}
`

const rulesFile = `rules:
  - name: soak-warm
    select: {metric: temperature}
    group_by: [sensor]
    above: 25
    for: 10s
    message: "{{ .Sensor }} {{ .State }} at {{ .Value }}"
`

const soakDevices = 4

func writeConfig(dir, id, prefix, broker string, rate int) (string, error) {
	samples := max(1, int(math.Round(float64(rate)/10/(soakDevices*3))))
	var sensors strings.Builder
	for n := 1; n <= soakDevices; n++ {
		sensors.WriteString(strings.NewReplacer("devN", fmt.Sprintf("dev%d", n), "SAMPLES", fmt.Sprint(samples),
			"N1", fmt.Sprint(3*n), "N2", fmt.Sprint(3*n+1), "N3", fmt.Sprint(3*n+2)).Replace(sensorTemplate))
	}
	cfg := strings.NewReplacer("ID", id, "SENSORS", strings.TrimRight(sensors.String(), "\n"), "BROKER", broker, "PREFIX", prefix).Replace(configTemplate)
	if err := os.RemoveAll(filepath.Join(dir, "data")); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(rulesFile), 0o644); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "gateway.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

// database returns the ingest DSN and what removes it at the end.
func database(ctx context.Context, db, id, out string) (string, func(), error) {
	if !strings.HasPrefix(db, "postgres://") && !strings.HasPrefix(db, "postgresql://") {
		if db == "" {
			db = "sqlite:" + filepath.Join(out, "ingest.db")
		}
		return db, func() {}, nil
	}
	schema := strings.ReplaceAll(id, "-", "_")
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		return "", nil, fmt.Errorf("soak: postgres: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("soak: postgres: create schema: %w", err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := pgx.Connect(ctx, db)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE") //nolint:errcheck // best effort: a test schema
	}
	u, err := url.Parse(db)
	if err != nil {
		drop()
		return "", nil, fmt.Errorf("soak: postgres DSN: %w", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

func counts(dsn string) (ingest.Counts, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	st, err := stores.Open(ctx, dsn, zerolog.Nop())
	if err != nil {
		return ingest.Counts{}, err
	}
	defer st.Close()
	return st.Counts(ctx)
}

// clearRetained removes the retained messages the run left under prefix
// (status, live values, alert documents) from the shared broker.
func clearRetained(broker, prefix string, progress io.Writer) {
	if err := testenv.ClearRetained(broker, prefix); err != nil {
		fmt.Fprintf(progress, "soak: %v\n", err)
	}
}

// proc is a started binary whose JSON log lines (stderr) go to a file
// and to await.
type proc struct {
	cmd   *exec.Cmd
	log   *os.File
	lines chan map[string]any // parsed lines; the reader blocks when nobody awaits
	done  chan struct{}       // closed when stderr ends
	wg    sync.WaitGroup

	mu     sync.Mutex
	last   []string // the last lines, for errors
	warned []string // warn and error lines
}

func startProc(logPath, path string, args ...string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &proc{cmd: exec.Command(path, args...), log: lf, lines: make(chan map[string]any, 64), done: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("soak: start %s: %w", filepath.Base(path), err)
	}
	p.wg.Add(1)
	go p.read(stderr)
	return p, nil
}

// read copies stderr to the log file and hands parsed lines to await;
// lines nobody awaits are dropped once 64 are queued.
func (p *proc) read(r io.Reader) {
	defer p.wg.Done()
	defer close(p.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		p.log.Write(append(line, '\n')) //nolint:errcheck // the log file is for people; the run goes on
		var m map[string]any
		if json.Unmarshal(line, &m) != nil {
			m = map[string]any{"message": string(line)}
		}
		p.mu.Lock()
		p.last = append(p.last, string(line))
		if len(p.last) > 20 {
			p.last = p.last[1:]
		}
		if lv := m["level"]; lv == "warn" || lv == "error" || lv == "fatal" || lv == "panic" {
			if len(p.warned) < 100 {
				p.warned = append(p.warned, string(line))
			}
		}
		p.mu.Unlock()
		select {
		case p.lines <- m:
		default:
			select { // full: drop the oldest
			case <-p.lines:
			default:
			}
			p.lines <- m
		}
	}
	// Drain the rest of the pipe so the process never blocks on stderr.
	io.Copy(io.Discard, r) //nolint:errcheck
}

// await returns the next line whose message is msg; with msg "", it waits
// for stderr to end and returns the last line that counted readings.
func (p *proc) await(ctx context.Context, msg string, timeout time.Duration) (map[string]any, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var counted map[string]any
	for {
		select {
		case m := <-p.lines:
			if msg != "" && m["message"] == msg {
				return m, nil
			}
			if _, ok := m["readings_stored"]; ok && m["message"] != "stats" {
				counted = m
			}
		case <-p.done:
			// Lines still queued.
			for {
				select {
				case m := <-p.lines:
					if msg != "" && m["message"] == msg {
						return m, nil
					}
					if _, ok := m["readings_stored"]; ok && m["message"] != "stats" {
						counted = m
					}
					continue
				default:
				}
				break
			}
			if msg == "" {
				return counted, nil
			}
			return nil, fmt.Errorf("%s ended without logging %q:\n%s", filepath.Base(p.cmd.Path), msg, p.tail())
		case <-deadline.C:
			return counted, fmt.Errorf("%s logged no %q within %v:\n%s", filepath.Base(p.cmd.Path), msg, timeout, p.tail())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (p *proc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.last, "\n")
}

func (p *proc) problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.warned...)
}

func (p *proc) signal(s syscall.Signal) {
	p.cmd.Process.Signal(s) //nolint:errcheck // an ended process is seen by its done channel
}

// stop kills the process if it still runs, and waits for it and its
// reader.
func (p *proc) stop() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill() //nolint:errcheck
	}
	p.wg.Wait()
	var ee *exec.ExitError
	if err := p.cmd.Wait(); err != nil && !errors.As(err, &ee) && !strings.Contains(err.Error(), "Wait was already called") {
		fmt.Fprintf(os.Stderr, "soak: %s: %v\n", filepath.Base(p.cmd.Path), err)
	}
	p.log.Close()
}
