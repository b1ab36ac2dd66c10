package exectest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// binDir holds the binaries built for this run of the tests.
var binDir string

// binaries are the commands built and run here.
var binaries = []string{"outpost", "outpost-ingest", "outpost-demo", "outpost-sim"}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "outpost-exectest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		// Others may need to run them (a test runs a gateway as an
		// unprivileged user).
		if err := os.Chmod(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		args := []string{"build", "-o", dir + string(os.PathSeparator)}
		for _, b := range binaries {
			args = append(args, "github.com/outposthq/outpost/cmd/"+b)
		}
		cmd := exec.Command("go", args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building the binaries:", err)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

// result is what a run of a binary did.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// runBin runs binary name with args and returns what it did. It fails the
// test if the binary does not exit within a minute.
func runBin(t *testing.T, name string, args ...string) result {
	t.Helper()
	return runCmd(t, command(t, name, args...))
}

// command is an exec.Cmd for binary name with a minute to run.
func command(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	return cmd
}

func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("%s: %v\n%s", cmd, err, r)
	}
	noPanic(t, r)
	return r
}

// noPanic fails the test if the output shows a Go panic or a crash.
func noPanic(t *testing.T, r result) {
	t.Helper()
	for _, s := range []string{"panic:", "goroutine ", "SIGSEGV", "runtime error"} {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("output shows a crash (%q):\n%s", s, r)
		}
	}
}
