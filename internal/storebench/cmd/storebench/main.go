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
	var q storebench.QueryOptions
	flag.IntVar(&q.Series, "query-series", 100, "series of the query phase, each at 1 Hz for -query-days (0: no query phase)")
	flag.IntVar(&q.Days, "query-days", 31, "days of the query phase's series")
	flag.IntVar(&q.LatestSeries, "query-latest", 10_000, "series the query phase's latest query reads")
	flag.IntVar(&q.Repeat, "query-repeat", 20, "times each query runs")
	onlyQueries := flag.Bool("only-queries", false, "run the query phase alone")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if !*onlyQueries {
		if _, err := storebench.Run(ctx, o); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if q.Series > 0 {
		if _, err := storebench.RunQueries(ctx, o, q); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
