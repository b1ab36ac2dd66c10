package gateway

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/metrics"
	"github.com/outposthq/outpost/sensors"
)

// gatewayMetrics are the latencies observed on hot paths; everything else
// is read from Stats at scrape time. Per-sensor histograms are made for
// the configured sensors only, so their number is bounded by the config.
type gatewayMetrics struct {
	read   []*metrics.Hist // per sensor, config order: successful reads
	commit *metrics.Hist   // outbox write transactions' commits
	ack    *metrics.Hist   // uplink: last send to ack

	scrapes chan struct{} // /metrics answers in progress
}

func newGatewayMetrics(nSensors int) *gatewayMetrics {
	m := &gatewayMetrics{
		commit: metrics.NewHist(metrics.LatencyBuckets),
		ack:    metrics.NewHist(metrics.LatencyBuckets),

		scrapes: make(chan struct{}, maxScrapes),
	}
	for range nSensors {
		m.read = append(m.read, metrics.NewHist(metrics.LatencyBuckets))
	}
	return m
}

// Metric families of the gateway; docs/metrics.md describes each.
const (
	mSensorReadings     = "outpost_sensor_readings_total"
	mSensorPolls        = "outpost_sensor_polls_total"
	mSensorPollFailures = "outpost_sensor_poll_failures_total"
	mSensorRetries      = "outpost_sensor_read_retries_total"
	mSensorUncertain    = "outpost_sensor_uncertain_readings_total"
	mSensorBad          = "outpost_sensor_bad_readings_total"
	mSensorCondition    = "outpost_sensor_condition"
	mSensorHealthy      = "outpost_sensor_healthy"
	mSensorRead         = "outpost_sensor_read_duration_seconds"
)

// healthConditions are the conditions outpost_sensor_condition reports,
// each sensor always with all of them, so a series never vanishes.
var healthConditions = []string{sensors.HealthFailing, sensors.HealthSlow, sensors.HealthStuck, sensors.HealthBad}

// WriteMetrics appends the gateway's metrics, then the Go runtime's and
// the process's, to w (docs/metrics.md).
func (g *Gateway) WriteMetrics(w *metrics.Writer) {
	st := g.Stats()
	g.writeSensors(w, st.Sensors)
	g.writePipeline(w, &st)
	g.writeOutbox(w, &st.Outbox)
	g.writeUplink(w, &st)
	g.writeCommands(w)
	metrics.WriteGo(w)
	if err := metrics.WriteProcess(w); err != nil {
		g.log.Debug().Err(err).Msg("process metrics incomplete")
	}
}

func (g *Gateway) writeSensors(w *metrics.Writer, ss []sensors.Status) {
	counter := func(name, help string, v func(*sensors.Status) int64) {
		w.Family(name, metrics.Counter, help)
		for i := range ss {
			w.Sample(name, float64(v(&ss[i])), "sensor", ss[i].Sensor)
		}
	}
	counter(mSensorReadings, "Readings the sensor's poller emitted onto the bus (every reading read is emitted), edges included.",
		func(s *sensors.Status) int64 { return s.Readings })
	counter(mSensorPolls, "Polls run.", func(s *sensors.Status) int64 { return s.Polls })
	counter(mSensorPollFailures, "Polls that failed after their retries.", func(s *sensors.Status) int64 { return s.Failures })
	counter(mSensorRetries, "Reads retried within a poll.", func(s *sensors.Status) int64 { return s.Retries })
	counter(mSensorUncertain, "Readings emitted with quality uncertain (slow, stuck, spike).", func(s *sensors.Status) int64 { return s.Uncertain })
	counter(mSensorBad, "Readings emitted with quality bad.", func(s *sensors.Status) int64 { return s.Bad })
	w.Family(mSensorCondition, metrics.Gauge, "1 while the health condition (failing, slow, stuck, bad) holds for the sensor, else 0.")
	for i := range ss {
		for _, c := range healthConditions {
			w.Sample(mSensorCondition, metrics.Bool(slices.Contains(ss[i].Active, c)), "sensor", ss[i].Sensor, "condition", c)
		}
	}
	w.Family(mSensorHealthy, metrics.Gauge, "1 while no health condition holds for the sensor, else 0.")
	for i := range ss {
		w.Sample(mSensorHealthy, metrics.Bool(len(ss[i].Active) == 0), "sensor", ss[i].Sensor)
	}
	w.Family(mSensorRead, metrics.Histogram, "Duration of the sensor's successful reads (the poll latency), in seconds.")
	for i := range ss {
		if i < len(g.met.read) {
			w.Histogram(mSensorRead, g.met.read[i], "sensor", ss[i].Sensor)
		}
	}
}

func (g *Gateway) writePipeline(w *metrics.Writer, st *Stats) {
	c := func(name, help string, v int64) { w.Single(name, metrics.Counter, help, float64(v)) }
	c("outpost_readings_stored_total", "Readings committed to the outbox.", st.ReadingsStored)
	c("outpost_readings_lost_total", "Readings lost before the outbox: dropped on the bus or refused by it.", st.ReadingsLost)
	c("outpost_batches_stored_total", "Telemetry batches committed to the outbox.", st.BatchesStored)
	c("outpost_alerts_raised_total", "Alert transitions the rule engine emitted.", st.AlertsRaised)
	c("outpost_alerts_lost_total", "Alerts dropped because they exceeded uplink.max_message_bytes.", st.AlertsLost)
	c("outpost_sensor_health_events_total", "Sensor health events (a condition began or ended).", st.HealthEvents)
	c("outpost_rules_reloads_total", "Rules reloads that swapped the rules in.", st.RuleReloads)
	c("outpost_rules_reload_failures_total", "Rules reloads refused (a bad file; the old rules kept).", st.RuleReloadFails)
	c("outpost_rules_state_save_errors_total", "Failed saves of the rule engine's state.", st.RuleStateErrors)

	rs := g.bus.Receivers()
	w.Family("outpost_bus_queue_depth", metrics.Gauge, "Reading slices (one per poll) waiting in the receiver's bus queue.")
	for _, r := range rs {
		w.Sample("outpost_bus_queue_depth", float64(r.Depth), "receiver", r.Name)
	}
	w.Family("outpost_bus_queue_capacity", metrics.Gauge, "Size of the receiver's bus queue, in reading slices (bus.queue).")
	for _, r := range rs {
		w.Sample("outpost_bus_queue_capacity", float64(r.Capacity), "receiver", r.Name)
	}
	w.Family("outpost_bus_readings_total", metrics.Counter, "Readings queued for the receiver.")
	for _, r := range rs {
		w.Sample("outpost_bus_readings_total", float64(r.Received), "receiver", r.Name)
	}
	w.Family("outpost_bus_dropped_readings_total", metrics.Counter, "Readings dropped because the receiver's queue was full (drop policy).")
	for _, r := range rs {
		w.Sample("outpost_bus_dropped_readings_total", float64(r.Dropped), "receiver", r.Name)
	}

	rule := func(name, help string, v func(i int) float64) {
		w.Family(name, metrics.Counter, help)
		for i := range st.Rules {
			w.Sample(name, v(i), "rule", st.Rules[i].Rule)
		}
	}
	rule("outpost_rule_evaluations_total", "Condition evaluations of the rule (one per reading per instance).",
		func(i int) float64 { return float64(st.Rules[i].Evaluations) })
	rule("outpost_rule_errors_total", "Runtime errors of the rule's condition (counted as false).",
		func(i int) float64 { return float64(st.Rules[i].Errors) })
	rule("outpost_rule_transitions_total", "Alerts the rule emitted, repeats included.",
		func(i int) float64 { return float64(st.Rules[i].Transitions) })
	rule("outpost_rule_evaluation_seconds_total", "Time spent evaluating the rule (estimated from one evaluation in 64), in seconds.",
		func(i int) float64 { return st.Rules[i].Time.Seconds() })

	d := &st.Dashboard
	c("outpost_dashboard_live_messages_total", "Live messages handed to the uplink.", d.Live)
	c("outpost_dashboard_alert_documents_total", "Alert documents handed to the uplink.", d.Alerts)
	c("outpost_dashboard_unsent_messages_total", "Dashboard messages the uplink refused (not connected).", d.Unsent)
}

func (g *Gateway) writeOutbox(w *metrics.Writer, o *buffer.Stats) {
	lanes := []buffer.Lane{buffer.LaneAlert, buffer.LaneTelemetry}
	now := g.now().UnixNano()
	w.Family("outpost_outbox_batches", metrics.Gauge, "Batches stored in the outbox lane, waiting for their ack.")
	for _, l := range lanes {
		w.Sample("outpost_outbox_batches", float64(o.Batches[l]), "lane", l.String())
	}
	w.Family("outpost_outbox_bytes", metrics.Gauge, "Bytes of the batches stored in the outbox lane.")
	for _, l := range lanes {
		w.Sample("outpost_outbox_bytes", float64(o.Bytes[l]), "lane", l.String())
	}
	w.Family("outpost_outbox_oldest_age_seconds", metrics.Gauge, "Age of the oldest batch in the outbox lane (0 when empty), in seconds.")
	for _, l := range lanes {
		age := 0.0
		if c := o.OldestCreated[l]; c > 0 && now > c {
			age = time.Duration(now - c).Seconds()
		}
		w.Sample("outpost_outbox_oldest_age_seconds", age, "lane", l.String())
	}
	c := func(name, help string, v int64) { w.Single(name, metrics.Counter, help, float64(v)) }
	w.Single("outpost_outbox_file_bytes", metrics.Gauge, "Size of the outbox file.", float64(o.FileBytes))
	w.Single("outpost_outbox_next_seq", metrics.Gauge, "The seq the next stored batch gets, in the current epoch.", float64(o.NextSeq))
	c("outpost_outbox_evicted_batches_total", "Batches evicted by the outbox caps since start.", o.Evicted)
	c("outpost_outbox_evicted_readings_total", "Readings in the evicted batches since start.", o.EvictedReadings)
	c("outpost_outbox_evicted_alerts_total", "Alerts in the evicted batches since start.", o.EvictedAlerts)
	c("outpost_outbox_loss_records_total", "Loss records written (batches telling ingest what was evicted) since start.", o.LossRecords)
	c("outpost_outbox_corrupt_batches_total", "Batches dropped because they failed their CRC, since start.", o.Corrupt)
	w.Family("outpost_outbox_commit_duration_seconds", metrics.Histogram,
		"Duration of the outbox's write transaction commits: page writes and fsync, in seconds.")
	w.Histogram("outpost_outbox_commit_duration_seconds", g.met.commit)
}

func (g *Gateway) writeUplink(w *metrics.Writer, st *Stats) {
	u := &st.Uplink
	c := func(name, help string, v int64) { w.Single(name, metrics.Counter, help, float64(v)) }
	w.Single("outpost_uplink_connected", metrics.Gauge, "1 while the uplink is connected to the broker, else 0.", metrics.Bool(u.Connected))
	w.Single("outpost_uplink_in_flight_batches", metrics.Gauge, "Batches published and awaiting their ack.", float64(u.InFlight))
	c("outpost_uplink_connects_total", "Successful connects to the broker (the first and each reconnect).", u.Connects)
	c("outpost_uplink_connect_failures_total", "Failed connection attempts.", u.ConnectFailures)
	c("outpost_uplink_published_batches_total", "Batches published, resends included.", u.Published)
	c("outpost_uplink_resent_batches_total", "Batches published again (ack timeout or reconnect).", u.Resent)
	c("outpost_uplink_acked_batches_total", "Batches acked and deleted from the outbox.", u.Acked)
	c("outpost_uplink_dropped_batches_total", "In-flight batches not resent because the outbox evicted them.", u.Dropped)
	c("outpost_uplink_sent_bytes_total", "Batch payload bytes published, resends included.", u.BytesSent)
	c("outpost_uplink_backlog_batches_total", "Telemetry batches first sent from the backlog (stored before the connection).", u.Backlog)
	c("outpost_uplink_backlog_sent_bytes_total", "Bytes of backlog batches published, resends included.", u.BacklogBytes)
	c("outpost_uplink_bad_acks_total", "Acks ignored: undecodable, or naming more seqs than the window.", u.BadAcks)
	c("outpost_uplink_forged_acks_total", "Signed acks ignored because their MAC did not verify.", u.ForgedAcks)
	c("outpost_uplink_unsigned_acks_total", "Unsigned acks ignored under uplink.auth required.", u.UnsignedAcks)
	w.Family("outpost_uplink_ack_duration_seconds", metrics.Histogram, "Time from a batch's last send to the ack that deleted it, in seconds.")
	w.Histogram("outpost_uplink_ack_duration_seconds", g.met.ack)
}

func (g *Gateway) writeCommands(w *metrics.Writer) {
	cs := g.CommandStats()
	c := func(name, help string, v int64) { w.Single(name, metrics.Counter, help, float64(v)) }
	c("outpost_commands_received_total", "Command requests received (uplink.commands).", cs.Received)
	c("outpost_commands_run_total", "Commands run.", cs.Runs)
	c("outpost_commands_refused_total", "Command requests answered without running: invalid, unknown, expired, busy, or not signed with the gateway's key.", cs.Refused)
	c("outpost_commands_unauthenticated_total", "Command requests refused because they carried no MAC, or none that verifies with the gateway's key.", cs.Unauthenticated)
	c("outpost_commands_repeats_total", "Command requests whose id was seen before: answered from the cache, not run again.", cs.Repeats)
}

// healthzWedge is how long past its step's allowance a loop may be busy
// before /healthz calls it wedged (the watchdog uses WatchdogSec).
const healthzWedge = time.Minute

// Healthz says whether the pipeline is healthy, and if not, why, in a
// short line, as /healthz answers: the gateway is stopping (or not
// started), a loop of the pipeline is wedged (Health), the uplink is not
// connected, or sensors are failing (every read of their last polls
// failed). Slow, stuck or bad sensors still deliver and do not count.
func (g *Gateway) Healthz() (bool, string) {
	select {
	case <-g.closing:
		return false, "stopping: the outbox is closing"
	default:
	}
	if !g.started.Load() {
		return false, "starting"
	}
	var why []string
	if wedged := g.Health().Wedged(healthzWedge); len(wedged) > 0 {
		parts := make([]string, len(wedged))
		for i, w := range wedged {
			parts[i] = w.Part
		}
		why = append(why, "wedged: "+strings.Join(parts, ", "))
	}
	if !g.uplink.Stats().Connected {
		why = append(why, "uplink not connected to the broker")
	}
	var failing []string
	for _, p := range g.pollers {
		if st := p.Status(); slices.Contains(st.Active, sensors.HealthFailing) {
			failing = append(failing, st.Sensor)
		}
	}
	if n := len(failing); n > 0 {
		const show = 8
		if n > show {
			failing = append(failing[:show], "…")
		}
		why = append(why, "sensors failing: "+strings.Join(failing, ", "))
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// maxScrapes bounds the /metrics answers made at once; more get 503.
const maxScrapes = 4

// MetricsHandler serves GET /metrics (the Prometheus text format; at most
// maxScrapes at once, 503 beyond) and GET /healthz: 200 {"status":"ok"},
// or 503 {"status":"unavailable", "reason":…} as Health says.
func (g *Gateway) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(rw http.ResponseWriter, _ *http.Request) {
		select {
		case g.met.scrapes <- struct{}{}:
			defer func() { <-g.met.scrapes }()
		default:
			rw.Header().Set("Retry-After", "1")
			http.Error(rw, "too many scrapes at once", http.StatusServiceUnavailable)
			return
		}
		var w metrics.Writer
		g.WriteMetrics(&w)
		rw.Header().Set("Content-Type", metrics.ContentType)
		if _, err := rw.Write(w.Bytes()); err != nil {
			g.log.Debug().Err(err).Msg("metrics: writing the answer failed")
		}
	})
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		ok, reason := g.Healthz()
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("Cache-Control", "no-store")
		body := map[string]string{"status": "ok"}
		if !ok {
			rw.WriteHeader(http.StatusServiceUnavailable)
			body = map[string]string{"status": "unavailable", "reason": reason}
		}
		if err := json.NewEncoder(rw).Encode(body); err != nil {
			g.log.Debug().Err(err).Msg("healthz: writing the answer failed")
		}
	})
	return mux
}
