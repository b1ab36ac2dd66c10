package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/examples"
)

func TestInjectedFaultsOfTheExample(t *testing.T) {
	dir := t.TempDir()
	if err := examples.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join(dir, "gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := "lab-env: nack 2% of bus transactions; cold-room: dropout 20s–35s"
	if got := injectedFaults(cfg); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var b strings.Builder
	d := &Demo{Config: cfg, configPath: filepath.Join(dir, "gateway.yaml"), dsn: "sqlite:" + filepath.Join(dir, "ingest.db")}
	d.printHeader(&b)
	if !strings.Contains(b.String(), "The example config injects faults into simulated chips on purpose; the warnings they cause are expected:\n  "+want+"\n") {
		t.Errorf("header:\n%s", b.String())
	}
}

func TestDescribeFault(t *testing.T) {
	for _, tc := range []struct {
		f    config.Fault
		want string
	}{
		{config.Fault{Kind: config.FaultNACK, Probability: 0.02}, "nack 2% of bus transactions"},
		{config.Fault{Kind: config.FaultNACK}, "nack every bus transaction"},
		{config.Fault{Kind: config.FaultNACK, Probability: 0.005, From: time.Minute}, "nack 0.5% of bus transactions from 1m0s"},
		{config.Fault{Kind: config.FaultDropout, From: 20 * time.Second, For: 15 * time.Second}, "dropout 20s–35s"},
		{config.Fault{Kind: config.FaultDropout}, "dropout"},
		{config.Fault{Kind: config.FaultSpikes, Magnitude: 40, Probability: 0.3}, "spikes of ±40 on 30% of measurements"},
		{config.Fault{Kind: config.FaultCRC, Probability: 0.1}, "CRC errors in 10% of reads"},
		{config.Fault{Kind: config.FaultSlow, Delay: 50 * time.Millisecond, For: 1500 * time.Millisecond}, "slow by 50ms per transaction 0s–1.5s"},
		{config.Fault{Kind: config.FaultStuck, From: 300 * time.Millisecond, For: time.Second}, "values stuck 300ms–1.3s"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := describeFault(tc.f); got != tc.want {
				t.Errorf("got %q", got)
			}
		})
	}
}

func TestBytesNote(t *testing.T) {
	b := &config.BatchConfig{MaxReadings: 1000, Interval: time.Second, Compression: "zstd"}
	small := &Summary{BytesPerReading: 30.4, ReadingsPerBatch: 7.9}
	want := "  (30 B/reading: batches sealed every 1s held 7.9 readings on average, and each carries its header and per-series headers; full batches of 1000 readings take ~0.1–3 B/reading)"
	if got := bytesNote(small, b); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := bytesNote(&Summary{BytesPerReading: 0.8, ReadingsPerBatch: 990}, b); got != "" {
		t.Errorf("full batches: %q", got)
	}
	if got := bytesNote(&Summary{}, b); got != "" {
		t.Errorf("nothing stored: %q", got)
	}
	b.Compression = "none"
	if got := bytesNote(small, b); strings.Contains(got, "0.1–3") {
		t.Errorf("without zstd: %q", got)
	}
}

func TestDatabaseWithoutPassword(t *testing.T) {
	d := &Demo{dsn: "postgres://outpost:s3cret@db.example.com:5432/outpost?sslmode=disable"}
	want := "postgres://outpost@db.example.com:5432/outpost?sslmode=disable"
	if got := d.database(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var b strings.Builder
	d.printDatabase(&b)
	if strings.Contains(b.String(), "s3cret") || !strings.Contains(b.String(), "psql '"+want+"' -c ") {
		t.Errorf("printed:\n%s", b.String())
	}

	for _, tc := range []struct{ tmp, dsn, want string }{
		{"/tmp/demo", "sqlite:/tmp/demo/ingest.db", "removed at exit"},
		{"", "sqlite:/var/lib/outpost/ingest.db", "to look at it:"},
		{"/tmp/demo", "/srv/my db.sqlite", "sqlite3 '/srv/my db.sqlite' "},
	} {
		var b strings.Builder
		(&Demo{tmpDir: tc.tmp, dsn: tc.dsn}).printDatabase(&b)
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("%s: printed\n%s", tc.dsn, b.String())
		}
	}
}
