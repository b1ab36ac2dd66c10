package rules_test

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
	"github.com/outposthq/outpost/rules/ruletest"
)

// The generator of the property test (property_test.go): random rules
// files, written as YAML so that they go through rules.Parse, and random
// reading streams for them. Everything comes from one seed.

// The sensors of every generated case and their labels, as a gateway
// config would give them; s4 has none, so a group_by label can be empty.
var (
	propSensors      = []string{"s1", "s2", "s3", "s4"}
	propMetrics      = []string{"temp", "hum"}
	propSensorLabels = map[string]map[string]string{
		"s1": {"device": "d1", "room": "a"},
		"s2": {"device": "d1", "room": "b"},
		"s3": {"device": "d2", "room": "a"},
	}
)

// propCase is one generated input: a rules file, a reading stream, and
// what the restore and replay checks vary.
type propCase struct {
	seed    uint64
	rules   []genRule
	gateway string
	stream  []outpost.Reading // in time order; same-time readings in feed order
	cuts    []int64           // the restore check restarts the engine before the first call after each
	reorder time.Duration     // the replay check's reorder window

	set  *rules.Set // parsed from yaml(); nil until parsed
	runA *propRun   // the plain run, computed once
}

// genRule is a generated rule, kept as data so that checks can evaluate
// its threshold levels on their own.
type genRule struct {
	name         string
	metrics      []string // one: select.metric; two: select.metrics
	sensor       string   // select.sensor: "" (all), an id or a glob
	room         string   // select.labels.room, "" for none
	groupBy      []string // nil: the default, [sensor]
	levels       []genLevel
	keepFiring   time.Duration
	repeat       time.Duration
	noData       *genNoData
	sendResolved *bool
	team         string // labels.team, "" for none
	message      string // "" for the default
}

type genLevel struct {
	severity   string // "" only for a rule of one level: the default
	above      *float64
	below      *float64
	resetBelow *float64
	resetAbove *float64
	cond       string // an expression, instead of above/below
	reset      string
	forD       time.Duration
}

type genNoData struct {
	after    time.Duration
	state    string // "" (nodata), nodata, firing or resolved
	severity string // "" for the default
}

// genCase generates the case of one seed. readings is about how many
// readings the stream has.
func genCase(seed uint64, readings int) *propCase {
	rng := rand.New(rand.NewPCG(0x0a17, seed))
	c := &propCase{seed: seed, reorder: pick(rng, 2*time.Second, 10*time.Second, time.Minute)}
	if rng.IntN(3) == 0 {
		c.gateway = "gw1"
	}
	for i := range 1 + rng.IntN(4) {
		c.rules = append(c.rules, genOneRule(rng, "r"+strconv.Itoa(i)))
	}
	c.stream = genStream(rng, readings)
	for range rng.IntN(4) {
		r := c.stream[rng.IntN(len(c.stream))]
		c.cuts = append(c.cuts, r.TS-int64(rng.IntN(2))) // after the tick at r.TS, or before its readings
	}
	return c
}

func genOneRule(rng *rand.Rand, name string) genRule {
	r := genRule{name: name, metrics: []string{pick(rng, propMetrics...)}}
	switch rng.IntN(10) {
	case 0:
		r.sensor = "s1"
	case 1:
		r.sensor = "s[12]"
	case 2:
		r.sensor = "s*"
	case 3:
		r.room = "a"
	}
	switch rng.IntN(8) {
	case 0, 1:
		r.groupBy = []string{"device"}
	case 2:
		r.groupBy = []string{"metric"}
	case 3:
		r.groupBy = []string{"sensor", "metric"}
	case 4:
		r.groupBy = []string{"room"}
	}
	if rng.IntN(3) == 0 {
		r.levels = genExprLevels(rng, &r)
	} else {
		r.levels = genThresholdLevels(rng)
	}
	if rng.IntN(3) == 0 {
		r.keepFiring = pick(rng, time.Second, 3*time.Second, 10*time.Second, 1500*time.Millisecond)
	}
	if rng.IntN(3) == 0 {
		r.repeat = pick(rng, 2*time.Second, 5*time.Second, 20*time.Second, time.Minute)
	}
	if rng.IntN(2) == 0 {
		nd := &genNoData{
			after: pick(rng, 2*time.Second, 5*time.Second, 10*time.Second, 30*time.Second, 2500*time.Millisecond),
			state: pick(rng, "", "nodata", "firing", "firing", "resolved"),
		}
		switch rng.IntN(3) {
		case 0:
			nd.severity = "stale"
		case 1:
			nd.severity = r.levels[rng.IntN(len(r.levels))].severity
		}
		r.noData = nd
	}
	if rng.IntN(3) == 0 {
		b := rng.IntN(3) != 0 // mostly false: the interesting one
		r.sendResolved = &b
	}
	if rng.IntN(3) == 0 {
		r.team = "t" + strconv.Itoa(rng.IntN(3))
	}
	if rng.IntN(4) == 0 {
		r.message = "{{ .State }} {{ .Severity }} {{ .Sensor }} {{ .Metric }} {{ .Value }} since {{ .Since.Format \"15:04:05.000\" }} for {{ .Duration }}/{{ .For }}"
	}
	return r
}

// genThresholdLevels makes above/below levels, most severe first: for
// above, the most severe has the highest threshold (and the reverse for
// below), except in some rules whose levels are in no order at all.
func genThresholdLevels(rng *rand.Rand) []genLevel {
	n := pick(rng, 1, 1, 1, 2, 2, 3)
	above := rng.IntN(5) < 3
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = float64(20 + 10*rng.IntN(7))
		if rng.IntN(4) == 0 {
			xs[i] += 2.5
		}
	}
	mixed := n > 1 && rng.IntN(8) == 0
	if !mixed { // most severe first
		slices.Sort(xs)
		if above {
			slices.Reverse(xs)
		}
	}
	sevs := []string{"critical", "major", "minor"}
	ls := make([]genLevel, n)
	for i := range ls {
		l := &ls[i]
		l.severity = sevs[i]
		if n == 1 {
			l.severity = pick(rng, "", "", "critical", "info")
		}
		up := above
		if mixed {
			up = rng.IntN(2) == 0
		}
		x := xs[i]
		if up {
			l.above = &x
		} else {
			l.below = &x
		}
		if rng.IntN(2) == 0 {
			d := pick(rng, 0, 2.5, 5, 10, 20)
			if up {
				y := x - d
				l.resetBelow = &y
			} else {
				y := x + d
				l.resetAbove = &y
			}
		}
		l.forD = pick(rng, 0, 0, time.Second, 2*time.Second, 3*time.Second, 5*time.Second, 10*time.Second, 30*time.Second, 500*time.Millisecond, 1500*time.Millisecond)
	}
	return ls
}

// genExprLevels makes one or two levels with expression conditions:
// windows over the rule's metric, or a join of both metrics (then the
// rule selects both).
func genExprLevels(rng *rand.Rand, r *genRule) []genLevel {
	n := pick(rng, 1, 1, 2)
	ls := make([]genLevel, n)
	join := rng.IntN(4) == 0
	if join {
		r.metrics = []string{"temp", "hum"}
	}
	m := r.metrics[0]
	for i := range ls {
		l := &ls[i]
		l.severity = []string{"critical", "minor"}[i]
		if n == 1 && rng.IntN(2) == 0 {
			l.severity = ""
		}
		x := float64(30 + 10*rng.IntN(5) - 10*i)
		w := strconv.Quote(pick(rng, "5s", "10s", "30s", "1m"))
		if join {
			switch rng.IntN(3) {
			case 0:
				l.cond = fmt.Sprintf("temp > %g && hum > %g", x, x-10)
			case 1:
				l.cond = fmt.Sprintf("temp > %g || hum < %g", x+20, x-20)
			default:
				l.cond = fmt.Sprintf("temp > %g && age(hum) < 5", x)
			}
		} else {
			switch rng.IntN(6) {
			case 0:
				l.cond = fmt.Sprintf("avg(%s, %s) > %g", m, w, x)
				if rng.IntN(2) == 0 {
					l.reset = fmt.Sprintf("avg(%s, %s) < %g", m, w, x-10)
				}
			case 1:
				l.cond = fmt.Sprintf("max(%s, %s) > %g", m, w, x+20)
			case 2:
				l.cond = fmt.Sprintf("min(%s, %s) < %g", m, w, x-10)
			case 3:
				l.cond = fmt.Sprintf("count(%s, %s) >= %d", m, w, 2+rng.IntN(5)-i)
			case 4:
				l.cond = fmt.Sprintf("rate(%s, %s) > %g", m, w, pick(rng, -1.0, 0, 1, 3))
			default:
				l.cond = fmt.Sprintf("value > %g && %s > %g", x, m, x-5)
				if rng.IntN(2) == 0 {
					l.reset = fmt.Sprintf("value < %g", x-10)
				}
			}
		}
		l.forD = pick(rng, 0, 0, time.Second, 3*time.Second, 10*time.Second)
	}
	return ls
}

// genStream makes about n readings of a few series of propSensors and
// propMetrics: random walks around the thresholds with jumps, mostly a
// second apart, sometimes at the same time, sometimes after gaps longer
// than any no_data.after, series that go quiet for a while, an
// occasional NaN and an occasional second reading of a series at one
// time. Some streams have times off the whole second.
func genStream(rng *rand.Rand, n int) []outpost.Reading {
	var all []*genSeries
	for _, s := range propSensors {
		for _, m := range propMetrics {
			all = append(all, &genSeries{sensor: s, metric: m, v: float64(10 + rng.IntN(81))})
		}
	}
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	active := all[:2+rng.IntN(4)]
	// Within one time, series report in one order, as in a rules test file.
	slices.SortFunc(active, func(a, b *genSeries) int {
		return cmp.Or(cmp.Compare(a.sensor, b.sensor), cmp.Compare(a.metric, b.metric))
	})
	subsecond := rng.IntN(4) == 0
	sec := int64(time.Second)
	t := ruletest.Epoch
	var out []outpost.Reading
	for len(out) < n {
		var gap int64
		switch p := rng.Float64(); {
		case len(out) == 0:
		case p < 0.6:
			gap = sec
		case p < 0.7:
			gap = 0
		case p < 0.85:
			gap = int64(2+rng.IntN(4)) * sec
		case p < 0.95:
			gap = int64(6+rng.IntN(35)) * sec
		default:
			gap = int64(41+rng.IntN(160)) * sec
		}
		if subsecond && gap > 0 {
			gap = max(1, gap+rng.Int64N(sec)-sec/2)
		}
		t += gap
		any := false
		for _, s := range active {
			if rng.IntN(100) == 0 {
				s.quietUntil = t + int64(10+rng.IntN(110))*sec
			}
			if t < s.quietUntil || rng.IntN(10) >= 6 {
				continue
			}
			any = true
			out = append(out, s.next(rng, t))
			if rng.IntN(200) == 0 {
				out = append(out, s.next(rng, t)) // the same series twice at one time
			}
		}
		if !any && len(out) == 0 {
			out = append(out, active[0].next(rng, t))
		}
	}
	return out
}

// genSeries is a series of a generated stream.
type genSeries struct {
	sensor, metric string
	v              float64
	quietUntil     int64
}

// next is the series' next reading at t: a step of a random walk, a
// jump now and then, on a grid of 0.5 so that values hit thresholds.
func (s *genSeries) next(rng *rand.Rand, t int64) outpost.Reading {
	if rng.IntN(20) == 0 {
		s.v = float64(rng.IntN(101))
	} else {
		s.v = min(110, max(-10, s.v+rng.NormFloat64()*4))
	}
	s.v = math.Round(s.v*2) / 2
	v := s.v
	if rng.IntN(200) == 0 {
		v = math.NaN()
	}
	return outpost.Reading{Sensor: s.sensor, Metric: s.metric, TS: t, Value: v}
}

// yaml renders the rules file of c.
func (c *propCase) yaml() string { return rulesYAML(c.rules) }

func rulesYAML(rs []genRule) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range rs {
		rs[i].writeYAML(&b)
	}
	return b.String()
}

func (r *genRule) writeYAML(b *strings.Builder) {
	fmt.Fprintf(b, "  - name: %s\n", r.name)
	var sel []string
	if len(r.metrics) == 1 {
		sel = append(sel, "metric: "+r.metrics[0])
	} else {
		sel = append(sel, "metrics: ["+strings.Join(r.metrics, ", ")+"]")
	}
	if r.sensor != "" {
		sel = append(sel, "sensor: "+strconv.Quote(r.sensor))
	}
	if r.room != "" {
		sel = append(sel, "labels: {room: "+r.room+"}")
	}
	fmt.Fprintf(b, "    select: {%s}\n", strings.Join(sel, ", "))
	if r.groupBy != nil {
		fmt.Fprintf(b, "    group_by: [%s]\n", strings.Join(r.groupBy, ", "))
	}
	if len(r.levels) == 1 {
		for _, f := range r.levels[0].fields() {
			fmt.Fprintf(b, "    %s\n", f)
		}
	} else {
		b.WriteString("    levels:\n")
		for _, l := range r.levels {
			fmt.Fprintf(b, "      - {%s}\n", strings.Join(l.fields(), ", "))
		}
	}
	if r.keepFiring > 0 {
		fmt.Fprintf(b, "    keep_firing_for: %v\n", r.keepFiring)
	}
	if nd := r.noData; nd != nil {
		f := []string{"after: " + nd.after.String()}
		if nd.state != "" {
			f = append(f, "state: "+nd.state)
		}
		if nd.severity != "" {
			f = append(f, "severity: "+nd.severity)
		}
		fmt.Fprintf(b, "    no_data: {%s}\n", strings.Join(f, ", "))
	}
	if r.repeat > 0 {
		fmt.Fprintf(b, "    repeat: %v\n", r.repeat)
	}
	if r.sendResolved != nil {
		fmt.Fprintf(b, "    send_resolved: %t\n", *r.sendResolved)
	}
	if r.team != "" {
		fmt.Fprintf(b, "    labels: {team: %s}\n", r.team)
	}
	// The checks read the state each alert leaves from .Previous.
	b.WriteString("    annotations: {prev: \"{{ .Previous }}\"}\n")
	if r.message != "" {
		fmt.Fprintf(b, "    message: %s\n", strconv.Quote(r.message))
	}
}

// fields are the level's YAML fields, "key: value" each.
func (l *genLevel) fields() []string {
	var f []string
	if l.severity != "" {
		f = append(f, "severity: "+l.severity)
	}
	num := func(k string, x *float64) {
		if x != nil {
			f = append(f, k+": "+strconv.FormatFloat(*x, 'g', -1, 64))
		}
	}
	num("above", l.above)
	num("below", l.below)
	if l.cond != "" {
		f = append(f, "condition: '"+l.cond+"'")
	}
	if l.forD > 0 {
		f = append(f, "for: "+l.forD.String())
	}
	num("reset_below", l.resetBelow)
	num("reset_above", l.resetAbove)
	if l.reset != "" {
		f = append(f, "reset: '"+l.reset+"'")
	}
	return f
}

// The model of a generated rule, for the checks.

// threshold reports whether every level is above or below, so that a
// check can tell on its own whether a level's condition holds.
func (r *genRule) threshold() bool {
	if len(r.metrics) != 1 {
		return false
	}
	for _, l := range r.levels {
		if l.above == nil && l.below == nil {
			return false
		}
	}
	return true
}

// windowed reports whether a condition of the rule reads state that a
// restart does not keep: windows, and the latest value of another metric.
func (r *genRule) windowed() bool {
	if len(r.metrics) > 1 {
		return true
	}
	for _, l := range r.levels {
		if l.cond != "" && !strings.HasPrefix(l.cond, "value > ") {
			return true
		}
		if l.reset != "" && !strings.HasPrefix(l.reset, "value < ") {
			return true
		}
	}
	return false
}

// holds reports whether level i's condition holds for v (threshold
// levels only).
func (r *genRule) holds(i int, v float64) bool {
	l := &r.levels[i]
	if l.above != nil {
		return v > *l.above
	}
	return v < *l.below
}

func (r *genRule) severity(i int) string {
	if s := r.levels[i].severity; s != "" {
		return s
	}
	return rules.DefaultSeverity
}

// level returns the index of the level of severity s, or -1.
func (r *genRule) level(s string) int {
	for i := range r.levels {
		if r.severity(i) == s {
			return i
		}
	}
	return -1
}

func (r *genRule) sendsResolved() bool { return r.sendResolved == nil || *r.sendResolved }

// noDataSeverity is the severity no_data fires at, "" without no_data.
func (r *genRule) noDataSeverity() string {
	if r.noData == nil {
		return ""
	}
	if r.noData.severity != "" {
		return r.noData.severity
	}
	return r.severity(0)
}

// fingerprint returns the fingerprint of the instance a reading feeds,
// and false if the rule does not select it.
func (r *genRule) fingerprint(rd *outpost.Reading) (string, bool) {
	if !slices.Contains(r.metrics, rd.Metric) {
		return "", false
	}
	if r.sensor != "" {
		if ok, _ := path.Match(r.sensor, rd.Sensor); !ok {
			return "", false
		}
	}
	labels := propSensorLabels[rd.Sensor]
	if r.room != "" && labels["room"] != r.room {
		return "", false
	}
	fp := r.name
	groupBy := r.groupBy
	if groupBy == nil {
		groupBy = []string{"sensor"}
	}
	for _, g := range groupBy {
		switch g {
		case "sensor":
			fp += "/" + rd.Sensor
		case "metric":
			fp += "/" + rd.Metric
		default:
			fp += "/" + labels[g]
		}
	}
	return fp, true
}

func pick[T any](rng *rand.Rand, xs ...T) T { return xs[rng.IntN(len(xs))] }
