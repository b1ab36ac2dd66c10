package buffer

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost"
)

// The upgrade fixtures in testdata/upgrade: outbox files as releases of
// Outpost wrote them, each with manifest.json, what that release read
// back from it (README.md there says which release wrote which).
//
//	format1-wire1  the first outbox: whole values, no chunks; wire v1 batches
//	format2-wire1  chunked values; wire v1 batches
//	format2-wire2  the current release: wire v2, zstd, the gateway's cap; a loss record
//
// A new build must open each, keep its epoch and next seq, and read every
// batch in it as it was written. The older fixtures were written by
// testdata/upgrade/gen.go in checkouts of those releases; the current one
// is rewritten by
//
//	go test ./buffer -run TestUpgradeFixtures -update
//
// (do so only when the current release's format changes, and keep the
// old directory under a new name: files of the previous release stay on
// disk after an upgrade).
var updateFixtures = flag.Bool("update", false, "rewrite testdata/upgrade/format2-wire2 with this build")

const upgradeDir = "testdata/upgrade"

// The fixtures' content, as gen.go makes it.
var (
	upgradeT0     = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixNano()
	upgradeStep   = int64(500 * time.Millisecond)
	upgradeSeries = [3][3]string{{"env1", "temperature", "Cel"}, {"env1", "humidity", "%RH"}, {"tank", "pressure", "Pa"}}
	// upgradeOrder is the appends: telemetry batches by number, alerts
	// as -1 and -2. The first two telemetry batches and the newest (seq
	// 12: fresh data goes first) are then acked, so that the next seq is
	// past every stored one.
	upgradeOrder = []int{0, 1, -1, 2, 3, 4, 5, -2, 6, 7, 8, 9}
)

const (
	upgradeGateway = "gw-upgrade"
	upgradePerSer  = 120
)

func upgradeValue(k, n int) float64 {
	switch k {
	case 0:
		return 20 + float64(n%500)/100
	case 1:
		return 40 + float64(n*7%300)/10
	}
	return float64(101000 + n%1000)
}

func upgradeQuality(b, k, i int) outpost.Quality {
	if b == 3 && k == 0 && i%10 == 0 {
		return outpost.QualityUncertain
	}
	return outpost.QualityGood
}

func upgradeTelemetry(b int) *outpost.Batch {
	bt := &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindTelemetry, Gateway: upgradeGateway,
		Created: upgradeT0 + int64(b+1)*int64(time.Minute)}
	for k, s := range upgradeSeries {
		ser := outpost.Series{Sensor: s[0], Metric: s[1], Unit: s[2]}
		var q []byte
		for i := range upgradePerSer {
			n := b*upgradePerSer + i
			if i == 0 {
				ser.TS = append(ser.TS, upgradeT0+int64(n)*upgradeStep)
			} else {
				ser.TS = append(ser.TS, upgradeStep)
			}
			ser.Values = append(ser.Values, upgradeValue(k, n))
			q = append(q, byte(upgradeQuality(b, k, i)))
		}
		if b == 3 && k == 0 {
			ser.Quality = q
		}
		bt.Series = append(bt.Series, ser)
	}
	return bt
}

// upgradeAlert is alert j (0 firing, 1 resolved); annotations exist from
// wire version 2 on.
func upgradeAlert(j int, annotations bool) *outpost.Batch {
	a := outpost.Alert{Rule: "hot", Fingerprint: "hot{sensor=env1}", State: outpost.StateFiring, Severity: "warning",
		Value: 24.5, Labels: map[string]string{"sensor": "env1"}, Message: "env1 temperature 24.5 above 24",
		StartedAt: upgradeT0 + 3*int64(time.Minute), ChangedAt: upgradeT0 + 4*int64(time.Minute), Seq: 1}
	if j == 1 {
		a.State, a.Value, a.Message = outpost.StateResolved, 23, "env1 temperature back to 23"
		a.ChangedAt, a.Seq = upgradeT0+8*int64(time.Minute), 2
	}
	if annotations {
		a.Annotations = map[string]string{"summary": "env1 is hot", "runbook": "https://example.com/hot"}
	}
	return &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindAlert, Gateway: upgradeGateway,
		Created: a.ChangedAt, Alerts: []outpost.Alert{a}}
}

type upgradeManifest struct {
	WrittenBy string                 `json:"written_by"`
	Format    int                    `json:"format"`
	Wire      int                    `json:"wire"`
	Gateway   string                 `json:"gateway"`
	Epoch     uint64                 `json:"epoch"`
	NextSeq   uint64                 `json:"next_seq"`
	Acked     []uint64               `json:"acked"`
	Batches   []upgradeManifestBatch `json:"batches"`
}

type upgradeManifestBatch struct {
	Lane  string `json:"lane"`
	Seq   uint64 `json:"seq"`
	Kind  int    `json:"kind"`
	Items int    `json:"items"` // readings, alerts or loss records
	Bytes int    `json:"bytes"`
}

// upgradeAge is an age cap that keeps the fixtures' batches, dated
// November 2026, for a century.
const upgradeAge = 100 * 365 * 24 * time.Hour

// writeCurrentFixture writes the format2-wire2 fixture as the gateway
// does: its encoder (zstd, the default 128 KiB message cap), one batch
// per append, three acked; then a cap lowered to 8 batches
// evicts the oldest telemetry and stores a loss record, as an outage
// would.
func writeCurrentFixture(t *testing.T, dir string) {
	enc, err := outpost.NewEncoder(&outpost.EncoderOptions{Compression: outpost.CompressZstd, MaxMessageBytes: 128 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "outbox.db")
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Unix(0, upgradeT0).Add(time.Hour) }
	opts := &Options{Encoder: enc, Gateway: upgradeGateway, Now: now}
	o, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	m := upgradeManifest{WrittenBy: "this build (TestUpgradeFixtures -update)", Format: formatVersion, Wire: outpost.WireVersion, Gateway: upgradeGateway}
	for _, b := range upgradeOrder {
		bt := upgradeBatch(b, true)
		mustAppend(t, o, bt)
		if b == 0 || b == 1 || b == 9 {
			m.Acked = append(m.Acked, bt.Seq)
		}
	}
	if _, err := o.Delete(m.Acked); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	opts.MaxBatches = 8
	if o, err = Open(path, opts); err != nil {
		t.Fatal(err)
	}
	st := o.Stats()
	if st.Persisted.LossRecords == 0 {
		t.Fatalf("no loss record: %+v", st)
	}
	m.Epoch, m.NextSeq = st.Epoch, st.NextSeq
	for l := range numLanes {
		for _, e := range readAll(t, o, Lane(l)) {
			bt := decode(t, e)
			m.Batches = append(m.Batches, upgradeManifestBatch{Lane: Lane(l).String(), Seq: e.Seq, Kind: int(bt.Kind), Items: bt.Len(), Bytes: len(e.Data)})
		}
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), append(js, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func upgradeBatch(b int, annotations bool) *outpost.Batch {
	if b < 0 {
		return upgradeAlert(-b-1, annotations)
	}
	return upgradeTelemetry(b)
}

// readManifest reads dir/manifest.json.
func readManifest(t *testing.T, dir string) upgradeManifest {
	t.Helper()
	js, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m upgradeManifest
	if err := json.Unmarshal(js, &m); err != nil {
		t.Fatalf("%s/manifest.json: %v", dir, err)
	}
	return m
}

// copyFixture copies dir/outbox.db into a temp dir and returns the copy.
func copyFixture(t *testing.T, dir string) string {
	t.Helper()
	p, err := os.ReadFile(filepath.Join(dir, "outbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := newPath(t)
	writeFile(t, path, p)
	return path
}

// rawVersion reads the format version of a closed outbox file.
func rawVersion(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint64
	if err := db.View(func(tx *bolt.Tx) error {
		v = getUint(tx.Bucket(bucketMeta), metaVersion)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// Each fixture opens with its epoch and next seq, holds exactly the
// batches its release read back, each decoding to the readings and
// alerts it was written with; it is marked the current format; the
// next batch takes the next seq of the same epoch, and acks empty it.
func TestUpgradeFixtures(t *testing.T) {
	if *updateFixtures {
		writeCurrentFixture(t, filepath.Join(upgradeDir, "format2-wire2"))
	}
	dirs, err := filepath.Glob(filepath.Join(upgradeDir, "format*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 3 {
		t.Fatalf("fixtures: %v", dirs)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := readManifest(t, dir)
			path := copyFixture(t, dir)
			if v := rawVersion(t, path); v != uint64(m.Format) {
				t.Fatalf("fixture's format version %d, manifest says %d", v, m.Format)
			}

			// outpost buffer stats's read-only open sees it as it is.
			ro, err := Open(path, &Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if st := ro.Stats(); st.Epoch != m.Epoch || st.NextSeq != m.NextSeq {
				t.Errorf("read-only: epoch %d next seq %d, want %d %d", st.Epoch, st.NextSeq, m.Epoch, m.NextSeq)
			}
			if err := ro.Close(); err != nil {
				t.Fatal(err)
			}
			if v := rawVersion(t, path); v != uint64(m.Format) {
				t.Errorf("a read-only open changed the format version to %d", v)
			}

			o, err := Open(path, &Options{MaxAge: upgradeAge})
			if err != nil {
				t.Fatal(err)
			}
			if o.Epoch() != m.Epoch || o.Stats().NextSeq != m.NextSeq {
				t.Fatalf("epoch %d next seq %d, want %d %d", o.Epoch(), o.Stats().NextSeq, m.Epoch, m.NextSeq)
			}
			var got []upgradeManifestBatch
			var all []uint64
			for l := range numLanes {
				for _, e := range readAll(t, o, Lane(l)) {
					bt := decode(t, e)
					checkUpgradeBatch(t, m, bt)
					got = append(got, upgradeManifestBatch{Lane: Lane(l).String(), Seq: e.Seq, Kind: int(bt.Kind), Items: bt.Len(), Bytes: len(e.Data)})
					all = append(all, e.Seq)
				}
			}
			if !slices.Equal(got, m.Batches) {
				t.Fatalf("batches\n got %+v\nwant %+v", got, m.Batches)
			}

			b := upgradeTelemetry(10)
			mustAppend(t, o, b)
			if b.Epoch != m.Epoch || b.Seq != m.NextSeq {
				t.Errorf("new batch (epoch %d, seq %d), want (%d, %d)", b.Epoch, b.Seq, m.Epoch, m.NextSeq)
			}
			if _, err := o.Delete(append(all, b.Seq)); err != nil {
				t.Fatal(err)
			}
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			if v := rawVersion(t, path); v != formatVersion {
				t.Errorf("format version %d after a read-write open, want %d", v, formatVersion)
			}
			checkFile(t, path)
			o = open(t, path, &Options{MaxAge: upgradeAge})
			if st := o.Stats(); st.Epoch != m.Epoch || st.NextSeq != m.NextSeq+1 || st.Batches != [numLanes]int{} {
				t.Errorf("reopened: %+v, want epoch %d, next seq %d, empty", st, m.Epoch, m.NextSeq+1)
			}
		})
	}
}

// checkUpgradeBatch checks a fixture's batch against the content it was
// written with.
func checkUpgradeBatch(t *testing.T, m upgradeManifest, bt *outpost.Batch) {
	t.Helper()
	if bt.Gateway != m.Gateway || bt.Epoch != m.Epoch {
		t.Errorf("seq %d: gateway %q epoch %d", bt.Seq, bt.Gateway, bt.Epoch)
	}
	wire := uint8(m.Wire)
	if bt.Kind == outpost.KindLoss {
		wire = outpost.WireVersion // written by the build that evicted
	}
	if bt.Version != wire {
		t.Errorf("seq %d: wire version %d, want %d", bt.Seq, bt.Version, wire)
	}
	switch bt.Kind {
	case outpost.KindTelemetry:
		b := -1
		for _, r := range bt.AppendReadings(nil) {
			k := slices.IndexFunc(upgradeSeries[:], func(s [3]string) bool { return s[0] == r.Sensor && s[1] == r.Metric })
			n := int((r.TS - upgradeT0) / upgradeStep)
			if b < 0 {
				b = n / upgradePerSer
			}
			if k < 0 || r.Unit != upgradeSeries[k][2] || (r.TS-upgradeT0)%upgradeStep != 0 || n/upgradePerSer != b ||
				r.Value != upgradeValue(k, n) || r.Quality != upgradeQuality(b, k, n%upgradePerSer) {
				t.Fatalf("seq %d: reading %+v is not what was written", bt.Seq, r)
			}
		}
		if bt.Len() != len(upgradeSeries)*upgradePerSer || bt.Created != upgradeTelemetry(b).Created {
			t.Errorf("seq %d: %d readings, created %d", bt.Seq, bt.Len(), bt.Created)
		}
	case outpost.KindAlert:
		if len(bt.Alerts) != 1 {
			t.Fatalf("seq %d: %d alerts", bt.Seq, len(bt.Alerts))
		}
		a := bt.Alerts[0]
		want := upgradeAlert(int(a.Seq)-1, m.Wire >= 2).Alerts[0]
		if a.Rule != want.Rule || a.Fingerprint != want.Fingerprint || a.State != want.State || a.Severity != want.Severity ||
			a.Value != want.Value || !maps.Equal(a.Labels, want.Labels) || a.Message != want.Message ||
			a.StartedAt != want.StartedAt || a.ChangedAt != want.ChangedAt || !maps.Equal(a.Annotations, want.Annotations) {
			t.Errorf("seq %d: alert %+v\nwant %+v", bt.Seq, a, want)
		}
	case outpost.KindLoss:
		for _, l := range bt.Losses {
			if l.Epoch != m.Epoch || l.Count == 0 || l.FirstSeq == 0 || l.LastSeq >= m.NextSeq {
				t.Errorf("seq %d: loss record %+v", bt.Seq, l)
			}
		}
	default:
		t.Errorf("seq %d: kind %d", bt.Seq, bt.Kind)
	}
}

// The fixtures' files are what the manifests describe; a guard against
// an edit of one without the other.
func TestUpgradeManifests(t *testing.T) {
	for _, name := range []string{"format1-wire1", "format2-wire1", "format2-wire2"} {
		m := readManifest(t, filepath.Join(upgradeDir, name))
		want := fmt.Sprintf("format%d-wire%d", m.Format, m.Wire)
		if name != want || m.Gateway != upgradeGateway || m.Epoch == 0 || len(m.Batches) == 0 || !slices.Equal(m.Acked, []uint64{1, 2, 12}) || m.NextSeq < 13 {
			t.Errorf("%s: manifest %+v", name, m)
		}
	}
}
