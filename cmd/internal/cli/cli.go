// Package cli holds what every Outpost binary's command line shares: help
// and usage that behave (-h and --help print to stdout and exit 0; a bad
// flag prints the problem and the usage to stderr and exits 2), the
// version, and the logger set up from --log-level and --log-format.
//
// Exit codes of every binary: 0 success, 1 a runtime failure (including
// anything that fails before the pipeline runs), 2 usage or config errors.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // something failed while running or starting
	ExitUsage   = 2 // bad command line or invalid config
)

// UsageError marks an error that exits with ExitUsage.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return UsageError{fmt.Errorf(format, args...)}
}

// ExitCode maps err to the exit code: 0 for nil and for flag.ErrHelp (help
// was asked for and printed), 2 for a UsageError, 1 otherwise.
func ExitCode(err error) int {
	var u UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &u):
		return ExitUsage
	}
	return ExitFailure
}

// Command describes a command or subcommand for its help text.
type Command struct {
	Name     string // as typed: "outpost run"
	Args     string // after the name: "--config FILE [flags]"
	Summary  string // what it does: one or a few sentences
	Examples []string
	// More is printed after the flags (subcommands, notes); optional.
	More string
}

// FlagSet returns a flag set for c whose usage is c's help text. Parse it
// with Parse.
func (c *Command) FlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.Usage = func() { c.PrintHelp(fs.Output(), fs) }
	return fs
}

// PrintHelp writes c's help: usage line, summary, flags with their
// defaults (fs may be nil), more, examples.
func (c *Command) PrintHelp(w io.Writer, fs *flag.FlagSet) {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s %s\n", c.Name, c.Args)
	if c.Summary != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimRight(c.Summary, "\n"))
	}
	if fs != nil && hasFlags(fs) {
		b.WriteString("\nflags:\n")
		out := fs.Output()
		var flags bytes.Buffer
		fs.SetOutput(&flags)
		fs.PrintDefaults()
		fs.SetOutput(out)
		b.Write(flags.Bytes())
	}
	if c.More != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.TrimRight(c.More, "\n"))
	}
	if len(c.Examples) > 0 {
		b.WriteString("\nexample:\n")
		for _, e := range c.Examples {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	io.WriteString(w, b.String()) //nolint:errcheck // help goes to a terminal or a pipe; nothing to do on failure
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// Parse parses args into fs. On -h or --help it prints the help to stdout
// and returns flag.ErrHelp (ExitCode 0). On a bad flag it prints the
// problem and the help to stderr and returns a UsageError. maxArgs bounds
// the positional arguments (-1: any number).
func Parse(fs *flag.FlagSet, args []string, maxArgs int, stdout, stderr io.Writer) error {
	var msgs bytes.Buffer
	fs.SetOutput(&msgs)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return flag.ErrHelp
	case err != nil:
		// flag has written the problem and the usage into msgs.
		stderr.Write(msgs.Bytes()) //nolint:errcheck // best effort, exit 2 follows
		fs.SetOutput(stderr)
		return UsageError{silent{err}}
	case maxArgs >= 0 && fs.NArg() > maxArgs:
		fs.SetOutput(stderr)
		return UsageError{fmt.Errorf("%s: unexpected arguments %q (see %s --help)", fs.Name(), fs.Args()[maxArgs:], fs.Name())}
	}
	fs.SetOutput(stderr)
	return nil
}

// silent wraps an error the flag package has already printed.
type silent struct{ error }

func (s silent) Unwrap() error { return s.error }

// Printed reports whether err has already been shown to the user (a flag
// error printed with the usage) and needs no second line.
func Printed(err error) bool {
	var s silent
	return errors.Is(err, flag.ErrHelp) || errors.As(err, &s)
}

// IsHelp reports whether arg asks for help.
func IsHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// ErrUsageShown is returned after a command has printed its usage to
// stderr for a missing subcommand: ExitCode 2, nothing more printed.
var ErrUsageShown error = UsageError{silent{errors.New("usage shown")}}

// OneLine is err's text on one line: the lines of a multi-line error (a
// joined error, a driver's list of failed addresses) are joined by "; ",
// or by a space after a line that ends in a colon.
func OneLine(err error) string {
	var b strings.Builder
	for l := range strings.SplitSeq(err.Error(), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
			continue
		case b.Len() == 0:
		case strings.HasSuffix(b.String(), ":"):
			b.WriteByte(' ') // "failed to connect:" then its list
		default:
			b.WriteString("; ")
		}
		b.WriteString(l)
	}
	return b.String()
}

// ErrVersionShown is returned after --version has printed the version:
// ExitCode 0, nothing more printed.
var ErrVersionShown = fmt.Errorf("version shown: %w", flag.ErrHelp)

// VersionFlag adds --version to fs. After parsing, ShowVersion prints the
// version if it was given.
func VersionFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("version", false, "print the version and exit")
}

// ShowVersion prints "name version" to w and returns ErrVersionShown when
// *flag is set, else nil.
func ShowVersion(set *bool, name string, w io.Writer) error {
	if set == nil || !*set {
		return nil
	}
	fmt.Fprintf(w, "%s %s\n", name, Version())
	return ErrVersionShown
}
