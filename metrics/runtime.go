package metrics

import (
	"runtime"
	rtm "runtime/metrics"
)

// goMetrics maps runtime/metrics samples to the names Prometheus's Go
// client has made familiar. Reading them does not stop the world, unlike
// runtime.ReadMemStats.
var goMetrics = []struct {
	key, name, typ, help string
}{
	{"/sched/goroutines:goroutines", "go_goroutines", Gauge, "Goroutines that currently exist."},
	{"/sched/gomaxprocs:threads", "go_sched_gomaxprocs_threads", Gauge, "GOMAXPROCS: threads that may run Go code at once."},
	{"/memory/classes/heap/objects:bytes", "go_memstats_heap_alloc_bytes", Gauge, "Bytes of live and not yet swept heap objects."},
	{"/memory/classes/total:bytes", "go_memstats_sys_bytes", Gauge, "Bytes of memory the Go runtime has mapped from the OS."},
	{"/gc/heap/goal:bytes", "go_memstats_next_gc_bytes", Gauge, "Heap size at which the next garbage collection ends."},
	{"/gc/heap/allocs:bytes", "go_memstats_alloc_bytes_total", Counter, "Bytes allocated on the heap since the process started."},
	{"/gc/heap/allocs:objects", "go_memstats_mallocs_total", Counter, "Heap objects allocated since the process started."},
	{"/gc/cycles/total:gc-cycles", "go_gc_cycles_total", Counter, "Completed garbage collection cycles."},
	{"/cpu/classes/gc/total:cpu-seconds", "go_gc_cpu_seconds_total", Counter, "CPU time spent in garbage collection (estimated by the runtime)."},
	{"/gc/gomemlimit:bytes", "go_gc_gomemlimit_bytes", Gauge, "The Go runtime's memory limit (GOMEMLIMIT)."},
}

// WriteGo writes the Go runtime's metrics: goroutines, heap, garbage
// collection, and go_info with the Go version. A metric this runtime does
// not know is left out.
func WriteGo(w *Writer) {
	samples := make([]rtm.Sample, len(goMetrics))
	for i := range goMetrics {
		samples[i].Name = goMetrics[i].key
	}
	rtm.Read(samples)
	for i, s := range samples {
		var v float64
		switch s.Value.Kind() {
		case rtm.KindUint64:
			v = float64(s.Value.Uint64())
		case rtm.KindFloat64:
			v = s.Value.Float64()
		default:
			continue // unsupported by this runtime
		}
		m := &goMetrics[i]
		w.Single(m.name, m.typ, m.help, v)
	}
	w.Family("go_info", Gauge, "Information about the Go environment.")
	w.Sample("go_info", 1, "version", runtime.Version())
}
