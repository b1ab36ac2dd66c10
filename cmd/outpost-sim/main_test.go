package main

import (
	"context"
	"io"
	"math"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseFlagsErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no broker", nil, "--broker URL is required"},
		{"broker and embedded", []string{"--broker", "tcp://x:1883", "--embedded"}, "give one"},
		{"no gateways", []string{"--embedded", "--gateways", "0"}, "--gateways 0"},
		{"no sensors", []string{"--embedded", "--sensors", "-1"}, "--sensors -1"},
		{"zero interval", []string{"--embedded", "--interval", "0s"}, "--interval"},
		{"zero every", []string{"--embedded", "--every", "0s"}, "--every"},
		{"negative ramp", []string{"--embedded", "--ramp", "-1s"}, "--ramp"},
		{"empty metric", []string{"--embedded", "--metrics", "temperature,,pressure"}, "--metrics"},
		{"repeated metric", []string{"--embedded", "--metrics", "humidity,humidity"}, "--metrics"},
		{"bad ack", []string{"--embedded", "--ack", "never"}, "--ack"},
		{"bad driver", []string{"--embedded", "--driver", "ds18b20"}, "--driver"},
		{"bad buffer size", []string{"--embedded", "--buffer-max-bytes", "lots"}, "buffer-max-bytes"},
		{"bad log level", []string{"--embedded", "--log-level", "loud"}, "--log-level"},
		{"unknown flag", []string{"--embedded", "--fleet", "3"}, "not defined"},
		{"http without embedded", []string{"--broker", "tcp://127.0.0.1:1", "--http", "127.0.0.1:0"}, "needs --embedded"},
		{"extra argument", []string{"--embedded", "now"}, "unexpected arguments"},
		{"two errors", []string{"--gateways", "0"}, "--broker URL is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Sim
			err := s.ParseFlags(tt.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseFlags(%q) = %v, want an error with %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	var s Sim
	if err := s.ParseFlags([]string{"--broker", "tcp://127.0.0.1:1883"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if s.Gateways != 10 || s.Sensors != 3 || strings.Join(s.Metrics, ",") != "temperature,humidity,pressure" ||
		s.IDPrefix != "sim-" || s.BufferMaxBytes != 64<<20 || s.Ack != "ingest" || s.Live {
		t.Errorf("defaults: gateways %d sensors %d metrics %v prefix %q buffer %d ack %q live %v", s.Gateways, s.Sensors, s.Metrics, s.IDPrefix, s.BufferMaxBytes, s.Ack, s.Live)
	}
}

// A short run on the embedded broker and ingest: every reading each
// gateway emitted is in the ingest store exactly once, and the summary
// agrees with the store.
func TestRunEmbedded(t *testing.T) {
	for _, driver := range []string{config.SimDriver, config.DriverBME280} {
		t.Run(driver, func(t *testing.T) { runEmbedded(t, driver) })
	}
}

func runEmbedded(t *testing.T, driver string) {
	s := &Sim{out: t.Output()}
	args := []string{"--embedded", "--gateways", "5", "--sensors", "2", "--duration", "3s",
		"--every", "1s", "--ramp", "500ms", "--seed", "7", "--driver", driver}
	if err := s.ParseFlags(args, t.Output(), t.Output()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(s.DataDir); !os.IsNotExist(err) {
			t.Errorf("temp data dir %s not removed: %v", s.DataDir, err)
		}
	}()
	sum, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	if sum.GatewaysStarted != 5 || len(sum.NotDrained) != 0 {
		t.Fatalf("started %d gateways, not drained %v", sum.GatewaysStarted, sum.NotDrained)
	}
	if sum.ReadingsEmitted == 0 || sum.ReadingsStored != sum.ReadingsEmitted || sum.ReadingsLost != 0 {
		t.Errorf("emitted %d, stored %d, lost %d", sum.ReadingsEmitted, sum.ReadingsStored, sum.ReadingsLost)
	}
	if sum.BatchesAcked != sum.BatchesStored || sum.BatchesPublished < sum.BatchesAcked {
		t.Errorf("batches stored %d, published %d, acked %d", sum.BatchesStored, sum.BatchesPublished, sum.BatchesAcked)
	}
	in := sum.Ingest
	if in == nil || in.Readings != sum.ReadingsEmitted || in.Duplicates != 0 || in.Batches != sum.BatchesStored || in.DeadLetters != 0 {
		t.Errorf("ingest %+v; summary %+v", in, sum)
	}

	ctx := context.Background()
	var total int64
	for _, id := range []string{"sim-0001", "sim-0002", "sim-0003", "sim-0004", "sim-0005"} {
		var got int64
		for _, sensor := range []string{"dev1", "dev2"} {
			for _, metric := range s.Metrics {
				pts, err := storetest.Collect(s.store.Range(ctx, ingest.RangeQuery{Gateway: id, Sensor: sensor, Metric: metric,
					From: math.MinInt64, To: math.MaxInt64, Limit: 1 << 20}))
				if err != nil {
					t.Fatal(err)
				}
				seen := map[int64]bool{}
				for _, p := range pts {
					if seen[p.TS] {
						t.Errorf("%s/%s/%s: ts %d stored twice", id, sensor, metric, p.TS)
					}
					seen[p.TS] = true
				}
				got += int64(len(pts))
			}
		}
		if want := s.emitted[id]; want == 0 || got != want {
			t.Errorf("%s: %d readings in the store, emitted %d", id, got, want)
		}
		total += got
	}
	if total != sum.ReadingsEmitted {
		t.Errorf("store holds %d readings of the 5 gateways, summary says %d emitted", total, sum.ReadingsEmitted)
	}
}
