package exectest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/testenv"
)

// EnvQEMU, when set (as .ci/run sets it), makes the ARM tests fail
// rather than skip when qemu-user is not installed.
const EnvQEMU = "OUTPOST_TEST_QEMU"

// armTarget is an ARM build of the gateway and the qemu-user emulator
// that runs it (called explicitly: binfmt need not be registered), on
// the CPU of a Raspberry Pi: qemu's default CPU has every feature, and
// would run an ARMv7 build where a Pi Zero faults on it.
type armTarget struct {
	name   string // as the tests name it
	goarch string
	goarm  string
	qemu   string
	cpu    string // qemu -cpu
	uname  string // the platform outpost version prints
}

// The Raspberry Pis the gateway runs on: ARMv6 (Pi Zero and 1: the
// Makefile's 32-bit build, which Raspberry Pi OS armhf targets), ARMv7
// (Pi 2: Cortex-A7) and 64-bit (Pi 3 and later: Cortex-A53).
var armTargets = []armTarget{
	{name: "armv6", goarch: "arm", goarm: "6", qemu: "qemu-arm", cpu: "arm1176", uname: "linux/arm"},
	{name: "armv7", goarch: "arm", goarm: "7", qemu: "qemu-arm", cpu: "cortex-a7", uname: "linux/arm"},
	{name: "arm64", goarch: "arm64", qemu: "qemu-aarch64", cpu: "cortex-a53", uname: "linux/arm64"},
}

var armBuilds struct {
	mu   sync.Mutex
	bins map[string]string
}

// emulator returns the path of tg's qemu and the gateway built for tg
// (once per run of the tests). Without qemu the test is skipped, unless
// OUTPOST_TEST_QEMU is set: then it fails.
func (tg armTarget) emulator(t *testing.T) (qemu, bin string) {
	t.Helper()
	qemu, err := exec.LookPath(tg.qemu)
	if err != nil {
		if os.Getenv(EnvQEMU) != "" {
			t.Fatalf("%s is set but %s is not installed (scripts/dev-services installs qemu-user)", EnvQEMU, tg.qemu)
		}
		t.Skipf("%s is not installed (apt-get install qemu-user; scripts/dev-services does)", tg.qemu)
	}
	armBuilds.mu.Lock()
	defer armBuilds.mu.Unlock()
	if bin := armBuilds.bins[tg.name]; bin != "" {
		return qemu, bin
	}
	bin = filepath.Join(binDir, "outpost-linux-"+tg.name)
	cmd := exec.Command("go", "build", "-o", bin, "github.com/outposthq/outpost/cmd/outpost")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+tg.goarch, "GOARM="+tg.goarm)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building outpost for %s: %v\n%s", tg.name, err, out)
	}
	if armBuilds.bins == nil {
		armBuilds.bins = map[string]string{}
	}
	armBuilds.bins[tg.name] = bin
	return qemu, bin
}

// command is an exec.Cmd that runs the ARM gateway with args under qemu
// on tg's CPU, with three minutes to run.
func (tg armTarget) command(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	qemu, bin := tg.emulator(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, qemu, append([]string{"-cpu", tg.cpu, bin}, args...)...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	return cmd
}

// run runs the ARM gateway with args under qemu.
func (tg armTarget) run(t *testing.T) func(args ...string) result {
	return func(args ...string) result {
		t.Helper()
		return runCmd(t, tg.command(t, args...))
	}
}

// armConfig is a gateway of simulated sensors: two sim signals of 1 000
// readings a second each, and the periph.io BME280 and DS18B20 drivers
// on simulated buses (their compensation arithmetic runs as ARM code), a
// rule, signed batches.
const armConfig = `gateway: {id: GW}
data_dir: data
shutdown_grace: 1m
sensors:
  - {id: a, driver: sim, interval: 20ms, samples: 20, supervision: {timeout: 30s},
     metrics: [{name: temperature, unit: Cel, signal: {kind: sine, base: 20, amplitude: 2, period: 10s, noise: 0.05, resolution: 0.01, seed: 1}}]}
  - {id: b, driver: sim, interval: 20ms, samples: 20, supervision: {timeout: 30s},
     metrics: [{name: humidity, unit: "%RH", signal: {kind: random_walk, base: 40, step: 0.5, min: 0, max: 100, seed: 2}}]}
  - id: env
    driver: bme280
    bus: sim-i2c0
    address: "0x76"
    interval: 100ms
    supervision: {timeout: 30s}
    sim:
      signals:
        temperature: {kind: sine, base: 21, amplitude: 1.5, period: 1m, noise: 0.02}
        pressure: {kind: random_walk, base: 100900, step: 2, min: 99000, max: 103000}
        humidity: {kind: sine, base: 45, amplitude: 5, period: 2m}
  - id: cold
    driver: ds18b20
    bus: sim-w1-0
    address: 28-000000a1b2c3
    interval: 500ms
    options: {resolution_bits: 9}
    supervision: {timeout: 30s}
    sim:
      signals: {temperature: {kind: random_walk, base: 4, step: 0.05, min: 2, max: 8, seed: 8}}
batch: {max_readings: 2000, interval: 1s}
uplink: {broker: "BROKER", topic_prefix: PREFIX, client_id: CLIENT, ack_timeout: 10s, auth_key_file: gateway.key, auth: required}
dashboard: {live: false, alerts: false}
rules: {files: [rules.yaml]}
`

const armRules = `rules:
  - name: a-warm
    select: {metric: temperature, sensor: a}
    above: 20
    message: "{{ .Sensor }} {{ .State }} at {{ .Value }}"
`

// armRunFor is how long each ARM gateway runs before its SIGTERM.
const armRunFor = 10 * time.Second

// The gateway built for 32-bit (ARMv6, ARMv7) and 64-bit ARM, run under
// qemu-user on a Raspberry Pi's CPU against the broker and outpost-ingest
// (on PostgreSQL in CI), signs every batch (HMAC on 32-bit too: ingest
// requires it), and on SIGTERM delivers everything: the database holds
// exactly the readings the gateway says it emitted, each once, and its
// outbox ends empty.
func TestARMEndToEnd(t *testing.T) {
	broker := testenv.MQTT(t)
	for _, tg := range armTargets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			arm := tg.run(t)
			if r := arm("version"); r.code != 0 || !strings.Contains(r.stdout, " "+tg.uname) {
				t.Fatalf("outpost version under %s: want %s\n%s", tg.qemu, tg.uname, r)
			}
			dir := t.TempDir()
			id := fmt.Sprintf("gw-%s-%d", tg.name, time.Now().UnixNano())
			prefix := "outpost-exectest/arm/" + id
			db := testenv.DB(t)
			write(t, filepath.Join(dir, "rules.yaml"), armRules, 0o644)
			cfg := write(t, filepath.Join(dir, "gw.yaml"), strings.NewReplacer("GW", id, "BROKER", broker, "PREFIX", prefix,
				"CLIENT", "exectest-"+id).Replace(armConfig), 0o644)
			t.Cleanup(func() { clearRetained(t, broker, prefix+"/"+id+"/status") })
			ing := signedIngest(t, arm, cfg, broker, db, prefix)

			gw := startCmd(t, tg.command(t, "run", "--config", cfg, "--log-format", "json"))
			gw.await(t, "connected")
			time.Sleep(armRunFor)
			rss := peakRSS(gw.cmd.Process.Pid)
			gw.signal(t, syscall.SIGTERM)
			last := gw.await(t, "stopped: 0 batches left in the outbox")
			if code := gw.wait(t); code != 0 {
				t.Fatalf("outpost exit %d:\n%s", code, gw.stderr())
			}
			emitted, stored, lost := totalsOf(t, last)
			if emitted < 1000 || stored != emitted || lost != 0 {
				t.Fatalf("gateway's last line: %v", last)
			}

			c := counts(t, stopIngest(t, ing, db))
			if c.Readings != emitted || c.DistinctReadings != c.Readings || c.DeadLetters != 0 || c.Alerts == 0 {
				t.Fatalf("database: %+v, gateway emitted %d", c, emitted)
			}
			if st := statsOf(t, arm, filepath.Join(dir, "data")); st.batches() != 0 {
				t.Errorf("outbox after the stop: %+v", st)
			}
			t.Logf("%s: emitted %d readings in %v under %s -cpu %s; the database holds %d, all distinct, and %d alerts; qemu's peak RSS %s; the stop took %v",
				tg.name, emitted, armRunFor, tg.qemu, tg.cpu, c.Readings, c.Alerts, rss, last["took"])
		})
	}
}

// peakRSS is a process's peak resident set (VmHWM), or "unknown".
func peakRSS(pid int) string {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// The repository's gateway configs and rule tests, found by walking it
// (testdata aside: those are the tests' own inputs, some invalid on
// purpose).
func repoExamples(t *testing.T) (configs, ruleTests []string) {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(path, ".test.yaml"):
			ruleTests = append(ruleTests, path)
		case strings.HasSuffix(path, ".yaml"), strings.HasSuffix(path, ".yml"):
			p, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			// A gateway config has top-level sensors; a rules file has
			// rules and nothing else.
			for _, line := range strings.Split(string(p), "\n") {
				if strings.HasPrefix(line, "sensors:") {
					configs = append(configs, path)
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return configs, ruleTests
}

// outpost check passes on every gateway config in the repository, and
// outpost rules test on every rule test, run as ARM code under qemu.
func TestARMCheckExamples(t *testing.T) {
	configs, ruleTests := repoExamples(t)
	example, _ := filepath.Abs("../../../examples/gateway.yaml")
	if !slices.Contains(configs, example) || len(ruleTests) == 0 {
		t.Fatalf("the walk found configs %v and rule tests %v", configs, ruleTests)
	}
	for _, tg := range armTargets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			arm := tg.run(t)
			for _, f := range configs {
				// The packaged config takes its id from the environment
				// (deploy/etc/default/outpost); the flag gives one here.
				if r := arm("check", "--config", f, "--gateway-id", "arm-check"); r.code != 0 || strings.TrimSpace(r.stdout) != f+": ok" {
					t.Errorf("outpost check --config %s under %s\n%s", f, tg.qemu, r)
				}
			}
			for _, f := range ruleTests {
				if r := arm("rules", "test", f); r.code != 0 || !strings.Contains(r.stdout, "passed") {
					t.Errorf("outpost rules test %s under %s\n%s", f, tg.qemu, r)
				}
			}
			t.Logf("%s: outpost check on %d configs, rules test on %d files", tg.name, len(configs), len(ruleTests))
		})
	}
}

// The emulated CPUs are strict: the ARMv7 build faults on the Pi Zero's
// ARM1176, so the ARMv6 runs above show that the ARMv6 build runs there.
func TestARMv7FaultsOnARMv6(t *testing.T) {
	v6, v7 := armTargets[0], armTargets[1]
	if v6.cpu != "arm1176" || v7.goarm != "7" {
		t.Fatalf("targets %+v %+v", v6, v7)
	}
	v7.cpu = v6.cpu
	cmd := v7.command(t, "version")
	// No core files of the fault (qemu writes the guest's, the kernel
	// qemu's), and none in the package's directory.
	cmd.Args = append([]string{"sh", "-c", `ulimit -c 0 && exec "$@"`, "sh"}, cmd.Args...)
	cmd.Path, cmd.Dir = "/bin/sh", t.TempDir()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "Illegal instruction") {
		t.Fatalf("the ARMv7 build under %s -cpu %s: %v, want an illegal instruction\n%s", v7.qemu, v7.cpu, err, out)
	}
}
