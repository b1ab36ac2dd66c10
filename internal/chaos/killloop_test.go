package chaos

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outposthq/outpost/internal/testenv"
)

var (
	flagKills = flag.Int("chaos.kills", 20, "SIGKILLs in TestKillLoop")
	flagSeed  = flag.Int64("chaos.seed", 0, "seed of the kill times and signals; 0 picks one from the clock")
	flagDir   = flag.String("chaos.dir", "", "keep the work dir (configs, logs, outbox copies) here instead of a temp dir")
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestKillLoop kills the gateway with SIGKILL at random moments while
// simulated sensors emit ~15k readings/s, then proves from the database
// that nothing committed was lost and nothing arrived twice. See the
// package doc; scripts/chaos/kill-loop runs the long version. With -short
// it kills 5 times unless -chaos.kills says otherwise.
func TestKillLoop(t *testing.T) {
	kills := *flagKills
	if testing.Short() && !flagSet("chaos.kills") {
		kills = 5
	}
	killLoop(t, kills, Options{})
}

// TestKillLoopMaxDelay is the kill loop with batches held open by
// batch.max_delay: each stays open for a second, its readings written to
// the outbox's state at every interval, and a kill lands while one is
// open nearly every time. Nothing committed may be lost or doubled: the
// state's readings open the next run's first batch, and leave the state
// in the transaction that stores it.
func TestKillLoopMaxDelay(t *testing.T) {
	kills := max(3, *flagKills/4)
	if testing.Short() && !flagSet("chaos.kills") {
		kills = 3
	}
	killLoop(t, kills, Options{MaxDelay: time.Second, MaxReadings: 50_000})
}

// killLoop runs the kill loop with kills, and o's batch options.
func killLoop(t *testing.T, kills int, o Options) {
	seed := *flagSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	dir := *flagDir
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d, %d kills, work dir %s (rerun with -args -chaos.seed %d)", seed, kills, dir, seed)

	ctx, cancel := context.WithTimeout(context.Background(), deadline(t, time.Duration(kills)*4*time.Second+3*time.Minute))
	defer cancel()
	bin, err := Build(ctx, filepath.Join(dir, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(t, Options{
		Kills: kills, Seed: seed,
		Broker: testenv.MQTT(t), DB: testenv.DB(t), Dir: dir, Bin: bin,
		MaxReadings: o.MaxReadings, MaxDelay: o.MaxDelay,
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep := Verify(res)
	// On stdout too, unindented, for scripts/chaos/kill-loop to pick out.
	fmt.Println(rep.Summary())
	t.Logf("\n%s", rep.Details())
	if !rep.OK() {
		if *flagDir == "" {
			// The temp dir goes with the test: keep the evidence.
			kept, err := keep(dir)
			if err != nil {
				t.Logf("keeping the work dir: %v", err)
			}
			dir = kept
		}
		t.Errorf("kill loop failed (seed %d); configs, logs and outbox copies in %s", seed, dir)
	}
}

// keep copies the work dir, but for the binaries, to a new temp dir that
// outlives the test.
func keep(dir string) (string, error) {
	dst, err := os.MkdirTemp("", "outpost-chaos-")
	if err != nil {
		return dir, err
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		switch {
		case rel == "bin":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	return dst, err
}

// deadline is d, or less if the test's own deadline comes sooner.
func deadline(t *testing.T, d time.Duration) time.Duration {
	if dl, ok := t.Deadline(); ok {
		d = min(d, time.Until(dl)-10*time.Second)
	}
	return d
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
