package natscluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/internal/testenv"
)

// binDir holds nats-server and outpost-ingest, built by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "outpost-natscluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
			"github.com/nats-io/nats-server/v2", "github.com/outposthq/outpost/cmd/outpost-ingest")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building nats-server and outpost-ingest:", err)
			return 1
		}
		binDir = dir
		code := m.Run()
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				return 1
			}
		}
		return code
	}()
	os.Exit(code)
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// proc is a started binary, its output in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProc(t testing.TB, logPath string, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	p := &proc{name: bin, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// kill is kill -9, and waits for the end. Idempotent.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop is SIGTERM, and waits for the end, at most d, then kill -9.
func (p *proc) stop(d time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(d):
		p.kill()
	}
}

// logHas reports whether the log holds a line with s.
func logHas(path, s string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return true
		}
	}
	return false
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// cluster is three nats-server processes routed to each other, each
// with JetStream and an MQTT listener.
type cluster struct {
	t     testing.TB
	dir   string
	confs [3]string
	nodes [3]*proc
	// client, route and MQTT ports per node
	client, route, mqtt [3]int
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir()}
	ports := freePorts(t, 9)
	for i := range 3 {
		c.client[i], c.route[i], c.mqtt[i] = ports[3*i], ports[3*i+1], ports[3*i+2]
	}
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", c.route[i]))
	}
	for i := range 3 {
		conf := fmt.Sprintf(`server_name: n%d
listen: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster { name: outpost-test, listen: 127.0.0.1:%d, routes: [%s] }
mqtt { listen: 127.0.0.1:%d }
`, i+1, c.client[i], filepath.Join(c.dir, fmt.Sprintf("n%d", i+1)), c.route[i], strings.Join(routes, ", "), c.mqtt[i])
		c.confs[i] = filepath.Join(c.dir, fmt.Sprintf("n%d.conf", i+1))
		if err := os.WriteFile(c.confs[i], []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *cluster) start(i int) {
	c.nodes[i] = startProc(c.t, filepath.Join(c.dir, fmt.Sprintf("n%d.log", i+1)), "nats-server", "-c", c.confs[i])
}

func (c *cluster) urls() string {
	var us []string
	for i := range 3 {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", c.client[i]))
	}
	return strings.Join(us, ",")
}

// waitReady waits until JetStream answers through every node.
func (c *cluster) waitReady(ctx context.Context) {
	c.t.Helper()
	for i := range 3 {
		for {
			if err := jetStreamReady(ctx, fmt.Sprintf("nats://127.0.0.1:%d", c.client[i])); err == nil {
				break
			} else if ctx.Err() != nil {
				c.t.Fatalf("node %d not ready: %v\n%s", i+1, err, tail(c.nodes[i].log))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func jetStreamReady(ctx context.Context, url string) error {
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(cctx)
	return err
}

// The cluster under faults while three gateways send: a node killed and
// restarted, an ingest process killed and restarted, the whole cluster
// killed and restarted. The database ends with exactly what the gateways
// stored, once.
func TestClusterFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := newCluster(t)
	for i := range 3 {
		c.start(i)
	}
	c.waitReady(ctx)

	db := testenv.DB(t)
	prefix := fmt.Sprintf("outpost-cluster/%d", time.Now().UnixNano())
	startIngest := func(name string) *proc {
		return c.startIngest(ctx, name, db, prefix, "CLUSTER_TEST", 3)
	}
	a := startIngest("a")
	b := startIngest("b")

	var gws []*gateway.Gateway
	for i := range 3 {
		sensor := config.Sensor{ID: "dev1", Driver: config.SimDriver, Interval: 50 * time.Millisecond, Samples: 50,
			Metrics: []config.Metric{{Name: "temperature", Unit: "Cel",
				Signal: config.Signal{Kind: config.SignalRandomWalk, Base: 21, Step: 0.1, Resolution: 0.01, Seed: int64(i + 1)}}}}
		gws = append(gws, c.startGateway(ctx, fmt.Sprintf("gw-%d", i+1), i, prefix, 500, sensor))
	}

	step := func(what string, d time.Duration) {
		t.Logf("%s", what)
		time.Sleep(d)
	}
	// Every gateway connected before the faults begin (a node's MQTT
	// listener may refuse sessions until JetStream has a leader).
	for i, g := range gws {
		for !g.Stats().Uplink.Connected {
			select {
			case <-ctx.Done():
				t.Fatalf("gateway %d never connected: %+v", i+1, g.Stats().Uplink)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	step("all running", 4*time.Second)
	c.nodes[1].kill()
	step("node 2 killed", 4*time.Second)
	c.start(1)
	step("node 2 restarted", 4*time.Second)
	a.kill()
	step("ingest a killed", 4*time.Second)
	a = startIngest("a")
	step("ingest a restarted", 4*time.Second)
	for i := range 3 {
		c.nodes[i].kill()
	}
	step("the whole cluster killed", 2*time.Second)
	for i := range 3 {
		c.start(i)
	}
	c.waitReady(ctx)
	step("the whole cluster restarted", 6*time.Second)

	restarted := time.Now()
	for _, g := range gws {
		g.StopSensors()
	}
	for i, g := range gws {
		if err := g.WaitDrained(ctx); err != nil {
			t.Fatalf("gateway %d not drained: %v (uplink %+v)\ningest a:\n%s\ningest b:\n%s", i+1, err, g.Stats().Uplink,
				tail(a.log), tail(b.log))
		}
	}
	t.Logf("the gateways drained %v after their sensors stopped", time.Since(restarted).Round(time.Millisecond))
	a.stop(30 * time.Second)
	b.stop(30 * time.Second)

	store, err := stores.Open(ctx, db, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cnt, err := store.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for i, g := range gws {
		st := g.Stats()
		if st.ReadingsLost != 0 || st.Outbox.Evicted != 0 {
			t.Errorf("gateway %d recorded loss: %d readings lost, %d batches evicted", i+1, st.ReadingsLost, st.Outbox.Evicted)
		}
		want += st.ReadingsStored
		// Every gateway lived through the cluster's restart. (The one on
		// node 2 may be back only after it, its reconnect backoff
		// having grown while the node was down.)
		if st.Uplink.Connects < 2 {
			t.Errorf("gateway %d connected %d times, want at least 2", i+1, st.Uplink.Connects)
		}
	}
	if want == 0 || cnt.Readings != want || cnt.DistinctReadings != want || cnt.DeadLetters != 0 || cnt.Gaps != 0 {
		t.Fatalf("database: %+v; the gateways stored %d readings", cnt, want)
	}
	t.Logf("%d readings from 3 gateways, each once, through a node kill, an ingest kill and a cluster restart", want)
}

// startIngest starts an outpost-ingest process on the cluster's stream
// and waits until it consumes. extra are more flags.
func (c *cluster) startIngest(ctx context.Context, name, db, prefix, stream string, replicas int, extra ...string) *proc {
	t := c.t
	t.Helper()
	args := append([]string{"--nats", c.urls(), "--db", db, "--http", "",
		"--topic-prefix", prefix, "--group", "cluster-test", "--stream", stream, "--stream-replicas", fmt.Sprint(replicas),
		"--log-format", "json", "--log-level", "debug"}, extra...)
	p := startProc(t, filepath.Join(c.dir, "ingest-"+name+".log"), "outpost-ingest", args...)
	for !logHas(p.log, "ingest started") {
		select {
		case <-p.done:
			t.Fatalf("ingest %s ended:\n%s", name, tail(p.log))
		case <-ctx.Done():
			t.Fatalf("ingest %s did not start:\n%s", name, tail(p.log))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return p
}

// startGateway starts a gateway in this process whose uplink is node
// i's MQTT listener; it is closed when the test ends.
func (c *cluster) startGateway(ctx context.Context, id string, i int, prefix string, maxReadings int, sensors ...config.Sensor) *gateway.Gateway {
	t := c.t
	t.Helper()
	off := false
	cfg := &config.Config{
		Gateway:   config.GatewayConfig{ID: id},
		DataDir:   filepath.Join(t.TempDir(), "data"),
		Sensors:   sensors,
		Batch:     config.BatchConfig{MaxReadings: maxReadings},
		Uplink:    config.UplinkConfig{Broker: fmt.Sprintf("tcp://127.0.0.1:%d", c.mqtt[i]), TopicPrefix: prefix, AckTimeout: 5 * time.Second},
		Dashboard: config.DashboardConfig{Live: &off, Alerts: &off},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, &gateway.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.Close(cctx); err != nil {
			t.Error(err)
		}
	})
	return g
}
