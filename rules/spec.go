package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost"
)

// fileSpec is the YAML schema of a rules file.
type fileSpec struct {
	Rules []ruleSpec `yaml:"rules"`
}

type ruleSpec struct {
	Name          string            `yaml:"name"`
	Select        selectSpec        `yaml:"select"`
	GroupBy       []string          `yaml:"group_by"`
	Levels        []levelSpec       `yaml:"levels"`
	KeepFiringFor time.Duration     `yaml:"keep_firing_for"`
	NoData        *noDataSpec       `yaml:"no_data"`
	Repeat        time.Duration     `yaml:"repeat"`
	SendResolved  *bool             `yaml:"send_resolved"`
	Message       string            `yaml:"message"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`

	// The level fields, for a rule of one level.
	Severity   string        `yaml:"severity"`
	Above      *float64      `yaml:"above"`
	Below      *float64      `yaml:"below"`
	Condition  string        `yaml:"condition"`
	For        time.Duration `yaml:"for"`
	ResetBelow *float64      `yaml:"reset_below"`
	ResetAbove *float64      `yaml:"reset_above"`
	Reset      string        `yaml:"reset"`
}

type levelSpec struct {
	Severity   string        `yaml:"severity"`
	Above      *float64      `yaml:"above"`
	Below      *float64      `yaml:"below"`
	Condition  string        `yaml:"condition"`
	For        time.Duration `yaml:"for"`
	ResetBelow *float64      `yaml:"reset_below"`
	ResetAbove *float64      `yaml:"reset_above"`
	Reset      string        `yaml:"reset"`
}

type selectSpec struct {
	Metric  string            `yaml:"metric"`
	Metrics []string          `yaml:"metrics"`
	Sensor  string            `yaml:"sensor"`
	Labels  map[string]string `yaml:"labels"`
}

type noDataSpec struct {
	After    time.Duration `yaml:"after"`
	State    string        `yaml:"state"`
	Severity string        `yaml:"severity"`
}

// SetDefaults implements yamlpos.Defaulter.
func (s *ruleSpec) SetDefaults() { s.Severity = DefaultSeverity }

// levelFields are the level fields at the top of a rule, which levels
// replaces.
var levelFields = []string{"above", "below", "condition", "for", "reset_below", "reset_above", "reset"}

// compile checks one rule (except its name, checked by Parse with the
// others) and builds it. Errors go to k.
func (s *ruleSpec) compile(k *checker, p string) *Rule {
	r := &Rule{
		Name:          s.Name,
		GroupBy:       s.GroupBy,
		KeepFiringFor: s.KeepFiringFor,
		Repeat:        s.Repeat,
		SendResolved:  s.SendResolved == nil || *s.SendResolved,
		Message:       s.Message,
		Labels:        s.Labels,
		Annotations:   s.Annotations,
	}
	if len(r.GroupBy) == 0 {
		r.GroupBy = []string{LabelSensor}
	}
	r.Select = s.compileSelect(k, p)
	for i, g := range s.GroupBy {
		gp := p + ".group_by[" + strconv.Itoa(i) + "]"
		if !validName(g) {
			k.errorf(gp, "%q is not a valid label name (use 1 to %d of A-Z a-z 0-9 _ . -)", g, maxNameLen)
		} else if g == LabelGateway {
			k.errorf(gp, "every alert of a gateway has the same %q: group by something else", g)
		} else if indexOf(s.GroupBy[:i], g) >= 0 {
			k.errorf(gp, "%q is listed twice", g)
		}
	}

	xc := newExprCompiler(r.Select.Metrics)
	if len(s.Levels) > 0 {
		for _, f := range append(levelFields, "severity") {
			if k.doc.Has(p + "." + f) {
				k.keyErrorf(p+"."+f, "goes in each level when levels are given")
			}
		}
		seen := map[string]int{}
		for i := range s.Levels {
			lp := p + ".levels[" + strconv.Itoa(i) + "]"
			l := s.Levels[i].compile(k, lp, xc)
			if k.name(lp+".severity", l.Severity) {
				if j, dup := seen[l.Severity]; dup {
					k.errorf(lp+".severity", "severity %q is used by levels[%d] too", l.Severity, j)
				}
				seen[l.Severity] = i
			}
			r.Levels = append(r.Levels, l)
		}
	} else {
		ls := levelSpec{s.Severity, s.Above, s.Below, s.Condition, s.For, s.ResetBelow, s.ResetAbove, s.Reset}
		l := ls.compile(k, p, xc)
		k.name(p+".severity", l.Severity)
		r.Levels = []Level{l}
	}
	r.windows, r.calls = xc.windows, xc.calls
	r.Condition, r.For, r.Severity = r.Levels[0].Condition, r.Levels[0].For, r.Levels[0].Severity

	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"keep_firing_for", s.KeepFiringFor}, {"repeat", s.Repeat}} {
		if f.d < 0 {
			k.errorf(p+"."+f.name, "must not be negative, got %v", f.d)
		}
	}
	if nd := s.NoData; nd != nil {
		np := p + ".no_data"
		r.NoData = &NoData{After: nd.After, Severity: nd.Severity}
		if nd.After <= 0 {
			k.errorf(np+".after", "must be positive, got %v", nd.After)
		}
		switch nd.State {
		case "", "nodata":
			r.NoData.State = outpost.StateNoData
		case "firing":
			r.NoData.State = outpost.StateFiring
		case "resolved":
			r.NoData.State = outpost.StateResolved
		default:
			k.errorf(np+".state", "%q is not one of nodata, firing, resolved", nd.State)
		}
		if nd.Severity == "" {
			r.NoData.Severity = r.Severity
		} else {
			k.name(np+".severity", nd.Severity)
		}
	}
	for key := range s.Labels {
		switch {
		case key == LabelSensor || key == LabelMetric || key == LabelGateway:
			k.keyErrorf(p+".labels."+key, "label %q is set by the engine", key)
		case !validName(key):
			k.keyErrorf(p+".labels."+key, "%q is not a valid label name (use 1 to %d of A-Z a-z 0-9 _ . -)", key, maxNameLen)
		}
	}
	msg, err := compileMessage(r, r.Message)
	if err != nil {
		k.errorf(p+".message", "%v", err)
	}
	r.msg = msg
	if len(s.Annotations) > outpost.MaxAlertAnnotations {
		k.errorf(p+".annotations", "%d annotations, at most %d travel with an alert", len(s.Annotations), outpost.MaxAlertAnnotations)
	}
	for _, key := range sortedKeys(s.Annotations) {
		if !validName(key) {
			k.keyErrorf(p+".annotations."+key, "%q is not a valid annotation name (use 1 to %d of A-Z a-z 0-9 _ . -)", key, maxNameLen)
		}
		m, err := compileMessage(r, s.Annotations[key])
		if err != nil {
			k.errorf(p+".annotations."+key, "%v", err)
			continue
		}
		r.annos = append(r.annos, annotation{name: key, msg: m})
	}
	r.hash = s.hash(r)
	return r
}

func (s *ruleSpec) compileSelect(k *checker, p string) Selector {
	sel := Selector{Metric: s.Select.Metric, Sensor: s.Select.Sensor, Labels: s.Select.Labels}
	sp := p + ".select"
	switch {
	case s.Select.Metric != "" && len(s.Select.Metrics) > 0:
		k.errorf(sp+".metrics", "only one of metric and metrics may be set")
	case len(s.Select.Metrics) > 0:
		for i, m := range s.Select.Metrics {
			mp := sp + ".metrics[" + strconv.Itoa(i) + "]"
			if k.name(mp, m) && indexOf(s.Select.Metrics[:i], m) >= 0 {
				k.errorf(mp, "%q is listed twice", m)
			}
		}
		sel.Metrics = s.Select.Metrics
		if len(sel.Metrics) == 1 {
			sel.Metric = sel.Metrics[0]
		}
	default:
		k.name(sp+".metric", s.Select.Metric)
		sel.Metrics = []string{s.Select.Metric}
	}
	if sn := s.Select.Sensor; sn != "" {
		if strings.ContainsAny(sn, "*?[\\") {
			if _, err := path.Match(sn, ""); err != nil || strings.Contains(sn, "/") {
				k.errorf(sp+".sensor", "%q is not a valid glob", sn)
			}
		} else {
			k.name(sp+".sensor", sn)
		}
	}
	for key := range s.Select.Labels {
		if !validName(key) {
			k.keyErrorf(sp+".labels."+key, "%q is not a valid label name (use 1 to %d of A-Z a-z 0-9 _ . -)", key, maxNameLen)
		}
	}
	return sel
}

// compile checks one level, at path p (a level, or the rule itself).
func (s *levelSpec) compile(k *checker, p string, xc *exprCompiler) Level {
	l := Level{Severity: s.Severity, For: s.For}
	n := 0
	for _, given := range []bool{s.Above != nil, s.Below != nil, s.Condition != ""} {
		if given {
			n++
		}
	}
	switch {
	case n > 1:
		at := p + ".below"
		if s.Condition != "" {
			at = p + ".condition"
		}
		k.errorf(at, "only one of above, below and condition may be set")
	case s.Above != nil:
		l.cond = threshold{above: true, x: *s.Above}
	case s.Below != nil:
		l.cond = threshold{x: *s.Below}
	case s.Condition != "":
		l.cond = xc.compile(k, p+".condition", s.Condition)
	default:
		k.errorf(p+".above", "one of above, below or condition is required")
	}
	if l.cond != nil {
		l.Condition = l.cond.String()
	}
	resets := 0
	for _, given := range []bool{s.ResetBelow != nil, s.ResetAbove != nil, s.Reset != ""} {
		if given {
			resets++
		}
	}
	switch {
	case resets > 1:
		k.errorf(p+".reset", "only one of reset_below, reset_above and reset may be set")
	case s.ResetBelow != nil:
		switch {
		case s.Above == nil:
			k.errorf(p+".reset_below", "goes with above")
		case *s.ResetBelow > *s.Above:
			k.errorf(p+".reset_below", "must not be above %g (above), got %g", *s.Above, *s.ResetBelow)
		default:
			l.reset = threshold{x: *s.ResetBelow}
		}
	case s.ResetAbove != nil:
		switch {
		case s.Below == nil:
			k.errorf(p+".reset_above", "goes with below")
		case *s.ResetAbove < *s.Below:
			k.errorf(p+".reset_above", "must not be below %g (below), got %g", *s.Below, *s.ResetAbove)
		default:
			l.reset = threshold{above: true, x: *s.ResetAbove}
		}
	case s.Reset != "":
		if s.Condition == "" {
			k.errorf(p+".reset", "goes with condition (use reset_below or reset_above with a threshold)")
		} else {
			l.reset = xc.compile(k, p+".reset", s.Reset)
		}
	}
	if l.reset != nil {
		l.Reset = l.reset.String()
	}
	if s.For < 0 {
		k.errorf(p+".for", "must not be negative, got %v", s.For)
	}
	return l
}

// hash hashes the spec with defaults filled in, as JSON (whose map keys
// are sorted), so that layout, key order and comments do not count.
func (s *ruleSpec) hash(r *Rule) string {
	n := *s
	n.GroupBy = r.GroupBy
	sr := r.SendResolved
	n.SendResolved = &sr
	if len(n.Select.Metrics) == 1 {
		n.Select.Metric, n.Select.Metrics = n.Select.Metrics[0], nil
	}
	if nd := n.NoData; nd != nil && nd.State == "" {
		c := *nd
		c.State = "nodata"
		n.NoData = &c
	}
	b, err := json.Marshal(&n)
	if err != nil {
		return "" // cannot happen: the spec is plain data of finite numbers
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// matchSensor matches an exact id or a glob; "" matches all.
func matchSensor(pattern, sensor string) bool {
	if pattern == "" || pattern == sensor {
		return true
	}
	if !strings.ContainsAny(pattern, "*?[\\") {
		return false
	}
	ok, _ := path.Match(pattern, sensor)
	return ok
}
