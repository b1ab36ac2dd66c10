package rules

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/outposthq/outpost"
)

var benchMetrics = [...]string{"temperature", "humidity", "pressure"}

// benchRules writes n rules over 100 sensors × 3 metrics. Selected rules
// name their sensor, so a reading reaches about n/300 of them; wildcard
// rules leave it out, so a reading reaches n/3 of them. The thresholds are
// above+offset, for values in [-1, 1].
func benchRules(n int, wildcard bool, above float64) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r%d\n    select: {metric: %s", i, benchMetrics[i%3])
		if !wildcard {
			fmt.Fprintf(&b, ", sensor: s%03d", (i/3)%100)
		}
		fmt.Fprintf(&b, "}\n    above: %g\n    for: 5s\n", above+float64(i%10)/100)
	}
	return b.String()
}

// benchStream is 60 poll rounds of 100 sensors × 3 metrics at 1 Hz, values
// sines of different phases in [-1, 1].
func benchStream() [][]outpost.Reading {
	rounds := make([][]outpost.Reading, 60)
	for t := range rounds {
		for s := range 100 {
			for m, metric := range benchMetrics {
				rounds[t] = append(rounds[t], outpost.Reading{
					Sensor: fmt.Sprintf("s%03d", s),
					Metric: metric,
					TS:     int64(t) * sec,
					Value:  math.Sin(float64(t)/6 + float64(s*3+m)),
				})
			}
		}
	}
	return rounds
}

// BenchmarkEval measures dispatch: thresholds out of the signal's range,
// so no reading changes any state (the steady state of a gateway).
func BenchmarkEval(b *testing.B) {
	for _, mode := range []string{"selected", "wildcard"} {
		for _, n := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/rules=%d", mode, n), func(b *testing.B) {
				benchEval(b, benchRules(n, mode == "wildcard", 2))
			})
		}
	}
}

// BenchmarkEvalTransitions has thresholds inside the signal's range, so
// instances go pending, fire and resolve: it adds the cost of building
// alerts (labels, message).
func BenchmarkEvalTransitions(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("selected/rules=%d", n), func(b *testing.B) {
			benchEval(b, benchRules(n, false, 0.5))
		})
	}
}

func benchEval(b *testing.B, rulesYAML string) {
	set, err := Parse("bench.yaml", []byte(rulesYAML))
	if err != nil {
		b.Fatal(err)
	}
	stream := benchStream()
	e := NewEngine(set, nil)
	// Warm up: the first sight of each series allocates its instances.
	warm := stream[0]
	for j := range warm {
		warm[j].TS = -sec
	}
	dst := e.Eval(warm, nil)
	readings, alerts := 0, 0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		round := stream[i%len(stream)]
		// Keep time moving forward across passes over the stream.
		ts := int64(i) * sec
		for j := range round {
			round[j].TS = ts
		}
		dst = e.Eval(round, dst[:0])
		readings += len(round)
		alerts += len(dst)
	}
	b.ReportMetric(float64(readings)/b.Elapsed().Seconds(), "readings/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(readings), "ns/reading")
	b.ReportMetric(float64(alerts)/float64(readings), "alerts/reading")
}

// engineRules writes n rules of the kinds a gateway runs, each selecting
// one sensor (see selectRules).
func engineRules(n int) string { return selectRules(n, "sensor") }

// selectRules writes n rules of the kinds a gateway runs, over 100
// sensors × 3 metrics: 7 in 10 are threshold levels with hysteresis, 2 in
// 10 expr conditions, 1 in 10 a window. sel says how rule i selects its
// readings besides the metric:
//   - "sensor": one sensor, s((i/3)%100), so a reading reaches n/300 rules;
//   - "labels": one room, {room: r((i/3)%50)}, half of them also the
//     room's floor (see benchLabels), so a reading reaches n/150 rules;
//   - "metric": every sensor, so a reading reaches n/3 rules.
func selectRules(n int, sel string) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r%d\n    select: {metric: %s", i, benchMetrics[i%3])
		switch room := (i / 3) % 50; sel {
		case "sensor":
			fmt.Fprintf(&b, ", sensor: s%03d", (i/3)%100)
		case "labels":
			if i%2 == 0 {
				fmt.Fprintf(&b, ", labels: {room: r%02d, floor: f%d}", room, room/10)
			} else {
				fmt.Fprintf(&b, ", labels: {room: r%02d}", room)
			}
		}
		b.WriteString("}\n")
		switch i % 10 {
		case 7, 8:
			fmt.Fprintf(&b, "    condition: 'value > 2 && %s < 3'\n    for: 5s\n", benchMetrics[i%3])
		case 9:
			fmt.Fprintf(&b, "    condition: 'avg(%s, \"1m\") > 2'\n", benchMetrics[i%3])
		default:
			b.WriteString("    levels:\n      - {severity: critical, above: 2, for: 10s, reset_below: 1.5}\n      - {severity: warning, above: 1.5, for: 5s, reset_below: 1}\n")
		}
	}
	return b.String()
}

// benchLabels are the labels of the 100 bench sensors: two sensors a room
// (r00 to r49), ten rooms a floor (f0 to f4).
func benchLabels() map[string]map[string]string {
	m := map[string]map[string]string{}
	for s := range 100 {
		m[fmt.Sprintf("s%03d", s)] = map[string]string{
			"room":  fmt.Sprintf("r%02d", s/2),
			"floor": fmt.Sprintf("f%d", s/20),
		}
	}
	return m
}

// engineShapes are BenchmarkEngine's rule sets. select=metric/rules=1000
// is the shape of issue 12: every rule selects every sensor of its
// metric, so each reading evaluates 333 instances.
var engineShapes = []struct {
	sel string
	n   int
}{
	{"sensor", 10}, {"sensor", 100}, {"sensor", 1000},
	{"labels", 1000},
	{"metric", 10}, {"metric", 100}, {"metric", 1000},
}

// BenchmarkEngine is the benchmark: rule sets over a realistic
// stream, reporting readings/s and rule evaluations/s (a reading reaches
// only the rules that select it).
func BenchmarkEngine(b *testing.B) {
	for _, sh := range engineShapes {
		b.Run(fmt.Sprintf("select=%s/rules=%d", sh.sel, sh.n), func(b *testing.B) {
			set, err := Parse("bench.yaml", []byte(selectRules(sh.n, sh.sel)))
			if err != nil {
				b.Fatal(err)
			}
			e := NewEngine(set, &Options{SensorLabels: benchLabels()})
			stream := benchStream()
			// Warm up: the first sight of each series (BenchmarkEngineStart)
			// is not the steady state.
			warm := stream[0]
			for j := range warm {
				warm[j].TS = -sec
			}
			dst := e.Eval(warm, nil)
			evals0 := evaluations(e)
			readings := 0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				round := stream[i%len(stream)]
				ts := int64(i) * sec
				for j := range round {
					round[j].TS = ts
				}
				dst = e.Eval(round, dst[:0])
				readings += len(round)
			}
			evals := evaluations(e) - evals0
			b.ReportMetric(float64(readings)/b.Elapsed().Seconds(), "readings/s")
			b.ReportMetric(float64(evals)/b.Elapsed().Seconds(), "evals/s")
			b.ReportMetric(float64(evals)/float64(readings), "evals/reading")
		})
	}
}

func evaluations(e *Engine) uint64 {
	var n uint64
	for _, s := range e.Stats() {
		n += s.Evaluations
	}
	return n
}

// BenchmarkEngineStart measures the first sight of every series: a new
// engine and one round of 100 sensors × 3 metrics, in which each series
// is bound to the instances of the rules that select it (a gateway
// starting, or a reload). ns/series is the cost per series.
func BenchmarkEngineStart(b *testing.B) {
	for _, sh := range engineShapes {
		b.Run(fmt.Sprintf("select=%s/rules=%d", sh.sel, sh.n), func(b *testing.B) {
			set, err := Parse("bench.yaml", []byte(selectRules(sh.n, sh.sel)))
			if err != nil {
				b.Fatal(err)
			}
			labels := benchLabels()
			round := benchStream()[0]
			var dst []outpost.Alert
			b.ReportAllocs()
			for b.Loop() {
				e := NewEngine(set, &Options{SensorLabels: labels})
				dst = e.Eval(round, dst[:0])
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(round)), "ns/series")
		})
	}
}
