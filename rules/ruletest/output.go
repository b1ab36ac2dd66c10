package ruletest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/outposthq/outpost"
)

// JSONLine is one line of `outpost rules replay` and `outpost-ingest
// rules replay`: one alert transition, as JSONWriter writes it.
type JSONLine struct {
	TS          string            `json:"ts"` // the transition's time (ChangedAt), RFC 3339 with nanoseconds, UTC
	Rule        string            `json:"rule"`
	Fingerprint string            `json:"fingerprint"`
	State       string            `json:"state"` // outpost.AlertState's name
	Severity    string            `json:"severity"`
	Value       JSONValue         `json:"value"`
	Labels      map[string]string `json:"labels"`
}

// JSONValue is an alert's value in a JSONLine: the shortest 'g' form of
// strconv.FormatFloat, and null for NaN and ±Inf (which JSON cannot
// hold). Unmarshalled, null is NaN.
type JSONValue float64

// MarshalJSON implements json.Marshaler.
func (v JSONValue) MarshalJSON() ([]byte, error) {
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (v *JSONValue) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*v = JSONValue(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("ruletest: value %.32q is not a number", b)
	}
	*v = JSONValue(f)
	return nil
}

// NewJSONLine is the line of alert a.
func NewJSONLine(a *outpost.Alert) JSONLine {
	return JSONLine{TS: time.Unix(0, a.ChangedAt).UTC().Format(time.RFC3339Nano), Rule: a.Rule, Fingerprint: a.Fingerprint,
		State: a.State.String(), Severity: a.Severity, Value: JSONValue(a.Value), Labels: a.Labels}
}

// JSONWriter writes alert transitions as the rules replay commands print
// them: one JSONLine a line, its labels in key order (encoding/json's).
// Both commands write through it, so that their outputs compare byte for
// byte. It buffers: call Flush at the end.
type JSONWriter struct {
	w *bufio.Writer
}

// NewJSONWriter returns a writer to w.
func NewJSONWriter(w io.Writer) *JSONWriter {
	return &JSONWriter{w: bufio.NewWriter(w)}
}

// Write writes one line per alert of as, in order. Its signature is
// ReplayFrom's emit.
func (j *JSONWriter) Write(as []outpost.Alert) error {
	for i := range as {
		p, err := json.Marshal(NewJSONLine(&as[i]))
		if err != nil {
			return err
		}
		j.w.Write(p) //nolint:errcheck // the writer's error is sticky: WriteByte returns it
		if err := j.w.WriteByte('\n'); err != nil {
			return err
		}
	}
	return nil
}

// Flush writes what is buffered.
func (j *JSONWriter) Flush() error { return j.w.Flush() }
