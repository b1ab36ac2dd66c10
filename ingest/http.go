package ingest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// HTTP API limits and defaults.
const (
	DefaultRangeLimit = 10000
	MaxRangeLimit     = 100000
	DefaultRange      = time.Hour
)

// Handler serves the HTTP API:
//
//	GET /healthz            200 {"status":"ok"} while connected, subscribed and the
//	                        database answers; else 503 {"status":"unavailable","reason":…}
//	GET /api/v1/latest      {"points":[…]}: the newest reading of every series
//	GET /api/v1/gateways    {"gateways":[{"gateway","state","updated_at","status"}…]}:
//	                        each gateway's last status message
//	GET /api/v1/readings?gateway=&sensor=&metric=&from=&to=&limit=
//	                        {"points":[…],"limit":n}: one series, from <= ts < to,
//	                        ascending. from/to are RFC 3339 or unix milliseconds;
//	                        defaults: the last hour, limit 10000 (at most 100000).
//	GET /api/v1/gaps?gateway=&sensor=&metric=&from=&to=&limit=
//	                        {"gaps":[…],"limit":n}: one gateway's loss records whose
//	                        [from_ts, to_ts] overlaps [from, to), by from_ts; sensor
//	                        and metric are optional filters. from, to and limit as
//	                        for readings.
//
// A point is {"gateway","sensor","metric","ts" (RFC 3339 ns, UTC),"value"
// (null for NaN/Inf),"quality" ("good"|"uncertain"|"bad")}. A gap is the
// gaps row (see Gap): {"gateway","epoch","seq","idx","reason","kind",
// "sensor","metric","rule","from_ts","to_ts","count","lost_epoch",
// "first_seq","last_seq","dropped_at","received_at"}, times RFC 3339 ns,
// epochs decimal strings. Bad parameters get 400 {"error":…}; store
// failures 500 {"error":…}.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /api/v1/latest", s.serveLatest)
	mux.HandleFunc("GET /api/v1/gateways", s.serveGateways)
	mux.HandleFunc("GET /api/v1/readings", s.serveReadings)
	mux.HandleFunc("GET /api/v1/gaps", s.serveGaps)
	return mux
}

func (s *Service) serveHealth(w http.ResponseWriter, _ *http.Request) {
	if ok, reason := s.healthy(); !ok {
		s.writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": reason})
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Service) serveLatest(w http.ResponseWriter, r *http.Request) {
	pts, err := s.store.Latest(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"points": nonNil(pts)})
}

func (s *Service) serveGateways(w http.ResponseWriter, r *http.Request) {
	gws, err := s.store.Gateways(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if gws == nil {
		gws = []GatewayStatus{}
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"gateways": gws})
}

func (s *Service) serveReadings(w http.ResponseWriter, r *http.Request) {
	q, err := s.rangeQuery(r.URL.Query())
	if err != nil {
		s.writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	pts, err := s.store.Range(r.Context(), q)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"points": nonNil(pts), "limit": q.Limit})
}

func (s *Service) serveGaps(w http.ResponseWriter, r *http.Request) {
	q, err := s.gapQuery(r.URL.Query())
	if err != nil {
		s.writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	gaps, err := s.store.Gaps(r.Context(), q)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if gaps == nil {
		gaps = []Gap{}
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"gaps": gaps, "limit": q.Limit})
}

// rangeQuery reads and checks the parameters of /api/v1/readings.
func (s *Service) rangeQuery(v url.Values) (RangeQuery, error) {
	q := RangeQuery{Gateway: v.Get("gateway"), Sensor: v.Get("sensor"), Metric: v.Get("metric")}
	for _, p := range [...]struct{ name, v string }{{"gateway", q.Gateway}, {"sensor", q.Sensor}, {"metric", q.Metric}} {
		if p.v == "" {
			return q, fmt.Errorf("parameter %q is required", p.name)
		}
	}
	var err error
	q.From, q.To, q.Limit, err = s.window(v)
	return q, err
}

// gapQuery reads and checks the parameters of /api/v1/gaps.
func (s *Service) gapQuery(v url.Values) (GapQuery, error) {
	q := GapQuery{Gateway: v.Get("gateway"), Sensor: v.Get("sensor"), Metric: v.Get("metric")}
	if q.Gateway == "" {
		return q, fmt.Errorf("parameter %q is required", "gateway")
	}
	var err error
	q.From, q.To, q.Limit, err = s.window(v)
	return q, err
}

// window reads from, to (unix ns; default: the hour up to now) and limit
// (default DefaultRangeLimit, at most MaxRangeLimit).
func (s *Service) window(v url.Values) (from, to int64, limit int, err error) {
	toT := s.now()
	if t := v.Get("to"); t != "" {
		if toT, err = parseTime(t); err != nil {
			return 0, 0, 0, fmt.Errorf("parameter \"to\": %v", err)
		}
	}
	fromT := toT.Add(-DefaultRange)
	if f := v.Get("from"); f != "" {
		if fromT, err = parseTime(f); err != nil {
			return 0, 0, 0, fmt.Errorf("parameter \"from\": %v", err)
		}
	}
	if !fromT.Before(toT) {
		return 0, 0, 0, fmt.Errorf("\"from\" (%s) must be before \"to\" (%s)", fromT.Format(time.RFC3339Nano), toT.Format(time.RFC3339Nano))
	}
	limit = DefaultRangeLimit
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxRangeLimit {
			return 0, 0, 0, fmt.Errorf("parameter \"limit\" must be an integer from 1 to %d", MaxRangeLimit)
		}
		limit = n
	}
	return fromT.UnixNano(), toT.UnixNano(), limit, nil
}

// parseTime reads RFC 3339 or unix milliseconds, within the years that unix
// nanoseconds can hold.
func parseTime(s string) (time.Time, error) {
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

func (s *Service) serverError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client left
	}
	s.errLog.Error().Err(err).Str("path", r.URL.Path).Msg("http: store query failed")
	s.writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "store query failed: " + err.Error()})
}

func (s *Service) writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.errLog.Error().Err(err).Msg("http: encode response")
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if _, err := w.Write(append(b, '\n')); err != nil {
		s.log.Debug().Err(err).Msg("http: write response") // the client went away
	}
}

func nonNil(p []Point) []Point {
	if p == nil {
		return []Point{}
	}
	return p
}
