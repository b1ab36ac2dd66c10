package exectest

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/natstest"
	"github.com/outposthq/outpost/internal/testenv"
)

// The binaries on NATS: `outpost run` publishes over MQTT to a NATS
// server's MQTT listener, `outpost-ingest --nats` consumes the JetStream
// stream. After a SIGTERM the gateway's outbox is empty (every batch
// acked through NATS) and the database holds every reading once.
func TestNATSBinaries(t *testing.T) {
	ns := natstest.Start(t)
	db := testenv.DB(t)
	cfg, dir, prefix := gatewayFiles(t, ns.MQTTURL(), "1m")

	ing := start(t, "outpost-ingest", "--nats", ns.URL(), "--db", db, "--http", "", "--topic-prefix", prefix,
		"--group", "exectest-nats-"+filepath.Base(dir), "--log-format", "json")
	ing.await(t, "ingest started")

	gw := start(t, "outpost", "run", "--config", cfg, "--log-format", "json")
	gw.await(t, "connected")
	time.Sleep(time.Second)
	gw.signal(t, syscall.SIGTERM)
	last := gw.await(t, "stopped: 0 batches left in the outbox")
	if code := gw.wait(t); code != 0 {
		t.Fatalf("outpost exit %d:\n%s", code, gw.stderr())
	}
	emitted, _ := last["readings_emitted"].(float64)
	if stored, _ := last["readings_stored"].(float64); emitted < 1000 || stored != emitted {
		t.Fatalf("gateway's last line: %v", last)
	}
	ing.signal(t, syscall.SIGTERM)
	if code := ing.wait(t); code != 0 {
		t.Fatalf("outpost-ingest exit %d:\n%s", code, ing.stderr())
	}

	c := dbCounts(t, db)
	if float64(c.Readings) != emitted || c.DistinctReadings != c.Readings || c.DeadLetters != 0 {
		t.Fatalf("database: %+v, gateway emitted %.0f", c, emitted)
	}

	// The stream rebuilds the database: a replay into an empty one.
	db2 := testenv.DB(t)
	r := runBin(t, "outpost-ingest", "replay", "--nats", ns.URL(), "--db", db2, "--topic-prefix", prefix, "--log-format", "json")
	if r.code != 0 || !strings.Contains(r.stdout, "replayed ") {
		t.Fatalf("replay:\n%s", r)
	}
	if c2 := dbCounts(t, db2); c2 != c {
		t.Fatalf("replayed database: %+v, live one: %+v", c2, c)
	}
	t.Logf("emitted %.0f readings through NATS; the database holds %d, all distinct; %s", emitted, c.Readings, strings.TrimSpace(r.stdout))
}
