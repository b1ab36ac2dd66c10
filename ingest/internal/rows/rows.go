// Package rows holds what the ingest stores share in turning a batch into
// rows: the text of enum columns, label JSON, and the newest reading of each
// series for the latest table.
package rows

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
)

// Kind is the batches.kind text of a batch kind.
func Kind(k outpost.Kind) string {
	switch k {
	case outpost.KindTelemetry:
		return "telemetry"
	case outpost.KindAlert:
		return "alert"
	}
	return "kind-" + strconv.Itoa(int(k))
}

// Labels is the alerts.labels JSON object of an alert ("{}" when empty).
func Labels(m map[string]string) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m) // sorts keys: stable text for equal maps
	if err != nil {
		return "", fmt.Errorf("labels: %w", err)
	}
	return string(b), nil
}

// Latest returns the newest reading of each series in a telemetry batch,
// one per (sensor, metric) even if the batch repeats a series, sorted by
// key so that concurrent upserts lock rows in the same order.
func Latest(b *outpost.Batch) []ingest.Point {
	out := make([]ingest.Point, 0, len(b.Series))
	for i := range b.Series {
		s := &b.Series[i]
		if len(s.Values) == 0 {
			continue
		}
		ts, best := s.TS[0], 0
		maxTS := ts
		for j := 1; j < len(s.TS); j++ {
			ts += s.TS[j]
			if ts >= maxTS { // >=: the later of equal timestamps wins
				maxTS, best = ts, j
			}
		}
		q := outpost.QualityGood
		if len(s.Quality) > 0 {
			q = outpost.Quality(s.Quality[best])
		}
		out = append(out, ingest.Point{Gateway: b.Gateway, Sensor: s.Sensor, Metric: s.Metric, TS: maxTS, Value: s.Values[best], Quality: q})
	}
	slices.SortStableFunc(out, func(a, b ingest.Point) int {
		return cmp.Or(cmp.Compare(a.Sensor, b.Sensor), cmp.Compare(a.Metric, b.Metric))
	})
	// Keep the newest per key; after a stable sort, equal keys keep batch
	// order, so the later series wins a tie.
	w := 0
	for _, p := range out {
		if w > 0 && out[w-1].Sensor == p.Sensor && out[w-1].Metric == p.Metric {
			if p.TS >= out[w-1].TS {
				out[w-1] = p
			}
			continue
		}
		out[w] = p
		w++
	}
	return out[:w]
}

// CheckRange reports a query a store cannot answer.
func CheckRange(q ingest.RangeQuery) error {
	if q.Limit <= 0 {
		return fmt.Errorf("limit %d must be positive", q.Limit)
	}
	return nil
}
