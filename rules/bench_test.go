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

// engineRules writes n rules of the kinds a gateway runs, over 100
// sensors × 3 metrics, each selecting one sensor: 7 in 10 are threshold
// levels with hysteresis, 2 in 10 expr conditions, 1 in 10 a window.
func engineRules(n int) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: r%d\n    select: {metric: %s, sensor: s%03d}\n", i, benchMetrics[i%3], (i/3)%100)
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

// BenchmarkEngine is the benchmark: 10, 100 and 1000 rules over a
// realistic stream, reporting readings/s and rule evaluations/s (a
// reading reaches only the rules that select it).
func BenchmarkEngine(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			set, err := Parse("bench.yaml", []byte(engineRules(n)))
			if err != nil {
				b.Fatal(err)
			}
			e := NewEngine(set, nil)
			stream := benchStream()
			var dst []outpost.Alert
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
			var evals uint64
			for _, s := range e.Stats() {
				evals += s.Evaluations
			}
			b.ReportMetric(float64(readings)/b.Elapsed().Seconds(), "readings/s")
			b.ReportMetric(float64(evals)/b.Elapsed().Seconds(), "evals/s")
		})
	}
}
