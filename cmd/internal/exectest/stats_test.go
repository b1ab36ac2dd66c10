package exectest

import (
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/testenv"
)

// SIGUSR1 makes a running gateway log one "stats" line (what
// internal/soak samples) and keep running; SIGTERM still stops it
// (no ingest here: what is stored stays in the outbox).
func TestSIGUSR1LogsStats(t *testing.T) {
	broker := testenv.MQTT(t)
	cfg, _, _ := gatewayFiles(t, broker, "1s")
	gw := start(t, "outpost", "run", "--config", cfg, "--log-format", "json")
	gw.await(t, "connected")
	// Connected may come before the first poll: ask again until a
	// reading was emitted.
	var st map[string]any
	for i := 0; ; i++ {
		gw.signal(t, syscall.SIGUSR1)
		st = gw.awaitNth(t, "stats", i)
		if v, _ := st["readings_emitted"].(float64); v > 0 || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, k := range []string{"heap_bytes", "heap_goal_bytes", "go_total_bytes", "goroutines", "readings_emitted"} {
		if v, _ := st[k].(float64); v <= 0 {
			t.Errorf("stats line: %s = %v, want > 0: %v", k, st[k], st)
		}
	}
	if heap, total := st["heap_bytes"].(float64), st["go_total_bytes"].(float64); heap > total {
		t.Errorf("stats line: heap %v bytes above the runtime's total %v", heap, total)
	}
	gw.signal(t, syscall.SIGTERM)
	if code := gw.wait(t); code != 0 {
		t.Fatalf("outpost exit %d:\n%s", code, gw.stderr())
	}
}
