package ingest

import (
	"context"
	"iter"
	"net/http"
	"time"

	"github.com/outposthq/outpost/ingest/console"
)

// HTTP API limits and defaults.
const (
	// DefaultRangeLimit and MaxRangeLimit bound every list the API
	// answers with (readings, gaps, latest): limit's default and largest
	// value.
	DefaultRangeLimit = 10000
	MaxRangeLimit     = 100000
	// DefaultRange is the window of readings and gaps without from.
	DefaultRange = time.Hour
)

// Handler serves the HTTP API (docs/http-api.md has it in full):
//
//	GET /healthz            200 {"status":"ok"} while connected, subscribed and the
//	                        database answers; else 503 {"status":"unavailable","reason":…}
//	GET /api/v1/latest?gateway=&after=&limit=
//	                        {"points":[…],"limit":n,"truncated":b,"next":c}: the newest
//	                        reading of each series (of one gateway if given), by key;
//	                        when truncated, next is the after of the next page.
//	GET /api/v1/series?gateway=&sensor=&metric=&label=&after=&limit=
//	                        {"series":[…],"limit":n,"truncated":b,"next":c}: the series
//	                        that hold readings (gateway, sensor, metric, unit, labels,
//	                        first_ts, last_ts), filtered by gateway, sensor and metric
//	                        and by label=name:value (repeatable, all must match), by
//	                        key; paged as latest. Unknown parameters are refused.
//	GET /api/v1/gateways    {"gateways":[{"gateway","state","updated_at","status"}…]}:
//	                        each gateway's last status message
//	GET /api/v1/readings?gateway=&sensor=&metric=&from=&to=&limit=
//	                        {"points":[…],"limit":n,"truncated":b,"next":t}: one series,
//	                        from <= ts < to, ascending; when truncated, next is the
//	                        from of the next page. from/to are RFC 3339 or unix
//	                        milliseconds; defaults: the last hour.
//	GET /api/v1/gaps?gateway=&sensor=&metric=&from=&to=&limit=
//	                        {"gaps":[…],"limit":n,"truncated":b}: one gateway's loss
//	                        records whose [from_ts, to_ts] overlaps [from, to), by
//	                        from_ts; sensor and metric are optional filters.
//	GET /api/v1/alerts?gateway=&rule=&state=&from=&to=&limit=
//	                        {"alerts":[…],"limit":n,"truncated":b,"next":t}: alert
//	                        transitions, from <= ts < to, by ts; paged as readings.
//	GET /api/v1/alerts/active?gateway=&limit=
//	                        {"alerts":[…],"limit":n,"truncated":b}: each alert
//	                        instance (gateway, fingerprint) whose newest transition
//	                        (by ts, then seq) is pending, firing or nodata, that
//	                        transition, by gateway, started_at, fingerprint. Unknown
//	                        parameters are refused.
//	GET /api/v1/commands?gateway=&push=&name=&state=&id=&before=&limit=
//	                        {"commands":[…],"limit":n,"truncated":b,"next":c}: the
//	                        commands sent to gateways (a CommandStore's; else 501),
//	                        newest first (created_at, then id), filtered by each
//	                        parameter; when truncated, next is the before of the next
//	                        page. limit is 1 to MaxCommandsLimit, by default
//	                        DefaultCommandsLimit. Unknown parameters are refused.
//	GET /api/v1/events?gateway=
//	                        text/event-stream: what ingest commits, live, as
//	                        Server-Sent Events ("event: NAME\ndata: JSON\n\n"): hello
//	                        {"queue","heartbeat_s"} first; then batch {"gateway",
//	                        "readings","ts_ns","ts"} per telemetry batch committed (not
//	                        duplicates); with gateway (a gateway name) only that
//	                        gateway's events, and points {"gateway","points":[…],
//	                        "truncated"} per batch, at most MaxEventPoints points (the
//	                        newest of every series, then the newest others); alert (an
//	                        alerts item) per transition, gap (a gaps item) per loss
//	                        record, status (a gateways item) per status recorded; ": ping"
//	                        after EventHeartbeat of silence. A stream whose queue
//	                        (EventQueue commits, EventQueueBytes) fills is sent
//	                        overflow {} and ended: reconnect, then refetch. Unknown
//	                        parameters are refused.
//
//	GET /metrics            the Prometheus text format (docs/metrics.md), behind the
//	                        same token as /api/
//	GET /, /console/…       the web console's pages (docs/console.md), open like
//	                        /healthz: the data they show comes from /api/
//
// limit is 1 to MaxRangeLimit, by default DefaultRangeLimit. A point is
// {"gateway","sensor","metric","ts" (RFC 3339 ns, UTC),"ts_ns","value"
// (null for NaN/Inf),"unit" ("" for none),"quality"
// ("good"|"uncertain"|"bad")}; a gap is a Gap in JSON.
//
// Answers stream as the database returns rows: an answer of any length
// costs a chunk of memory. At most Options.MaxQueries run at once; more
// get 503 with Retry-After. Event streams take no query slot; at most
// Options.MaxStreams are open at once, more get 503 with Retry-After;
// each write of either must reach the client within Options.WriteStall,
// or the client is dropped; EndStreams (and Close) end the streams. With
// Options.HTTPToken set, /api/ and /metrics requests need it as a bearer
// token (else 401); /healthz stays open. Bad parameters get 400
// {"error":…}; a store failure 500 {"error":"internal error, request id
// …"}, the store's error going to the log under that id (every API
// answer carries its id in X-Request-Id).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.HandleFunc("GET /api/v1/latest", s.api.guard(s.serveLatest))
	mux.HandleFunc("GET /api/v1/series", s.api.guard(s.serveSeries))
	mux.HandleFunc("GET /api/v1/gateways", s.api.guard(s.serveGateways))
	mux.HandleFunc("GET /api/v1/readings", s.api.guard(s.serveReadings))
	mux.HandleFunc("GET /api/v1/gaps", s.api.guard(s.serveGaps))
	mux.HandleFunc("GET /api/v1/alerts", s.api.guard(s.serveAlerts))
	mux.HandleFunc("GET /api/v1/alerts/active", s.api.guard(s.serveActiveAlerts))
	mux.HandleFunc("GET /api/v1/commands", s.api.guard(s.serveCommands))
	mux.HandleFunc("GET /api/v1/events", s.api.guard(s.serveEvents))
	mux.HandleFunc("GET /metrics", s.api.guard(s.serveMetrics))
	con := console.Handler()
	mux.Handle("GET /{$}", con)
	mux.Handle("GET /console/", con)
	return mux
}

func (s *Service) serveHealth(w http.ResponseWriter, _ *http.Request) {
	if ok, reason := s.healthy(); !ok {
		s.api.writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": reason})
		return
	}
	s.api.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Service) serveLatest(w http.ResponseWriter, r *http.Request, id string) {
	v, err := params(r.URL.RawQuery, "gateway", "after", "limit")
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	q, err := latestQuery(v)
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	servePage(s, w, r, id, "points", q.Limit, func(ctx context.Context, limit int) iter.Seq2[Point, error] {
		q.Limit = limit
		return s.store.Latest(ctx, q)
	}, appendPoint, func(last, _ Point) string {
		return formatCursor(SeriesKey{Gateway: last.Gateway, Sensor: last.Sensor, Metric: last.Metric})
	})
}

func (s *Service) serveSeries(w http.ResponseWriter, r *http.Request, id string) {
	v, err := strictParams(r.URL.RawQuery, []string{"label"}, "gateway", "sensor", "metric", "after", "limit")
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	q, err := seriesQuery(v)
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	servePage(s, w, r, id, "series", q.Limit, func(ctx context.Context, limit int) iter.Seq2[SeriesInfo, error] {
		q.Limit = limit
		return s.store.Series(ctx, q)
	}, appendJSON[SeriesInfo], func(last, _ SeriesInfo) string { return formatCursor(last.Key()) })
}

func (s *Service) serveGateways(w http.ResponseWriter, r *http.Request, id string) {
	s.api.run(w, r, id, func(ctx context.Context, st *stream) error {
		st.buf = append(st.buf, `{"gateways":[`...)
		if _, err := writeItems(st, s.store.Gateways(ctx), -1, appendJSON[GatewayStatus]); err != nil {
			return err
		}
		st.buf = append(st.buf, "]}\n"...)
		return nil
	})
}

func (s *Service) serveReadings(w http.ResponseWriter, r *http.Request, id string) {
	v, err := params(r.URL.RawQuery, "gateway", "sensor", "metric", "from", "to", "limit", "step")
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	q, err := s.rangeQuery(v)
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	if v.Has("step") {
		step, err := stepParam(v.Get("step"))
		if err != nil {
			s.api.badRequest(w, err)
			return
		}
		bq := BucketQuery{Gateway: q.Gateway, Sensor: q.Sensor, Metric: q.Metric, From: q.From, To: q.To, Step: step}
		servePage(s, w, r, id, "buckets", q.Limit, func(ctx context.Context, limit int) iter.Seq2[Bucket, error] {
			bq.Limit = limit
			return s.store.Buckets(ctx, bq)
		}, appendBucket, nextTime(func(b Bucket) int64 { return b.TS }))
		return
	}
	servePage(s, w, r, id, "points", q.Limit, func(ctx context.Context, limit int) iter.Seq2[Point, error] {
		q.Limit = limit
		return s.store.Range(ctx, q)
	}, appendPoint, nextTime(func(p Point) int64 { return p.TS }))
}

// servePage streams an answer of at most limit items under key, then
// its tail: truncated, and next, where the next page starts, which
// next makes of the last item sent and the first one not sent: the
// from of a time-ordered answer's next page (nextTime), the after of a
// key-ordered one's.
func servePage[T any](s *Service, w http.ResponseWriter, r *http.Request, id, key string, limit int,
	query func(ctx context.Context, limit int) iter.Seq2[T, error], enc func([]byte, T) ([]byte, error), next func(last, extra T) string) {
	s.api.run(w, r, id, func(ctx context.Context, st *stream) error {
		st.buf = append(st.buf, `{"`+key+`":[`...)
		pg, err := writeItems(st, query(ctx, limit+1), limit, enc) // one more than asked says whether the answer is cut
		if err != nil {
			return err
		}
		var n string
		if pg.more {
			n = next(pg.last, pg.extra)
		}
		st.buf = appendTail(st.buf, limit, pg.more, &n)
		return nil
	})
}

// nextTime is the next of a time-ordered answer: the time of the first
// item not sent. Items that share it with the last one sent (a reading
// stored twice) come again on the next page.
func nextTime[T any](ts func(T) int64) func(last, extra T) string {
	return func(_, extra T) string { return formatNS(ts(extra)) }
}

func (s *Service) serveGaps(w http.ResponseWriter, r *http.Request, id string) {
	v, err := params(r.URL.RawQuery, "gateway", "sensor", "metric", "from", "to", "limit")
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	q, err := s.gapQuery(v)
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	s.api.run(w, r, id, func(ctx context.Context, st *stream) error {
		limit := q.Limit
		q.Limit++
		st.buf = append(st.buf, `{"gaps":[`...)
		pg, err := writeItems(st, s.store.Gaps(ctx, q), limit, appendJSON[Gap])
		if err != nil {
			return err
		}
		st.buf = appendTail(st.buf, limit, pg.more, nil)
		return nil
	})
}

func (s *Service) serveAlerts(w http.ResponseWriter, r *http.Request, id string) {
	v, err := params(r.URL.RawQuery, "gateway", "rule", "state", "from", "to", "limit")
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	q, err := s.alertQuery(v)
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	servePage(s, w, r, id, "alerts", q.Limit, func(ctx context.Context, limit int) iter.Seq2[AlertRow, error] {
		q.Limit = limit
		return s.store.Alerts(ctx, q)
	}, appendJSON[AlertRow], nextTime(func(a AlertRow) int64 { return a.TS }))
}

// serveActiveAlerts answers the active alert instances, at most limit,
// and whether there are more (no next: the answer is a set, not a
// walk; narrow it by gateway).
func (s *Service) serveActiveAlerts(w http.ResponseWriter, r *http.Request, id string) {
	v, err := strictParams(r.URL.RawQuery, nil, "gateway", "limit")
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	q, err := activeAlertQuery(v)
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	s.api.run(w, r, id, func(ctx context.Context, st *stream) error {
		limit := q.Limit
		q.Limit++ // one more than asked says whether the answer is cut
		st.buf = append(st.buf, `{"alerts":[`...)
		pg, err := writeItems(st, s.store.ActiveAlerts(ctx, q), limit, appendJSON[AlertRow])
		if err != nil {
			return err
		}
		st.buf = appendTail(st.buf, limit, pg.more, nil)
		return nil
	})
}
