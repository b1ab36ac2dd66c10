package main

import (
	"testing"

	"github.com/rs/zerolog"
)

// testLogger logs warnings and errors into the test's output.
func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.ConsoleWriter{Out: zerolog.TestWriter{T: t}, NoColor: true}).Level(zerolog.WarnLevel)
}
