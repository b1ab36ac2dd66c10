package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/gateway"
)

// fillOutbox stores two telemetry batches (3 readings each) and one alert
// batch in a fresh outbox under dir.
// t0 is recent enough that the outbox's age cap keeps the batches.
var t0 = time.Now().Truncate(time.Second).Add(-time.Hour).UnixNano()

func fillOutbox(t *testing.T, dir string) uint64 {
	t.Helper()
	ob, err := buffer.Open(filepath.Join(dir, gateway.OutboxFile), &buffer.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	var bs []*outpost.Batch
	for i := 0; i < 2; i++ {
		bb := outpost.NewBatchBuilder()
		for j := 0; j < 3; j++ {
			bb.Add([]outpost.Reading{{Sensor: "dev1", Metric: "temperature", Unit: "Cel", TS: t0 + int64(i*3+j)*1e9, Value: 20.5 + float64(j)}})
		}
		bs = append(bs, bb.Take("gw-1", t0))
	}
	bs = append(bs, &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindAlert, Gateway: "gw-1", Created: t0,
		Alerts: []outpost.Alert{{Rule: "hot", Fingerprint: "hot/dev1", State: outpost.StateFiring, Value: 31, ChangedAt: t0}}})
	if err := ob.Append(bs); err != nil {
		t.Fatal(err)
	}
	return ob.Epoch()
}

func TestBufferStats(t *testing.T) {
	dir := t.TempDir()
	epoch := fillOutbox(t, dir)
	var out, errOut bytes.Buffer
	if code := run([]string{"buffer", "stats", "--data-dir", dir, "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var st bufferStatsJSON
	if err := json.Unmarshal(out.Bytes(), &st); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if st.Epoch != epoch || st.NextSeq != 4 || st.Lanes["telemetry"].Batches != 2 || st.Lanes["alert"].Batches != 1 {
		t.Fatalf("stats %+v", st)
	}
	out.Reset()
	if code := run([]string{"buffer", "stats", "--data-dir", dir}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"epoch", "telemetry  2", "alert      1", "evicted (ever)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stats output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBufferExport(t *testing.T) {
	dir := t.TempDir()
	fillOutbox(t, dir)
	var out, errOut bytes.Buffer
	if code := run([]string{"buffer", "export", "--data-dir", dir}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3 batches:\n%s", len(lines), out.String())
	}
	var first batchJSON
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.Lane != "alert" || first.Kind != "alert" || len(first.Alerts) != 1 || first.Alerts[0].State != "firing" {
		t.Fatalf("first line (alerts first) %+v", first)
	}
	out.Reset()
	if code := run([]string{"buffer", "export", "--data-dir", dir, "--format", "csv", "--lane", "telemetry"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := "ts,sensor,metric,value\n"
	for i := 0; i < 6; i++ {
		want += fmt.Sprintf("%s,dev1,temperature,%g\n", time.Unix(0, t0+int64(i)*1e9).UTC().Format(time.RFC3339Nano), 20.5+float64(i%3))
	}
	if out.String() != want {
		t.Fatalf("csv:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestBufferCommandsWhileLocked(t *testing.T) {
	dir := t.TempDir()
	fillOutbox(t, dir)
	ob, err := buffer.Open(filepath.Join(dir, gateway.OutboxFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	var out, errOut bytes.Buffer
	if code := run([]string{"buffer", "stats", "--data-dir", dir}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "already open") {
		t.Fatalf("stats on a running gateway's outbox: exit %d, stderr %q", code, errOut.String())
	}
}

func TestBufferUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	for _, args := range [][]string{{"buffer"}, {"buffer", "nope"}, {"buffer", "stats"}, {"buffer", "export", "--data-dir", t.TempDir(), "--format", "xml"}} {
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
