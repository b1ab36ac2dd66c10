package metrics_test

import (
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/metrics"
	"github.com/outposthq/outpost/metrics/metricstest"
)

func TestWriterOutputParsesAndKeepsLabels(t *testing.T) {
	var w metrics.Writer
	w.Single("outpost_things_total", metrics.Counter, "Things\\done\nso far.", 1<<40)
	w.Family("outpost_level", metrics.Gauge, "A level.")
	w.Sample("outpost_level", 0.25, "sensor", `we"ird\name`+"\n", "lane", "alert")
	w.Sample("outpost_level", math.Inf(1), "sensor", "b", "lane", "alert")
	w.Sample("outpost_level", math.NaN(), "sensor", "c", "dangling")
	s, err := metricstest.Parse(w.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, w.Bytes())
	}
	if v, ok := s.Value("outpost_things_total"); !ok || v != 1<<40 {
		t.Fatalf("things = %v, %v", v, ok)
	}
	if !strings.Contains(string(w.Bytes()), "outpost_things_total 1099511627776\n") {
		t.Fatalf("large integers are written in full:\n%s", w.Bytes())
	}
	if s["outpost_things_total"].Help != `Things\\done\nso far.` {
		t.Fatalf("help %q", s["outpost_things_total"].Help)
	}
	if v, ok := s.Value("outpost_level", "sensor", `we"ird\name`+"\n", "lane", "alert"); !ok || v != 0.25 {
		t.Fatalf("escaped label: %v %v\n%s", v, ok, w.Bytes())
	}
	if v, _ := s.Value("outpost_level", "sensor", "b"); !math.IsInf(v, 1) {
		t.Fatalf("+Inf written as %v", v)
	}
	if v, ok := s.Value("outpost_level", "sensor", "c"); !ok || !math.IsNaN(v) {
		t.Fatalf("NaN written as %v", v)
	}
	if p := metricstest.Lint(s); len(p) != 0 {
		t.Fatalf("lint: %v", p)
	}
}

func TestHistogramBucketsAreCumulativeAndAgreeWithCount(t *testing.T) {
	h := metrics.NewHist([]float64{1, 0.1, 1, math.Inf(1), math.NaN(), 10})
	for _, v := range []float64{0.05, 0.1, 0.5, 5, 50, math.NaN()} {
		h.Observe(v)
	}
	h.ObserveDuration(2 * time.Second)
	var w metrics.Writer
	w.Family("outpost_x_seconds", metrics.Histogram, "X.")
	w.Histogram("outpost_x_seconds", h, "sensor", "a")
	s, err := metricstest.Parse(w.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, w.Bytes())
	}
	want := map[string]float64{"0.1": 2, "1": 3, "10": 5, "+Inf": 6}
	for le, n := range want {
		if v, ok := s.Value("outpost_x_seconds_bucket", "sensor", "a", "le", le); !ok || v != n {
			t.Errorf("le=%s: %v, want %v\n%s", le, v, n, w.Bytes())
		}
	}
	if got := s.Sum("outpost_x_seconds", "sensor", "a"); got != 6 {
		t.Fatalf("count %v, want 6", got)
	}
	if h.Count() != 6 {
		t.Fatalf("Count %d", h.Count())
	}
	if p := metricstest.Lint(s); len(p) != 0 {
		t.Fatalf("lint: %v", p)
	}
}

func TestHistogramConcurrentObserve(t *testing.T) {
	h := metrics.NewHist(metrics.LatencyBuckets)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				h.Observe(0.003)
			}
		})
	}
	wg.Wait()
	var w metrics.Writer
	w.Family("outpost_y_seconds", metrics.Histogram, "Y.")
	w.Histogram("outpost_y_seconds", h)
	s, err := metricstest.Parse(w.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Value("outpost_y_seconds_sum"); math.Abs(v-12) > 1e-9 {
		t.Fatalf("sum %v, want 12", v)
	}
	if v, _ := s.Value("outpost_y_seconds_bucket", "le", "0.0025"); v != 0 {
		t.Fatalf("0.003 counted at or below 0.0025: %v", v)
	}
	if v, _ := s.Value("outpost_y_seconds_bucket", "le", "0.005"); v != 4000 {
		t.Fatalf("le=0.005: %v, want 4000", v)
	}
}

func TestRuntimeAndProcessMetrics(t *testing.T) {
	var w metrics.Writer
	metrics.WriteGo(&w)
	if err := metrics.WriteProcess(&w); err != nil {
		t.Fatal(err)
	}
	s, err := metricstest.Parse(w.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, w.Bytes())
	}
	if p := metricstest.Lint(s); len(p) != 0 {
		t.Fatalf("lint: %v", p)
	}
	if v, _ := s.Value("go_goroutines"); v < 1 {
		t.Fatalf("go_goroutines %v", v)
	}
	if _, ok := s.Value("go_info", "version", runtime.Version()); !ok {
		t.Fatal("no go_info")
	}
	if runtime.GOOS != "linux" {
		return
	}
	if v, _ := s.Value("process_resident_memory_bytes"); v < 1<<20 {
		t.Fatalf("rss %v", v)
	}
	if v, _ := s.Value("process_open_fds"); v < 3 {
		t.Fatalf("open fds %v", v)
	}
	start, _ := s.Value("process_start_time_seconds")
	if now := float64(time.Now().Unix()); start > now+1 || start < now-24*3600 {
		t.Fatalf("start time %v, now %v", start, now)
	}
}

func TestLintFindsBadNames(t *testing.T) {
	text := "# HELP outpost_a_count Bad.\n# TYPE outpost_a_count counter\noutpost_a_count 1\n" +
		"# HELP outpost_b_total \n# TYPE outpost_b_total gauge\noutpost_b_total 1\n" +
		"# HELP other_latency_milliseconds Bad.\n# TYPE other_latency_milliseconds gauge\nother_latency_milliseconds 1\n" +
		"# HELP outpost_h_seconds H.\n# TYPE outpost_h_seconds histogram\n" +
		"outpost_h_seconds_bucket{le=\"1\"} 3\noutpost_h_seconds_bucket{le=\"+Inf\"} 2\noutpost_h_seconds_sum 1\noutpost_h_seconds_count 3\n"
	s, err := metricstest.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	probs := strings.Join(metricstest.Lint(s), "\n")
	for _, want := range []string{
		"outpost_a_count: type counter", "outpost_a_count: name ends in the reserved _count",
		"outpost_b_total: no help text", "outpost_b_total: type gauge",
		"other_latency_milliseconds: name must start", `other_latency_milliseconds: unit "milliseconds"`,
		"outpost_h_seconds: buckets are not cumulative", "outpost_h_seconds[]: +Inf bucket 2, _count 3",
	} {
		if !strings.Contains(probs, want) {
			t.Errorf("lint missed %q; it said:\n%s", want, probs)
		}
	}
}

func TestParseRefusesMalformedText(t *testing.T) {
	for _, text := range []string{
		"outpost_x 1\n", // no family
		"# HELP outpost_x X.\n# TYPE outpost_x gauge\noutpost_x 1\noutpost_x 2\n",        // repeated series
		"# HELP outpost_x X.\n# TYPE outpost_x gauge\noutpost_x{a=\"1} 1\n",              // unterminated
		"# HELP outpost_x X.\n# TYPE outpost_x gauge\noutpost_x{a=\"\\q\"} 1\n",          // bad escape
		"# HELP outpost_x X.\n# TYPE outpost_x gauge\noutpost_x 1 1700000000\n",          // timestamp
		"# HELP outpost_x X.\n# TYPE outpost_x gauge\noutpost_y 1\n",                     // other family
		"# HELP outpost_x X.\n# TYPE outpost_x gauge\noutpost_x one\n",                   // value
		"# HELP outpost_x X.\n# TYPE outpost_x gauge\noutpost_x 1",                       // no line feed
		"# HELP outpost_x X.\n# TYPE outpost_x gauge\n# HELP outpost_x X.\n",             // twice
		"# HELP outpost_x X.\n# TYPE outpost_x gauge\noutpost_x{__a=\"1\"} 1\n",          // reserved label
		"# HELP outpost_x X.\n# TYPE outpost_x gauge\noutpost_x{a=\"1\",a=\"2\"} 1\n",    // label twice
		"# HELP outpost_x X.\n# TYPE outpost_x widget\noutpost_x 1\n",                    // type
		"# HELP outpost_x X.\n# TYPE outpost_x gauge\n\noutpost_x 1\n",                   // empty line
		"# HELP outpost_x X.\n# TYPE outpost_x gauge\noutpost_x{a=\"1\"b=\"2\"} 1\n",     // no comma
		"# HELP outpost_x X.\n# TYPE outpost_x histogram\noutpost_x_bucket{le=\"1\"}1\n", // no space
	} {
		if _, err := metricstest.Parse([]byte(text)); err == nil {
			t.Errorf("accepted %q", text)
		}
	}
}
