// Package rules turns alert rules written in YAML into compiled rules, and
// evaluates them over readings with an Engine that emits alert
// transitions.
//
// A rules file:
//
//	rules:
//	  - name: dev1-too-warm          # required, unique, [A-Za-z0-9_.-]
//	    select:                      # which readings; all given fields must match
//	      metric: temperature        # required
//	      sensor: dev1-env           # optional; omitted: every sensor with that metric
//	    above: 25                    # exactly one of above / below (strict: > or <)
//	    for: 10s                     # hold this long (by reading time) before firing; default 0
//	    severity: warning            # default warning
//	    message: "{{ .Sensor }} {{ .Metric }} is {{ .Value }}"   # text/template over MessageData
//	    labels: {team: ops}          # optional, copied into alerts
//
// Parse reports every problem in a file, each as file:line:col: message;
// a file with any problem yields no rules at all, so a reload with a bad
// file keeps the running rules.
//
// The package does no I/O beyond LoadFile and LoadFiles reading their
// files, and starts no goroutines.
package rules

import (
	"errors"
	"fmt"
	"os"
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
	// Condition is the compiled condition in words, e.g. "value > 25".
	Condition string
	// For is how long the condition must hold before the rule fires.
	For time.Duration
	// Severity is copied into alerts ("warning" unless set).
	Severity string
	// Message is the source of the message template; "" means the
	// default message (see MessageData).
	Message string
	// Labels are copied into alerts, with sensor and metric (and the
	// gateway, when the engine knows it) added.
	Labels map[string]string

	cond condition
	msg  *message
	at   yamlpos.Error // where the rule's name is, for errors across files (Msg unused)
}

// Selector picks readings by metric and, optionally, sensor.
type Selector struct {
	Metric string // required
	Sensor string // "" matches every sensor
}

// Matches reports whether a reading of sensor and metric is selected.
func (s Selector) Matches(sensor, metric string) bool {
	return s.Metric == metric && (s.Sensor == "" || s.Sensor == sensor)
}

// condition decides whether a reading meets a rule. The threshold
// shorthands (above, below) are the only kind today; conditions compiled
// from expressions will implement the same interface.
type condition interface {
	test(r *outpost.Reading) bool
	String() string // the condition in words, for Rule.Condition
}

// threshold is `above: x` (value > x) or `below: x` (value < x).
type threshold struct {
	above bool
	x     float64
}

func (t threshold) test(r *outpost.Reading) bool {
	if t.above {
		return r.Value > t.x
	}
	return r.Value < t.x
}

func (t threshold) String() string {
	op := "<"
	if t.above {
		op = ">"
	}
	return "value " + op + " " + strconv.FormatFloat(t.x, 'g', -1, 64)
}

// LoadFile reads and compiles the rules file at path. See Parse.
func LoadFile(path string) (*Set, error) {
	data, err := os.ReadFile(path)
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
	k := &checker{doc: doc}
	k.errs = doc.Decode(&f)
	set := &Set{Rules: make([]*Rule, 0, len(f.Rules))}
	names := map[string]int{}
	for i := range f.Rules {
		p := "$.rules[" + strconv.Itoa(i) + "]"
		r := f.Rules[i].compile(k, p)
		line, col := doc.Pos(p + ".name")
		r.at = yamlpos.Error{File: name, Line: line, Col: col, Msg: yamlpos.Label(p + ".name")}
		if k.name(p+".name", r.Name) {
			if first, dup := names[r.Name]; dup {
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

// fileSpec is the YAML schema of a rules file.
type fileSpec struct {
	Rules []ruleSpec `yaml:"rules"`
}

type ruleSpec struct {
	Name     string            `yaml:"name"`
	Select   selectSpec        `yaml:"select"`
	Above    *float64          `yaml:"above"`
	Below    *float64          `yaml:"below"`
	For      time.Duration     `yaml:"for"`
	Severity string            `yaml:"severity"`
	Message  string            `yaml:"message"`
	Labels   map[string]string `yaml:"labels"`
}

type selectSpec struct {
	Metric string `yaml:"metric"`
	Sensor string `yaml:"sensor"`
}

// SetDefaults implements yamlpos.Defaulter.
func (s *ruleSpec) SetDefaults() { s.Severity = DefaultSeverity }

// compile checks one rule (except its name, checked by Parse with the
// others) and builds it. Errors go to k.
func (s *ruleSpec) compile(k *checker, p string) *Rule {
	r := &Rule{
		Name:     s.Name,
		Select:   Selector{Metric: s.Select.Metric, Sensor: s.Select.Sensor},
		For:      s.For,
		Severity: s.Severity,
		Message:  s.Message,
		Labels:   s.Labels,
	}
	k.name(p+".select.metric", s.Select.Metric)
	if s.Select.Sensor != "" {
		k.name(p+".select.sensor", s.Select.Sensor)
	}
	switch {
	case s.Above != nil && s.Below != nil:
		k.errorf(p+".below", "only one of above and below may be set")
	case s.Above != nil:
		r.cond = threshold{above: true, x: *s.Above}
	case s.Below != nil:
		r.cond = threshold{x: *s.Below}
	default:
		k.errorf(p+".above", "one of above or below is required")
	}
	if r.cond != nil {
		r.Condition = r.cond.String()
	}
	if s.For < 0 {
		k.errorf(p+".for", "must not be negative, got %v", s.For)
	}
	k.name(p+".severity", s.Severity)
	for key := range s.Labels {
		switch {
		case key == LabelSensor || key == LabelMetric || key == LabelGateway:
			k.keyErrorf(p+".labels."+key, "label %q is set by the engine", key)
		case !validName(key):
			k.keyErrorf(p+".labels."+key, "%q is not a valid label name (use 1 to %d of A-Z a-z 0-9 _ . -)", key, maxNameLen)
		}
	}
	msg, err := compileMessage(r)
	if err != nil {
		k.errorf(p+".message", "%v", err)
	}
	r.msg = msg
	return r
}

// checker collects positioned errors, leaving out paths the decoder has
// already reported.
type checker struct {
	doc  *yamlpos.Doc
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
