// Package rows holds what the ingest stores share in turning a batch into
// rows: the text of enum columns, label and annotation JSON, the newest reading of each
// series for the latest table, and the checks of loss records and queries.
package rows

import (
	"cmp"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

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
	case outpost.KindLoss:
		return "loss"
	}
	return "kind-" + strconv.Itoa(int(k))
}

// ParseKind is the inverse of Kind for the kinds it names.
func ParseKind(s string) (outpost.Kind, error) {
	for _, k := range [...]outpost.Kind{outpost.KindTelemetry, outpost.KindAlert, outpost.KindLoss} {
		if Kind(k) == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown kind %q", s)
}

// CheckLosses reports a loss record that the gaps table cannot hold: a
// count beyond int64 (stored as a plain bigint, summed by Counts).
func CheckLosses(b *outpost.Batch) error {
	for i := range b.Losses {
		if b.Losses[i].Count > math.MaxInt64 {
			return fmt.Errorf("loss %d: count %d out of range", i, b.Losses[i].Count)
		}
	}
	return nil
}

// Labels is the alerts.labels JSON object of an alert ("{}" when empty).
func Labels(m map[string]string) (string, error) { return object("labels", m) }

// Annotations is the alerts.annotations JSON object of an alert ("{}"
// when empty).
func Annotations(m map[string]string) (string, error) { return object("annotations", m) }

func object(what string, m map[string]string) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m) // sorts keys: stable text for equal maps
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return string(b), nil
}

// SensorLabels are the sensor_labels rows of a status's labels, by
// sensor id: the sensors and their labels as JSON objects, sensors
// without labels left out.
func SensorLabels(ls ingest.SensorLabels) (sensors, labels []string, err error) {
	for _, id := range slices.Sorted(maps.Keys(ls)) {
		if len(ls[id]) == 0 {
			continue
		}
		j, err := Labels(ls[id])
		if err != nil {
			return nil, nil, fmt.Errorf("sensor %s: %w", id, err)
		}
		sensors, labels = append(sensors, id), append(labels, j)
	}
	return sensors, labels, nil
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

// Failed is a query iterator that yields err alone: the answer of a
// query the store refuses before running it.
func Failed[T any](err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, err)
	}
}

// CheckLatest reports a latest query a store cannot answer.
func CheckLatest(q ingest.LatestQuery) error {
	if q.Limit <= 0 {
		return fmt.Errorf("limit %d must be positive", q.Limit)
	}
	return nil
}

// LatestQuery is the SQL and arguments of q (which CheckLatest accepts);
// param(n) writes the n-th placeholder, from 1. The gateway filter and
// the cursor are in the WHERE clause only when set; the cursor is a row
// value comparison, which both databases answer as a range of the
// primary key (gateway, sensor, metric), in its order: a page costs its
// rows, not the rows before it. Within one gateway's walk the cursor
// leaves the gateway out, so that SQLite seeks on all three columns.
func LatestQuery(q ingest.LatestQuery, param func(n int) string) (string, []any) {
	w := &where{param: param}
	w.sb.WriteString("SELECT gateway, sensor, metric, ts, value, quality, unit FROM latest")
	if q.Gateway != "" {
		w.add("gateway = %s", q.Gateway)
	}
	w.after(q.Gateway, q.After)
	return w.end(q.Limit)
}

// CheckSeries reports a series query a store cannot answer.
func CheckSeries(q ingest.SeriesQuery) error {
	if q.Limit <= 0 {
		return fmt.Errorf("limit %d must be positive", q.Limit)
	}
	return nil
}

// SeriesQuery is the SQL and arguments of q (which CheckSeries accepts),
// the columns those of ScanSeries; param(n) writes the n-th placeholder,
// from 1, and labels the condition that a series' labels hold every one
// of q.Labels (not empty), taking its arguments' placeholders from arg.
// Only series with a reading are answered. The filters and the cursor
// are as LatestQuery's, on the unique index of series.
func SeriesQuery(q ingest.SeriesQuery, param func(n int) string, labels func(ls map[string]string, arg func(v any) string) string) (string, []any) {
	w := &where{param: param}
	w.sb.WriteString("SELECT gateway, sensor, metric, unit, CAST(labels AS TEXT), coalesce(first_ts, last_ts), last_ts FROM series")
	w.add("last_ts IS NOT NULL")
	if q.Gateway != "" {
		w.add("gateway = %s", q.Gateway)
	}
	if q.Sensor != "" {
		w.add("sensor = %s", q.Sensor)
	}
	if q.Metric != "" {
		w.add("metric = %s", q.Metric)
	}
	if len(q.Labels) > 0 {
		w.add(strings.ReplaceAll(labels(q.Labels, w.arg), "%", "%%"))
	}
	w.after(q.Gateway, q.After)
	return w.end(q.Limit)
}

// ScanSeries reads one row of SeriesQuery with scan (a Rows' Scan
// method).
func ScanSeries(scan func(dest ...any) error) (ingest.SeriesInfo, error) {
	var si ingest.SeriesInfo
	var labels string
	if err := scan(&si.Gateway, &si.Sensor, &si.Metric, &si.Unit, &labels, &si.FirstTS, &si.LastTS); err != nil {
		return si, err
	}
	if err := json.Unmarshal([]byte(labels), &si.Labels); err != nil {
		return si, fmt.Errorf("series %s/%s/%s: labels: %w", si.Gateway, si.Sensor, si.Metric, err)
	}
	if si.Labels == nil {
		si.Labels = map[string]string{}
	}
	return si, nil
}

// where builds a query's WHERE clause, ORDER BY and LIMIT.
type where struct {
	sb    strings.Builder
	args  []any
	n     int // conditions
	param func(n int) string
}

// arg adds v to the arguments and returns its placeholder.
func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return w.param(len(w.args))
}

// add adds cond, whose %s verbs take the placeholders of vs.
func (w *where) add(cond string, vs ...any) {
	if w.n == 0 {
		w.sb.WriteString(" WHERE ")
	} else {
		w.sb.WriteString(" AND ")
	}
	w.n++
	ps := make([]any, len(vs))
	for i, v := range vs {
		ps[i] = w.arg(v)
	}
	fmt.Fprintf(&w.sb, cond, ps...)
}

// after adds the cursor: series after a (unless zero), in the walk of
// gateway's series (all gateways' if "").
func (w *where) after(gateway string, a ingest.SeriesKey) {
	switch {
	case a == ingest.SeriesKey{}:
	case a.Gateway == gateway:
		w.add("(sensor, metric) > (%s, %s)", a.Sensor, a.Metric)
	default:
		w.add("(gateway, sensor, metric) > (%s, %s, %s)", a.Gateway, a.Sensor, a.Metric)
	}
}

// end orders by key and limits, and returns the query and its
// arguments.
func (w *where) end(limit int) (string, []any) {
	w.sb.WriteString(" ORDER BY gateway, sensor, metric LIMIT " + w.arg(limit))
	return w.sb.String(), w.args
}

// CheckGaps reports a gaps query a store cannot answer.
func CheckGaps(q ingest.GapQuery) error {
	if q.Gateway == "" {
		return fmt.Errorf("no gateway")
	}
	if q.Limit <= 0 {
		return fmt.Errorf("limit %d must be positive", q.Limit)
	}
	return nil
}

// GapColumns are the columns of gaps, in the order of GapRow, GapsQuery's
// select list and ScanGap.
var GapColumns = []string{"gateway", "epoch", "seq", "idx", "reason", "kind", "sensor", "metric", "rule",
	"from_ts", "to_ts", "count", "lost_epoch", "first_seq", "last_seq", "dropped_at", "received_at"}

// GapRow is the gaps row of loss record i of the loss batch b, committed
// at receivedAt (unix ns), in GapColumns order.
func GapRow(b *outpost.Batch, i int, receivedAt int64) []any {
	l := &b.Losses[i]
	return []any{b.Gateway, int64(b.Epoch), int64(b.Seq), int64(i), l.Reason, Kind(l.Kind), l.Sensor, l.Metric, l.Rule,
		l.From, l.To, int64(l.Count), int64(l.Epoch), int64(l.FirstSeq), int64(l.LastSeq), l.At, receivedAt}
}

// GapsQuery is the SQL and arguments of q (which CheckGaps accepts);
// param(n) writes the n-th placeholder, from 1. Only the filters q sets
// are in the WHERE clause, so that the index on (gateway, sensor, metric,
// from_ts) serves them.
func GapsQuery(q ingest.GapQuery, param func(n int) string) (string, []any) {
	var sb strings.Builder
	args := []any{q.Gateway}
	sb.WriteString("SELECT " + strings.Join(GapColumns, ", ") + " FROM gaps WHERE gateway = " + param(1))
	add := func(cond string, v any) {
		args = append(args, v)
		sb.WriteString(" AND " + cond + " " + param(len(args)))
	}
	if q.Sensor != "" {
		add("sensor =", q.Sensor)
	}
	if q.Metric != "" {
		add("metric =", q.Metric)
	}
	add("from_ts <", q.To)
	add("to_ts >=", q.From)
	args = append(args, q.Limit)
	sb.WriteString(" ORDER BY from_ts, epoch, seq, idx LIMIT " + param(len(args)))
	return sb.String(), args
}

// ScanGap reads one row of GapsQuery with scan (a Rows' Scan method).
func ScanGap(scan func(dest ...any) error) (ingest.Gap, error) {
	var (
		g                                         ingest.Gap
		epoch, seq, idx, count, lost, first, last int64
		kind                                      string
	)
	err := scan(&g.Gateway, &epoch, &seq, &idx, &g.Reason, &kind, &g.Sensor, &g.Metric, &g.Rule,
		&g.From, &g.To, &count, &lost, &first, &last, &g.DroppedAt, &g.ReceivedAt)
	if err != nil {
		return g, err
	}
	k, err := ParseKind(kind)
	if err != nil {
		return g, err
	}
	g.Epoch, g.Seq, g.Index, g.Kind, g.Count = uint64(epoch), uint64(seq), int(idx), k, uint64(count)
	g.LostEpoch, g.FirstSeq, g.LastSeq = uint64(lost), uint64(first), uint64(last)
	return g, nil
}
