package gateway

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/liveness"
	"github.com/outposthq/outpost/rules"
)

// RulesStateKey is the key of the rule engine's state in the outbox file's
// state bucket (buffer.Outbox.PutState): JSON of rules.EngineState.
const RulesStateKey = "rules"

// Messages of the alerts a reload emits for the instances it ends.
const (
	msgRuleRemoved = "rule removed by a rules reload"
	msgRuleChanged = "rule changed by a rules reload; evaluated afresh"
)

// stateStore keeps the engine's state across restarts: the outbox file's
// state bucket, apart from the lanes.
type stateStore interface {
	PutState(key string, value []byte) error
	State(key string) ([]byte, error)
}

// errRulerStopped is returned by a reload that comes after the ruler ended.
var errRulerStopped = errors.New("gateway: rules: not running")

// ruler feeds the rule engine from the bus and hands alert transitions to
// the batcher, and to the dashboard; the resolved alerts that a rule's
// send_resolved: false keeps from the batcher go to the dashboard still,
// which shows the current state. It sees every reading before it is
// batched. Its goroutine (run) owns the engine: a reload reaches it as a
// new *rules.Set over the reload channel, and the engine is swapped there.
//
// State: run restores the engine's saved state before the first reading,
// saves it at most once per tick when there were transitions since the
// last save, after a reload, and when it ends. A crash loses the
// transitions since the last save: after the restart they may be emitted
// again (the cloud and the dashboard key alerts by fingerprint).
type ruler struct {
	in     <-chan []outpost.Reading
	out    chan<- []outpost.Alert
	engine *rules.Engine
	set    *rules.Set     // the engine's rules
	opts   *rules.Options // for the engines of reloads
	store  stateStore     // nil: no persistence
	reload chan reloadReq
	done   chan struct{} // closed when run returns
	tick   time.Duration
	now    func() time.Time
	notify func(outpost.Alert) // optional
	dash   *dashboard          // optional: keeps the retained alert topics
	log    zerolog.Logger

	dirty bool // owned by run: transitions since the last save
	// quiet, owned by run, are the resolved alerts that send_resolved:
	// false kept from the last Eval or Tick (rules.Engine.OnSilenced):
	// not sent, but the dashboard shows them.
	quiet []outpost.Alert

	raised, reloads, saveErrors atomic.Int64

	// active holds the engine's instances that are pending, firing or
	// nodata, by fingerprint: taken from the engine's state when run
	// starts and after each swap (Restore may drop what it cannot
	// use), and kept up to date from every transition (the engine
	// emits an alert, or a silenced one, on each change of state).
	// Owned by run. firing and pending count its states, for any
	// goroutine (the status document's health); onCount, when set, is
	// called on run's goroutine whenever either changes.
	active          map[string]outpost.AlertState
	firing, pending atomic.Int64
	onCount         func()

	carried map[string]rules.RuleStats // owned by run: counts of kept rules from engines before a reload
	statsMu sync.Mutex
	stats   []rules.RuleStats // run's copy of the counters, taken once per tick

	beat liveness.Beat // busy while it evaluates, swaps or saves
}

// reloadReq asks run to swap in a new rule set; run answers on done.
type reloadReq struct {
	set  *rules.Set
	done chan reloadResult
}

// reloadResult says what a swap kept and ended.
type reloadResult struct {
	kept, ended int
}

func newRuler(engine *rules.Engine, set *rules.Set, opts *rules.Options) *ruler {
	return &ruler{engine: engine, set: set, opts: opts,
		reload: make(chan reloadReq), done: make(chan struct{})}
}

func (r *ruler) run() {
	defer close(r.done)
	defer close(r.out)
	defer r.snapshot() // the final counts, for Stats after the run
	defer r.beat.Idle()
	r.beat.Busy()
	r.engine.OnSilenced(r.silenced)
	r.restore()
	r.recount()
	r.snapshot()
	t := time.NewTicker(r.tick)
	defer t.Stop()
	for {
		var as []outpost.Alert
		var reply chan reloadResult
		var res reloadResult
		tick := false
		r.beat.Idle()
		select {
		case rs, ok := <-r.in:
			r.beat.Busy()
			if !ok {
				r.save()
				return
			}
			as = r.engine.Eval(rs, nil)
		case <-t.C:
			r.beat.Busy()
			// Time passes without readings too: let `for` timers fire.
			as = r.engine.Tick(r.now().UnixNano(), nil)
			tick = true
		case req := <-r.reload:
			r.beat.Busy()
			as, res = r.swap(req.set)
			reply = req.done
		}
		if reply != nil {
			r.recount() // the swapped-in engine's kept instances
		}
		if len(as) > 0 || len(r.quiet) > 0 {
			r.dirty = true
			r.emit(as)
		}
		if reply != nil {
			r.snapshot()
			reply <- res // buffered; after the alerts the swap ended went out
		}
		if tick {
			r.snapshot()
			if r.dirty {
				r.save() // coalesced: at most once per tick
			}
		}
	}
}

// emit hands alerts to the batcher, notify and the dashboard, and the
// silenced ones (r.quiet) to the dashboard only; all of them, in order,
// move the counts of firing and pending instances.
func (r *ruler) emit(as []outpost.Alert) {
	r.raised.Add(int64(len(as)))
	if r.notify != nil {
		for _, a := range as {
			r.notify(a)
		}
	}
	all := withSilenced(as, r.quiet)
	r.track(all)
	if r.dash != nil {
		r.dash.observe(all) // never blocks on the network
	}
	clear(r.quiet)
	r.quiet = r.quiet[:0]
	if len(as) > 0 {
		r.out <- as // the batcher reads alerts until this channel closes
	}
}

// recount takes the active instances from the engine's state, and
// publishes their counts. Only run calls it: at its start, after a swap.
func (r *ruler) recount() {
	clear(r.active)
	if r.active == nil {
		r.active = map[string]outpost.AlertState{}
	}
	for _, in := range r.engine.State().Instances {
		if active(in.State) {
			r.active[in.Fingerprint] = in.State
		}
	}
	r.publishCounts()
}

// track notes the transitions as in active, and publishes the counts.
// Only run calls it.
func (r *ruler) track(as []outpost.Alert) {
	if len(as) == 0 {
		return
	}
	if r.active == nil {
		r.active = map[string]outpost.AlertState{}
	}
	for i := range as {
		if a := &as[i]; active(a.State) {
			r.active[a.Fingerprint] = a.State
		} else {
			delete(r.active, a.Fingerprint)
		}
	}
	r.publishCounts()
}

// publishCounts stores the numbers of firing and pending instances in
// active, and calls onCount when either changed. Counting the map costs
// one pass over the active instances per transition: transitions are
// rare next to readings, and active instances bounded by the series.
func (r *ruler) publishCounts() {
	var firing, pending int64
	for _, s := range r.active {
		switch s {
		case outpost.StateFiring:
			firing++
		case outpost.StatePending:
			pending++
		}
	}
	if firing == r.firing.Load() && pending == r.pending.Load() {
		return
	}
	r.firing.Store(firing)
	r.pending.Store(pending)
	if r.onCount != nil {
		r.onCount()
	}
}

// silenced is the engine's OnSilenced hook.
func (r *ruler) silenced(a outpost.Alert) { r.quiet = append(r.quiet, a) }

// withSilenced is as with the silenced alerts quiet put in their place:
// each after the alert emitted before it (whose Seq it has), so that the
// dashboard sees an instance's transitions in order.
func withSilenced(as, quiet []outpost.Alert) []outpost.Alert {
	if len(quiet) == 0 {
		return as
	}
	out := make([]outpost.Alert, 0, len(as)+len(quiet))
	i := 0
	for _, q := range quiet {
		for ; i < len(as) && as[i].Seq <= q.Seq; i++ {
			out = append(out, as[i])
		}
		out = append(out, q)
	}
	return append(out, as[i:]...)
}

// swap builds an engine for set and gives it the state of the instances
// whose rule is in set with an unchanged definition (Rule.Hash). The
// instances of removed or changed rules end: for each, swap returns an
// alert that closes it — resolved for a firing or nodata instance,
// inactive for a pending one — so that no consumer keeps showing it
// firing; a changed rule then starts afresh and, if its condition holds,
// goes pending or firing again as a new alert. Window contents are not
// carried over (rules.EngineState).
func (r *ruler) swap(set *rules.Set) ([]outpost.Alert, reloadResult) {
	old := r.engine.State()
	byName := make(map[string]*rules.Rule, len(set.Rules))
	for _, rl := range set.Rules {
		if rl != nil {
			byName[rl.Name] = rl
		}
	}
	oldRules := make(map[string]*rules.Rule, len(r.set.Rules))
	for _, rl := range r.set.Rules {
		if rl != nil {
			oldRules[rl.Name] = rl
		}
	}
	var ended []outpost.Alert
	now := r.now().UnixNano()
	for _, in := range old.Instances {
		nr := byName[in.Rule]
		if in.State == outpost.StateInactive || nr != nil && nr.Hash() == in.Hash {
			continue // nothing to close, or kept
		}
		msg := msgRuleRemoved
		if nr != nil {
			msg = msgRuleChanged
		}
		ended = append(ended, endAlert(&in, oldRules[in.Rule], r.opts.Gateway, msg, now, old.Seq+uint64(len(ended))+1))
	}
	st := old
	st.Seq += uint64(len(ended)) // the new engine continues after the ended alerts
	r.carry(oldRules, byName)
	e := rules.NewEngine(set, r.opts)
	e.OnSilenced(r.silenced)
	kept := e.Restore(st)
	r.engine, r.set = e, set
	if r.dash != nil {
		r.dash.addRules(set)
	}
	r.reloads.Add(1)
	res := reloadResult{kept: kept, ended: len(ended)}
	r.log.Info().Int("rules", len(set.Rules)).Int("kept", kept).Int("ended", len(ended)).Msg("rules reloaded")
	r.save()
	return ended, res
}

// endAlert is the alert that closes instance in of a removed or changed
// rule (old: its definition before the reload; nil if unknown), labelled
// as the engine labels its alerts.
func endAlert(in *rules.InstanceState, old *rules.Rule, gateway, msg string, now int64, seq uint64) outpost.Alert {
	labels := map[string]string{}
	if old != nil {
		for k, v := range old.Labels {
			labels[k] = v
		}
	}
	for k, v := range in.Group {
		labels[k] = v
	}
	if old != nil && old.Select.Metric != "" {
		labels[rules.LabelMetric] = old.Select.Metric
	}
	if gateway != "" {
		labels[rules.LabelGateway] = gateway
	}
	state := outpost.StateResolved
	if in.State == outpost.StatePending {
		state = outpost.StateInactive
	}
	return outpost.Alert{
		Rule:        in.Rule,
		Fingerprint: in.Fingerprint,
		State:       state,
		Severity:    in.Severity,
		Value:       in.Value,
		Labels:      labels,
		Message:     msg,
		StartedAt:   in.StartedAt,
		ChangedAt:   max(now, in.ChangedAt),
		Seq:         seq,
	}
}

// restore gives the engine the state saved by the last run, if any. A
// state that cannot be read or decoded is logged and the rules start
// afresh.
func (r *ruler) restore() {
	if r.store == nil {
		return
	}
	data, err := r.store.State(RulesStateKey)
	if err != nil {
		r.log.Error().Err(err).Msg("reading the saved rule state failed: rules start afresh")
		return
	}
	if data == nil {
		return
	}
	var st rules.EngineState
	if err := json.Unmarshal(data, &st); err != nil {
		r.log.Error().Err(err).Msg("saved rule state does not decode: rules start afresh")
		return
	}
	n := r.engine.Restore(st)
	r.log.Info().Int("restored", n).Int("saved", len(st.Instances)).Msg("rule state restored")
}

// save stores the engine's state. A failure is logged (rate-limited by
// the tick) and retried at the next tick.
func (r *ruler) save() {
	if r.store == nil {
		r.dirty = false
		return
	}
	data, err := json.Marshal(r.engine.State())
	if err == nil {
		err = r.store.PutState(RulesStateKey, data)
	}
	if err != nil {
		if r.saveErrors.Add(1) == 1 || r.saveErrors.Load()%60 == 0 {
			r.log.Error().Err(err).Int64("failures", r.saveErrors.Load()).Msg("saving the rule state failed")
		}
		return
	}
	r.dirty = false
}

// carry keeps, before a swap to the rules in next, the counters of the
// rules that stay unchanged (from prior to next, by name); those of
// removed or changed rules start again from zero.
func (r *ruler) carry(prior, next map[string]*rules.Rule) {
	old := r.engine.Stats()
	prev := r.carried
	r.carried = make(map[string]rules.RuleStats, len(old))
	for _, s := range old {
		nr, or := next[s.Rule], prior[s.Rule]
		if nr == nil || or == nil || nr.Hash() != or.Hash() {
			continue
		}
		r.carried[s.Rule] = addStats(s, prev[s.Rule])
	}
}

// snapshot copies the per-rule counters for ruleStats. Only run calls it:
// the engine is not safe for use from other goroutines.
func (r *ruler) snapshot() {
	st := r.engine.Stats()
	for i := range st {
		st[i] = addStats(st[i], r.carried[st[i].Rule])
	}
	r.statsMu.Lock()
	r.stats = st
	r.statsMu.Unlock()
}

// ruleStats returns the per-rule counters as of the last tick (or the end
// of run), in rule order. Safe from any goroutine; the slice is the
// caller's.
func (r *ruler) ruleStats() []rules.RuleStats {
	r.statsMu.Lock()
	defer r.statsMu.Unlock()
	return append([]rules.RuleStats(nil), r.stats...)
}

func addStats(a, b rules.RuleStats) rules.RuleStats {
	a.Evaluations += b.Evaluations
	a.Errors += b.Errors
	a.Transitions += b.Transitions
	a.Time += b.Time
	return a
}

// swapRules hands set to run and waits until it is in use.
func (r *ruler) swapRules(set *rules.Set) (reloadResult, error) {
	req := reloadReq{set: set, done: make(chan reloadResult, 1)}
	select {
	case r.reload <- req:
	case <-r.done:
		return reloadResult{}, errRulerStopped
	}
	return <-req.done, nil
}
