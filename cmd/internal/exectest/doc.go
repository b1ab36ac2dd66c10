// Package exectest runs Outpost's binaries as a user does, from outside
// (exec, not in process): help and usage on every command, versions, exit
// codes, and every way a start can fail before the pipeline runs. It holds
// only tests.
package exectest
