package exectest

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
)

// Helpers of the end-to-end runs that sign: the ARM runs under qemu and
// the upgrade runs.

// startCmd starts cmd, collecting its stderr lines, and kills it at the
// end of t if it still runs; start does the same for a binary of binDir.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, more: make(chan struct{}, 1), done: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.collect(stderr)
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.wait(t)
		}
	})
	return p
}

// signedIngest makes the gateway's key with outpost key create (the
// first start would), registers it with outpost-ingest by the line
// outpost key show prints, and starts outpost-ingest on db requiring
// every batch to be signed. outpost runs the outpost binary to use: the
// host's or one under qemu.
func signedIngest(t *testing.T, outpost func(args ...string) result, cfg, broker, db, prefix string) *proc {
	t.Helper()
	if r := outpost("key", "create", "--config", cfg); r.code != 0 {
		t.Fatalf("outpost key create\n%s", r)
	}
	r := outpost("key", "show", "--config", cfg)
	if r.code != 0 || len(strings.Fields(r.stdout)) != 2 {
		t.Fatalf("outpost key show: want one line GATEWAY-ID KEY\n%s", r)
	}
	keys := write(t, filepath.Join(filepath.Dir(cfg), "gateway.keys"), r.stdout, 0o600)
	ing := start(t, "outpost-ingest", "--broker", broker, "--db", db, "--http", "", "--topic-prefix", prefix,
		"--group", "exectest-"+strings.ReplaceAll(prefix, "/", "-"), "--auth-keys", keys, "--auth", "required",
		"--log-format", "json")
	if got := ing.await(t, "auth keys loaded"); got["auth"] != "required" || got["keys"] != 1.0 {
		t.Fatalf("ingest: %v", got)
	}
	ing.await(t, "subscribed")
	return ing
}

// stopIngest stops outpost-ingest and opens its database for the test
// to read; the store is closed at the end of t.
func stopIngest(t *testing.T, ing *proc, db string) ingest.Store {
	t.Helper()
	ing.signal(t, syscall.SIGTERM)
	if code := ing.wait(t); code != 0 {
		t.Fatalf("outpost-ingest exit %d:\n%s", code, ing.stderr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := stores.Open(ctx, db, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// counts returns the row counts of store.
func counts(t *testing.T, store ingest.Store) ingest.Counts {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := store.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// totalsOf reads the readings emitted, stored and lost from the
// gateway's last line.
func totalsOf(t *testing.T, last map[string]any) (emitted, stored, lost int64) {
	t.Helper()
	for _, k := range []string{"readings_emitted", "readings_stored", "readings_lost"} {
		if _, ok := last[k].(float64); !ok {
			t.Fatalf("the gateway's last line has no %s: %v", k, last)
		}
	}
	return int64(last["readings_emitted"].(float64)), int64(last["readings_stored"].(float64)), int64(last["readings_lost"].(float64))
}

// bufferStats is what outpost buffer stats --json says.
type bufferStats struct {
	Epoch   uint64 `json:"epoch"`
	NextSeq uint64 `json:"next_seq"`
	Lanes   map[string]struct {
		Batches int `json:"batches"`
	} `json:"lanes"`
}

// statsOf runs outpost buffer stats --json on dataDir.
func statsOf(t *testing.T, outpost func(args ...string) result, dataDir string) bufferStats {
	t.Helper()
	r := outpost("buffer", "stats", "--json", "--data-dir", dataDir)
	var st bufferStats
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || st.Epoch == 0 {
		t.Fatalf("outpost buffer stats\n%s", r)
	}
	return st
}

func (s bufferStats) batches() int {
	n := 0
	for _, l := range s.Lanes {
		n += l.Batches
	}
	return n
}
