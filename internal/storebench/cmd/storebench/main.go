// Command storebench runs internal/storebench: ingest storage rates and
// bytes per reading in PostgreSQL, side by side with a raw row COPY.
//
//	scripts/bench store                      # 10 M readings
//	scripts/bench store --readings 2000000   # a short try
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/outposthq/outpost/internal/storebench"
)

func main() {
	o := storebench.Options{Out: os.Stdout}
	pg := os.Getenv("OUTPOST_BENCH_PG")
	if pg == "" {
		pg = os.Getenv("OUTPOST_TEST_PG")
	}
	if pg == "" {
		pg = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	flag.StringVar(&o.PG, "pg", pg, "PostgreSQL DSN (a schema of its own is made per phase and dropped)")
	flag.StringVar(&o.Occupancy, "occupancy", "testdata/occupancy", "directory of the office recordings")
	flag.IntVar(&o.Readings, "readings", 10_000_000, "readings per phase")
	flag.IntVar(&o.BatchReadings, "batch", 1000, "readings per batch")
	flag.IntVar(&o.Gateways, "gateways", 20, "gateways replaying the recordings")
	flag.IntVar(&o.Workers, "workers", 4, "batches committed at once")
	flag.IntVar(&o.LowRateSeries, "low-rate-series", 100_000, "series of the low-rate phase (0: none)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if _, err := storebench.Run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
