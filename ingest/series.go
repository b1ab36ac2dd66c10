package ingest

import (
	"encoding/json"
	"fmt"
	"time"
)

// SeriesInfo is one stored series: its key, its unit (the one its last
// committed batch carried), its sensor's labels (from its gateway's
// newest status), and the times of the oldest and newest readings it
// has received (retention leaves FirstTS as it was). In
// JSON the times are RFC 3339 with nanoseconds (UTC) next to their unix
// nanoseconds (first_ts_ns, last_ts_ns), and labels is an object ({}
// for none).
type SeriesInfo struct {
	Gateway string
	Sensor  string
	Metric  string
	Unit    string
	Labels  map[string]string
	FirstTS int64 // unix ns
	LastTS  int64 // unix ns
}

// Key is the series' key.
func (si SeriesInfo) Key() SeriesKey {
	return SeriesKey{Gateway: si.Gateway, Sensor: si.Sensor, Metric: si.Metric}
}

// SeriesQuery selects the series that hold readings: of one gateway,
// sensor and metric where those are set (exact), whose labels hold every
// name and value of Labels, after the series After (in key order,
// excluded) unless After is the zero key, in key order, at most Limit
// (> 0) of them. A page's last key as the next page's After walks every
// series once.
type SeriesQuery struct {
	Gateway, Sensor, Metric string
	Labels                  map[string]string
	After                   SeriesKey
	Limit                   int
}

type seriesJSON struct {
	Gateway   string            `json:"gateway"`
	Sensor    string            `json:"sensor"`
	Metric    string            `json:"metric"`
	Unit      string            `json:"unit"`
	Labels    map[string]string `json:"labels"`
	FirstTS   string            `json:"first_ts"`
	FirstTSNS int64             `json:"first_ts_ns"`
	LastTS    string            `json:"last_ts"`
	LastTSNS  int64             `json:"last_ts_ns"`
}

// MarshalJSON implements json.Marshaler.
func (si SeriesInfo) MarshalJSON() ([]byte, error) {
	return json.Marshal(seriesJSON{
		Gateway: si.Gateway, Sensor: si.Sensor, Metric: si.Metric, Unit: si.Unit, Labels: nonNil(si.Labels),
		FirstTS: formatNS(si.FirstTS), FirstTSNS: si.FirstTS, LastTS: formatNS(si.LastTS), LastTSNS: si.LastTS,
	})
}

// UnmarshalJSON implements json.Unmarshaler. The times are read from
// first_ts_ns and last_ts_ns, which must agree with first_ts and
// last_ts.
func (si *SeriesInfo) UnmarshalJSON(b []byte) error {
	var j seriesJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	for _, t := range []struct {
		name, text string
		ns         int64
	}{{"first_ts", j.FirstTS, j.FirstTSNS}, {"last_ts", j.LastTS, j.LastTSNS}} {
		ts, err := time.Parse(time.RFC3339Nano, t.text)
		if err != nil {
			return fmt.Errorf("ingest: series %s: %w", t.name, err)
		}
		if ts.UnixNano() != t.ns {
			return fmt.Errorf("ingest: series %s %s is not %s_ns %d", t.name, t.text, t.name, t.ns)
		}
	}
	*si = SeriesInfo{Gateway: j.Gateway, Sensor: j.Sensor, Metric: j.Metric, Unit: j.Unit, Labels: nonNil(j.Labels),
		FirstTS: j.FirstTSNS, LastTS: j.LastTSNS}
	return nil
}
