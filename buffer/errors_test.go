package buffer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// envHold makes the test binary a helper process that holds the outbox
// at that path open until its stdin closes (see TestMain).
const envHold = "OUTPOST_TEST_BUFFER_HOLD"

// holdOutbox is the helper process: it opens the outbox at path, says
// "held" on stdout and keeps it open until stdin reaches EOF.
func holdOutbox(path string) int {
	o, err := Open(path, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("held")
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if err := o.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// wantLocked checks that err is Open's error for the file at path held by
// the process pid (on Linux, where the holder is found).
func wantLocked(t *testing.T, err error, path string, pid int) {
	t.Helper()
	var le *LockedError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) {
		t.Fatalf("error %v, want a *LockedError wrapping ErrLocked", err)
	}
	if runtime.GOOS != "linux" {
		pid = 0
	}
	if le.Path != path || le.PID != pid {
		t.Errorf("LockedError{Path: %s, PID: %d}, want {%s, %d}", le.Path, le.PID, path, pid)
	}
	want := fmt.Sprintf("buffer: outbox %s is in use by another process (pid %d)", path, pid)
	switch {
	case pid == 0:
		want = fmt.Sprintf("buffer: outbox %s is in use by another process", path)
	case pid == os.Getpid():
		want = fmt.Sprintf("buffer: outbox %s is already open in this process (pid %d)", path, pid)
	}
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestOpenLockedByAnotherProcess(t *testing.T) {
	path := newPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envHold+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// release ends the helper (closing its stdin) and waits for it.
	release := sync.OnceValue(func() error {
		stdin.Close()
		return cmd.Wait()
	})
	t.Cleanup(func() {
		if err := release(); err != nil {
			t.Errorf("helper process: %v", err)
		}
	})
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "held\n" {
		t.Fatalf("helper process said %q, %v; want held", line, err)
	}

	for _, ro := range []bool{false, true} {
		o, err := Open(path, &Options{ReadOnly: ro})
		if err == nil {
			o.Close()
			t.Fatalf("Open (read-only %v) of a file another process holds succeeded", ro)
		}
		wantLocked(t, err, path, cmd.Process.Pid)
	}

	if err := release(); err != nil {
		t.Fatalf("helper process: %v", err)
	}
	o := open(t, path, nil) // released: it opens now
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
}

// An outbox that cannot be opened for OS reasons: the error names the
// path once and wraps the OS's reason, so errors.Is tells a missing data
// directory from one that may not be written. These fail for root too.
func TestOpenOSErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		path     string
		readOnly bool
		is       []error
	}{
		{"missing data dir", filepath.Join(dir, "no", "such", "outbox.db"), false, []error{fs.ErrNotExist}},
		{"data dir is a file", filepath.Join(file, "outbox.db"), false, []error{fs.ErrNotExist, syscall.ENOTDIR}},
		{"data dir is a file, read-only", filepath.Join(file, "outbox.db"), true, []error{fs.ErrNotExist, syscall.ENOTDIR}},
		{"missing file, read-only", filepath.Join(dir, "outbox.db"), true, []error{fs.ErrNotExist}},
		{"path is a directory", dir, false, []error{syscall.EISDIR}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Open(tc.path, &Options{ReadOnly: tc.readOnly})
			if err == nil {
				o.Close()
				t.Fatal("Open succeeded")
			}
			if o != nil {
				t.Errorf("Open returned %p with its error", o)
			}
			wantPathError(t, err, tc.path, tc.is...)
		})
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("the directory given as the path was moved: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.corrupt-*")); len(m) != 0 {
		t.Errorf("moved aside: %v", m)
	}
}

// A data directory the gateway may not write: a new outbox cannot be
// created (fs.ErrPermission), an existing one still opens, and a damaged
// one that cannot be moved aside is an error, not a loop or a panic.
func TestOpenReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root, which ignores directory permissions; TestOpenOSErrors covers the errors root gets too")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(dir, "existing.db")
	validFile(t, existing)
	damaged := filepath.Join(dir, "damaged.db")
	if err := os.WriteFile(damaged, randomBytes(64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })

	path := filepath.Join(dir, "outbox.db")
	o, err := Open(path, nil)
	if err == nil {
		o.Close()
		t.Fatal("Open created a file in a read-only directory")
	}
	wantPathError(t, err, path, fs.ErrPermission)

	o, err = Open(existing, nil)
	if err != nil {
		t.Fatalf("Open of an existing outbox in a read-only directory: %v", err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	o, err = Open(damaged, nil)
	if err == nil {
		o.Close()
		t.Fatal("Open of a damaged file it cannot move aside succeeded")
	}
	if !errors.Is(err, fs.ErrPermission) || strings.Count(err.Error(), damaged) != 1 ||
		!strings.HasPrefix(err.Error(), "buffer: outbox "+damaged+" is damaged (") {
		t.Errorf("error %q: want \"buffer: outbox %s is damaged (…\" wrapping fs.ErrPermission", err, damaged)
	}
}

// wantPathError checks an OS error of Open: "buffer: … outbox PATH: …",
// PATH named once, matching each of is.
func wantPathError(t *testing.T, err error, path string, is ...error) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, "buffer: ") || !strings.Contains(msg, " outbox "+path+": ") || strings.Count(msg, path) != 1 {
		t.Errorf("error %q: want \"buffer: … outbox %s: …\" naming the path once", msg, path)
	}
	for _, target := range is {
		if !errors.Is(err, target) {
			t.Errorf("error %q does not match %v", msg, target)
		}
	}
}

func TestFlockHolder(t *testing.T) {
	const locks = `1: POSIX  ADVISORY  WRITE 3841 fe:00:9978268 0 EOF
2: FLOCK  ADVISORY  WRITE 15779 fe:01:9978268 0 EOF
3: FLOCK  ADVISORY  WRITE 15780 fe:00:9978269 0 EOF
4: OFDLCK ADVISORY  WRITE -1 fe:00:9978268 0 EOF
5: FLOCK  ADVISORY  WRITE 0 fe:00:9978268 0 EOF
6: -> FLOCK  ADVISORY  WRITE 16000 fe:00:9978268 0 EOF
7: FLOCK  ADVISORY  READ 16790 fe:00:9978268 0 EOF
8: FLOCK  ADVISORY  READ 16791 fe:00:9978268 0 EOF
`
	for _, tc := range []struct {
		name         string
		in           string
		major, minor uint32
		ino          uint64
		want         int
	}{
		{"first holder", locks, 0xfe, 0, 9978268, 16790},
		{"other minor", locks, 0xfe, 1, 9978268, 15779},
		{"other inode", locks, 0xfe, 0, 9978269, 15780},
		{"none", locks, 0xfe, 0, 1, 0},
		{"only a waiter", "1: -> FLOCK ADVISORY WRITE 16000 08:10:42 0 EOF\n", 8, 16, 42, 0},
		{"large device numbers", "1: FLOCK ADVISORY WRITE 77 103:1a:42 0 EOF\n", 0x103, 0x1a, 42, 77},
		{"junk", "\n:\nFLOCK\n1: FLOCK a b c d\n1: FLOCK ADVISORY WRITE x fe:00:1 0 EOF\n1: FLOCK ADVISORY WRITE 9 fe:zz:1 0 EOF\n", 0xfe, 0, 1, 0},
		{"line too long", strings.Repeat("x", 8000) + "\n1: FLOCK ADVISORY WRITE 9 fe:00:1 0 EOF\n", 0xfe, 0, 1, 0},
		{"empty", "", 0xfe, 0, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := flockHolder(strings.NewReader(tc.in), tc.major, tc.minor, tc.ino); got != tc.want {
				t.Errorf("flockHolder = %d, want %d", got, tc.want)
			}
		})
	}
}

func FuzzFlockHolder(f *testing.F) {
	f.Add("1: FLOCK  ADVISORY  WRITE 15779 fe:00:9978268 0 EOF\n", uint32(0xfe), uint32(0), uint64(9978268))
	f.Add("1: -> FLOCK  ADVISORY  WRITE 1 08:01:2 0 EOF\n2: POSIX ADVISORY READ 3 08:01:2 128 128\n", uint32(8), uint32(1), uint64(2))
	f.Fuzz(func(t *testing.T, in string, major, minor uint32, ino uint64) {
		if pid := flockHolder(strings.NewReader(in), major, minor, ino); pid < 0 {
			t.Fatalf("pid %d", pid)
		}
	})
}
