package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

var testCmd = Command{
	Name:     "tool sub",
	Args:     "--in FILE",
	Summary:  "Does a thing.",
	Examples: []string{"tool sub --in x"},
}

func TestParse(t *testing.T) {
	cases := []struct {
		name       string
		args       []string
		maxArgs    int
		code       int
		stdout     []string // each must appear
		stderr     []string
		printed    bool
		noStderrOn bool // stderr must stay empty
	}{
		{name: "ok", args: []string{"--in", "x"}, code: ExitOK, noStderrOn: true},
		{name: "-h", args: []string{"-h"}, code: ExitOK, printed: true, noStderrOn: true,
			stdout: []string{"usage: tool sub --in FILE", "Does a thing.", "-in file", `(default "def")`, "example:\n  tool sub --in x"}},
		{name: "--help after flags", args: []string{"--in", "y", "--help"}, code: ExitOK, printed: true, stdout: []string{"usage: tool sub"}},
		{name: "unknown flag", args: []string{"--nope"}, code: ExitUsage, printed: true,
			stderr: []string{"flag provided but not defined: -nope", "usage: tool sub --in FILE"}},
		{name: "bad value", args: []string{"--n", "many"}, code: ExitUsage, printed: true, stderr: []string{`invalid value "many"`}},
		{name: "extra argument", args: []string{"extra"}, maxArgs: 0, code: ExitUsage, stdout: nil},
		{name: "any arguments", args: []string{"a", "b"}, maxArgs: -1, code: ExitOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := testCmd.FlagSet()
			fs.String("in", "def", "input `file`")
			fs.Int("n", 1, "count")
			var out, errOut bytes.Buffer
			err := Parse(fs, c.args, c.maxArgs, &out, &errOut)
			if got := ExitCode(err); got != c.code {
				t.Fatalf("exit %d, want %d (err %v)", got, c.code, err)
			}
			if Printed(err) != c.printed {
				t.Errorf("Printed = %v, want %v (err %v)", Printed(err), c.printed, err)
			}
			for _, w := range c.stdout {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range c.stderr {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut.String())
				}
			}
			if c.noStderrOn && errOut.Len() > 0 {
				t.Errorf("stderr not empty: %q", errOut.String())
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
	}{
		{nil, 0},
		{flag.ErrHelp, 0},
		{ErrVersionShown, 0},
		{ErrUsageShown, 2},
		{Usagef("bad %s", "x"), 2},
		{fmt.Errorf("wrapped: %w", UsageError{errors.New("x")}), 2},
		{errors.New("disk on fire"), 1},
	} {
		if got := ExitCode(c.err); got != c.code {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.code)
		}
	}
}

func TestShowVersion(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	v := VersionFlag(fs)
	if err := fs.Parse([]string{"--version"}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := ShowVersion(v, "outpost-x", &out)
	if !errors.Is(err, ErrVersionShown) || ExitCode(err) != 0 || !Printed(err) {
		t.Fatalf("ShowVersion = %v", err)
	}
	i := Version()
	want := fmt.Sprintf("outpost-x %s", i)
	if strings.TrimSpace(out.String()) != want || !strings.Contains(want, i.GoVersion) || !strings.Contains(want, i.OS+"/"+i.Arch) {
		t.Fatalf("printed %q, want %q", out.String(), want)
	}
	if err := ShowVersion(new(bool), "outpost-x", &out); err != nil {
		t.Fatalf("not asked: %v", err)
	}
}

func TestVersionString(t *testing.T) {
	i := Info{Version: "v1.2.3", Revision: "0123456789abcdef", Time: "2026-12-06T10:00:00Z", Modified: true,
		GoVersion: "go1.26.8", OS: "linux", Arch: "arm", ArchLevel: "6"}
	want := "v1.2.3 (rev 0123456789ab, 2026-12-06T10:00:00Z, modified) go1.26.8 linux/arm (6)"
	if got := i.String(); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if got := (Info{Version: "(devel)", GoVersion: "go1.26.8", OS: "linux", Arch: "amd64"}).String(); got != "(devel) go1.26.8 linux/amd64" {
		t.Fatalf("got %q", got)
	}
}

func TestLoggerFormats(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	// Not a terminal: auto means JSON, with durations as Go strings.
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "", FormatAuto)
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Dur("ack_timeout", 10*time.Second).Dur("took", 1500*time.Microsecond).Msg("hello")
	log.Debug().Msg("hidden at info")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("auto on a buffer is not one JSON line: %v\n%s", err, buf.String())
	}
	if line["ack_timeout"] != "10s" || line["took"] != "1.5ms" || line["message"] != "hello" || line["level"] != "info" {
		t.Fatalf("line %v", line)
	}
	if _, err := time.Parse(time.RFC3339Nano, line["time"].(string)); err != nil {
		t.Fatalf("time %v: %v", line["time"], err)
	}

	// console, not a terminal: plain text, no ANSI escapes.
	buf.Reset()
	log, err = NewLogger(&buf, "debug", FormatConsole)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug().Dur("ack_timeout", 10*time.Second).Msg("hello")
	if s := buf.String(); strings.Contains(s, "\x1b[") || !strings.Contains(s, "ack_timeout=10s") || !strings.Contains(s, "DBG hello") {
		t.Fatalf("console line %q", s)
	}

	// A regular file is not a terminal either.
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Fatal("a file taken for a terminal")
	}

	for _, c := range []struct{ level, format string }{{"loud", ""}, {"", "xml"}} {
		if _, err := NewLogger(&buf, c.level, c.format); err == nil {
			t.Errorf("NewLogger(%q, %q) accepted", c.level, c.format)
		}
		lf := LogFlags{Level: c.level, Format: c.format}
		if err := lf.Check(); ExitCode(err) != ExitUsage {
			t.Errorf("Check(%q, %q) = %v, want a usage error", c.level, c.format, err)
		}
	}
}

func TestOneLine(t *testing.T) {
	err := errors.Join(errors.New("first"), fmt.Errorf("second:\n\tdetail a\n\tdetail b"))
	if got := OneLine(err); got != "first; second: detail a; detail b" {
		t.Fatalf("got %q", got)
	}
}

func TestVersionStringPseudo(t *testing.T) {
	i := Info{Version: "v0.0.0-20261206051827-c570a5f7d6cc+dirty", Revision: "c570a5f7d6cc1234", Time: "2026-12-06T05:18:27Z",
		Modified: true, GoVersion: "go1.26.8", OS: "linux", Arch: "amd64"}
	if got, want := i.String(), "v0.0.0-20261206051827-c570a5f7d6cc+dirty go1.26.8 linux/amd64"; got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// A process logger passes debug, and the global level, set to the level
// asked for, filters it: the same lines as NewLogger's until the global
// level is lowered, and then debug lines too, which a NewLogger logger
// at info never writes.
func TestProcessLogger(t *testing.T) {
	prev := zerolog.GlobalLevel()
	t.Cleanup(func() { zerolog.SetGlobalLevel(prev) })
	var buf, plain bytes.Buffer
	log, err := NewProcessLogger(&buf, "info", FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := NewLogger(&plain, "info", FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	if zerolog.GlobalLevel() != zerolog.InfoLevel {
		t.Fatalf("global level %s, want info", zerolog.GlobalLevel())
	}
	for _, l := range []zerolog.Logger{log, fixed} {
		l.Debug().Msg("hidden at info")
		l.Info().Msg("shown at info")
	}
	for _, b := range []*bytes.Buffer{&buf, &plain} {
		if strings.Contains(b.String(), "hidden") || strings.Count(b.String(), "\n") != 1 || !strings.Contains(b.String(), `"level":"info","time":`) {
			t.Fatalf("at info: %s", b.String())
		}
	}
	zerolog.SetGlobalLevel(zerolog.DebugLevel) // what log.level debug does
	log.Debug().Msg("debug after lowering")
	fixed.Debug().Msg("debug after lowering")
	if !strings.Contains(buf.String(), "debug after lowering") {
		t.Fatalf("the process logger wrote no debug line at global level debug:\n%s", buf.String())
	}
	if strings.Contains(plain.String(), "debug after lowering") {
		t.Fatal("a logger built at info wrote a debug line")
	}
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	log.Info().Msg("info after raising")
	if strings.Contains(buf.String(), "info after raising") {
		t.Fatal("an info line at global level warn")
	}
	if _, err := NewProcessLogger(&buf, "loud", ""); err == nil {
		t.Fatal("a bad level accepted")
	}
	if zerolog.GlobalLevel() != zerolog.WarnLevel {
		t.Fatal("a refused level changed the global level")
	}
}
