// Package chaos is Outpost's kill -9 torture harness. It runs the real
// gateway (cmd/outpost) and ingest service (cmd/outpost-ingest) as
// subprocesses against a broker and a database, kills the gateway with
// SIGKILL at random moments while simulated sensors emit at a high rate,
// restarts it on the same data dir each time, stops it gracefully at the
// end, drains its outbox, and then proves from the database:
//
//   - nothing arrived twice: no two rows share (gateway, sensor, metric, ts),
//     and the batches table holds each seq of one epoch once, 1..N with no
//     hole, whose reading counts add up to the readings table;
//   - nothing committed was lost: the outbox, copied after every kill,
//     opens cleanly with the same epoch, every seq below its next seq is in
//     the database, and every reading it held is too;
//   - every gap in a series lies in a window when the gateway was dead or
//     had not yet flushed: [kill − (batch.interval + poll interval + flush
//     slack), next start + start slack], with the windows derived from the
//     times the harness recorded; and the final graceful stop loses nothing;
//   - resends carry the same bytes: a monitor subscribed to the batch topic
//     hashes every payload per (epoch, seq).
//
// # Telling lost readings from late polls
//
// A poller re-arms its timer after each poll, so consecutive polls are a
// little more than one interval apart and a series' timestamps have a small
// hole at every poll boundary. A pure timestamp rule ("a gap is > 1.5 ×
// spacing") would flag most of them. The harness therefore makes every value
// say which reading it is: each run's simulated signals are a constant (the
// run's number) plus seeded uniform noise, so the value names the run and,
// replaying a generator with the same seed (firmwaresim.NewSignal), the
// reading's index within that run. Within a run the indices stored must be
// exactly 0..n−1 (the batcher commits in order, so a kill can only lose a
// suffix); timestamp gaps between consecutive indices are poll lateness, not
// loss, and are reported apart. Run boundaries are where readings are lost,
// and those gaps are checked against the windows above.
//
// TestKillLoop runs the short version (20 kills; -chaos.kills, -chaos.seed,
// -chaos.dir); scripts/chaos/kill-loop runs the long one.
package chaos
