package exectest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/internal/testenv"
)

// upgradeFixtures is where buffer keeps outbox files as each release
// left them (buffer/testdata/upgrade/README.md).
const upgradeFixtures = "../../../buffer/testdata/upgrade"

// upgradeConfig runs the fixtures' gateway (gw-upgrade) with a sensor of
// its own, signing, under a prefix and client id of the test's. The
// fixtures' batches are from November 2026: the age cap keeps them.
const upgradeConfig = `gateway: {id: gw-upgrade}
data_dir: data
shutdown_grace: 1m
sensors:
  - {id: live, driver: sim, interval: 100ms, samples: 10, supervision: {timeout: 30s},
     metrics: [{name: temperature, signal: {kind: sine, base: 20, amplitude: 2, period: 1m, resolution: 0.01}}]}
batch: {max_readings: 1000, interval: 1s}
buffer: {max_age: 876000h}
uplink: {broker: "BROKER", topic_prefix: PREFIX, client_id: CLIENT, ack_timeout: 5s, auth_key_file: gateway.key, auth: required}
dashboard: {live: false, alerts: false}
`

// upgradeManifest is the part of a fixture's manifest.json read here.
type upgradeManifest struct {
	Epoch   uint64 `json:"epoch"`
	NextSeq uint64 `json:"next_seq"`
	Batches []struct {
		Kind  int `json:"kind"`
		Items int `json:"items"`
	} `json:"batches"`
}

// fixtureContent reads every batch of an outbox file as this build's
// buffer reads it, read-only.
func fixtureContent(t *testing.T, path string) []*outpost.Batch {
	t.Helper()
	o, err := buffer.Open(path, &buffer.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var bs []*outpost.Batch
	for _, lane := range []buffer.Lane{buffer.LaneAlert, buffer.LaneTelemetry} {
		es, err := o.Read(lane, 0, 1000, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			b, err := outpost.DecodeBatch(e.Data)
			if err != nil {
				t.Fatal(err)
			}
			bs = append(bs, b)
		}
	}
	return bs
}

// The outpost binary of this build, started on a data dir holding an
// outbox of an earlier release (every fixture), keeps its epoch and
// seqs and delivers everything in it, signed with a key made after the
// batches were stored: ingest, requiring signatures, holds every stored
// reading once with its time, value and quality, every alert and every
// loss record, besides what the gateway emitted itself; and the outbox
// ends empty, with the same epoch and its next seq moved on.
func TestUpgradeKeepsTheOutbox(t *testing.T) {
	broker := testenv.MQTT(t)
	for _, name := range []string{"format1-wire1", "format2-wire1", "format2-wire2"} {
		t.Run(name, func(t *testing.T) {
			js, err := os.ReadFile(filepath.Join(upgradeFixtures, name, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			var m upgradeManifest
			if err := json.Unmarshal(js, &m); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			fixture, err := os.ReadFile(filepath.Join(upgradeFixtures, name, "outbox.db"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(data, 0o700); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(data, "outbox.db"), string(fixture), 0o600)
			want := fixtureContent(t, filepath.Join(data, "outbox.db"))
			var wantReadings, wantAlerts, wantLosses int64
			for _, b := range want {
				switch b.Kind {
				case outpost.KindTelemetry:
					wantReadings += int64(b.Len())
				case outpost.KindAlert:
					wantAlerts += int64(b.Len())
				case outpost.KindLoss:
					wantLosses += int64(b.Len())
				}
			}
			if len(want) != len(m.Batches) || wantReadings == 0 {
				t.Fatalf("the fixture reads as %d batches (%d readings), its manifest lists %d", len(want), wantReadings, len(m.Batches))
			}

			host := func(args ...string) result { return runBin(t, "outpost", args...) }
			if st := statsOf(t, host, data); st.Epoch != m.Epoch || st.NextSeq != m.NextSeq || st.batches() != len(m.Batches) {
				t.Fatalf("outpost buffer stats before the upgrade: %+v, manifest %+v", st, m)
			}

			id := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
			prefix := "outpost-exectest/upgrade/" + id
			db := testenv.DB(t)
			cfg := write(t, filepath.Join(dir, "gw.yaml"), strings.NewReplacer("BROKER", broker, "PREFIX", prefix,
				"CLIENT", "exectest-"+id).Replace(upgradeConfig), 0o644)
			t.Cleanup(func() { clearRetained(t, broker, prefix+"/gw-upgrade/status") })
			ing := signedIngest(t, host, cfg, broker, db, prefix)

			gw := start(t, "outpost", "run", "--config", cfg, "--log-format", "json")
			gw.await(t, "connected")
			// (Not the parsed line: a float64 does not hold every epoch.)
			openLine := fmt.Sprintf(`"epoch":%d,"next_seq":%d,"created":false`, m.Epoch, m.NextSeq)
			if !strings.Contains(gw.stderr(), openLine) {
				t.Errorf("no outbox open line with %s:\n%s", openLine, gw.stderr())
			}
			time.Sleep(2 * time.Second)
			gw.signal(t, syscall.SIGTERM)
			last := gw.await(t, "stopped: 0 batches left in the outbox")
			if code := gw.wait(t); code != 0 {
				t.Fatalf("outpost exit %d:\n%s", code, gw.stderr())
			}
			emitted, stored, lost := totalsOf(t, last)
			if emitted == 0 || stored != emitted || lost != 0 {
				t.Fatalf("gateway's last line: %v", last)
			}

			store := stopIngest(t, ing, db)
			c := counts(t, store)
			if c.Readings != wantReadings+emitted || c.DistinctReadings != c.Readings || c.Alerts != wantAlerts ||
				c.Gaps != wantLosses || c.DeadLetters != 0 {
				t.Fatalf("database: %+v; want %d readings from the old outbox and %d emitted, %d alerts, %d loss records",
					c, wantReadings, emitted, wantAlerts, wantLosses)
			}
			checkStoredReadings(t, store, want)

			after := statsOf(t, host, data)
			if after.Epoch != m.Epoch || after.NextSeq <= m.NextSeq || after.batches() != 0 {
				t.Errorf("outbox after the run: %+v; want epoch %d, next seq past %d, no batches", after, m.Epoch, m.NextSeq)
			}
			t.Logf("%d readings, %d alerts and %d loss records of the old outbox and %d new readings delivered, signed, once",
				wantReadings, wantAlerts, wantLosses, emitted)
		})
	}
}

// checkStoredReadings checks that store holds each reading of the
// telemetry batches in want, of the gateway gw-upgrade, with its time,
// value and quality, and no other reading of their series.
func checkStoredReadings(t *testing.T, store ingest.Store, want []*outpost.Batch) {
	t.Helper()
	type key struct{ sensor, metric string }
	series := map[key][]outpost.Reading{}
	for _, b := range want {
		if b.Kind != outpost.KindTelemetry {
			continue
		}
		for _, r := range b.AppendReadings(nil) {
			k := key{r.Sensor, r.Metric}
			series[k] = append(series[k], r)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for k, rs := range series {
		slices.SortFunc(rs, func(a, b outpost.Reading) int { return cmp.Compare(a.TS, b.TS) })
		var got []outpost.Reading
		q := ingest.RangeQuery{Gateway: "gw-upgrade", Sensor: k.sensor, Metric: k.metric, From: 0, To: time.Now().Add(time.Hour).UnixNano(), Limit: 1 << 20}
		for p, err := range store.Range(ctx, q) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, outpost.Reading{Sensor: p.Sensor, Metric: p.Metric, TS: p.TS, Value: p.Value, Quality: p.Quality})
		}
		for i := range rs {
			rs[i].Unit = ""
		}
		if !slices.Equal(got, rs) {
			t.Errorf("%s/%s: the database holds %d readings, the old outbox %d, or their values differ", k.sensor, k.metric, len(got), len(rs))
		}
	}
}

// An outbox file of a newer format than this build's (an older release
// installed over a newer one) stops outpost run with exit 1 and one line
// that names the file and both versions and says what to do; outpost
// buffer stats refuses it too; the file is left byte for byte as it was,
// and nothing is moved aside.
func TestNewerOutboxRefused(t *testing.T) {
	dir := sharedDir(t)
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	fixture, err := os.ReadFile(filepath.Join(upgradeFixtures, "format2-wire2", "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := write(t, filepath.Join(data, "outbox.db"), string(fixture), 0o600)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("version"), []byte{0, 0, 0, 0, 0, 0, 0, 3})
	})
	if cerr := db.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := write(t, filepath.Join(dir, "gw.yaml"), gatewayConfig, 0o644)

	r := runBin(t, "outpost", "run", "--config", cfg, "--data-dir", data)
	want := "outpost: cannot open outbox " + path + ": format version 3, newer than this outpost reads (up to 2) " +
		"(a newer outpost wrote it: run that release or a later one to send what it holds, or move the file out of the data dir to start a new outbox without its batches; the file was left untouched)"
	if r.code != 1 || lastLine(r.stderr) != want {
		t.Errorf("outpost run: want exit 1 and the last line\n%s\n%s", want, r)
	}
	r = runBin(t, "outpost", "buffer", "stats", "--data-dir", data)
	if r.code != 1 || !strings.Contains(r.stderr, path+" has format version 3, newer than this build's 2") {
		t.Errorf("outpost buffer stats: want exit 1 and the versions\n%s", r)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the refused outbox file was changed")
	}
	entries, err := os.ReadDir(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("the data dir holds more than the refused file: %v", entries)
	}
}
