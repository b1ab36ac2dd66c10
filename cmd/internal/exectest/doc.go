// Package exectest runs Outpost's binaries as a user does, from outside
// (exec, not in process): help and usage on every command, versions, exit
// codes, and every way a start can fail before the pipeline runs; the
// gateway's ARM builds under qemu-user, end to end and on every example
// config; and the gateway started on the outbox files earlier releases
// left (buffer/testdata/upgrade). It holds only tests.
package exectest
