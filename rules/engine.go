package rules

import (
	"math"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/outposthq/outpost"
)

// Options configure an Engine. A nil *Options means the zero value.
type Options struct {
	// Gateway is the gateway id. When set, alerts get a "gateway" label
	// and message templates see it as .Gateway. Default "".
	Gateway string
	// SensorLabels maps a sensor id to its labels from the gateway
	// config, for select.labels and group_by. The engine reads it when
	// it first sees a series; the caller must not change it afterwards.
	// Default: no sensor has labels.
	SensorLabels map[string]map[string]string
}

// Engine evaluates a Set over readings and emits alert transitions (see
// the package doc for the states).
//
// Each rule has one instance per group (by default per sensor; the
// fingerprint is the rule name and the group values joined by "/", e.g.
// "hot/dev1-env"). A reading reaches only the instances of the rules that
// select its series: the engine resolves a series to its instances once,
// the first time it sees it (visiting only the rules indexed under its
// metric and its sensor or labels, see ruleIndex), and then does one map
// lookup per reading.
//
// The engine's clock is the readings' timestamps (and Tick's now); it
// reads no wall clock, except to sample evaluation time for Stats. Readings
// of bad quality, or whose value is NaN, are ignored, as is a reading
// older than its instance's last change.
//
// An Engine is not safe for concurrent use: one goroutine (the bus
// receiver) owns it, and calls Eval, Tick, State, Restore and Stats.
type Engine struct {
	gateway      string
	sensorLabels map[string]map[string]string
	rules        []*ruleRT
	byName       map[string]*ruleRT
	index        ruleIndex // finds the rules that select a new series
	matched      []*ruleRT // addSeries' reusable room
	candidates   []int32   // addSeries' reusable room
	series       map[outpost.SeriesKey][]binding
	live         []*instance // not inactive, in the order they left inactive
	noData       []*ruleRT   // rules with no_data
	vm           vm.VM
	ctx          evalCtx // reused: a local would escape through condition.test
	seq          uint64
	silenced     func(outpost.Alert) // OnSilenced's hook, or nil
}

// ruleRT is a rule's runtime in one engine.
type ruleRT struct {
	rule  *Rule
	insts map[string]*instance // by fingerprint
	order []*instance          // in creation order
	stats RuleStats
}

// binding is an instance a series feeds, and the index of the series'
// metric in the rule's metrics.
type binding struct {
	in     *instance
	metric int
}

// noTime marks a level timer that is not running.
const noTime = math.MinInt64

// instance is one rule applied to one group.
type instance struct {
	rt          *ruleRT
	fingerprint string
	group       map[string]string
	labels      map[string]string // the alert's labels, copied into each alert
	state       outpost.AlertState
	level       int     // the pending or firing level
	since       []int64 // per level: since when its condition holds, or noTime
	startedAt   int64   // went pending (or firing)
	changedAt   int64   // the last transition
	keepUntil   int64   // firing after the reset until then, or noTime
	lastSeen    int64   // newest reading, or noTime
	sentAt      int64   // last alert emitted
	stale       bool    // no_data applied; the next reading ends it
	live        bool    // in Engine.live
	sensor      string  // of the latest reading
	metric      string
	value       float64
	latestTS    []int64
	windows     []window
	env         exprEnv
	// Backing of since, latestTS and env.M when they are small (most
	// rules): inside the instance, a reading touches fewer cache lines
	// than with separate allocations, which counts with many instances.
	sinceBuf [2]int64
	tsBuf    [2]int64
	mBuf     [2]float64
	// fired holds the levels that fired in this episode: a step down
	// may return to one of them without waiting for its `for` again.
	fired levelSet
}

// NewEngine returns an engine for set (nil: no rules). Rules that did not
// come from Parse or LoadFile are ignored.
func NewEngine(set *Set, opts *Options) *Engine {
	if opts == nil {
		opts = &Options{}
	}
	e := &Engine{
		gateway:      opts.Gateway,
		sensorLabels: opts.SensorLabels,
		byName:       map[string]*ruleRT{},
		series:       map[outpost.SeriesKey][]binding{},
	}
	if set == nil {
		return e
	}
	for _, r := range set.Rules {
		if r == nil || len(r.Levels) == 0 || r.Levels[0].cond == nil {
			continue // not compiled by Parse: nothing to evaluate
		}
		rt := &ruleRT{rule: r, insts: map[string]*instance{}, stats: RuleStats{Rule: r.Name}}
		e.rules = append(e.rules, rt)
		e.byName[r.Name] = rt
		if r.NoData != nil {
			e.noData = append(e.noData, rt)
		}
	}
	e.index = newRuleIndex(e.rules, e.sensorLabels)
	return e
}

// Eval runs every rule that selects a reading over rs and appends the
// alert transitions to dst, returning it. Readings must be in time order
// per series. For thresholds, and conditions that run without expr's VM
// (see lowered), the path without a transition does not allocate, except
// the first time a series is seen (other expressions box their numbers).
func (e *Engine) Eval(rs []outpost.Reading, dst []outpost.Alert) []outpost.Alert {
	// A poll delivers each series' readings together: a reading of the
	// previous reading's series reuses its bindings, without a lookup.
	var prev *outpost.Reading
	var bs []binding
	for i := range rs {
		r := &rs[i]
		if r.Quality == outpost.QualityBad || math.IsNaN(r.Value) {
			continue
		}
		if prev == nil || r.Sensor != prev.Sensor || r.Metric != prev.Metric {
			prev = r
			var seen bool
			if bs, seen = e.series[outpost.SeriesKey{Sensor: r.Sensor, Metric: r.Metric}]; !seen && e.index.selects(r.Metric) {
				bs = e.addSeries(r.Sensor, r.Metric)
			}
			// Unseen and not selected: no rule wants this metric, bs is
			// nil and nothing is remembered.
		}
		for _, b := range bs {
			dst = e.step(b.in, b.metric, r, dst)
		}
	}
	return dst
}

// Tick advances time to now (unix ns) with no readings and appends the
// transitions that time alone causes: `for` timers that ran out, the end
// of keep_firing_for, repeats, and no_data. Instances are visited in the
// order they left inactive, then no_data rules in file order. An alert
// emitted by Tick reports the last value its instance saw. NextEvent says
// when Tick next has something to do.
func (e *Engine) Tick(now int64, dst []outpost.Alert) []outpost.Alert {
	for _, in := range e.live {
		if now >= in.changedAt {
			dst = e.timers(in, now, dst)
		}
	}
	e.dropInactive()
	ended := false
	for _, rt := range e.noData {
		nd := rt.rule.NoData
		for _, in := range rt.order {
			if in.stale || in.lastSeen == noTime || now-in.lastSeen < int64(nd.After) || now < in.changedAt {
				continue
			}
			dst = e.goStale(in, nd, now, dst)
			ended = ended || in.state == outpost.StateInactive
		}
	}
	if ended {
		// After any Tick the live list holds no inactive instance, so a
		// Tick with nothing due changes nothing: ticking only when
		// NextEvent says gives the alerts, in the same order, of ticking
		// every second.
		e.dropInactive()
	}
	return dst
}

// dropInactive takes the instances that went inactive off the live list.
func (e *Engine) dropInactive() {
	kept := e.live[:0]
	for _, in := range e.live {
		if in.state == outpost.StateInactive {
			in.live = false
			continue
		}
		kept = append(kept, in)
	}
	clear(e.live[len(kept):])
	e.live = kept
}

// OnSilenced has Eval and Tick call fn with each resolved alert that a
// rule's send_resolved: false keeps out of their result (nil: none, the
// default), so that a consumer that shows the current state, as the
// gateway's dashboard does, still sees the episode end. Such an alert is
// not sent: its Seq is that of the last alert emitted before it, so it
// goes after that one. fn runs on the caller's goroutine, before Eval or
// Tick returns, and keeps the alert.
func (e *Engine) OnSilenced(fn func(outpost.Alert)) { e.silenced = fn }

// step moves one instance on one reading of its metric mi.
func (e *Engine) step(in *instance, mi int, r *outpost.Reading, dst []outpost.Alert) []outpost.Alert {
	if r.TS < in.changedAt {
		return dst // older than what the instance already decided
	}
	in.value, in.sensor, in.metric = r.Value, r.Sensor, r.Metric
	in.env.M[mi], in.latestTS[mi] = r.Value, r.TS
	in.lastSeen = max(in.lastSeen, r.TS)
	for i := range in.windows {
		if w := &in.windows[i]; w.spec.metric == mi {
			w.push(r.TS, r.Value)
		}
	}
	in.stale = false
	// A nodata instance evaluates like an inactive one; if it does not go
	// pending or firing, the reading ends the nodata with a resolved.
	wasNoData := in.state == outpost.StateNoData
	dst = e.evaluate(in, r.TS, dst)
	if wasNoData && in.state == outpost.StateNoData {
		in.state, in.changedAt = outpost.StateInactive, r.TS
		if !in.rt.rule.SendResolved {
			e.silence(in, outpost.StateNoData, r.TS)
			return dst
		}
		dst = e.emit(dst, in, outpost.StateNoData, outpost.StateResolved, r.TS)
	}
	return dst
}

// evaluate runs the instance's conditions at now and moves it.
func (e *Engine) evaluate(in *instance, now int64, dst []outpost.Alert) []outpost.Alert {
	rt := in.rt
	r := rt.rule
	rt.stats.Evaluations++
	var t0 time.Time
	sampled := rt.stats.Evaluations%timeSample == 1
	if sampled {
		t0 = time.Now()
	}
	in.env.Value = in.value
	if len(r.calls) > 0 {
		for i := range in.windows {
			in.windows[i].evict(now)
		}
		for i, c := range r.calls {
			if c.fn == fnAge {
				if ts := in.latestTS[c.metric]; ts == noTime {
					in.env.W[i] = math.Inf(1)
				} else {
					in.env.W[i] = float64(now-ts) / 1e9
				}
				continue
			}
			in.env.W[i] = in.windows[c.win].eval(c.fn)
		}
	}
	x := &e.ctx
	x.env, x.vm = &in.env, &e.vm
	firstOn, firstMet := -1, -1
	for i := range r.Levels {
		on, err := r.Levels[i].cond.test(x)
		if err != nil {
			rt.stats.Errors++
		}
		if !on {
			in.since[i] = noTime
			continue
		}
		if in.since[i] == noTime {
			in.since[i] = now
		}
		if firstOn < 0 {
			firstOn = i
		}
		if firstMet < 0 && now-in.since[i] >= int64(r.Levels[i].For) {
			firstMet = i
		}
	}
	switch from := in.state; from {
	case outpost.StateInactive, outpost.StateNoData:
		dst = e.open(in, firstOn, firstMet, now, dst)
	case outpost.StatePending:
		switch {
		case firstMet >= 0:
			dst = e.fire(in, firstMet, now, dst)
		case firstOn < 0:
			in.state, in.changedAt = outpost.StateInactive, now
			dst = e.emit(dst, in, outpost.StatePending, outpost.StateInactive, now)
		default:
			in.level = firstOn
		}
	case outpost.StateFiring:
		if in.level < 0 { // fired by no_data: data is back
			if firstMet >= 0 {
				dst = e.fire(in, firstMet, now, dst)
			} else {
				dst = e.resolve(in, now, dst)
			}
			break
		}
		if firstMet >= 0 && firstMet < in.level {
			dst = e.fire(in, firstMet, now, dst)
			break
		}
		dst = e.checkReset(in, x, now, dst)
	}
	if sampled {
		rt.stats.Time += time.Since(t0) * timeSample
	}
	return dst
}

// timeSample: one evaluation in this many is timed, and counts for all
// of them, so that the hot path does not read the clock per reading.
const timeSample = 64

// open starts an episode of an inactive or nodata instance at the most
// severe level that is met (fires) or else on (goes pending), if any.
func (e *Engine) open(in *instance, firstOn, firstMet int, now int64, dst []outpost.Alert) []outpost.Alert {
	switch {
	case firstMet >= 0:
		return e.fire(in, firstMet, now, dst)
	case firstOn >= 0:
		from := in.state
		in.state, in.level, in.startedAt, in.changedAt = outpost.StatePending, firstOn, now, now
		in.fired.clear()
		e.enliven(in)
		return e.emit(dst, in, from, outpost.StatePending, now)
	}
	return dst
}

// checkReset ends or lowers a firing level whose reset is true. It steps
// down to the most severe lower level that is met (its condition has held
// for its `for`), or that fired in this episode and has not reset; with
// none, it resolves, after keep_firing_for. keep_firing_for delays only
// the resolve: a step down to a level that holds happens at once.
func (e *Engine) checkReset(in *instance, x *evalCtx, now int64, dst []outpost.Alert) []outpost.Alert {
	r := in.rt.rule
	if !e.isReset(in, x, in.level) {
		in.keepUntil = noTime
		return dst
	}
	for j := in.level + 1; j < len(r.Levels); j++ {
		if in.met(j, now) || in.fired.has(j) && !e.isReset(in, x, j) {
			return e.fire(in, j, now, dst)
		}
	}
	if r.KeepFiringFor > 0 {
		if in.keepUntil == noTime {
			in.keepUntil = now + int64(r.KeepFiringFor)
		}
		if now < in.keepUntil {
			return dst
		}
	}
	return e.resolve(in, now, dst)
}

// isReset reports whether level i's reset holds.
func (e *Engine) isReset(in *instance, x *evalCtx, i int) bool {
	l := &in.rt.rule.Levels[i]
	if l.reset == nil {
		return in.since[i] == noTime
	}
	ok, err := l.reset.test(x)
	if err != nil {
		in.rt.stats.Errors++
		return false
	}
	return ok
}

// fire makes in fire at level (-1: no_data's severity), from any state.
func (e *Engine) fire(in *instance, level int, now int64, dst []outpost.Alert) []outpost.Alert {
	from := in.state
	if from == outpost.StateInactive || from == outpost.StateNoData {
		in.startedAt = now
		in.fired.clear()
	}
	in.state, in.level, in.changedAt, in.keepUntil = outpost.StateFiring, level, now, noTime
	in.fired.add(level)
	e.enliven(in)
	return e.emit(dst, in, from, outpost.StateFiring, now)
}

// resolve ends the episode of a firing instance. The resolved alert has
// the severity the instance fired at (no_data's, when no_data fired it).
// A level whose condition still holds then opens a new episode at once,
// its `for` counted from now: the reading that ended a no_data firing,
// or a lower level that had not held for its `for` at a step down, goes
// pending now rather than at the next reading.
func (e *Engine) resolve(in *instance, now int64, dst []outpost.Alert) []outpost.Alert {
	from := in.state
	in.state, in.changedAt, in.keepUntil = outpost.StateInactive, now, noTime
	in.fired.clear()
	if in.rt.rule.SendResolved {
		dst = e.emit(dst, in, from, outpost.StateResolved, now)
	} else {
		e.silence(in, from, now)
	}
	firstOn, firstMet := -1, -1
	for i, s := range in.since {
		if s == noTime {
			continue
		}
		in.since[i] = now // no timer runs across episodes
		if firstOn < 0 {
			firstOn = i
		}
		if firstMet < 0 && in.rt.rule.Levels[i].For <= 0 {
			firstMet = i
		}
	}
	return e.open(in, firstOn, firstMet, now, dst)
}

// timers applies what time alone does to a live instance at now.
func (e *Engine) timers(in *instance, now int64, dst []outpost.Alert) []outpost.Alert {
	r := in.rt.rule
	met := -1
	for i := range r.Levels {
		if in.since[i] != noTime && now-in.since[i] >= int64(r.Levels[i].For) {
			met = i
			break
		}
	}
	switch in.state {
	case outpost.StatePending:
		if met >= 0 {
			return e.fire(in, met, now, dst)
		}
	case outpost.StateFiring:
		if met >= 0 && met < in.level {
			return e.fire(in, met, now, dst)
		}
		if in.keepUntil != noTime {
			// The level reset at the last reading and keep_firing_for
			// runs: a lower level whose `for` has run out takes over.
			for j := in.level + 1; j < len(r.Levels); j++ {
				if in.met(j, now) {
					return e.fire(in, j, now, dst)
				}
			}
			if now >= in.keepUntil {
				return e.resolve(in, now, dst)
			}
		}
		if r.Repeat > 0 && now-in.sentAt >= int64(r.Repeat) {
			// A repeat is sent now and says so; the instance's changedAt
			// stays that of its last transition, which a repeat is not:
			// readings between the two still count.
			return e.emit(dst, in, outpost.StateFiring, outpost.StateFiring, now)
		}
	}
	return dst
}

// goStale applies no_data to an instance at now.
func (e *Engine) goStale(in *instance, nd *NoData, now int64, dst []outpost.Alert) []outpost.Alert {
	in.stale = true
	for i := range in.since {
		in.since[i] = noTime
	}
	switch nd.State {
	case outpost.StateNoData:
		from := in.state
		if from == outpost.StateNoData {
			return dst
		}
		if from == outpost.StateInactive {
			in.startedAt = now // an episode of its own, not the last one's
		}
		// Level -1 is no_data's severity, also for the resolved that ends
		// the nodata.
		in.state, in.level, in.changedAt, in.keepUntil = outpost.StateNoData, -1, now, noTime
		in.fired.clear()
		e.enliven(in)
		return e.emit(dst, in, from, outpost.StateNoData, now)
	case outpost.StateFiring:
		if in.state == outpost.StateFiring && in.firingAtLeast(nd.Severity) {
			// It stays at its level, and now fires for the silence too:
			// until the next reading, which no keep_firing_for that was
			// running may end. That reading starts keep_firing_for again
			// if the level's reset holds.
			in.keepUntil = noTime
			return dst
		}
		return e.fire(in, -1, now, dst)
	default: // resolved
		switch in.state {
		case outpost.StateFiring:
			return e.resolve(in, now, dst)
		case outpost.StatePending:
			in.state, in.changedAt = outpost.StateInactive, now
			return e.emit(dst, in, outpost.StatePending, outpost.StateInactive, now)
		}
	}
	return dst
}

func (e *Engine) enliven(in *instance) {
	if !in.live {
		in.live = true
		e.live = append(e.live, in)
	}
}

// severity is the severity of the instance's current level.
func (in *instance) severity() string {
	r := in.rt.rule
	if in.level < 0 || in.level >= len(r.Levels) || in.state == outpost.StateNoData {
		if r.NoData != nil {
			return r.NoData.Severity
		}
		return r.Severity
	}
	return r.Levels[in.level].Severity
}

// levelFor is the `for` of the level an alert in state is at: no_data's
// after for a nodata alert, one that no_data fired, and the resolved that
// ends either.
func (in *instance) levelFor(state outpost.AlertState) time.Duration {
	r := in.rt.rule
	if state == outpost.StateNoData || in.level < 0 || in.level >= len(r.Levels) {
		if r.NoData != nil {
			return r.NoData.After
		}
		return 0
	}
	return r.Levels[in.level].For
}

// emit appends the alert for an instance's transition from one state to
// another at now, or for a repeat (from and state both firing), sent now.
func (e *Engine) emit(dst []outpost.Alert, in *instance, from, state outpost.AlertState, now int64) []outpost.Alert {
	in.rt.stats.Transitions++
	in.sentAt = now
	e.seq++
	return append(dst, e.alert(in, from, state, now, e.seq))
}

// silence hands the resolved alert that send_resolved: false keeps from
// the result to the OnSilenced hook, if any. It is not sent: it takes no
// sequence number of its own, but that of the alert emitted before it.
func (e *Engine) silence(in *instance, from outpost.AlertState, now int64) {
	if e.silenced != nil {
		e.silenced(e.alert(in, from, outpost.StateResolved, now, e.seq))
	}
}

// alert is the alert for an instance's transition from one state to
// another at now, numbered seq.
func (e *Engine) alert(in *instance, from, state outpost.AlertState, now int64, seq uint64) outpost.Alert {
	r := in.rt.rule
	labels := make(map[string]string, len(in.labels))
	for k, v := range in.labels {
		labels[k] = v
	}
	sev := in.severity()
	d := &MessageData{
		Rule: r.Name, Sensor: in.sensor, Metric: in.metric, Value: in.value,
		Severity: sev, State: state.String(), Gateway: e.gateway, Labels: labels,
		Previous: from.String(), Since: time.Unix(0, in.startedAt).UTC(),
		Duration: roundDuration(time.Duration(now - in.startedAt)), For: in.levelFor(state),
	}
	if len(r.annos) > 0 {
		d.Annotations = make(map[string]string, len(r.annos))
		for _, a := range r.annos {
			if a.msg.tmpl != nil {
				d.Annotations[a.name] = a.msg.render(r, d)
			}
		}
	}
	return outpost.Alert{
		Rule:        r.Name,
		Fingerprint: in.fingerprint,
		State:       state,
		Severity:    sev,
		Value:       in.value,
		Labels:      labels,
		Message:     r.msg.render(r, d),
		StartedAt:   in.startedAt,
		ChangedAt:   now,
		Seq:         seq,
		Annotations: d.Annotations, // nil when the rule has none
	}
}

// addSeries binds a new series to the instances of the rules that select
// it, creating them as needed.
func (e *Engine) addSeries(sensor, metric string) []binding {
	var bs []binding
	slabels := e.sensorLabels[sensor]
	e.matched, e.candidates = e.index.match(sensor, metric, slabels, e.matched[:0], e.candidates)
	for _, rt := range e.matched {
		r := rt.rule
		group := make(map[string]string, len(r.GroupBy))
		for _, g := range r.GroupBy {
			switch g {
			case LabelSensor:
				group[g] = sensor
			case LabelMetric:
				group[g] = metric
			default:
				group[g] = slabels[g]
			}
		}
		in := e.instance(rt, group)
		bs = append(bs, binding{in: in, metric: indexOf(r.Select.Metrics, metric)})
	}
	e.series[outpost.SeriesKey{Sensor: sensor, Metric: metric}] = bs
	return bs
}

// fingerprint is the rule name and the group values, in group_by order.
func fingerprint(r *Rule, group map[string]string) string {
	var b strings.Builder
	b.WriteString(r.Name)
	for _, g := range r.GroupBy {
		b.WriteByte('/')
		b.WriteString(group[g])
	}
	return b.String()
}

// instance returns the rule's instance for group, creating it.
func (e *Engine) instance(rt *ruleRT, group map[string]string) *instance {
	r := rt.rule
	fp := fingerprint(r, group)
	if in, ok := rt.insts[fp]; ok {
		return in
	}
	in := &instance{
		rt:          rt,
		fingerprint: fp,
		group:       group,
		labels:      make(map[string]string, len(r.Labels)+len(group)+2),
		keepUntil:   noTime,
		lastSeen:    noTime,
		level:       0,
		sensor:      group[LabelSensor],
		metric:      r.Select.Metric,
	}
	in.since = smallInts(in.sinceBuf[:], len(r.Levels))
	in.latestTS = smallInts(in.tsBuf[:], len(r.Select.Metrics))
	for k, v := range r.Labels {
		in.labels[k] = v
	}
	for k, v := range group {
		in.labels[k] = v
	}
	if r.Select.Metric != "" {
		in.labels[LabelMetric] = r.Select.Metric
	}
	if e.gateway != "" {
		in.labels[LabelGateway] = e.gateway
	}
	for i := range in.since {
		in.since[i] = noTime
	}
	var m []float64
	if n := len(r.Select.Metrics); n <= len(in.mBuf) {
		m = in.mBuf[:n:n]
	} else {
		m = make([]float64, n)
	}
	in.env = exprEnv{Labels: in.labels, M: m, W: make([]float64, len(r.calls))}
	for i := range in.env.M {
		in.env.M[i], in.latestTS[i] = math.NaN(), noTime
	}
	in.windows = make([]window, len(r.windows))
	for i := range in.windows {
		in.windows[i].spec = &r.windows[i]
	}
	rt.insts[fp] = in
	rt.order = append(rt.order, in)
	return in
}

// smallInts is buf[:n] if n fits, else a new slice.
func smallInts(buf []int64, n int) []int64 {
	if n <= len(buf) {
		return buf[:n:n]
	}
	return make([]int64, n)
}
