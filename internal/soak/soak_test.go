package soak

import (
	"bytes"
	"encoding/xml"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const mib = 1 << 20

// run makes samples 10 s apart for minutes, from f(t in seconds).
func run(minutes int, f func(t float64, s *Sample)) []Sample {
	var out []Sample
	for i := 1; i <= minutes*6; i++ {
		s := Sample{T: float64(10 * i), Goroutines: 30, FDs: 12, BatchesAcked: int64(100 * i), ReadingsEmitted: int64(100000 * i)}
		s.RSS = 18 * mib
		f(s.T, &s)
		s.HWM = max(s.RSS, 19*mib)
		out = append(out, s)
	}
	return out
}

func TestJudge(t *testing.T) {
	lim := Limits{Warmup: 5 * time.Minute, RSSGrowth: 0.10}
	tests := []struct {
		name    string
		samples []Sample
		fail    []string // substrings of the failures, in order; none: a pass
	}{
		{"flat", run(30, func(float64, *Sample) {}), nil},
		{"climbs in the warm-up only", run(30, func(t float64, s *Sample) {
			s.RSS = int64(min(t, 300)) * mib / 10 // 0 to 30 MiB in 5 min, flat after
		}), nil},
		{"sawtooth within 10 %", run(30, func(t float64, s *Sample) {
			s.RSS += int64(t) % 60 * mib / 60 // +0..1 MiB of 18
		}), nil},
		{"slow climb past 10 %", run(30, func(t float64, s *Sample) {
			s.RSS += int64(t) * mib / 600 // +0.1 MiB a minute: +2.5 MiB after 25 min
		}), []string{"RSS grew 13.5 %"}},
		{"one spike past 10 %", run(30, func(t float64, s *Sample) {
			if t == 900 {
				s.RSS = 20 * mib
			}
		}), []string{"RSS grew 11.1 %"}},
		{"one goroutine more at the end", run(30, func(t float64, s *Sample) {
			if t > 1500 {
				s.Goroutines = 31
			}
		}), []string{"goroutines grew from 30 at 300 s to 31 at 1800 s"}},
		{"a transient goroutine mid-run", run(30, func(t float64, s *Sample) {
			if t == 900 {
				s.Goroutines = 33
			}
		}), nil},
		{"fewer goroutines", run(30, func(t float64, s *Sample) {
			if t > 600 {
				s.Goroutines = 29
			}
		}), nil},
		{"stalled", run(30, func(t float64, s *Sample) {
			if t >= 1000 {
				s.BatchesAcked = 10000
			}
		}), []string{"no batch acked between 1000 s and 1010 s (and in 80 intervals of 150 after the warm-up)"}},
		{"lost readings", run(30, func(t float64, s *Sample) { s.ReadingsLost = int64(t) }), []string{"1800 readings lost"}},
		{"too short", run(5, func(float64, *Sample) {}), []string{"no sample after the warm-up"}},
		{"empty", nil, []string{"no sample after the warm-up"}},
		{"everything", run(30, func(t float64, s *Sample) {
			s.RSS += int64(t) * mib / 60
			s.Goroutines = 30 + int64(t)/60
		}), []string{"RSS grew", "goroutines grew from 35 at 300 s to 60 at 1800 s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Judge(tt.samples, lim)
			if len(v.Failures) != len(tt.fail) || v.OK() != (len(tt.fail) == 0) {
				t.Fatalf("failures %q, want %d like %q", v.Failures, len(tt.fail), tt.fail)
			}
			for i, want := range tt.fail {
				if !strings.Contains(v.Failures[i], want) {
					t.Errorf("failure %d: %q, want it to contain %q", i, v.Failures[i], want)
				}
			}
		})
	}
}

func TestJudgeBaselineAndPeak(t *testing.T) {
	s := run(30, func(t float64, s *Sample) { s.RSS += int64(t) * 1024 })
	v := Judge(s, DefaultLimits)
	if v.Baseline.T != 300 || v.Baseline.RSS != 18*mib+300*1024 {
		t.Errorf("baseline %+v, want the sample at 300 s", v.Baseline)
	}
	if v.PeakRSS != 18*mib+1800*1024 || v.PeakHWM != s[len(s)-1].HWM {
		t.Errorf("peak RSS %d, HWM %d", v.PeakRSS, v.PeakHWM)
	}
}

func TestCSVRoundTrip(t *testing.T) {
	in := run(2, func(t float64, s *Sample) {
		s.T += 0.5
		s.RSSAnon, s.RSSFile, s.Heap, s.HeapGoal, s.GoTotal = int64(t), 2*int64(t), 3*int64(t), 4*int64(t), 5*int64(t)
		s.GCCycles, s.ReadingsStored, s.ReadingsLost, s.BatchesInFlight, s.OutboxFileBytes = 6, 7, 8, 9, 10
	})
	var buf bytes.Buffer
	w, err := NewCSVWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range in {
		if err := w.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.HasPrefix(buf.String(), "time_s,rss_bytes,hwm_bytes,rss_anon_bytes,rss_file_bytes,heap_bytes,") {
		t.Errorf("header: %q", strings.SplitN(buf.String(), "\n", 2)[0])
	}
	out, err := ReadCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d samples back, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i] != in[i] {
			t.Errorf("sample %d: %+v, want %+v", i, out[i], in[i])
		}
	}
}

func TestReadCSVErrors(t *testing.T) {
	for name, body := range map[string]string{
		"empty":        "",
		"no time_s":    "rss_bytes\n1\n",
		"bad number":   "time_s,rss_bytes\n1,x\n",
		"bad time":     "time_s,rss_bytes\nx,1\n",
		"short record": "time_s,rss_bytes\n1\n",
	} {
		if _, err := ReadCSV(strings.NewReader(body)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// A column the reader does not know is skipped; one it misses reads 0.
	s, err := ReadCSV(strings.NewReader("time_s,later_column,rss_bytes\n10,5,123\n"))
	if err != nil || len(s) != 1 || s[0].T != 10 || s[0].RSS != 123 || s[0].Heap != 0 {
		t.Fatalf("%+v, %v", s, err)
	}
}

func TestReadProcSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		// Spend at least a clock tick of CPU, so that it shows.
	}
	var s Sample
	if err := readProc(os.Getpid(), &s); err != nil {
		t.Fatal(err)
	}
	if s.RSS <= 0 || s.HWM < s.RSS || s.RSSAnon <= 0 || s.RSSFile <= 0 || s.RSSAnon+s.RSSFile > s.RSS || s.FDs < 3 || s.CPUMillis <= 0 {
		t.Fatalf("%+v", s)
	}
	if err := readProc(1<<30, &s); err == nil {
		t.Fatal("no error for a pid that does not exist")
	}
}

// svgDoc is what the test reads of the drawing.
type svgDoc struct {
	Groups []struct {
		ID    string `xml:"id,attr"`
		Texts []struct {
			Class string `xml:"class,attr"`
			Body  string `xml:",chardata"`
		} `xml:"text"`
		Lines []struct {
			Class string `xml:"class,attr"`
			Name  string `xml:"data-name,attr"`
			Y1    string `xml:"y1,attr"`
			X1    string `xml:"x1,attr"`
		} `xml:"line"`
		Polys []struct {
			Name   string `xml:"data-name,attr"`
			Points string `xml:"points,attr"`
		} `xml:"polyline"`
	} `xml:"g"`
	Texts []struct {
		Class string `xml:"class,attr"`
		Body  string `xml:",chardata"`
	} `xml:"text"`
}

func points(t *testing.T, s string) [][2]float64 {
	t.Helper()
	var out [][2]float64
	for _, p := range strings.Fields(s) {
		x, y, ok := strings.Cut(p, ",")
		fx, err1 := strconv.ParseFloat(x, 64)
		fy, err2 := strconv.ParseFloat(y, 64)
		if !ok || err1 != nil || err2 != nil {
			t.Fatalf("point %q", p)
		}
		out = append(out, [2]float64{fx, fy})
	}
	return out
}

// The plot of a known run shows what a person would see: three panels
// with titles, legends and axes labelled in minutes; the RSS line climbs
// for 5 minutes and then stays flat, level with the goal line at 20 MiB;
// the goroutine line is flat; the limit line starts at the warm-up.
func TestPlot(t *testing.T) {
	samples := run(30, func(t float64, s *Sample) {
		s.RSS = 10*mib + int64(min(t, 300))*mib/30 // 10 to 20 MiB, then flat
		s.RSSAnon, s.RSSFile = s.RSS/2, s.RSS/2
		s.Heap, s.GoTotal = 4*mib, 12*mib
	})
	var buf bytes.Buffer
	err := Plot(&buf, samples, PlotOptions{Title: "soak & <test>", Limits: DefaultLimits, GoalBytes: 20 * mib})
	if err != nil {
		t.Fatal(err)
	}
	var doc svgDoc
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, buf.String())
	}
	if len(doc.Texts) < 2 || doc.Texts[0].Body != "soak & <test>" || !strings.Contains(doc.Texts[1].Body, "(min)") {
		t.Errorf("title and time axis label: %+v", doc.Texts)
	}
	if len(doc.Groups) != 4 {
		t.Fatalf("%d panels, want 4", len(doc.Groups))
	}
	wantLines := [][]string{
		{"VmRSS", "VmHWM (peak)", "RssAnon", "RssFile", "Go runtime total", "Go heap (objects)"},
		{"goroutines", "open files (fds)"},
		{"emitted", "stored"},
		{"gateway CPU"},
	}
	for i, g := range doc.Groups {
		var names []string
		for _, p := range g.Polys {
			names = append(names, p.Name)
			if n := len(points(t, p.Points)); n != len(samples) {
				t.Errorf("panel %d, %s: %d points, want %d", i, p.Name, n, len(samples))
			}
		}
		if strings.Join(names, "|") != strings.Join(wantLines[i], "|") {
			t.Errorf("panel %d lines %q, want %q", i, names, wantLines[i])
		}
		var legend, xticks []string
		for _, tx := range g.Texts {
			switch tx.Class {
			case "legend":
				legend = append(legend, tx.Body)
			case "xtick":
				xticks = append(xticks, tx.Body)
			}
		}
		if strings.Join(legend, "|") != strings.Join(wantLines[i], "|") {
			t.Errorf("panel %d legend %q", i, legend)
		}
		if strings.Join(xticks, " ") != "0 5 10 15 20 25 30" {
			t.Errorf("panel %d time ticks %q", i, xticks)
		}
		axes := 0
		for _, l := range g.Lines {
			if l.Class == "axis" {
				axes++
			}
		}
		if axes != 2 {
			t.Errorf("panel %d: %d axes", i, axes)
		}
	}

	mem := doc.Groups[0]
	rss := points(t, mem.Polys[0].Points)
	// Time runs left to right, evenly.
	for i := 1; i < len(rss); i++ {
		if rss[i][0] <= rss[i-1][0] {
			t.Fatalf("x goes back at point %d: %v", i, rss[i-1:i+1])
		}
	}
	// Up (smaller y) until 5 minutes (sample 30), flat after.
	for i := 1; i < len(rss); i++ {
		switch {
		case i < 30 && rss[i][1] >= rss[i-1][1]:
			t.Errorf("RSS point %d does not climb: %v", i, rss[i-1:i+1])
		case i >= 30 && rss[i][1] != rss[29][1]:
			t.Errorf("RSS point %d not flat: %v vs %v", i, rss[i], rss[29])
		}
	}
	var goal, limit, warm float64
	for _, l := range mem.Lines {
		y, _ := strconv.ParseFloat(l.Y1, 64)
		switch {
		case l.Name == "goal 20 MiB":
			goal = y
		case strings.HasPrefix(l.Name, "RSS limit"):
			limit = y
			if x, _ := strconv.ParseFloat(l.X1, 64); x != rss[29][0] {
				t.Errorf("the limit starts at x %v, want the baseline's %v", x, rss[29][0])
			}
		case l.Class == "warmup":
			warm, _ = strconv.ParseFloat(l.X1, 64)
		}
	}
	if goal == 0 || goal != rss[len(rss)-1][1] {
		t.Errorf("goal line at y %v, want level with the flat RSS at %v", goal, rss[len(rss)-1][1])
	}
	if limit == 0 || limit >= goal {
		t.Errorf("RSS limit line at y %v, want above (smaller than) the goal's %v", limit, goal)
	}
	if warm != rss[29][0] {
		t.Errorf("warm-up line at x %v, want the 5-minute sample's %v", warm, rss[29][0])
	}
	gor := points(t, doc.Groups[1].Polys[0].Points)
	for _, p := range gor {
		if p[1] != gor[0][1] {
			t.Fatalf("goroutines not flat: %v", gor)
		}
	}
	if err := Plot(&buf, nil, PlotOptions{}); err == nil {
		t.Error("Plot of no samples: no error")
	}
}
