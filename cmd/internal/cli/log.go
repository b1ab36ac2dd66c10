package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// Log formats.
const (
	FormatAuto    = "auto"    // console on a terminal, JSON otherwise
	FormatConsole = "console" // human-readable lines; coloured on a terminal unless NO_COLOR is set
	FormatJSON    = "json"    // one JSON object per line: files, journald, log shippers
)

// logTimeFormat is RFC 3339 with milliseconds: log lines of one second
// stay in order when sorted, and a reader sees sub-second gaps.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

func init() {
	// Durations print as Go duration strings ("10s", "1.5ms") rather than
	// bare milliseconds, in every format.
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	zerolog.TimeFieldFormat = logTimeFormat
}

// LogFlags are a binary's --log-level and --log-format.
type LogFlags struct {
	Level  string
	Format string
}

// Register adds --log-level and --log-format to fs. Empty defaults mean
// "not given" (a config file's value may apply; NewLogger then uses info
// and auto).
func (l *LogFlags) Register(fs *flag.FlagSet, level, format string) {
	l.Level, l.Format = level, format
	lvl := "log level: debug, info, warn or error"
	if level == "" {
		lvl += " (default from the config file, else info)"
	}
	fmtHelp := "log format: auto (console on a terminal, JSON otherwise), console or json"
	if format == "" {
		fmtHelp += " (default from the config file, else auto)"
	}
	fs.StringVar(&l.Level, "log-level", level, lvl)
	fs.StringVar(&l.Format, "log-format", format, fmtHelp)
}

// Check validates the flags' values (empty is allowed: not given).
func (l *LogFlags) Check() error {
	if l.Level != "" {
		if _, err := parseLevel(l.Level); err != nil {
			return Usagef("--log-level: %v", err)
		}
	}
	if l.Format != "" {
		if err := checkFormat(l.Format); err != nil {
			return Usagef("--log-format: %v", err)
		}
	}
	return nil
}

// NewLogger returns a logger writing to w at level in format; "" means
// info and auto.
func NewLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	return newLogger(w, lvl, format)
}

// NewProcessLogger is NewLogger for the one logger of a process whose
// level may change while it runs (the gateway's log.level command): the
// logger passes debug and above (trace too, when level is trace), and
// zerolog's global level, set here to level, is the only filter, so
// that zerolog.SetGlobalLevel can lower it as well as raise it. What is
// logged is the same as NewLogger's until the global level changes.
// There is one global level to a process, and it filters every logger
// in it: a binary's main path calls this, once, and never code that
// tests run side by side with other loggers.
func NewProcessLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return zerolog.Nop(), err
	}
	log, err := newLogger(w, min(lvl, zerolog.DebugLevel), format)
	if err != nil {
		return log, err
	}
	zerolog.SetGlobalLevel(lvl)
	return log, nil
}

func newLogger(w io.Writer, lvl zerolog.Level, format string) (zerolog.Logger, error) {
	if err := checkFormat(format); err != nil {
		return zerolog.Nop(), err
	}
	tty := isTerminal(w)
	if format == FormatConsole || (format == FormatAuto || format == "") && tty {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !tty || os.Getenv("NO_COLOR") != ""}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func parseLevel(s string) (zerolog.Level, error) {
	switch s {
	case "":
		return zerolog.InfoLevel, nil
	case "trace", "debug", "info", "warn", "error":
		return zerolog.ParseLevel(s)
	}
	return zerolog.NoLevel, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
}

func checkFormat(s string) error {
	switch s {
	case "", FormatAuto, FormatConsole, FormatJSON:
		return nil
	}
	return fmt.Errorf("unknown log format %q (want auto, console or json)", s)
}

// isTerminal reports whether w is a terminal (not a file, a pipe or the
// journal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}
