package gateway

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/liveness"
	"github.com/outposthq/outpost/rules"
)

// publisher is what the dashboard needs from the uplink (*uplink.Uplink):
// a publish that does not wait for the broker, and reports false (the
// message dropped) while disconnected.
type publisher interface {
	Publish(topic string, qos byte, retained bool, payload []byte) bool
}

// dashboard keeps the retained topics dashboards subscribe to (design §4):
//
//	{base}/live/{sensor}/{metric}  QoS 0, each series' latest reading, at
//	                               most one message per series per interval
//	{base}/alert/{rule}            QoS 1, each rule's current alert state
//
// Readings come from its own bus queue (Drop policy: the live view never
// slows sensors or the outbox) and are handled on its goroutine only. Alert
// transitions come from the ruler's goroutine through observe, which only
// updates state under mu and wakes the goroutine to publish. Publishing
// never blocks: a message the uplink cannot send now is dropped, and
// republish, called on every (re)connect, sends every current document.
type dashboard struct {
	pub      publisher
	base     string // "{prefix}/{gateway}/"
	gateway  string
	interval time.Duration
	now      func() time.Time
	log      zerolog.Logger

	in     <-chan []outpost.Reading // nil when live topics are off
	alerts bool                     // publish alert documents
	wake   chan struct{}            // 1-buffered: alert state changed
	repub  chan struct{}            // 1-buffered: the uplink (re)connected
	stop   chan struct{}
	once   sync.Once

	// Owned by run.
	series map[outpost.SeriesKey]*liveSeries
	held   []*liveSeries // series whose latest reading waits for its interval to end
	pass   uint64        // onReadings calls, to take one reading per series from each
	taken  []*liveSeries // onReadings' series, kept for the next call

	mu    sync.Mutex // guards rules and dirty, written by observe
	rules map[string]*ruleState
	dirty []*ruleState // changed since last published, in order of change

	live, docs, unsent atomic.Int64

	beat liveness.Beat // busy while run handles readings or publishes
}

// dashboardOptions configure a dashboard; zero fields are defaults.
type dashboardOptions struct {
	Base     string                   // topic base, "{prefix}/{gateway}/"
	Gateway  string                   // gateway id, for the alert documents
	Interval time.Duration            // live rate limit per series; default 1s
	Live     <-chan []outpost.Reading // readings; nil turns live topics off
	Alerts   bool                     // publish alert documents
	Rules    []ruleSeed               // rules known at start, published as inactive
	Now      func() time.Time         // default time.Now
	Logger   zerolog.Logger
}

// ruleSeed is a rule the dashboard publishes before it ever alerted, so a
// retained document left from an earlier run is replaced by the current
// (inactive) state.
type ruleSeed struct{ Name, Severity string }

func newDashboard(pub publisher, o dashboardOptions) *dashboard {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	d := &dashboard{
		pub:      pub,
		base:     o.Base,
		gateway:  o.Gateway,
		interval: o.Interval,
		now:      o.Now,
		log:      o.Logger.With().Str("component", "dashboard").Logger(),
		in:       o.Live,
		alerts:   o.Alerts,
		wake:     make(chan struct{}, 1),
		repub:    make(chan struct{}, 1),
		stop:     make(chan struct{}),
		series:   map[outpost.SeriesKey]*liveSeries{},
		rules:    map[string]*ruleState{},
	}
	if d.alerts {
		for _, s := range o.Rules {
			if validLevel(s.Name) {
				d.rules[s.Name] = d.newRule(s.Name, s.Severity)
			}
		}
	}
	return d
}

// newGatewayDashboard builds g's dashboard from its config, subscribing
// the live view to the bus; nil when no dashboard topic is on. Alert
// documents need rules: set nil means none.
func newGatewayDashboard(g *Gateway, set *rules.Set) *dashboard {
	dc := &g.cfg.Dashboard
	// Alert topics show the rules' alerts and the sensors' health events,
	// so they are on even without rules.
	live, alerts := dc.LiveOn(), dc.AlertsOn()
	if !live && !alerts {
		return nil
	}
	o := dashboardOptions{
		Base:     g.uplink.Topic(""), // the uplink's prefix and defaults
		Gateway:  g.cfg.Gateway.ID,
		Interval: dc.LiveInterval,
		Alerts:   alerts,
		Now:      g.now,
		Logger:   g.log,
	}
	if live {
		o.Live = g.bus.Subscribe("live", g.cfg.Bus.Queue, Drop)
	}
	if alerts {
		o.Rules = append(o.Rules, ruleSeed{Name: HealthRule, Severity: HealthSeverity})
		if set != nil {
			for _, r := range set.Rules {
				if r != nil {
					o.Rules = append(o.Rules, ruleSeed{Name: r.Name, Severity: r.Severity})
				}
			}
		}
	}
	return newDashboard(g.uplink, o)
}

// onConnect is the uplink's OnConnect hook: after each (re)connect the
// dashboard republishes every retained document, since state may have
// changed while offline. It never blocks.
func (g *Gateway) onConnect() {
	if g.dash != nil {
		g.dash.republish()
	}
}

// run is the dashboard's goroutine; its owner starts it and waits for it.
// It returns once stopRun is called, after publishing what is still held.
func (d *dashboard) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var armed bool
	var armedFor time.Time
	in := d.in
	defer d.beat.Idle()
	for {
		d.beat.Idle()
		select {
		case rs, ok := <-in:
			d.beat.Busy()
			if !ok {
				in = nil // the bus closed; alerts may still come until close
				continue
			}
			d.onReadings(rs)
		case <-timer.C:
			d.beat.Busy()
			armed = false
			d.flushHeld(false)
		case <-d.wake:
			d.beat.Busy()
			d.publishAlerts(false)
		case <-d.repub:
			d.beat.Busy()
			d.republishNow()
		case <-d.stop:
			d.beat.Busy()
			d.flushHeld(true)
			d.publishAlerts(false)
			return
		}
		if len(d.held) == 0 {
			continue
		}
		if next := d.nextDue(); !armed || next.Before(armedFor) {
			// The wait is clamped so that an injected clock that does not
			// move cannot make the loop spin or sleep for long.
			timer.Reset(min(max(next.Sub(d.now()), 0), d.interval))
			armed, armedFor = true, next
		}
	}
}

// stopRun makes run return. Call it once the ruler stopped (no more
// observe). Idempotent.
func (d *dashboard) stopRun() { d.once.Do(func() { close(d.stop) }) }

// republish asks the goroutine to send every current document: call it
// after each (re)connect, since state may have changed while offline. It
// never blocks (paho calls it on its own goroutine).
func (d *dashboard) republish() { poke(d.repub) }

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default: // already pending
	}
}

// --- live topics ---

// liveSeries is one series' live topic.
type liveSeries struct {
	topic string
	last  outpost.Reading // the latest reading
	sent  time.Time       // when the last message went out; zero: never
	held  bool            // last was not sent yet and waits for sent+interval
	pass  uint64          // the onReadings call that last took a reading
}

// onReadings takes readings off the bus: a quiet series' newest reading
// in rs goes at once; within the interval the newest only replaces what
// is held. Only the newest reading of each series in rs counts, so rs is
// read from its end, and the older readings of a series cost a comparison
// each, not a lookup: a poll delivers each series' readings together.
func (d *dashboard) onReadings(rs []outpost.Reading) {
	now := d.now()
	d.pass++
	taken := d.taken[:0]
	var prev *outpost.Reading
	for i := len(rs) - 1; i >= 0; i-- {
		r := &rs[i]
		if prev != nil && r.Sensor == prev.Sensor && r.Metric == prev.Metric {
			continue
		}
		prev = r
		s := d.series[r.Key()]
		if s == nil {
			if !validLevel(r.Sensor) || !validLevel(r.Metric) {
				continue // not a topic level; config validation keeps these out
			}
			s = &liveSeries{topic: d.base + "live/" + r.Sensor + "/" + r.Metric}
			d.series[r.Key()] = s
		}
		if s.pass == d.pass {
			continue // its newest reading in rs was taken
		}
		s.pass = d.pass
		s.last = *r
		taken = append(taken, s)
	}
	// In the order of the series' newest readings in rs.
	for i := len(taken) - 1; i >= 0; i-- {
		s := taken[i]
		switch {
		case s.held:
		case s.sent.IsZero() || now.Sub(s.sent) >= d.interval:
			d.sendLive(s, now)
		default:
			s.held = true
			d.held = append(d.held, s)
		}
	}
	clear(taken)
	d.taken = taken[:0]
}

// flushHeld sends the held readings whose interval has ended, or all of
// them.
func (d *dashboard) flushHeld(all bool) {
	now := d.now()
	kept := d.held[:0]
	for _, s := range d.held {
		if all || now.Sub(s.sent) >= d.interval {
			d.sendLive(s, now)
			continue
		}
		kept = append(kept, s)
	}
	clear(d.held[len(kept):])
	d.held = kept
}

// nextDue is when the first held reading may go.
func (d *dashboard) nextDue() time.Time {
	next := d.held[0].sent
	for _, s := range d.held[1:] {
		if s.sent.Before(next) {
			next = s.sent
		}
	}
	return next.Add(d.interval)
}

func (d *dashboard) sendLive(s *liveSeries, now time.Time) {
	s.sent, s.held = now, false
	p := d.marshal(liveDoc{
		TS:      rfc3339(s.last.TS),
		Value:   number(s.last.Value),
		Unit:    s.last.Unit,
		Quality: s.last.Quality.String(),
	})
	if p == nil {
		return
	}
	if d.pub.Publish(s.topic, 0, true, p) {
		d.live.Add(1)
	} else {
		d.unsent.Add(1)
	}
}

// liveDoc is a live topic's payload.
type liveDoc struct {
	TS      string `json:"ts"`
	Value   number `json:"value"`
	Unit    string `json:"unit"`
	Quality string `json:"quality"`
}

// --- alert topics ---

// ruleState is what the dashboard knows of one rule: the latest transition
// of each of its instances still worth showing.
type ruleState struct {
	name, severity string
	topic          string
	inst           map[string]outpost.Alert // by fingerprint
	last           *outpost.Alert           // the latest transition of any instance
	dirty          bool
}

func (d *dashboard) newRule(name, severity string) *ruleState {
	return &ruleState{name: name, severity: severity, topic: d.base + "alert/" + name, inst: map[string]outpost.Alert{}}
}

// observe records alert transitions; the ruler calls it on its goroutine.
// It never blocks on the network: the dashboard's goroutine publishes.
// The alerts' label maps are kept and must not be modified afterwards.
func (d *dashboard) observe(as []outpost.Alert) {
	if !d.alerts || len(as) == 0 {
		return
	}
	d.mu.Lock()
	for i := range as {
		a := as[i]
		r := d.rules[a.Rule]
		if r == nil {
			if !validLevel(a.Rule) {
				continue
			}
			r = d.newRule(a.Rule, a.Severity)
			d.rules[a.Rule] = r
		}
		r.inst[a.Fingerprint] = a
		r.last = &a
		if a.Severity != "" {
			r.severity = a.Severity
		}
		if !r.dirty {
			r.dirty = true
			d.dirty = append(d.dirty, r)
		}
	}
	d.mu.Unlock()
	poke(d.wake)
}

// sentDoc is one alert document handed to the uplink, and the ended
// instances it showed, to drop once it was sent.
type sentDoc struct {
	r       *ruleState
	topic   string
	payload []byte
	ended   map[string]uint64 // fingerprint → seq of the ended transition shown
}

// publishAlerts publishes the documents of the rules that changed, or of
// every rule. An instance that is resolved or inactive is shown once, then
// dropped from its rule's list; if the uplink could not take the document,
// it stays until a later one goes out.
func (d *dashboard) publishAlerts(all bool) {
	if !d.alerts {
		return
	}
	now := d.now()
	d.mu.Lock()
	var rs []*ruleState
	if all {
		for _, r := range d.rules {
			rs = append(rs, r)
		}
		slices.SortFunc(rs, func(a, b *ruleState) int { return strings.Compare(a.name, b.name) })
	} else {
		rs = d.dirty
	}
	docs := make([]sentDoc, 0, len(rs))
	for _, r := range rs {
		r.dirty = false
		doc, ended := r.document(d.gateway, now)
		if p := d.marshal(doc); p != nil {
			docs = append(docs, sentDoc{r: r, topic: r.topic, payload: p, ended: ended})
		}
	}
	clear(d.dirty)
	d.dirty = d.dirty[:0]
	d.mu.Unlock()

	var sent []sentDoc
	for _, s := range docs {
		if !d.pub.Publish(s.topic, 1, true, s.payload) {
			d.unsent.Add(1)
			continue
		}
		d.docs.Add(1)
		if len(s.ended) > 0 {
			sent = append(sent, s)
		}
	}
	if len(sent) == 0 {
		return
	}
	d.mu.Lock()
	for _, s := range sent {
		for fp, seq := range s.ended {
			// Only if it did not change again meanwhile.
			if a, ok := s.r.inst[fp]; ok && a.Seq == seq {
				delete(s.r.inst, fp)
			}
		}
	}
	d.mu.Unlock()
}

// republishNow sends every alert document and every series' latest reading.
func (d *dashboard) republishNow() {
	d.publishAlerts(true)
	now := d.now()
	keys := make([]outpost.SeriesKey, 0, len(d.series))
	for k := range d.series {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b outpost.SeriesKey) int {
		return cmp.Or(strings.Compare(a.Sensor, b.Sensor), strings.Compare(a.Metric, b.Metric))
	})
	for _, k := range keys {
		d.sendLive(d.series[k], now)
	}
	clear(d.held)
	d.held = d.held[:0]
}

// alertDoc is an alert topic's payload: the rule's current state. The
// top-level fields are those of its worst instance, flat, so that tools
// that pick one JSON field per panel (Grafana, Node-RED) need no paths
// into the list.
type alertDoc struct {
	Rule     string `json:"rule"`
	Gateway  string `json:"gateway"`
	State    string `json:"state"`
	Severity string `json:"severity"`
	Value    number `json:"value"`   // null before any alert
	Active   int    `json:"active"`  // instances pending, firing or nodata
	Message  string `json:"message"` // "" before any alert
	// Annotations are the worst instance's rendered annotations; {} before
	// any alert or when the rule has none.
	Annotations map[string]string `json:"annotations"`
	Since       string            `json:"since,omitempty"`
	Changed     string            `json:"changed,omitempty"`
	Instances   []instanceDoc     `json:"instances"`
	TS          string            `json:"ts"` // when the document was made
}

type instanceDoc struct {
	Fingerprint string            `json:"fingerprint"`
	State       string            `json:"state"`
	Severity    string            `json:"severity"`
	Value       number            `json:"value"`
	Labels      map[string]string `json:"labels"`
	Message     string            `json:"message"`
	Annotations map[string]string `json:"annotations"` // {} when none
	Since       string            `json:"since"`
	Changed     string            `json:"changed"`
}

// document builds r's document, and the ended instances it shows. The
// caller holds the dashboard's mu.
func (r *ruleState) document(gateway string, now time.Time) (alertDoc, map[string]uint64) {
	doc := alertDoc{
		Rule: r.name, Gateway: gateway, State: outpost.StateInactive.String(), Severity: r.severity,
		Value: number(math.NaN()), Annotations: map[string]string{}, Instances: make([]instanceDoc, 0, len(r.inst)),
		TS: now.UTC().Format(time.RFC3339Nano),
	}
	fps := make([]string, 0, len(r.inst))
	for fp := range r.inst {
		fps = append(fps, fp)
	}
	slices.Sort(fps)
	var worst *outpost.Alert
	var ended map[string]uint64
	for _, fp := range fps {
		a := r.inst[fp]
		labels := orEmpty(a.Labels)
		doc.Instances = append(doc.Instances, instanceDoc{
			Fingerprint: a.Fingerprint, State: a.State.String(), Severity: a.Severity,
			Value: number(a.Value), Labels: labels, Message: a.Message, Annotations: orEmpty(a.Annotations),
			Since: rfc3339(a.StartedAt), Changed: rfc3339(a.ChangedAt),
		})
		if !active(a.State) {
			if ended == nil {
				ended = map[string]uint64{}
			}
			ended[fp] = a.Seq
			continue
		}
		doc.Active++
		if worst == nil || worse(&a, worst) {
			worst = &a
		}
	}
	if worst == nil {
		worst = r.last // nothing active: show how the latest instance ended
	}
	if worst != nil {
		doc.State, doc.Value, doc.Message = worst.State.String(), number(worst.Value), worst.Message
		doc.Annotations = orEmpty(worst.Annotations)
		doc.Since, doc.Changed = rfc3339(worst.StartedAt), rfc3339(worst.ChangedAt)
		if worst.Severity != "" {
			doc.Severity = worst.Severity
		}
	}
	return doc, ended
}

// active reports whether an instance in state s still needs attention.
func active(s outpost.AlertState) bool {
	return s == outpost.StateFiring || s == outpost.StatePending || s == outpost.StateNoData
}

// stateRank orders states by how much they need attention.
func stateRank(s outpost.AlertState) int {
	switch s {
	case outpost.StateFiring:
		return 3
	case outpost.StatePending:
		return 2
	case outpost.StateNoData:
		return 1
	}
	return 0
}

// severityRank orders the usual severity names; others rank lowest.
func severityRank(s string) int {
	switch strings.ToLower(s) {
	case "critical":
		return 3
	case "error", "major":
		return 2
	case "warning", "minor":
		return 1
	}
	return 0
}

// worse reports whether a needs attention before b: by state, then
// severity, then the more recent change.
func worse(a, b *outpost.Alert) bool {
	if ra, rb := stateRank(a.State), stateRank(b.State); ra != rb {
		return ra > rb
	}
	if ra, rb := severityRank(a.Severity), severityRank(b.Severity); ra != rb {
		return ra > rb
	}
	return a.ChangedAt > b.ChangedAt
}

// --- helpers ---

// orEmpty is m, or an empty map for nil, which JSON would show as null.
func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// number is a float64 that encodes as JSON null when it is NaN or ±Inf,
// which JSON cannot carry.
type number float64

func (n number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(f)
}

func rfc3339(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// marshal encodes the dashboard's own documents. They hold only strings
// and numbers, so it cannot fail; if it did, the message is skipped (nil).
func (d *dashboard) marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		d.log.Error().Err(err).Msg("dashboard document not encoded; skipped")
		return nil
	}
	return b
}

// validLevel reports whether s can be one MQTT topic level of ours.
func validLevel(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/+#\x00")
}

// DashboardStats are the dashboard topics' counters.
type DashboardStats struct {
	Live        int64 // live messages handed to the uplink
	LiveDropped int64 // readings the live view's bus queue had no room for
	Alerts      int64 // alert documents handed to the uplink
	Unsent      int64 // messages the uplink refused (not connected)
}

func (d *dashboard) stats() DashboardStats {
	return DashboardStats{Live: d.live.Load(), Alerts: d.docs.Load(), Unsent: d.unsent.Load()}
}
