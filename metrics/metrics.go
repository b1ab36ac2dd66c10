// Package metrics writes the Prometheus text exposition format (version
// 0.0.4) for the gateway's and the ingest service's /metrics endpoints:
// a Writer for values read at scrape time from the counters the parts
// already keep, a lock-free Histogram for the few latencies observed on
// hot paths, and the Go runtime's and the process's own metrics.
//
// It is small on purpose: prometheus/client_golang would add 2.4 MB to
// the armv7 gateway binary (docs/benchmarks.md, "Metrics library"), and
// the gateway reads almost every value from an existing Stats snapshot at
// scrape time, so it needs a text writer, not a registry.
package metrics

import (
	"math"
	"strconv"
)

// Metric types, as a family's # TYPE line names them.
const (
	Counter   = "counter"
	Gauge     = "gauge"
	Histogram = "histogram"
)

// ContentType is the text format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Writer accumulates one scrape's exposition. Write a family's header
// with Family, then its samples; the zero value is ready to use. A Writer
// is not safe for concurrent use.
type Writer struct {
	buf []byte
}

// Bytes is what was written so far; it is valid until the next write.
func (w *Writer) Bytes() []byte { return w.buf }

// Reset empties the writer, keeping its buffer.
func (w *Writer) Reset() { w.buf = w.buf[:0] }

// Family writes the # HELP and # TYPE lines of the family name; its
// samples follow. help is one line: line breaks and backslashes are
// escaped.
func (w *Writer) Family(name, typ, help string) {
	w.buf = append(w.buf, "# HELP "...)
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, ' ')
	w.buf = appendEscaped(w.buf, help, false)
	w.buf = append(w.buf, "\n# TYPE "...)
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, typ...)
	w.buf = append(w.buf, '\n')
}

// Sample writes one sample of name with the label pairs given as name,
// value, name, value…; a trailing unpaired name is ignored.
func (w *Writer) Sample(name string, v float64, labels ...string) {
	w.buf = append(w.buf, name...)
	w.buf = appendLabels(w.buf, labels, "", "")
	w.buf = append(w.buf, ' ')
	w.buf = AppendValue(w.buf, v)
	w.buf = append(w.buf, '\n')
}

// Single writes a family of one unlabelled sample.
func (w *Writer) Single(name, typ, help string, v float64) {
	w.Family(name, typ, help)
	w.Sample(name, v)
}

// Histogram writes the samples of h under the family name (whose header
// Family wrote): the cumulative _bucket series with their le label, _sum
// and _count. The snapshot is consistent: the +Inf bucket equals _count.
func (w *Writer) Histogram(name string, h *Hist, labels ...string) {
	s := h.snapshot()
	var cum uint64
	for i, c := range s.counts {
		cum += c
		le := "+Inf"
		if i < len(h.bounds) {
			le = string(AppendValue(nil, h.bounds[i]))
		}
		w.buf = append(w.buf, name...)
		w.buf = append(w.buf, "_bucket"...)
		w.buf = appendLabels(w.buf, labels, "le", le)
		w.buf = append(w.buf, ' ')
		w.buf = strconv.AppendUint(w.buf, cum, 10)
		w.buf = append(w.buf, '\n')
	}
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, "_sum"...)
	w.buf = appendLabels(w.buf, labels, "", "")
	w.buf = append(w.buf, ' ')
	w.buf = AppendValue(w.buf, s.sum)
	w.buf = append(w.buf, '\n')
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, "_count"...)
	w.buf = appendLabels(w.buf, labels, "", "")
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendUint(w.buf, cum, 10)
	w.buf = append(w.buf, '\n')
}

// appendLabels appends {k="v",…}, with extra (k, v) last when k is not
// empty, or nothing when there is no label.
func appendLabels(b []byte, pairs []string, k, v string) []byte {
	n := len(pairs) / 2
	if n == 0 && k == "" {
		return b
	}
	b = append(b, '{')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendPair(b, pairs[2*i], pairs[2*i+1])
	}
	if k != "" {
		if n > 0 {
			b = append(b, ',')
		}
		b = appendPair(b, k, v)
	}
	return append(b, '}')
}

func appendPair(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, '=', '"')
	b = appendEscaped(b, v, true)
	return append(b, '"')
}

// appendEscaped escapes backslash and line feed, and the double quote in
// label values, as the text format asks.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '"' && quote:
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}

// AppendValue appends v as the text format writes a value: integers
// below 2⁵³ in full, others in Go's shortest 'g' form, and +Inf, -Inf,
// NaN by name.
func AppendValue(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case v == math.Trunc(v) && math.Abs(v) < 1<<53:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// Bool is 1 for true and 0 for false, for gauges of a state.
func Bool(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
