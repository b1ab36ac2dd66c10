package ingest

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outposthq/outpost/metrics"
)

// MaxTrackedGateways bounds the gateways whose lag /metrics reports (one
// series each): the first ones seen are kept, later ones are counted in
// outpost_ingest_lag_untracked_batches_total instead.
const MaxTrackedGateways = 10_000

// serviceMetrics are what the service observes for /metrics beyond its
// Stats: the commit latency and each gateway's newest data.
type serviceMetrics struct {
	commit    *metrics.Hist // successful Store.Commit calls
	mu        sync.Mutex
	newest    map[string]int64 // gateway → newest committed batch's Created (unix ns)
	untracked atomic.Int64     // batches of gateways beyond MaxTrackedGateways
	scrapes   chan struct{}    // /metrics answers in progress
}

func newServiceMetrics() *serviceMetrics {
	return &serviceMetrics{commit: metrics.NewHist(metrics.LatencyBuckets), newest: map[string]int64{},
		scrapes: make(chan struct{}, maxScrapes)}
}

// committed records that a batch of gateway sealed at created (unix ns)
// is stored (new or a duplicate).
func (m *serviceMetrics) committed(gateway string, created int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.newest[gateway]
	switch {
	case !ok && len(m.newest) >= MaxTrackedGateways:
		m.untracked.Add(1)
	case !ok || created > old:
		m.newest[gateway] = created
	}
}

// WriteMetrics appends the service's metrics, then the Go runtime's and
// the process's, to w (docs/metrics.md).
func (s *Service) WriteMetrics(w *metrics.Writer) {
	st := s.Stats()
	c := func(name, help string, v int64) { w.Single(name, metrics.Counter, help, float64(v)) }
	c("outpost_ingest_batches_total", "Batches committed (duplicates not counted).", st.Batches)
	c("outpost_ingest_duplicate_batches_total", "Batches that were already stored, acked again.", st.Duplicates)
	c("outpost_ingest_readings_total", "Readings committed.", st.Readings)
	c("outpost_ingest_alerts_total", "Alerts committed.", st.Alerts)
	c("outpost_ingest_loss_records_total", "Loss records committed (gaps rows).", st.Losses)
	c("outpost_ingest_status_messages_total", "Gateway status messages recorded.", st.Statuses)
	c("outpost_ingest_dead_letters_total", "Messages dead-lettered (bad payloads, refused batches).", st.DeadLetters)
	c("outpost_ingest_store_errors_total", "Failed store calls (each retry counts) and failed ack publishes.", st.Errors)
	c("outpost_ingest_auth_refused_batches_total", "Batches dead-lettered by message authentication.", st.AuthRefused)
	c("outpost_ingest_unverified_batches_total", "Batches committed without a verified MAC, duplicates included.", st.Unverified)
	c("outpost_ingest_expired_batches_total", "Batches made before the retention's horizon: acked, not stored.", st.Expired)
	c("outpost_ingest_commands_sent_total", "Commands the courier published to gateways come online (each attempt).", st.CommandsSent)
	c("outpost_ingest_command_replies_total", "Gateways' replies to commands recorded in the commands table.", st.CommandReplies)
	w.Single("outpost_ingest_event_streams", metrics.Gauge, "Live event streams (GET /api/v1/events) open now.", float64(s.events.open.Load()))
	c("outpost_ingest_event_streams_dropped_total",
		"Event streams dropped for a slow client: a full queue, or a write not taken within the write stall.", s.events.dropped.Load())
	c("outpost_ingest_events_sent_total", "Events written to event streams (hello, overflow and pings not counted).", s.events.sent.Load())
	ok, _ := s.healthy()
	w.Single("outpost_ingest_healthy", metrics.Gauge, "1 while connected, subscribed and the database answers (as /healthz), else 0.", metrics.Bool(ok))
	w.Family("outpost_ingest_commit_duration_seconds", metrics.Histogram, "Duration of successful batch commits to the database, in seconds.")
	w.Histogram("outpost_ingest_commit_duration_seconds", s.met.commit)

	now := s.now().UnixNano()
	s.met.mu.Lock()
	w.Single("outpost_ingest_gateways_tracked", metrics.Gauge, "Gateways whose lag is reported (at most 10000).", float64(len(s.met.newest)))
	w.Family("outpost_ingest_gateway_lag_seconds", metrics.Gauge,
		"Time since the newest committed batch of the gateway was sealed, by ingest's clock (0 if ahead), in seconds.")
	for gw, created := range s.met.newest {
		w.Sample("outpost_ingest_gateway_lag_seconds", max(time.Duration(now-created).Seconds(), 0), "gateway", gw)
	}
	s.met.mu.Unlock()
	c("outpost_ingest_lag_untracked_batches_total", "Batches of gateways beyond the 10000 whose lag is tracked.", s.met.untracked.Load())
	s.writeNATSMetrics(w)
	metrics.WriteGo(w)
	if err := metrics.WriteProcess(w); err != nil {
		s.log.Debug().Err(err).Msg("process metrics incomplete")
	}
}

// maxScrapes bounds the /metrics answers made at once; more get 503.
const maxScrapes = 4

func (s *Service) serveMetrics(rw http.ResponseWriter, _ *http.Request, _ string) {
	select {
	case s.met.scrapes <- struct{}{}:
		defer func() { <-s.met.scrapes }()
	default:
		rw.Header().Set("Retry-After", "1")
		s.api.writeJSON(rw, http.StatusServiceUnavailable, map[string]string{"error": "too many scrapes at once"})
		return
	}
	var w metrics.Writer
	s.WriteMetrics(&w)
	rw.Header().Set("Content-Type", metrics.ContentType)
	if _, err := rw.Write(w.Bytes()); err != nil {
		s.log.Debug().Err(err).Msg("metrics: writing the answer failed")
	}
}
