// Package ruletest runs alert rules over readings outside the gateway:
// unit tests for rules files (`outpost rules test`, in the manner of
// Prometheus' promtool) and replays of recorded readings (`outpost rules
// replay`).
//
// A test file:
//
//	rule_files: [rules.yaml]     # relative to the test file; globs allowed
//	interval: 1m                 # default step between samples; default 1m
//	tests:
//	  - name: freezer warms up   # default "tests[i]"
//	    interval: 30s            # overrides the file's
//	    until: 20m               # last step; default the last sample or expectation
//	    only_expected: true      # default true: any transition not listed fails the test
//	    labels: {fridge-door: {device: f1}}   # optional: sensor labels, as in the gateway config
//	    input:
//	      - {sensor: freezer-1, metric: temperature, values: "-20 -18 -14x6 _ -9x3 -17"}
//	    expect:
//	      - {at: 7m, rule: freezer-temp, sensor: freezer-1, state: firing, severity: warning}
//	      - {at: 12m, rule: freezer-temp, state: resolved}
//
// Values use promtool's expanding notation (see ParseValues). The test
// runs on its own clock, t=0 being Epoch: at every step (t = 0, interval,
// 2·interval, … until) the samples of that step are evaluated, in input
// order, then the engine's Tick runs at t. Expectations name the alert
// transitions that must happen at exactly that time; each matches one
// transition with the same time and every field the expectation gives.
//
// The package reads files only in Load and Test.Run (its rules files),
// and starts no goroutines.
package ruletest

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/yamlpos"
)

// DefaultInterval is the step of a file that gives none.
const DefaultInterval = time.Minute

// Epoch is t=0 of every test, in unix ns: 2000-01-01T00:00:00Z. Only the
// offsets from it appear in test files and reports.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// File is a parsed test file. It is plain data; Run may be called on its
// tests any number of times.
type File struct {
	Path      string
	RuleFiles []string // as written, resolved against the test file's directory by Run
	Interval  time.Duration
	Tests     []*Test
}

// Test is one test of a file.
type Test struct {
	Name         string
	Pos          yamlpos.Error // where the test starts (Msg unused)
	Interval     time.Duration
	Until        time.Duration // the last step; Load fills in the default
	OnlyExpected bool
	// Labels are the sensors' labels, as the gateway config gives them
	// (sensor id → labels), for rules that select or group by labels.
	Labels map[string]map[string]string
	Input  []Series
	Expect []Expectation

	file *File
}

// Series is one input series: a sensor's metric, one sample per step.
type Series struct {
	Sensor  string
	Metric  string
	Samples []Sample
}

// Expectation is one alert transition a test expects. Empty fields (and a
// nil Value) match anything.
type Expectation struct {
	At          time.Duration
	Rule        string
	Fingerprint string
	Sensor      string // the alert's "sensor" label
	State       outpost.AlertState
	Severity    string
	Value       *float64          // compared with a relative tolerance of 1e-9
	Labels      map[string]string // each must be among the alert's labels
	Message     *string
	Line        int // where it is in the test file
}

// fileSpec is the YAML schema of a test file.
type fileSpec struct {
	RuleFiles []string      `yaml:"rule_files"`
	Interval  time.Duration `yaml:"interval"`
	Tests     []testSpec    `yaml:"tests"`
}

type testSpec struct {
	Name         string                       `yaml:"name"`
	Interval     time.Duration                `yaml:"interval"`
	Until        time.Duration                `yaml:"until"`
	OnlyExpected bool                         `yaml:"only_expected"`
	Labels       map[string]map[string]string `yaml:"labels"`
	Input        []seriesSpec                 `yaml:"input"`
	Expect       []expectSpec                 `yaml:"expect"`
}

// SetDefaults implements yamlpos.Defaulter.
func (t *testSpec) SetDefaults() { t.OnlyExpected = true }

type seriesSpec struct {
	Sensor string `yaml:"sensor"`
	Metric string `yaml:"metric"`
	Values string `yaml:"values"`
}

type expectSpec struct {
	At          time.Duration     `yaml:"at"`
	Rule        string            `yaml:"rule"`
	Fingerprint string            `yaml:"fingerprint"`
	Sensor      string            `yaml:"sensor"`
	State       string            `yaml:"state"`
	Severity    string            `yaml:"severity"`
	Value       *float64          `yaml:"value"`
	Labels      map[string]string `yaml:"labels"`
	Message     *string           `yaml:"message"`
}

// MaxFileBytes bounds a test file: a larger one is an error at its line
// 1, found before it is read, and so is a path that is not a regular file.
const MaxFileBytes = 1 << 20

// Load reads and parses the test file at path. See Parse.
func Load(path string) (*File, error) {
	data, err := yamlpos.ReadFile(path, MaxFileBytes)
	var list yamlpos.ErrorList
	if errors.As(err, &list) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("ruletest: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a test file; name is its path, used in errors and to
// resolve rule_files. A file with problems yields a yamlpos.ErrorList of
// all of them, each as file:line:col: message, and no File.
func Parse(name string, data []byte) (*File, error) {
	doc, err := yamlpos.Parse(name, data)
	if err != nil {
		return nil, err
	}
	spec := fileSpec{Interval: DefaultInterval}
	k := &checker{doc: doc, data: data}
	k.errs = doc.Decode(&spec)
	f := &File{Path: name, RuleFiles: spec.RuleFiles, Interval: spec.Interval}
	if len(spec.RuleFiles) == 0 {
		k.errorf("$.rule_files", "is required: the rules files the tests run")
	}
	for i, rf := range spec.RuleFiles {
		if strings.TrimSpace(rf) == "" {
			k.errorf("$.rule_files["+strconv.Itoa(i)+"]", "is empty")
		}
	}
	if f.Interval <= 0 {
		k.errorf("$.interval", "must be positive, got %v", f.Interval)
	}
	if len(spec.Tests) == 0 {
		k.errorf("$.tests", "is required: a file with no tests tests nothing")
	}
	for i := range spec.Tests {
		f.Tests = append(f.Tests, spec.Tests[i].compile(k, f, "$.tests["+strconv.Itoa(i)+"]"))
	}
	if err := k.errs.Err(); err != nil {
		return nil, err
	}
	return f, nil
}

// compile checks one test and builds it. Errors go to k.
func (s *testSpec) compile(k *checker, f *File, p string) *Test {
	t := &Test{Name: s.Name, Interval: s.Interval, OnlyExpected: s.OnlyExpected, Labels: s.Labels, file: f}
	if t.Name == "" {
		t.Name = yamlpos.Label(p)
	}
	line, col := k.doc.Pos(p)
	t.Pos = yamlpos.Error{File: k.doc.Name(), Line: line, Col: col}
	if t.Interval == 0 {
		t.Interval = f.Interval
	} else if t.Interval < 0 {
		k.errorf(p+".interval", "must be positive, got %v", t.Interval)
	}
	if len(s.Input) == 0 {
		k.errorf(p+".input", "is required: the readings the rules see")
	}
	steps := 0
	for i, in := range s.Input {
		ip := p + ".input[" + strconv.Itoa(i) + "]"
		if in.Sensor == "" {
			k.errorf(ip+".sensor", "is required")
		}
		if in.Metric == "" {
			k.errorf(ip+".metric", "is required")
		}
		samples, err := ParseValues(in.Values)
		switch {
		case in.Values == "" && !k.doc.Failed(ip+".values"):
			k.errorf(ip+".values", "is required, e.g. \"1 2 3x4 _ 5\"")
		case err != nil:
			k.valuesError(ip+".values", err)
		}
		steps = max(steps, len(samples))
		t.Input = append(t.Input, Series{Sensor: in.Sensor, Metric: in.Metric, Samples: samples})
	}
	// The test runs to its last sample or last expectation, whichever is later.
	last := time.Duration(max(steps-1, 0)) * t.Interval
	for i, e := range s.Expect {
		ep := p + ".expect[" + strconv.Itoa(i) + "]"
		line, _ := k.doc.Pos(ep)
		x := Expectation{At: e.At, Rule: e.Rule, Fingerprint: e.Fingerprint, Sensor: e.Sensor, Severity: e.Severity,
			Value: e.Value, Labels: e.Labels, Message: e.Message, Line: line}
		if e.State == "" {
			k.errorf(ep+".state", "is required (pending, firing, resolved, inactive or nodata)")
		} else if st, ok := outpost.ParseAlertState(e.State); ok {
			x.State = st
		} else {
			k.errorf(ep+".state", "unknown state %q (want pending, firing, resolved, inactive or nodata)", e.State)
		}
		if e.Rule == "" && e.Fingerprint == "" {
			k.errorf(ep+".rule", "is required (or fingerprint)")
		}
		switch {
		case e.At < 0:
			k.errorf(ep+".at", "must not be negative, got %v", e.At)
		case t.Interval > 0 && e.At%t.Interval != 0:
			k.errorf(ep+".at", "%v is not a step: transitions happen only at multiples of the interval (%v)", e.At, t.Interval)
		case s.Until > 0 && e.At > s.Until:
			k.errorf(ep+".at", "%v is after the test ends (until: %v)", e.At, s.Until)
		}
		last = max(last, e.At)
		t.Expect = append(t.Expect, x)
	}
	t.Until = last
	if s.Until < 0 {
		k.errorf(p+".until", "must not be negative, got %v", s.Until)
	} else if s.Until > 0 {
		t.Until = s.Until
	}
	if t.Interval > 0 && t.Until/t.Interval >= maxSamples {
		k.errorf(p+".until", "the test runs %d steps, more than %d", t.Until/t.Interval, maxSamples)
	}
	return t
}

// ruleFiles returns the rules files of f, resolved against the test
// file's directory, globs expanded.
func (f *File) ruleFiles() ([]string, error) {
	var paths []string
	dir := filepath.Dir(f.Path)
	for _, rf := range f.RuleFiles {
		p := rf
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if !strings.ContainsAny(rf, "*?[") {
			paths = append(paths, p)
			continue
		}
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("ruletest: %s: rule_files %q: %w", f.Path, rf, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("ruletest: %s: rule_files %q matches no file", f.Path, rf)
		}
		paths = append(paths, m...)
	}
	return paths, nil
}

// checker collects positioned errors, leaving out paths the decoder has
// already reported.
type checker struct {
	doc  *yamlpos.Doc
	data []byte
	errs yamlpos.ErrorList
}

func (k *checker) errorf(path, format string, args ...any) {
	if !k.doc.Failed(path) {
		k.errs = append(k.errs, k.doc.Errorf(path, format, args...))
	}
}

// valuesError reports a bad values string, positioned at the bad term
// when the file shows it where expected (a quoted or plain string on one
// line), else at the string.
func (k *checker) valuesError(path string, err error) {
	e := k.doc.Errorf(path, "%v", err)
	if ve, ok := err.(*ValuesError); ok && ve.Term != "" {
		e.Col = k.termCol(e.Line, e.Col, ve.Offset, ve.Term)
	}
	k.errs = append(k.errs, e)
}

// termCol returns the column of a term at offset within the scalar that
// starts at line:col, or col when the source line does not hold it there.
// go-yaml positions a quoted string at its opening quote.
func (k *checker) termCol(line, col, offset int, term string) int {
	lines := strings.SplitN(string(k.data), "\n", line+1)
	if line < 1 || line > len(lines) || col < 1 || col > len(lines[line-1]) {
		return col
	}
	src := lines[line-1][col-1:]
	q := 0
	if src[0] == '"' || src[0] == '\'' {
		q = 1
	}
	if q+offset <= len(src) && strings.HasPrefix(src[q+offset:], term) {
		return col + q + offset
	}
	return col
}
