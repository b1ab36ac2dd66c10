package ingest

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/outposthq/outpost"
)

// Bounds on parameter text, before it is parsed: they keep error
// messages (which quote the value) short.
const (
	maxTimeParam   = 64
	maxCursorParam = 3*3*outpost.MaxIDLen + 2 // three escaped ids and two slashes
)

// params reads r's query string. A parameter in known given more than
// once is an error, as is a query string that does not parse; unknown
// parameters are ignored, as they always were.
func params(rawQuery string, known ...string) (url.Values, error) {
	v, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, errors.New("malformed query string")
	}
	for _, k := range known {
		if len(v[k]) > 1 {
			return nil, fmt.Errorf("parameter %q is given more than once", k)
		}
	}
	return v, nil
}

// strictParams is params for an endpoint that refuses what it does not
// know: a parameter outside single and repeatable is an error, as is
// one of single given more than once. New endpoints are strict from the
// start, so that a misspelt filter (lable=) is an error, not a silently
// wider answer.
func strictParams(rawQuery string, repeatable []string, single ...string) (url.Values, error) {
	v, err := params(rawQuery, single...)
	if err != nil {
		return nil, err
	}
	for k := range v {
		if !slices.Contains(single, k) && !slices.Contains(repeatable, k) {
			return nil, fmt.Errorf("unknown parameter %.*q", maxTimeParam, k)
		}
	}
	return v, nil
}

// seriesNames reads gateway, sensor and metric.
func seriesNames(v url.Values, required bool) (gateway, sensor, metric string, err error) {
	if gateway, err = name(v, "gateway", required); err != nil {
		return
	}
	if sensor, err = name(v, "sensor", required); err != nil {
		return
	}
	metric, err = name(v, "metric", required)
	return
}

// rangeQuery reads and checks the parameters of /api/v1/readings.
func (s *Service) rangeQuery(v url.Values) (RangeQuery, error) {
	var q RangeQuery
	var err error
	if q.Gateway, q.Sensor, q.Metric, err = seriesNames(v, true); err != nil {
		return q, err
	}
	q.From, q.To, err = s.window(v)
	if err != nil {
		return q, err
	}
	q.Limit, err = limit(v)
	return q, err
}

// gapQuery reads and checks the parameters of /api/v1/gaps.
func (s *Service) gapQuery(v url.Values) (GapQuery, error) {
	var q GapQuery
	var err error
	if q.Gateway, err = name(v, "gateway", true); err != nil {
		return q, err
	}
	if q.Sensor, err = name(v, "sensor", false); err != nil {
		return q, err
	}
	if q.Metric, err = name(v, "metric", false); err != nil {
		return q, err
	}
	q.From, q.To, err = s.window(v)
	if err != nil {
		return q, err
	}
	q.Limit, err = limit(v)
	return q, err
}

// alertQuery reads and checks the parameters of /api/v1/alerts.
func (s *Service) alertQuery(v url.Values) (AlertQuery, error) {
	var q AlertQuery
	var err error
	if q.Gateway, err = name(v, "gateway", false); err != nil {
		return q, err
	}
	if q.Rule, err = name(v, "rule", false); err != nil {
		return q, err
	}
	if st := v.Get("state"); st != "" {
		if _, ok := ParseAlertState(st); !ok {
			return q, fmt.Errorf("parameter \"state\": want inactive, pending, firing, resolved or nodata")
		}
		q.State = st
	}
	q.From, q.To, err = s.window(v)
	if err != nil {
		return q, err
	}
	q.Limit, err = limit(v)
	return q, err
}

// activeAlertQuery reads and checks the parameters of
// /api/v1/alerts/active.
func activeAlertQuery(v url.Values) (ActiveAlertQuery, error) {
	var q ActiveAlertQuery
	var err error
	if q.Gateway, err = name(v, "gateway", false); err != nil {
		return q, err
	}
	q.Limit, err = limit(v)
	return q, err
}

// latestQuery reads and checks the parameters of /api/v1/latest.
func latestQuery(v url.Values) (LatestQuery, error) {
	var q LatestQuery
	var err error
	if q.Gateway, err = name(v, "gateway", false); err != nil {
		return q, err
	}
	if a := v.Get("after"); a != "" {
		if q.After, err = parseCursor(a); err != nil {
			return q, err
		}
	}
	q.Limit, err = limit(v)
	return q, err
}

// seriesQuery reads and checks the parameters of /api/v1/series.
func seriesQuery(v url.Values) (SeriesQuery, error) {
	var q SeriesQuery
	var err error
	if q.Gateway, q.Sensor, q.Metric, err = seriesNames(v, false); err != nil {
		return q, err
	}
	if q.Labels, err = labelFilter(v["label"]); err != nil {
		return q, err
	}
	if a := v.Get("after"); a != "" {
		if q.After, err = parseCursor(a); err != nil {
			return q, err
		}
	}
	q.Limit, err = limit(v)
	return q, err
}

// maxLabelParams bounds the label filters of one query.
const maxLabelParams = 16

// labelFilter reads the label parameters, each name:value (split at the
// first colon: a name holds none, a value may), within the bounds of a
// status's labels (outpost.CheckSensorLabels); nil for none. A name
// given twice is an error: no series could match both values.
func labelFilter(ps []string) (map[string]string, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	if len(ps) > maxLabelParams {
		return nil, fmt.Errorf("parameter \"label\" is given %d times, more than %d", len(ps), maxLabelParams)
	}
	ls := make(map[string]string, len(ps))
	for _, p := range ps {
		if len(p) > outpost.MaxLabelNameLen+1+outpost.MaxLabelValueLen {
			return nil, fmt.Errorf("parameter \"label\" is longer than %d bytes", outpost.MaxLabelNameLen+1+outpost.MaxLabelValueLen)
		}
		k, val, ok := strings.Cut(p, ":")
		if !ok || k == "" {
			return nil, fmt.Errorf("parameter \"label\" must be name:value, got %.*q", maxTimeParam, p)
		}
		if _, dup := ls[k]; dup {
			return nil, fmt.Errorf("parameter \"label\" names %.*q more than once", maxTimeParam, k)
		}
		ls[k] = val
	}
	if err := outpost.CheckSensorLabels(ls); err != nil {
		return nil, fmt.Errorf("parameter \"label\": %w", err)
	}
	return ls, nil
}

// name reads a gateway, sensor or metric id: 1 to outpost.MaxIDLen
// bytes of UTF-8 without NUL, the wire format's ids. Ingest now stores
// only outpost.ValidName ids, but a database may hold series stored
// before it did, which /latest lists and its cursor names: the API
// reaches them too. Bytes that no id can hold are refused here, before
// any database sees them.
func name(v url.Values, key string, required bool) (string, error) {
	s := v.Get(key)
	if s == "" {
		if required {
			return "", fmt.Errorf("parameter %q is required", key)
		}
		return "", nil
	}
	if err := CheckID(s); err != nil {
		return "", fmt.Errorf("parameter %q %w", key, err)
	}
	return s, nil
}

// CheckID reports an id (gateway, sensor or metric) that the HTTP API
// refuses as a parameter: longer than outpost.MaxIDLen bytes, not UTF-8,
// or holding a NUL byte. Ids that outpost.ValidName refuses today may
// still be stored by older gateways, so they stay reachable.
func CheckID(s string) error {
	switch {
	case len(s) > outpost.MaxIDLen:
		return fmt.Errorf("is longer than %d bytes", outpost.MaxIDLen)
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return errors.New("contains a NUL byte")
	}
	return nil
}

// window reads from and to (unix ns; default: the hour up to now).
func (s *Service) window(v url.Values) (from, to int64, err error) {
	toT := s.now()
	if t := v.Get("to"); t != "" {
		if toT, err = parseTime(t); err != nil {
			return 0, 0, fmt.Errorf("parameter \"to\": %v", err)
		}
	}
	fromT := toT.Add(-DefaultRange)
	if f := v.Get("from"); f != "" {
		if fromT, err = parseTime(f); err != nil {
			return 0, 0, fmt.Errorf("parameter \"from\": %v", err)
		}
	}
	if !fromT.Before(toT) {
		return 0, 0, fmt.Errorf("\"from\" (%s) must be before \"to\" (%s)", fromT.Format(time.RFC3339Nano), toT.Format(time.RFC3339Nano))
	}
	return fromT.UnixNano(), toT.UnixNano(), nil
}

// Bounds of the step parameter of /api/v1/readings.
const (
	MinStep = time.Second
	MaxStep = 366 * 24 * time.Hour
)

// stepParam reads step, a Go duration ("1m", "1h", "24h") from MinStep
// to MaxStep.
func stepParam(v string) (int64, error) {
	d, err := time.ParseDuration(v)
	if len(v) > maxTimeParam || err != nil || d < MinStep || d > MaxStep {
		return 0, fmt.Errorf("parameter \"step\" must be a duration such as 1m or 1h, from %s to %s", MinStep, MaxStep)
	}
	return int64(d), nil
}

// limit reads limit: default DefaultRangeLimit, at most MaxRangeLimit.
func limit(v url.Values) (int, error) {
	l := v.Get("limit")
	if l == "" {
		return DefaultRangeLimit, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > MaxRangeLimit {
		return 0, fmt.Errorf("parameter \"limit\" must be an integer from 1 to %d", MaxRangeLimit)
	}
	return n, nil
}

// parseTime reads RFC 3339 or unix milliseconds, within the years that unix
// nanoseconds can hold.
func parseTime(s string) (time.Time, error) {
	if len(s) > maxTimeParam {
		return time.Time{}, fmt.Errorf("longer than %d bytes", maxTimeParam)
	}
	var t time.Time
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		t = time.UnixMilli(ms)
	} else if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 or unix milliseconds, got %q", s)
	}
	if y := t.Year(); y < 1678 || y > 2261 {
		return time.Time{}, fmt.Errorf("%q is out of range (years 1678 to 2261)", s)
	}
	return t, nil
}

// formatCursor is the after value that continues /api/v1/latest after
// k: gateway/sensor/metric, each escaped as a URL path segment (ids of
// A-Z a-z 0-9 _ . - stay as they are).
func formatCursor(k SeriesKey) string {
	return url.PathEscape(k.Gateway) + "/" + url.PathEscape(k.Sensor) + "/" + url.PathEscape(k.Metric)
}

// parseCursor is the inverse of formatCursor.
func parseCursor(s string) (SeriesKey, error) {
	bad := func(why string) (SeriesKey, error) {
		return SeriesKey{}, fmt.Errorf("parameter \"after\" %s: want gateway/sensor/metric, as \"next\" gave it", why)
	}
	if len(s) > maxCursorParam {
		return bad(fmt.Sprintf("is longer than %d bytes", maxCursorParam))
	}
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return bad("does not have three parts")
	}
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			return bad("has a malformed escape")
		}
		if u == "" {
			return bad("has an empty part")
		}
		if err := CheckID(u); err != nil {
			return bad(err.Error())
		}
		parts[i] = u
	}
	return SeriesKey{Gateway: parts[0], Sensor: parts[1], Metric: parts[2]}, nil
}
