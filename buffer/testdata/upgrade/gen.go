//go:build ignore

// gen writes an upgrade fixture: an outbox file as a given release of
// Outpost writes it, and manifest.json, what that release reads back from
// it. It uses only the API that every release since the first outbox
// has (buffer.Open, Append, Delete, Read, Stats; outpost.DecodeBatch), so
// the same source builds in a checkout of an older commit. The current
// release's fixture is written by TestUpgradeFixtures -update instead,
// with the gateway's encoder.
//
// To write the fixture of an older release (README.md in this directory
// names the commits):
//
//	git archive COMMIT | tar -x -C /tmp/old
//	mkdir /tmp/old/gen && cp buffer/testdata/upgrade/gen.go /tmp/old/gen/main.go
//	sed -i 1,2d /tmp/old/gen/main.go    # drop the build constraint
//	(cd /tmp/old && go run ./gen -out DIR -written-by COMMIT -format F -wire W)
//
// The content (upgradeTelemetry, upgradeAlert below) is the same as in
// buffer/upgrade_test.go, which checks every reading of every fixture
// against it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
)

var (
	t0      = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixNano()
	step    = int64(500 * time.Millisecond)
	perSer  = 120
	series  = [3][3]string{{"env1", "temperature", "Cel"}, {"env1", "humidity", "%RH"}, {"tank", "pressure", "Pa"}}
	gateway = "gw-upgrade"
)

func value(k, n int) float64 {
	switch k {
	case 0:
		return 20 + float64(n%500)/100
	case 1:
		return 40 + float64(n*7%300)/10
	}
	return float64(101000 + n%1000)
}

func quality(b, k, i int) outpost.Quality {
	if b == 3 && k == 0 && i%10 == 0 {
		return outpost.QualityUncertain
	}
	return outpost.QualityGood
}

func telemetry(b int) *outpost.Batch {
	bt := &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindTelemetry, Gateway: gateway,
		Created: t0 + int64(b+1)*int64(time.Minute)}
	for k, s := range series {
		ser := outpost.Series{Sensor: s[0], Metric: s[1], Unit: s[2]}
		var q []byte
		for i := range perSer {
			n := b*perSer + i
			ts := t0 + int64(n)*step
			if i == 0 {
				ser.TS = append(ser.TS, ts)
			} else {
				ser.TS = append(ser.TS, step)
			}
			ser.Values = append(ser.Values, value(k, n))
			q = append(q, byte(quality(b, k, i)))
		}
		if b == 3 && k == 0 {
			ser.Quality = q
		}
		bt.Series = append(bt.Series, ser)
	}
	return bt
}

func alert(j int) *outpost.Batch {
	a := outpost.Alert{Rule: "hot", Fingerprint: "hot{sensor=env1}", State: outpost.StateFiring, Severity: "warning",
		Value: 24.5, Labels: map[string]string{"sensor": "env1"}, Message: "env1 temperature 24.5 above 24",
		StartedAt: t0 + 3*int64(time.Minute), ChangedAt: t0 + 4*int64(time.Minute), Seq: 1}
	if j == 1 {
		a.State, a.Value, a.Message = outpost.StateResolved, 23, "env1 temperature back to 23"
		a.ChangedAt, a.Seq = t0+8*int64(time.Minute), 2
	}
	return &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindAlert, Gateway: gateway,
		Created: a.ChangedAt, Alerts: []outpost.Alert{a}}
}

// order is the sequence of appends: telemetry batches by number, alerts
// as -1 and -2.
var order = []int{0, 1, -1, 2, 3, 4, 5, -2, 6, 7, 8, 9}

type manifestBatch struct {
	Lane  string `json:"lane"`
	Seq   uint64 `json:"seq"`
	Kind  int    `json:"kind"`
	Items int    `json:"items"` // readings, alerts or loss records
	Bytes int    `json:"bytes"`
}

type manifest struct {
	WrittenBy string          `json:"written_by"`
	Format    int             `json:"format"`
	Wire      int             `json:"wire"`
	Gateway   string          `json:"gateway"`
	Epoch     uint64          `json:"epoch"`
	NextSeq   uint64          `json:"next_seq"`
	Acked     []uint64        `json:"acked"`
	Batches   []manifestBatch `json:"batches"`
}

func main() {
	out := flag.String("out", "", "directory to write outbox.db and manifest.json into")
	by := flag.String("written-by", "", "the release or commit that writes it")
	format := flag.Int("format", 0, "the outbox format version this release writes")
	wire := flag.Int("wire", 0, "the wire version this release writes")
	flag.Parse()
	if err := run(*out, manifest{WrittenBy: *by, Format: *format, Wire: *wire, Gateway: gateway}); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(out string, m manifest) error {
	if out == "" || m.WrittenBy == "" || m.Format == 0 || m.Wire == 0 {
		return fmt.Errorf("-out, -written-by, -format and -wire are required")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	path := filepath.Join(out, "outbox.db")
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	now := func() time.Time { return time.Unix(0, t0).Add(time.Hour) }
	o, err := buffer.Open(path, &buffer.Options{Now: now})
	if err != nil {
		return err
	}
	for _, b := range order {
		bt := alertOr(b)
		if err := o.Append([]*outpost.Batch{bt}); err != nil {
			return err
		}
		if b == 0 || b == 1 || b == 9 {
			m.Acked = append(m.Acked, bt.Seq)
		}
	}
	// The first two telemetry batches and the newest were acked before
	// the upgrade (fresh data goes first): the next seq is past every
	// stored one.
	if _, err := o.Delete(m.Acked); err != nil {
		return err
	}
	st := o.Stats()
	m.Epoch, m.NextSeq = st.Epoch, st.NextSeq
	for _, lane := range []buffer.Lane{buffer.LaneAlert, buffer.LaneTelemetry} {
		es, err := o.Read(lane, 0, 1000, nil)
		if err != nil {
			return err
		}
		for _, e := range es {
			bt, err := outpost.DecodeBatch(e.Data)
			if err != nil {
				return fmt.Errorf("seq %d: %w", e.Seq, err)
			}
			n := len(bt.Alerts) + len(bt.Losses)
			for _, s := range bt.Series {
				n += len(s.Values)
			}
			m.Batches = append(m.Batches, manifestBatch{Lane: lane.String(), Seq: e.Seq, Kind: int(bt.Kind), Items: n, Bytes: len(e.Data)})
		}
	}
	if err := o.Close(); err != nil {
		return err
	}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "manifest.json"), append(js, '\n'), 0o644)
}

func alertOr(b int) *outpost.Batch {
	if b < 0 {
		return alert(-b - 1)
	}
	return telemetry(b)
}
