package main

import (
	"runtime/metrics"
)

// The runtime metrics logged on SIGUSR1, read without stopping the world.
var statsMetrics = [...]string{
	"/memory/classes/heap/objects:bytes", // live and not yet swept heap objects
	"/gc/heap/goal:bytes",
	"/memory/classes/total:bytes", // all memory the Go runtime mapped
	"/sched/goroutines:goroutines",
	"/gc/cycles/total:gc-cycles",
}

// logStats writes one "stats" line: the Go runtime's memory and
// goroutines and the pipeline's counters. SIGUSR1 asks for it, so that an
// operator or a soak test (internal/soak) can sample a running gateway
// without a listening port.
func (m *Main) logStats() {
	samples := make([]metrics.Sample, len(statsMetrics))
	for i, name := range statsMetrics {
		samples[i].Name = name
	}
	metrics.Read(samples)
	u64 := func(i int) uint64 {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return samples[i].Value.Uint64()
	}
	ev := m.Log.Info().
		Uint64("heap_bytes", u64(0)).
		Uint64("heap_goal_bytes", u64(1)).
		Uint64("go_total_bytes", u64(2)).
		Uint64("goroutines", u64(3)).
		Uint64("gc_cycles", u64(4))
	if g := m.Gateway; g != nil {
		st := g.Stats()
		ev = ev.Int64("readings_emitted", st.ReadingsEmitted).
			Int64("readings_stored", st.ReadingsStored).
			Int64("readings_lost", st.ReadingsLost).
			Int64("batches_stored", st.BatchesStored).
			Int64("batches_acked", st.Uplink.Acked).
			Int64("batches_resent", st.Uplink.Resent).
			Int("batches_in_flight", st.Uplink.InFlight).
			Int64("outbox_file_bytes", st.Outbox.FileBytes).
			Bool("connected", st.Uplink.Connected)
	}
	ev.Msg("stats")
}
