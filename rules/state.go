package rules

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/outposthq/outpost"
)

// EngineState is what an Engine keeps across a restart or a reload:
// running `for` timers, pending, firing and nodata instances, the
// inactive instances of rules with no_data (for their deadline), the
// order in which Tick visits them, and the alert sequence. Window
// contents (avg over 5m and the like) and the latest values of a join's
// other metrics are not kept: they refill from new readings.
//
// It is plain data, encoded as JSON by whoever persists it (the gateway,
// in its bbolt file).
type EngineState struct {
	// Version is the format: StateVersion; 0 (absent) for state saved
	// before inactive instances, the live order and the latest reading's
	// sensor were kept, in which a LastSeen of 0 means no reading.
	Version   int             `json:"version,omitempty"`
	Seq       uint64          `json:"seq"`       // the last alert sequence number emitted
	Instances []InstanceState `json:"instances"` // by rule, each rule's in the order they were created
}

// StateVersion is the Version of the state State returns.
const StateVersion = 1

// InstanceState is one alert instance's persistent state. An inactive
// instance has only what no_data and Tick need: its identity, ChangedAt,
// LastSeen, Stale, Value, Sensor, Metric and Live.
type InstanceState struct {
	Rule        string             `json:"rule"`
	Hash        string             `json:"hash"` // Rule.Hash() when saved: a changed rule starts afresh
	Fingerprint string             `json:"fingerprint"`
	Group       map[string]string  `json:"group,omitempty"` // the group-by values of the instance
	State       outpost.AlertState `json:"state"`           // pending, firing, nodata or inactive
	Level       int                `json:"level,omitempty"` // index of the severity level in the rule (-1: no_data's)
	Severity    string             `json:"severity,omitempty"`
	StartedAt   int64              `json:"started_at,omitempty"` // unix ns: went pending (or firing)
	ChangedAt   int64              `json:"changed_at"`           // unix ns of the last transition
	// LastSeen is the unix ns of the newest reading (for no_data); nil:
	// none.
	LastSeen *int64  `json:"last_seen,omitempty"`
	SentAt   int64   `json:"sent_at,omitempty"` // unix ns of the last alert emitted (for repeat)
	Value    float64 `json:"value"`             // of the latest reading (-0 too)
	// Sensor and Metric are those of the latest reading, when they are
	// not the group's sensor and the rule's metric.
	Sensor string `json:"sensor,omitempty"`
	Metric string `json:"metric,omitempty"`
	// Live is the instance's place, from 1, in the order Tick visits
	// instances that are not inactive (the order they left inactive); 0:
	// not on that list. State saved without it restores in list order.
	Live int `json:"live,omitempty"`
	// Timers are the levels whose condition holds, with since when: the
	// running `for` timers.
	Timers []LevelTimer `json:"timers,omitempty"`
	// KeepUntil is when keep_firing_for ends (unix ns); 0: not running.
	KeepUntil int64 `json:"keep_until,omitempty"`
	// Stale says no_data applied and no reading has come since.
	Stale bool `json:"stale,omitempty"`
	// Fired are the levels that fired in this episode, the current one
	// included, for a step down (absent in state saved before it was
	// kept: then only the current level counts as fired).
	Fired []int `json:"fired,omitempty"`
}

// LevelTimer is a running `for` timer of one level.
type LevelTimer struct {
	Level int   `json:"level"`
	Since int64 `json:"since"` // unix ns
}

// RuleStats are one rule's counters in one engine, since it started.
type RuleStats struct {
	Rule        string
	Evaluations uint64 // condition evaluations (one per reading per instance)
	Errors      uint64 // expression runtime errors (the condition counts as false)
	Transitions uint64 // alerts emitted, repeats included
	// Time is the time spent evaluating, estimated by timing one
	// evaluation in 64 and counting it 64 times: the hot path reads no
	// clock.
	Time time.Duration
}

// State returns the state of every instance that is not inactive, of
// every inactive instance of a rule with no_data and of those still on
// the live list, rules in set order, and the alert sequence. The result
// shares nothing with the engine.
func (e *Engine) State() EngineState {
	st := EngineState{Version: StateVersion, Seq: e.seq, Instances: []InstanceState{}}
	live := make(map[*instance]int, len(e.live))
	for i, in := range e.live {
		live[in] = i + 1
	}
	for _, rt := range e.rules {
		r := rt.rule
		for _, in := range rt.order {
			pos := live[in]
			inactive := in.state == outpost.StateInactive
			if inactive && pos == 0 && r.NoData == nil {
				continue // no timer runs and no_data does not watch it: its next reading makes it anew
			}
			is := InstanceState{
				Rule: r.Name, Hash: r.hash, Fingerprint: in.fingerprint, Group: maps(in.group),
				State: in.state, ChangedAt: in.changedAt, Value: in.value, Stale: in.stale, Live: pos,
			}
			if in.sensor != in.group[LabelSensor] {
				is.Sensor = in.sensor
			}
			if in.metric != r.Select.Metric {
				is.Metric = in.metric
			}
			if in.lastSeen != noTime {
				ls := in.lastSeen
				is.LastSeen = &ls
			}
			if inactive {
				st.Instances = append(st.Instances, is)
				continue
			}
			is.Level, is.Severity, is.StartedAt, is.SentAt = in.level, in.severity(), in.startedAt, in.sentAt
			is.Fired = in.fired.levels()
			if in.keepUntil != noTime {
				is.KeepUntil = in.keepUntil
			}
			for i, s := range in.since {
				if s != noTime {
					is.Timers = append(is.Timers, LevelTimer{Level: i, Since: s})
				}
			}
			st.Instances = append(st.Instances, is)
		}
	}
	return st
}

// Restore takes saved state, typically before the first Eval: each
// instance whose rule exists with the same hash, and that the engine does
// not have yet, is recreated as it was (a pending instance keeps its
// `for` timer running from when it started, so Tick or the next reading
// fires it on time; an inactive one of a rule with no_data goes to
// no_data's state `after` its last reading, as if no restart had come
// between). Tick visits the restored instances in the order it did.
// Instances of changed or removed rules are dropped. The alert sequence
// continues from st.Seq if that is ahead. Restore returns how many
// instances it restored.
func (e *Engine) Restore(st EngineState) int {
	e.seq = max(e.seq, st.Seq)
	type onList struct {
		in  *instance
		pos int
	}
	var live []onList
	n := 0
	for _, is := range st.Instances {
		rt, ok := e.byName[is.Rule]
		if !ok || rt.rule.hash == "" || rt.rule.hash != is.Hash {
			continue
		}
		r := rt.rule
		switch is.State {
		case outpost.StatePending, outpost.StateFiring, outpost.StateNoData, outpost.StateInactive:
		default:
			continue
		}
		if is.Level < -1 || is.Level >= len(r.Levels) || (is.Level == -1 && r.NoData == nil) {
			continue
		}
		group := make(map[string]string, len(r.GroupBy))
		for _, g := range r.GroupBy {
			group[g] = is.Group[g]
		}
		if fingerprint(r, group) != is.Fingerprint || rt.insts[is.Fingerprint] != nil {
			continue
		}
		in := e.instance(rt, group)
		in.state, in.level = is.State, is.Level
		in.startedAt, in.changedAt, in.sentAt, in.value = is.StartedAt, is.ChangedAt, is.SentAt, is.Value
		in.stale = is.Stale
		if is.LastSeen != nil && (*is.LastSeen != 0 || st.Version > 0) {
			in.lastSeen = *is.LastSeen
		}
		if is.Sensor != "" {
			in.sensor = is.Sensor
		}
		if is.Metric != "" {
			in.metric = is.Metric
		}
		if is.KeepUntil != 0 {
			in.keepUntil = is.KeepUntil
		}
		for _, t := range is.Timers {
			if t.Level >= 0 && t.Level < len(in.since) {
				in.since[t.Level] = t.Since
			}
		}
		if in.state == outpost.StatePending && in.level >= 0 && in.since[in.level] == noTime {
			in.since[in.level] = in.startedAt // state saved without timers
		}
		switch in.state {
		case outpost.StateFiring:
			for _, l := range is.Fired {
				if l >= 0 && l < len(r.Levels) {
					in.fired.add(l)
				}
			}
			in.fired.add(in.level) // state saved without fired
		case outpost.StateNoData:
			in.level = -1 // no_data's severity; saved with the last level's before
		}
		if math.IsNaN(in.value) {
			in.value = 0
		}
		if in.state != outpost.StateInactive || is.Live > 0 {
			live = append(live, onList{in, is.Live})
		}
		n++
	}
	// State saved without places keeps the list's order.
	slices.SortStableFunc(live, func(a, b onList) int { return cmp.Compare(a.pos, b.pos) })
	for _, l := range live {
		e.enliven(l.in)
	}
	return n
}

// Stats returns every rule's counters, in set order.
func (e *Engine) Stats() []RuleStats {
	out := make([]RuleStats, len(e.rules))
	for i, rt := range e.rules {
		out[i] = rt.stats
	}
	return out
}

func maps(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
