package ingest

import (
	"strconv"
	"time"
)

// BucketQuery selects one series' readings with From <= TS < To (unix
// ns) aggregated into buckets of Step ns, at most Limit (> 0) buckets
// with readings, ascending. Buckets start at multiples of Step since the
// Unix epoch: the first holds From, and the last may end after To but
// aggregates only what is before it. A Step of whole hours is served
// from the hour rollups, of whole minutes from the minute rollups, where
// they are current (docs/storage.md, "Rollups"), and from the readings
// elsewhere.
type BucketQuery struct {
	Gateway, Sensor, Metric string
	From, To, Step          int64
	Limit                   int
}

// Bucket aggregates one series' readings in [TS, TS+Step). Readings of
// quality bad and NaN values count in N only; Count is the readings that
// Min, Max, Avg and Last (the newest, at LastTS) are of. With Count 0,
// those are NaN (null in JSON) and LastTS is 0.
type Bucket struct {
	Gateway, Sensor, Metric string
	Unit                    string
	TS                      int64 // bucket start, unix ns
	N, Count                int64
	Min, Max, Avg, Last     float64
	LastTS                  int64
}

// appendBucket appends b as the HTTP API writes it.
func appendBucket(buf []byte, b Bucket) ([]byte, error) {
	buf = append(buf, `{"gateway":`...)
	buf = appendString(buf, b.Gateway)
	buf = append(buf, `,"sensor":`...)
	buf = appendString(buf, b.Sensor)
	buf = append(buf, `,"metric":`...)
	buf = appendString(buf, b.Metric)
	buf = append(buf, `,"unit":`...)
	buf = appendString(buf, b.Unit)
	buf = append(buf, `,"ts":"`...)
	buf = time.Unix(0, b.TS).UTC().AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, `","ts_ns":`...)
	buf = strconv.AppendInt(buf, b.TS, 10)
	buf = append(buf, `,"n":`...)
	buf = strconv.AppendInt(buf, b.N, 10)
	buf = append(buf, `,"count":`...)
	buf = strconv.AppendInt(buf, b.Count, 10)
	buf = append(buf, `,"min":`...)
	buf = appendFloat(buf, b.Min)
	buf = append(buf, `,"max":`...)
	buf = appendFloat(buf, b.Max)
	buf = append(buf, `,"avg":`...)
	buf = appendFloat(buf, b.Avg)
	buf = append(buf, `,"last":`...)
	buf = appendFloat(buf, b.Last)
	if b.Count > 0 {
		buf = append(buf, `,"last_ts":"`...)
		buf = time.Unix(0, b.LastTS).UTC().AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, `","last_ts_ns":`...)
		buf = strconv.AppendInt(buf, b.LastTS, 10)
	}
	return append(buf, '}'), nil
}
