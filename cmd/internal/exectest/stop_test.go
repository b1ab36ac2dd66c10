package exectest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/testenv"
)

// loadConfig is a gateway under load: three sim sensors of 50 readings
// every 10 ms, batches sealed only after 5 s (the last one is surely
// partial at the stop), the dashboard off (only the status is retained).
const loadConfig = `gateway: {id: GW}
data_dir: data
shutdown_grace: GRACE
sensors:
  - {id: a, driver: sim, interval: 10ms, samples: 50, metrics: [{name: temperature, signal: {kind: sine, base: 20, amplitude: 2, period: 1m}}]}
  - {id: b, driver: sim, interval: 10ms, samples: 50, metrics: [{name: humidity, signal: {kind: random_walk, base: 40, step: 0.5, min: 0, max: 100}}]}
  - {id: c, driver: sim, interval: 10ms, samples: 50, metrics: [{name: pressure, signal: {kind: constant, value: 101325}}]}
batch: {max_readings: 100000, interval: 5s}
uplink: {broker: "BROKER", topic_prefix: PREFIX, ack_timeout: 2s}
dashboard: {live: false, alerts: false}
`

// proc is a running binary whose stderr lines are collected.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	more  chan struct{} // a token after each new line
	done  chan struct{} // closed when stderr ends
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startCmd(t, command(t, name, args...))
}

func (p *proc) collect(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		p.mu.Unlock()
		select {
		case p.more <- struct{}{}:
		default:
		}
	}
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// await waits for a log line whose message is msg and returns its fields.
func (p *proc) await(t *testing.T, msg string) map[string]any {
	t.Helper()
	return p.awaitNth(t, msg, 0)
}

// awaitNth is await for the line after the first n lines of msg.
func (p *proc) awaitNth(t *testing.T, msg string, n int) map[string]any {
	t.Helper()
	deadline := time.After(time.Minute)
	for seen := 0; ; {
		p.mu.Lock()
		lines := p.lines[seen:]
		seen = len(p.lines)
		p.mu.Unlock()
		for _, l := range lines {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["message"] == msg {
				if n == 0 {
					return m
				}
				n--
			}
		}
		select {
		case <-p.more:
		case <-p.done:
			t.Fatalf("%s ended without logging %q:\n%s", p.cmd.Path, msg, p.stderr())
		case <-deadline:
			t.Fatalf("%s logged no %q within a minute:\n%s", p.cmd.Path, msg, p.stderr())
		}
	}
}

// wait waits for the process to end and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	<-p.done
	var ee *exec.ExitError
	if err := p.cmd.Wait(); err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", p.cmd.Path, err)
	}
	noPanic(t, result{stderr: p.stderr()})
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		t.Fatal(err)
	}
}

// gatewayFiles writes loadConfig for a gateway of its own under a
// prefix of its own, and clears its retained status at the end.
func gatewayFiles(t *testing.T, broker, grace string) (cfg, dir, prefix string) {
	t.Helper()
	dir = t.TempDir()
	id := fmt.Sprintf("gw-stop-%d", time.Now().UnixNano())
	prefix = "outpost-exectest/" + id
	body := strings.NewReplacer("GW", id, "GRACE", grace, "BROKER", broker, "PREFIX", prefix).Replace(loadConfig)
	cfg = write(t, filepath.Join(dir, "gw.yaml"), body, 0o644)
	t.Cleanup(func() { clearRetained(t, broker, prefix+"/"+id+"/status") })
	return cfg, dir, prefix
}

func clearRetained(t *testing.T, broker, topic string) {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("outpost-exectest-%d", time.Now().UnixNano())).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Errorf("clear retained %s: connect: %v", topic, tok.Error())
		return
	}
	defer c.Disconnect(250)
	if tok := c.Publish(topic, 1, true, []byte{}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Errorf("clear retained %s: %v", topic, tok.Error())
	}
}

// SIGTERM under load: the gateway seals the open batch and delivers it
// within the grace; the database then holds every reading the sensors
// emitted, once, and the outbox is empty.
func TestSIGTERMDeliversEverything(t *testing.T) {
	broker, db := testenv.MQTT(t), testenv.DB(t)
	cfg, dir, prefix := gatewayFiles(t, broker, "1m")

	ing := start(t, "outpost-ingest", "--broker", broker, "--db", db, "--http", "", "--topic-prefix", prefix,
		"--group", "exectest-"+filepath.Base(dir), "--log-format", "json")
	ing.await(t, "subscribed")

	gw := start(t, "outpost", "run", "--config", cfg, "--log-format", "json")
	gw.await(t, "connected")
	time.Sleep(time.Second) // a second of load, most of it in the open batch
	gw.signal(t, syscall.SIGTERM)
	last := gw.await(t, "stopped: 0 batches left in the outbox")
	if code := gw.wait(t); code != 0 {
		t.Fatalf("outpost exit %d:\n%s", code, gw.stderr())
	}
	emitted, _ := last["readings_emitted"].(float64)
	stored, _ := last["readings_stored"].(float64)
	if emitted < 1000 || stored != emitted || last["readings_lost"] != 0.0 {
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
	t.Logf("emitted %.0f readings; the database holds %d, all distinct; the stop took %v of its grace", emitted, c.Readings, last["took"])
	r := runBin(t, "outpost", "buffer", "stats", "--json", "--data-dir", filepath.Join(dir, "data"))
	if r.code != 0 || !strings.Contains(r.stdout, `"batches": 0`) || strings.Contains(r.stdout, `"batches": 1`) {
		t.Fatalf("outbox after the stop:\n%s", r)
	}
}

// A second signal ends the grace at once: with no ingest to ack, the
// batches stay in the outbox for the next start.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	broker := testenv.MQTT(t)
	cfg, dir, _ := gatewayFiles(t, broker, "1m")
	gw := start(t, "outpost", "run", "--config", cfg, "--log-format", "json")
	gw.await(t, "connected")
	time.Sleep(200 * time.Millisecond)
	gw.signal(t, syscall.SIGTERM)
	gw.await(t, "sensors stopped; delivering what is stored before stopping")
	gw.signal(t, syscall.SIGINT)
	gw.await(t, "second signal: stopping at once")
	if code := gw.wait(t); code != 0 {
		t.Fatalf("outpost exit %d:\n%s", code, gw.stderr())
	}
	if !strings.Contains(gw.stderr(), "grace cut short") {
		t.Fatalf("no line saying the grace was cut short:\n%s", gw.stderr())
	}
	r := runBin(t, "outpost", "buffer", "stats", "--json", "--data-dir", filepath.Join(dir, "data"))
	var st struct {
		Lanes map[string]struct{ Batches int } `json:"lanes"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || st.Lanes["telemetry"].Batches == 0 {
		t.Fatalf("the outbox should keep the undelivered batches:\n%s", r)
	}
}

// dbCounts are the row counts of the database at dsn.
func dbCounts(t *testing.T, dsn string) ingest.Counts {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := stores.Open(ctx, dsn, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c, err := store.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
