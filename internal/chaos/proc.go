package chaos

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// modulePath is the module the binaries are built from.
const modulePath = "github.com/outposthq/outpost"

// Binaries are the paths of the programs under test.
type Binaries struct {
	Gateway string // cmd/outpost
	Ingest  string // cmd/outpost-ingest
}

// Build compiles cmd/outpost and cmd/outpost-ingest into dir with the go
// command of the running toolchain, in one invocation, without -race (the
// subprocesses are the system under test, not the code being raced).
func Build(ctx context.Context, dir string) (Binaries, error) {
	gocmd := filepath.Join(runtime.GOROOT(), "bin", "go"+exeSuffix())
	if _, err := os.Stat(gocmd); err != nil {
		gocmd = "go" // a toolchain without GOROOT: the PATH one
	}
	// -trimpath and CGO_ENABLED=0 as in `make build`, so CI's build cache hits.
	cmd := exec.CommandContext(ctx, gocmd, "build", "-trimpath", "-o", dir+string(os.PathSeparator),
		modulePath+"/cmd/outpost", modulePath+"/cmd/outpost-ingest")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("chaos: go build: %w\n%s", err, out)
	}
	return Binaries{
		Gateway: filepath.Join(dir, "outpost"+exeSuffix()),
		Ingest:  filepath.Join(dir, "outpost-ingest"+exeSuffix()),
	}, nil
}

func exeSuffix() string {
	if runtime.GOOS == "windows" {
		return ".exe"
	}
	return ""
}

// proc is one child process whose stdout and stderr go to a log file,
// each line prefixed with the time the harness received it. A goroutine of
// its own reaps it; done is closed once it has exited.
type proc struct {
	name  string
	cmd   *exec.Cmd
	log   string
	out   *logWriter
	done  chan struct{}
	state *os.ProcessState // valid after done
}

// startProc starts bin with args, its output appended to logPath. The
// time the first line containing mark arrives is noted (see marked).
func startProc(name, logPath, mark, bin string, args ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("chaos: %s: %w", name, err)
	}
	w := &logWriter{f: f, mark: []byte(mark)}
	cmd := exec.Command(bin, args...)
	// One writer for both: exec gives them one pipe and one copying
	// goroutine, which Wait waits for.
	cmd.Stdout, cmd.Stderr = w, w
	setDeathSignal(cmd) // the harness dying (a test timeout) must not leave children behind
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("chaos: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, out: w, done: make(chan struct{})}
	go func() {
		// The exit status is read from state; Wait's error only repeats it.
		_ = cmd.Wait()
		p.state = cmd.ProcessState
		w.close()
		close(p.done)
	}()
	return p, nil
}

// marked returns when the process first printed its mark; zero if never.
func (p *proc) marked() time.Time {
	p.out.mu.Lock()
	defer p.out.mu.Unlock()
	return p.out.at
}

// logWriter writes a child's output to a file a line at a time, each
// prefixed with the time it arrived, and notes when the mark first arrived.
type logWriter struct {
	mu      sync.Mutex
	f       *os.File
	mark    []byte
	at      time.Time
	partial []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := w.partial[:i+1]
		if w.at.IsZero() && len(w.mark) > 0 && bytes.Contains(line, w.mark) {
			w.at = now
		}
		if _, err := fmt.Fprintf(w.f, "%s | %s", now.UTC().Format("15:04:05.000000"), line); err != nil {
			return 0, err
		}
		w.partial = w.partial[i+1:]
	}
	w.partial = append([]byte(nil), w.partial...) // do not pin what was written
	return len(p), nil
}

func (w *logWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		fmt.Fprintf(w.f, "%s | %s\n", time.Now().UTC().Format("15:04:05.000000"), w.partial)
	}
	w.f.Close()
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig; a process that already ended is not an error.
func (p *proc) signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("chaos: signal %s: %w", p.name, err)
	}
	return nil
}

// wait waits up to d for the process to end.
func (p *proc) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// kill ends the process with SIGKILL and reaps it. Idempotent.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		// Nothing else to try: Wait below would hang on a process we
		// cannot kill, so give up on it after a while.
		p.wait(10 * time.Second)
		return
	}
	<-p.done
}

// killedBy reports whether the ended process died of sig.
func (p *proc) killedBy(sig syscall.Signal) bool {
	ws, ok := p.state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// exitedOK reports whether the ended process exited with status 0.
func (p *proc) exitedOK() bool { return p.state.Success() }

// status describes how the ended process ended.
func (p *proc) status() string {
	if !p.exited() {
		return "running"
	}
	return p.state.String()
}

// tailLog returns the last n lines of a log file, for failure reports.
func tailLog(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 2*n {
			lines = append(lines[:0], lines[len(lines)-n:]...)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitLog waits until the log file contains want, the process ends, or d
// passes.
func (p *proc) waitLog(want string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if b, err := os.ReadFile(p.log); err == nil && strings.Contains(string(b), want) {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("chaos: %s ended (%s) before logging %q:\n%s", p.name, p.status(), want, tailLog(p.log, 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: %s did not log %q within %s:\n%s", p.name, want, d, tailLog(p.log, 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
