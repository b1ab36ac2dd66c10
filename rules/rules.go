// Package rules turns alert rules written in YAML into compiled rules, and
// evaluates them over readings with an Engine that emits alert
// transitions.
//
// The shape is borrowed: `for` and `keep_firing_for` from Prometheus
// alerting rules, levels with their own reset (hysteresis) from
// Kapacitor's .warn/.crit/.critReset, and states that survive a restart
// from AWS IoT Events alarms.
//
// A rules file:
//
//	rules:
//	  - name: freezer-temp          # required, unique, [A-Za-z0-9_.-]
//	    select:                     # which readings; all given fields must match
//	      metric: temperature       # one metric, or
//	      # metrics: [a, b]         # several (for conditions that join them)
//	      sensor: "freezer-*"       # exact id or glob (path.Match); omitted: every sensor
//	      labels: {room: store}     # sensor labels (from the gateway config) that must match
//	    group_by: [device]          # one alert instance per value of these labels; the
//	                                # names are sensor labels, "sensor" or "metric";
//	                                # default [sensor]
//	    levels:                     # most severe first; or the level fields at the top
//	      - {severity: critical, above: -10, for: 2m, reset_below: -16.5}
//	      - {severity: warning,  above: -15, for: 5m, reset_below: -16.5}
//	    keep_firing_for: 1m         # stay firing this long after the reset; default 0
//	    no_data: {after: 2m, state: nodata}  # see below; default off
//	    repeat: 30m                 # re-emit a firing alert this often (on Tick); default 0, never
//	    send_resolved: true         # emit resolved transitions (of a firing and of a nodata); default true
//	    labels: {team: cold-chain}  # copied into alerts
//	    annotations:                # templates, rendered per alert (see MessageData)
//	      summary: "{{ .Labels.device }} at {{ .Value }}"
//	    message: "{{ .Sensor }} is {{ .Value }}"   # template; default "{Sensor} {Metric} is {Value} ({Rule}: {Condition})"
//
// A level (an item of levels, or the rule itself when it has no levels)
// has these fields:
//
//	severity: warning      # default warning for a rule without levels; required in levels, unique
//	above: 25              # value > 25 (value: the reading being evaluated); or
//	below: 5               # value < 5; or
//	condition: 'expr'      # a boolean expr-lang expression, see below
//	for: 10s               # the condition must hold this long (reading time) before firing; default 0
//	reset_below: 20        # with above: firing ends only when value < 20 (hysteresis)
//	reset_above: 8         # with below: firing ends only when value > 8
//	reset: 'expr'          # with condition: firing ends only when this is true
//
// Without a reset, a level resets when its condition is false.
//
// A condition is compiled once, at load, against this environment:
//   - value: the value of the reading being evaluated;
//   - every selected metric by name, its latest value in the instance's
//     group (NaN before the first reading); metrics whose names are not
//     identifiers are reachable as metric["door-open"];
//   - labels: the instance's labels (map of strings);
//   - windows over the group's readings of one metric, with a constant
//     duration: avg(m, "5m"), min(m, "5m"), max(m, "5m"), count(m, "5m"),
//     rate(m, "5m") (also derivative: change per second between the first
//     and last reading in the window), and last(m) (the latest value) and
//     age(m) (seconds since m's latest reading; +Inf before the first).
//     An empty window gives NaN (count gives 0), and NaN compares false.
//     These names shadow expr's builtins of the same name.
//
// Window calls are rewritten at compile time into references to state
// the engine keeps per instance and updates on each reading (a ring of
// samples with a running sum, monotonic deques for min and max), so a
// window costs O(1) amortized per reading whatever its length.
//
// States: inactive → pending → firing → resolved (→ inactive), and nodata.
// A level is met when its condition has held for its `for`. An instance
// fires at the most severe met level, and escalates when a more severe
// level is met. Firing at a level ends when that level's reset is true:
// the instance then steps down (a firing transition with the new
// severity) to the most severe less severe level that is met, or that
// fired in this episode and has not reset; with none, it is resolved,
// after keep_firing_for (which delays only the resolve). When a resolve
// leaves a level whose condition holds, a new episode starts at once:
// pending, its `for` counted from the resolve. Only transitions emit
// alerts: pending, firing (also on a change of level, and every `repeat`,
// stamped when it is sent), resolved, and inactive for a pending
// instance that cleared before firing.
//
// no_data: {after: 2m, state: nodata|firing|resolved, severity: s}: an
// instance that has had readings but none for `after` (checked on Tick)
// goes to state nodata (default), fires (at severity s, default the
// rule's most severe; an instance firing at s, or at a level more severe
// than s's, stays as it is, and keep_firing_for no longer ends it), or
// resolves. The next reading ends it (a nodata instance whose condition
// is false emits resolved, unless send_resolved is false); the alert
// that ends a nodata or a no_data firing has no_data's severity.
//
// Engine.NextEvent says when Tick next has anything to do, so that a
// replay can jump over quiet stretches.
//
// Parse reports every problem in a file, each as file:line:col: message;
// a file with any problem yields no rules at all, so a reload with a bad
// file keeps the running rules. Expression errors point into the
// expression. A file nested deeper than yamlpos.MaxDepth, or with a
// mapping of more than yamlpos.MaxKeys keys, is refused before it is
// parsed (at the first byte past the limit), and LoadFile refuses a file
// larger than MaxFileBytes or that is not a regular file (a named pipe,
// a device) before reading it: a hostile file costs a reload a scan, not
// the gateway's memory.
//
// The package does no I/O beyond LoadFile and LoadFiles reading their
// files, and starts no goroutines.
package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/yamlpos"
)

// DefaultSeverity is the severity of a rule that gives none.
const DefaultSeverity = "warning"

// Labels every alert gets from the engine; rules may not set them.
const (
	LabelSensor  = "sensor"
	LabelMetric  = "metric"
	LabelGateway = "gateway"
)

// Set is a compiled rules file. It is immutable once built and may be
// shared by engines.
type Set struct {
	Rules []*Rule
}

// Rule is one compiled rule. Its fields describe it; they must not be
// changed once the rule is in a Set.
type Rule struct {
	// Name identifies the rule; alert fingerprints start with it.
	Name string
	// Select says which readings the rule sees.
	Select Selector
	// GroupBy names the labels whose values make one alert instance.
	GroupBy []string
	// Levels, most severe first; a rule has at least one.
	Levels []Level
	// Condition, For and Severity are those of Levels[0], the most
	// severe level.
	Condition string
	For       time.Duration
	Severity  string
	// KeepFiringFor delays resolving after the reset.
	KeepFiringFor time.Duration
	// NoData is the staleness rule; nil: none.
	NoData *NoData
	// Repeat re-emits a firing alert this often; 0: never.
	Repeat time.Duration
	// SendResolved says whether the resolved transition is emitted.
	SendResolved bool
	// Message is the source of the message template; "" means the
	// default message (see MessageData).
	Message string
	// Labels are copied into alerts, with the group labels (and the
	// gateway, when the engine knows it) added.
	Labels map[string]string
	// Annotations are template sources, rendered per alert.
	Annotations map[string]string

	hash    string
	msg     *message
	annos   []annotation
	windows []windowSpec // per-instance windows, shared by all expressions
	calls   []callSpec   // window calls, each a slot of exprEnv.W
	at      yamlpos.Error
}

// Level is one severity of a rule.
type Level struct {
	Severity  string
	Condition string // in words, e.g. "value > 25"
	Reset     string // in words; "" means "not the condition"
	For       time.Duration

	cond, reset condition
}

// NoData says what happens to an instance whose readings stop.
type NoData struct {
	After    time.Duration
	State    outpost.AlertState // StateNoData, StateFiring or StateResolved
	Severity string             // for StateNoData and StateFiring
}

// Selector picks readings by metric, sensor and sensor labels.
type Selector struct {
	Metric  string            // the selected metric; "" when Metrics has several
	Sensor  string            // exact id or path.Match glob; "" matches every sensor
	Metrics []string          // every selected metric (just Metric, or the metrics list)
	Labels  map[string]string // sensor labels that must match
}

// Matches reports whether a reading of sensor and metric is selected,
// leaving out Labels (see MatchesLabels).
func (s *Selector) Matches(sensor, metric string) bool {
	if !slices.Contains(s.Metrics, metric) && s.Metric != metric {
		return false
	}
	return matchSensor(s.Sensor, sensor)
}

// MatchesLabels reports whether a sensor with these labels is selected.
func (s *Selector) MatchesLabels(labels map[string]string) bool {
	for k, v := range s.Labels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Hash is a stable hash of the rule's definition: two rules that mean the
// same (whatever their YAML layout, key order or comments) have the same
// hash. An engine restores saved state only to a rule of the same hash.
// A rule not built by Parse has hash "".
func (r *Rule) Hash() string { return r.hash }

// Hash identifies the set's rules as they run: hex SHA-256 over each
// rule's Hash, in order. Two files that compile to the same rules (other
// comments, spacing or key order) have the same hash.
func (s *Set) Hash() string {
	h := sha256.New()
	for _, r := range s.Rules {
		h.Write([]byte(r.hash))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// MaxFileBytes bounds a rules file: a larger one is an error at its line
// 1, found before it is read, and so is a path that is not a regular file
// (a named pipe, a device). A thousand rules take some 300 KiB; go-yaml
// takes some 600 bytes of memory per byte it parses, so the bound keeps a
// bad file from exhausting a gateway's memory on a reload.
const MaxFileBytes = 1 << 20

// LoadFile reads and compiles the rules file at path. See Parse.
func LoadFile(path string) (*Set, error) {
	data, err := yamlpos.ReadFile(path, MaxFileBytes)
	var list yamlpos.ErrorList
	if errors.As(err, &list) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return Parse(path, data)
}

// LoadFiles loads several rules files into one Set, rules in file order,
// and reports every problem in all of them as one yamlpos.ErrorList,
// including a rule name used in two files. A file that cannot be read is
// reported too, without a position.
func LoadFiles(paths ...string) (*Set, error) {
	set := &Set{}
	var errs yamlpos.ErrorList
	first := map[string]*Rule{}
	for _, path := range paths {
		s, err := LoadFile(path)
		if err != nil {
			var list yamlpos.ErrorList
			if errors.As(err, &list) {
				errs = append(errs, list...)
			} else {
				errs = append(errs, &yamlpos.Error{Msg: err.Error()})
			}
			continue
		}
		for _, r := range s.Rules {
			if f, dup := first[r.Name]; dup {
				e := r.at
				e.Msg = fmt.Sprintf("%s: duplicate rule name %q (first at %s:%d:%d)", r.at.Msg, r.Name, f.at.File, f.at.Line, f.at.Col)
				errs = append(errs, &e)
				continue
			}
			first[r.Name] = r
			set.Rules = append(set.Rules, r)
		}
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return set, nil
}

// Parse compiles a rules file; name is the file name used in errors. A
// file with problems yields a yamlpos.ErrorList of all of them, sorted by
// position, and no Set.
func Parse(name string, data []byte) (*Set, error) {
	doc, err := yamlpos.Parse(name, data)
	if err != nil {
		return nil, err
	}
	var f fileSpec
	k := &checker{doc: doc, src: data}
	k.errs = doc.Decode(&f)
	set := &Set{Rules: make([]*Rule, 0, len(f.Rules))}
	names := map[string]int{}
	for i := range f.Rules {
		p := "$.rules[" + strconv.Itoa(i) + "]"
		r := f.Rules[i].compile(k, p)
		line, col := doc.Pos(p + ".name")
		r.at = yamlpos.Error{File: name, Line: line, Col: col, Msg: yamlpos.Label(p + ".name")}
		if k.name(p+".name", r.Name) {
			if r.Name == ReservedRule {
				k.errorf(p+".name", "%q is reserved for the gateway's sensor health events", r.Name)
			} else if first, dup := names[r.Name]; dup {
				k.errorf(p+".name", "duplicate rule name %q (rules[%d] has it too)", r.Name, first)
			} else {
				names[r.Name] = i
			}
		}
		set.Rules = append(set.Rules, r)
	}
	if err := k.errs.Err(); err != nil {
		return nil, err
	}
	return set, nil
}

// checker collects positioned errors, leaving out paths the decoder has
// already reported.
type checker struct {
	doc  *yamlpos.Doc
	src  []byte
	errs yamlpos.ErrorList
}

func (k *checker) errorf(path, format string, args ...any) {
	if !k.doc.Failed(path) {
		k.errs = append(k.errs, k.doc.Errorf(path, format, args...))
	}
}

// keyErrorf reports a problem with the key at path, positioned at the key.
func (k *checker) keyErrorf(path, format string, args ...any) {
	k.errs = append(k.errs, k.doc.KeyErrorf(path, format, args...))
}

// name checks a required name and reports whether it is valid.
func (k *checker) name(path, s string) bool {
	switch {
	case s == "":
		k.errorf(path, "is required")
	case !validName(s):
		k.errorf(path, "%q is not a valid name (use 1 to %d of A-Z a-z 0-9 _ . -)", s, maxNameLen)
	default:
		return true
	}
	return false
}

const maxNameLen = 64

// ReservedRule is the rule name of the gateway's sensor health events,
// which travel as alerts; no rule may take it.
const ReservedRule = "sensor_health"

// validName is the id rule of the config package: 1 to 64 of
// [A-Za-z0-9_.-], not "." or "..".
func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
