// Command soak runs the gateway's soak test (internal/soak); scripts/soak
// is its wrapper. It exits 0 when the run passed, 1 when it failed (and
// prints why), 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/outposthq/outpost/internal/soak"
)

func main() {
	os.Exit(run())
}

func run() int {
	o := soak.Options{Limits: soak.DefaultLimits, Progress: os.Stdout}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.DurationVar(&o.Duration, "duration", 30*time.Minute, "how long the gateway runs")
	fs.IntVar(&o.Rate, "rate", 10000, "readings per second from the simulated sensors (4 sensors × 3 metrics, polled every 100 ms)")
	fs.DurationVar(&o.Interval, "interval", 10*time.Second, "between samples")
	warmup := fs.Duration("warmup", 0, "left out of the judgment; default 5m, or half the duration when that is under 10m")
	fs.Float64Var(&o.Limits.RSSGrowth, "rss-growth", soak.DefaultLimits.RSSGrowth, "most RSS may grow after the warm-up, as a fraction")
	goalMiB := fs.Float64("goal-mib", 16e6/(1<<20), "the RSS goal drawn on the plot, in MiB (default: 16 MB); 0 for none")
	fs.StringVar(&o.Out, "out", "soak-results", "directory for the CSV, the SVG, the logs, the configs and the binaries")
	fs.StringVar(&o.Broker, "broker", envOr("OUTPOST_TEST_MQTT", "tcp://127.0.0.1:1883"), "MQTT broker URL")
	fs.StringVar(&o.DB, "db", envOr("OUTPOST_TEST_PG", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"),
		"ingest database: postgres://… (a schema of the run's own, dropped at the end) or sqlite:PATH")
	plot := fs.String("plot", "", "only draw this CSV of an earlier run into an SVG beside it, and judge it")
	title := fs.String("title", "outpost run: memory, goroutines, open files, CPU", "the plot's title with --plot")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "soak: unexpected arguments %q\n", fs.Args())
		return 2
	}
	o.Limits.Warmup = *warmup
	if o.Limits.Warmup == 0 {
		o.Limits.Warmup = soak.DefaultLimits.Warmup
		if o.Duration < 2*o.Limits.Warmup {
			o.Limits.Warmup = o.Duration / 2
		}
	}
	o.Goal = int64(*goalMiB * (1 << 20))
	if *plot != "" {
		return replot(*plot, *title, o)
	}
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	o.Repo = wd

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := soak.Run(ctx, o)
	if res == nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	report(res, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if !res.Verdict.OK() {
		return 1
	}
	return 0
}

func report(res *soak.Result, o soak.Options) {
	v := res.Verdict
	fmt.Printf("soak: %d samples; CSV %s, plot %s\n", len(res.Samples), res.CSV, res.SVG)
	if len(res.Samples) > 0 {
		last := res.Samples[len(res.Samples)-1]
		if res.ReadingsEmitted == 0 { // --plot: the CSV's last sample
			fmt.Printf("soak: readings emitted %d (%.0f/s), stored %d at the last sample\n",
				last.ReadingsEmitted, float64(last.ReadingsEmitted)/last.T, last.ReadingsStored)
		} else {
			fmt.Printf("soak: readings emitted %d (%.0f/s), stored %d; in the database %d (%d distinct), %d alerts, %d dead letters\n",
				res.ReadingsEmitted, float64(last.ReadingsEmitted)/last.T, res.ReadingsStored,
				res.DB.Readings, res.DB.DistinctReadings, res.DB.Alerts, res.DB.DeadLetters)
		}
		fmt.Printf("soak: RSS %s at the end of the warm-up (%.0f s), at most %s after it; peak (VmHWM) %s; goal %s: %s\n",
			soak.MiB(v.Baseline.RSS), v.Baseline.T, soak.MiB(v.PeakRSS), soak.MiB(v.PeakHWM), soak.MiB(o.Goal), met(v.PeakHWM <= o.Goal))
		fmt.Printf("soak: goroutines %d → %d, open files %d → %d; CPU %.1f %% of a core on average, %d GC cycles\n",
			v.Baseline.Goroutines, last.Goroutines, v.Baseline.FDs, last.FDs, float64(last.CPUMillis)/10/last.T, last.GCCycles)
	}
	if res.ReadingsStored > 0 && res.DB.Readings != res.ReadingsStored {
		fmt.Printf("soak: note: the database holds %d readings, the gateway stored %d (the difference was still in its outbox)\n", res.DB.Readings, res.ReadingsStored)
	}
	if v.OK() {
		fmt.Println("soak: PASS")
		return
	}
	fmt.Printf("soak: FAIL:\n  %s\n", strings.Join(v.Failures, "\n  "))
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

func replot(path, title string, o soak.Options) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	samples, err := soak.ReadCSV(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	svg := strings.TrimSuffix(path, filepath.Ext(path)) + ".svg"
	out, err := os.Create(svg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	err = soak.Plot(out, samples, soak.PlotOptions{Title: title, Limits: o.Limits, GoalBytes: o.Goal})
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	res := &soak.Result{Samples: samples, Verdict: soak.Judge(samples, o.Limits), CSV: path, SVG: svg}
	report(res, o)
	if !res.Verdict.OK() {
		return 1
	}
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
