package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
)

// promptly runs f and fails the test if it has not returned within a
// generous guard: a refused file must not be read forever.
func promptly[T any](t *testing.T, what string, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not return", what)
		panic("unreachable")
	}
}

// evaluations sums the rule engine's condition evaluations.
func evaluations(g *Gateway) uint64 {
	var n uint64
	for _, r := range g.Stats().Rules {
		n += r.Evaluations
	}
	return n
}

// A rules file replaced by a hostile one (nested 40000 deep, 5 MiB, a
// named pipe) is refused at once with a positioned error, by ReloadRules
// and by the watcher; the running rules keep their state and keep
// evaluating, and a good file afterwards reloads as usual.
func TestReloadRefusesHostileFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yaml")
	writeRules(t, dir, twoRules)
	l := &alertLog{}
	g := startGateway(t, rulesConfig(t, dir, 40), l)
	defer closeGateway(t, g)
	waitUntil(t, "hot firing and slow pending", func() bool {
		return l.has("hot", outpost.StateFiring) && l.has("slow", outpost.StatePending)
	})
	firing := find(l.take(), "hot", outpost.StateFiring)[0]

	for _, tc := range []struct {
		name  string
		write func(t *testing.T)
		want  string
	}{
		{"deep", func(t *testing.T) { writeRules(t, dir, strings.Repeat("[", 40000)) },
			path + ":1:64: nested deeper than 64 levels"},
		{"5 MiB", func(t *testing.T) { writeRules(t, dir, twoRules+strings.Repeat("# padding\n", 5<<20/10)) },
			path + ":1:1: larger than 1 MiB"},
		{"named pipe", func(t *testing.T) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
		}, path + ":1:1: not a regular file (a named pipe)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fails := g.Stats().RuleReloadFails
			tc.write(t)
			err := promptly(t, "ReloadRules", g.ReloadRules)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("reload: %v, want %q", err, tc.want)
			}
			// The watcher saw the change too, and refused it the same way.
			waitUntil(t, "the watcher's reload", func() bool { return g.Stats().RuleReloadFails >= fails+2 })
			if !strings.Contains(l.log(), tc.want) {
				t.Errorf("log lacks %q:\n%s", tc.want, l.log())
			}
			// The running rules go on: readings are still evaluated, and
			// nothing was ended.
			n := evaluations(g)
			waitUntil(t, "evaluations after the refusal", func() bool { return evaluations(g) > n+10 })
			if as := l.take(); len(as) != 0 {
				t.Fatalf("a refused reload emitted %+v", as)
			}
		})
	}

	// A good file again: the instance that fired before the hostile files
	// is the one the changed rule ends.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeRules(t, dir, strings.Replace(twoRules, "above: 30\n  - name: slow", "above: 35\n  - name: slow", 1))
	if err := promptly(t, "ReloadRules", g.ReloadRules); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "hot ended by the change", func() bool { return l.has("hot", outpost.StateResolved) })
	res := find(l.take(), "hot", outpost.StateResolved)
	if len(res) != 1 || res[0].Message != msgRuleChanged || res[0].StartedAt != firing.StartedAt {
		t.Fatalf("after the hostile files, the change ended %+v; want the instance started at %d", res, firing.StartedAt)
	}
}

// A gateway whose rules file is a device, a named pipe or nested too
// deep fails to start, and its check fails, at once and with the file's
// name: before, /dev/zero was read until memory ran out, at every start.
func TestHostileRulesFileAtStart(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, twoRules) // for rulesConfig; replaced below
	fifo := filepath.Join(dir, "pipe.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	deep := filepath.Join(dir, "deep.yaml")
	if err := os.WriteFile(deep, []byte(strings.Repeat("[", 40000)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, want string }{
		{"/dev/zero", "/dev/zero:1:1: not a regular file (a device)"},
		{fifo, fifo + ":1:1: not a regular file (a named pipe)"},
		{deep, deep + ":1:64: nested deeper than 64 levels"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			if _, err := os.Stat(tc.file); err != nil {
				t.Skip(err)
			}
			cfg := rulesConfig(t, dir, 40)
			cfg.Rules.Files = []string{tc.file}
			err := promptly(t, "New", func() error {
				g, err := New(cfg, nil)
				if err == nil {
					closeGateway(t, g)
				}
				return err
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}

			gw := filepath.Join(dir, "gw.yaml")
			src := "gateway: {id: gw-1}\nsensors:\n  - {id: s1, driver: sim, metrics: [{name: t, signal: {kind: constant, value: 1}}]}\n" +
				"uplink: {broker: \"tcp://127.0.0.1:1883\"}\nrules: {files: [" + tc.file + "]}\n"
			if err := os.WriteFile(gw, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			err = promptly(t, "Check", func() error { return Check(gw, nil) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v, want %q", err, tc.want)
			}
			// The config itself only names the file: it loads.
			if err := promptly(t, "Load", func() error { _, err := config.Load(gw); return err }); err != nil {
				t.Fatalf("config: %v", err)
			}
		})
	}
}
