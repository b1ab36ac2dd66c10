package rules

import (
	"math"
	"slices"

	"github.com/outposthq/outpost"
)

// Options configure an Engine. A nil *Options means the zero value.
type Options struct {
	// Gateway is the gateway id. When set, alerts get a "gateway" label
	// and message templates see it as .Gateway. Default "".
	Gateway string
}

// Engine evaluates a Set over readings and emits alert transitions.
//
// Each rule has one instance per sensor it sees (fingerprint
// "rule/sensor"), which moves through
//
//	inactive → pending → firing → resolved → inactive
//
// Condition true in inactive: pending, or straight to firing when the
// rule's For is 0. Pending: firing once the condition has held for For,
// measured by reading timestamps (Eval) or by Tick; back to inactive when
// it turns false first. Firing: resolved when it turns false, and the
// instance is inactive again. Every transition is emitted: pending,
// firing, resolved, and inactive for a pending instance whose condition
// cleared before For elapsed (so that a consumer holding the instance's
// state, such as a retained dashboard topic, never sticks at pending).
//
// The engine's clock is the readings' timestamps (and Tick's now); it
// reads no wall clock. Readings of bad quality, or whose value is NaN, are
// ignored, as is a reading older than its instance's last change.
//
// An Engine is not safe for concurrent use: one goroutine (the bus
// receiver) owns it.
type Engine struct {
	gateway  string
	byMetric map[string][]*Rule                // rules by the metric they select, in file order
	series   map[outpost.SeriesKey][]*instance // instances per series seen so far
	pending  []*instance                       // waiting for For, in the order they went pending
	seq      uint64
}

// instance is one rule applied to one sensor.
type instance struct {
	rule        *Rule
	sensor      string
	metric      string
	fingerprint string
	state       outpost.AlertState // inactive, pending or firing
	startedAt   int64              // when it went pending (or firing, with For 0)
	changedAt   int64              // its last change of state
	value       float64            // the latest value seen
}

// NewEngine returns an engine for set (nil: no rules). Rules that did not
// come from Parse or LoadFile are ignored.
func NewEngine(set *Set, opts *Options) *Engine {
	if opts == nil {
		opts = &Options{}
	}
	e := &Engine{
		gateway:  opts.Gateway,
		byMetric: map[string][]*Rule{},
		series:   map[outpost.SeriesKey][]*instance{},
	}
	if set != nil {
		for _, r := range set.Rules {
			if r == nil || r.cond == nil {
				continue // not compiled by Parse: nothing to evaluate
			}
			e.byMetric[r.Select.Metric] = append(e.byMetric[r.Select.Metric], r)
		}
	}
	return e
}

// Eval runs every rule that selects a reading over rs and appends the
// alert transitions to dst, returning it. Readings must be in time order
// per series. The path without a transition does not allocate, except the
// first time a series is seen.
func (e *Engine) Eval(rs []outpost.Reading, dst []outpost.Alert) []outpost.Alert {
	for i := range rs {
		r := &rs[i]
		if r.Quality == outpost.QualityBad || math.IsNaN(r.Value) {
			continue
		}
		insts, seen := e.series[outpost.SeriesKey{Sensor: r.Sensor, Metric: r.Metric}]
		if !seen {
			if _, selected := e.byMetric[r.Metric]; !selected {
				continue // no rule wants this metric: remember nothing
			}
			insts = e.addSeries(r.Sensor, r.Metric)
		}
		for _, in := range insts {
			dst = e.step(in, r, dst)
		}
	}
	return dst
}

// Tick advances time to now (unix ns) with no readings, so pending
// instances whose For has passed fire; it appends those transitions to
// dst, in the order the instances went pending. An instance fired by Tick
// reports the last value it saw.
func (e *Engine) Tick(now int64, dst []outpost.Alert) []outpost.Alert {
	kept := e.pending[:0]
	for _, in := range e.pending {
		if now >= in.changedAt && now-in.startedAt >= int64(in.rule.For) {
			in.state, in.changedAt = outpost.StateFiring, now
			dst = e.emit(dst, in, outpost.StateFiring)
			continue
		}
		kept = append(kept, in)
	}
	clear(e.pending[len(kept):])
	e.pending = kept
	return dst
}

// step moves one instance on one reading.
func (e *Engine) step(in *instance, r *outpost.Reading, dst []outpost.Alert) []outpost.Alert {
	if r.TS < in.changedAt {
		return dst // older than what the instance already decided
	}
	in.value = r.Value
	on := in.rule.cond.test(r)
	switch in.state {
	case outpost.StateInactive:
		if !on {
			return dst
		}
		in.startedAt, in.changedAt = r.TS, r.TS
		if in.rule.For <= 0 {
			in.state = outpost.StateFiring
			return e.emit(dst, in, outpost.StateFiring)
		}
		in.state = outpost.StatePending
		e.pending = append(e.pending, in)
		return e.emit(dst, in, outpost.StatePending)
	case outpost.StatePending:
		if !on {
			in.state, in.changedAt = outpost.StateInactive, r.TS
			e.unpend(in)
			return e.emit(dst, in, outpost.StateInactive)
		}
		if r.TS-in.startedAt >= int64(in.rule.For) {
			in.state, in.changedAt = outpost.StateFiring, r.TS
			e.unpend(in)
			return e.emit(dst, in, outpost.StateFiring)
		}
	case outpost.StateFiring:
		if !on {
			in.state, in.changedAt = outpost.StateInactive, r.TS
			return e.emit(dst, in, outpost.StateResolved)
		}
	}
	return dst
}

// emit appends the alert for an instance's transition to state, which
// happens at in.changedAt.
func (e *Engine) emit(dst []outpost.Alert, in *instance, state outpost.AlertState) []outpost.Alert {
	r := in.rule
	labels := make(map[string]string, len(r.Labels)+3)
	for k, v := range r.Labels {
		labels[k] = v
	}
	labels[LabelSensor] = in.sensor
	labels[LabelMetric] = in.metric
	if e.gateway != "" {
		labels[LabelGateway] = e.gateway
	}
	e.seq++
	return append(dst, outpost.Alert{
		Rule:        r.Name,
		Fingerprint: in.fingerprint,
		State:       state,
		Severity:    r.Severity,
		Value:       in.value,
		Labels:      labels,
		Message: r.msg.render(r, &MessageData{
			Rule: r.Name, Sensor: in.sensor, Metric: in.metric, Value: in.value,
			Severity: r.Severity, State: state.String(), Gateway: e.gateway, Labels: labels,
		}),
		StartedAt: in.startedAt,
		ChangedAt: in.changedAt,
		Seq:       e.seq,
	})
}

// addSeries creates the instances of the rules that select a new series.
func (e *Engine) addSeries(sensor, metric string) []*instance {
	var insts []*instance
	for _, r := range e.byMetric[metric] {
		if r.Select.Matches(sensor, metric) {
			insts = append(insts, &instance{
				rule:        r,
				sensor:      sensor,
				metric:      metric,
				fingerprint: r.Name + "/" + sensor,
			})
		}
	}
	e.series[outpost.SeriesKey{Sensor: sensor, Metric: metric}] = insts
	return insts
}

// unpend removes in from the pending list, keeping the order.
func (e *Engine) unpend(in *instance) {
	if i := slices.Index(e.pending, in); i >= 0 {
		e.pending = slices.Delete(e.pending, i, i+1)
	}
}
