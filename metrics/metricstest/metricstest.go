// Package metricstest parses the Prometheus text format strictly and
// checks the naming conventions Outpost's metrics follow, for tests of
// the /metrics endpoints and of the dashboards that use them.
package metricstest

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Sample is one line of a scrape.
type Sample struct {
	Name   string // with its _bucket, _sum or _count suffix for histograms
	Labels map[string]string
	Value  float64
}

// Family is the samples under one # TYPE line.
type Family struct {
	Name, Type, Help string
	Samples          []Sample
}

// Scrape is a parsed exposition, families by name.
type Scrape map[string]*Family

var (
	nameRE  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Parse reads the text format strictly: every sample belongs to a family
// declared before it by # HELP and # TYPE lines, a family's samples are
// together, a series appears once, and label values are quoted and
// escaped as the format says. Its errors give the line.
func Parse(text []byte) (Scrape, error) {
	s := Scrape{}
	var cur *Family
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d %q: %s", n, line, fmt.Sprintf(format, args...))
		}
		switch {
		case line == "":
			return nil, fail("empty line")
		case strings.HasPrefix(line, "# HELP "):
			name, help, _ := strings.Cut(line[len("# HELP "):], " ")
			if s[name] != nil {
				return nil, fail("family %s declared twice", name)
			}
			cur = &Family{Name: name, Help: help}
			s[name] = cur
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, _ := strings.Cut(line[len("# TYPE "):], " ")
			if cur == nil || cur.Name != name || cur.Type != "" {
				return nil, fail("# TYPE not right after the # HELP of %s", name)
			}
			if !slices.Contains([]string{"counter", "gauge", "histogram", "summary", "untyped"}, typ) {
				return nil, fail("unknown type %q", typ)
			}
			cur.Type = typ
		case strings.HasPrefix(line, "#"):
			return nil, fail("unexpected comment")
		default:
			sm, err := parseSample(line)
			if err != nil {
				return nil, fail("%v", err)
			}
			if cur == nil || cur.Type == "" || !belongs(cur, sm.Name) {
				return nil, fail("sample outside its family's block")
			}
			key := sm.Name + fmt.Sprint(sortedLabels(sm.Labels))
			if seen[key] {
				return nil, fail("series repeated")
			}
			seen[key] = true
			cur.Samples = append(cur.Samples, sm)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(text) > 0 && text[len(text)-1] != '\n' {
		return nil, fmt.Errorf("the last line has no line feed")
	}
	return s, nil
}

func belongs(f *Family, name string) bool {
	if f.Type == "histogram" {
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if name == f.Name+suf {
				return true
			}
		}
		return false
	}
	return name == f.Name
}

func sortedLabels(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

func parseSample(line string) (Sample, error) {
	sm := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return sm, fmt.Errorf("no value")
	}
	sm.Name = line[:i]
	if !nameRE.MatchString(sm.Name) {
		return sm, fmt.Errorf("bad metric name %q", sm.Name)
	}
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return sm, fmt.Errorf("bad label list")
			}
			k := rest[:eq]
			if !labelRE.MatchString(k) || strings.HasPrefix(k, "__") {
				return sm, fmt.Errorf("bad label name %q", k)
			}
			if _, dup := sm.Labels[k]; dup {
				return sm, fmt.Errorf("label %s twice", k)
			}
			rest = rest[eq+2:]
			var v strings.Builder
			closed := false
			for j := 0; j < len(rest); j++ {
				c := rest[j]
				if c == '"' {
					rest, closed = rest[j+1:], true
					break
				}
				if c == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case '\\':
						v.WriteByte('\\')
					case '"':
						v.WriteByte('"')
					case 'n':
						v.WriteByte('\n')
					default:
						return sm, fmt.Errorf("bad escape in label %s", k)
					}
					continue
				}
				v.WriteByte(c)
			}
			if !closed {
				return sm, fmt.Errorf("unterminated label value")
			}
			sm.Labels[k] = v.String()
			if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
			} else if !strings.HasPrefix(rest, "}") {
				return sm, fmt.Errorf("bad label list")
			}
		}
	}
	if !strings.HasPrefix(rest, " ") {
		return sm, fmt.Errorf("no space before the value")
	}
	val := rest[1:]
	if strings.Contains(val, " ") {
		return sm, fmt.Errorf("timestamps are not written")
	}
	v, err := strconv.ParseFloat(val, 64)
	if err != nil {
		return sm, fmt.Errorf("bad value %q", val)
	}
	sm.Value = v
	return sm, nil
}

// nonBaseUnits are name parts that say a unit other than the base units
// Prometheus asks for (seconds, bytes, ratios, Celsius…).
var nonBaseUnits = []string{"milliseconds", "microseconds", "nanoseconds", "ms", "us", "ns", "minutes", "hours", "days",
	"kilobytes", "megabytes", "gigabytes", "kb", "mb", "gb", "kib", "mib", "bits", "percent", "millis"}

// Lint checks Prometheus's naming conventions on every family, and
// returns a line per problem: a name starts with outpost_, go_ or
// process_; counters end in _total and nothing else does; names say no
// unit but a base unit; every family has help text; a histogram's
// buckets are cumulative and end in +Inf equal to its _count.
func Lint(s Scrape) []string {
	var probs []string
	bad := func(f *Family, format string, args ...any) {
		probs = append(probs, f.Name+": "+fmt.Sprintf(format, args...))
	}
	for _, name := range s.Names() {
		f := s[name]
		if !strings.HasPrefix(name, "outpost_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			bad(f, "name must start with outpost_, go_ or process_")
		}
		if strings.TrimSpace(f.Help) == "" {
			bad(f, "no help text")
		}
		if (f.Type == "counter") != strings.HasSuffix(name, "_total") {
			bad(f, "type %s: counters, and only counters, end in _total", f.Type)
		}
		for _, part := range strings.Split(name, "_") {
			if slices.Contains(nonBaseUnits, part) {
				bad(f, "unit %q is not a base unit", part)
			}
		}
		for _, suf := range []string{"_count", "_sum", "_bucket"} {
			if strings.HasSuffix(name, suf) {
				bad(f, "name ends in the reserved %s", suf)
			}
		}
		if f.Type == "histogram" {
			probs = append(probs, lintHistogram(f)...)
		}
	}
	return probs
}

func lintHistogram(f *Family) []string {
	type series struct {
		last, inf, count float64
		hasInf, hasCount bool
	}
	all := map[string]*series{}
	get := func(sm Sample) *series {
		ls := map[string]string{}
		for k, v := range sm.Labels {
			if k != "le" {
				ls[k] = v
			}
		}
		key := fmt.Sprint(sortedLabels(ls))
		if all[key] == nil {
			all[key] = &series{last: math.Inf(-1)}
		}
		return all[key]
	}
	var probs []string
	for _, sm := range f.Samples {
		s := get(sm)
		switch sm.Name {
		case f.Name + "_bucket":
			if sm.Labels["le"] == "+Inf" {
				s.inf, s.hasInf = sm.Value, true
			}
			if sm.Value < s.last {
				probs = append(probs, f.Name+": buckets are not cumulative")
			}
			s.last = sm.Value
		case f.Name + "_count":
			s.count, s.hasCount = sm.Value, true
		}
	}
	for k, s := range all {
		if !s.hasInf || !s.hasCount || s.inf != s.count {
			probs = append(probs, fmt.Sprintf("%s%s: +Inf bucket %v, _count %v", f.Name, k, s.inf, s.count))
		}
	}
	return probs
}

// Names are the families' names, sorted.
func (s Scrape) Names() []string {
	var out []string
	for n := range s {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Value is the value of the sample of family name whose labels include
// all of the given pairs (name, value, …), and whether there is one; with
// several, the first.
func (s Scrape) Value(name string, labels ...string) (float64, bool) {
	f := s.family(name)
	if f == nil {
		return 0, false
	}
next:
	for _, sm := range f.Samples {
		if sm.Name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if sm.Labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return sm.Value, true
	}
	return 0, false
}

// family is the family of a sample name: name itself, or the histogram
// whose _bucket, _sum or _count it is.
func (s Scrape) family(name string) *Family {
	if f := s[name]; f != nil {
		return f
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if f := s[strings.TrimSuffix(name, suf)]; f != nil && f.Type == "histogram" {
			return f
		}
	}
	return nil
}

// Sum is the sum of the samples of family name (for a histogram, of its
// _count series) whose labels include the given pairs.
func (s Scrape) Sum(name string, labels ...string) float64 {
	f := s[name]
	if f == nil {
		return 0
	}
	want := name
	if f.Type == "histogram" {
		want = name + "_count"
	}
	var sum float64
next:
	for _, sm := range f.Samples {
		if sm.Name != want {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if sm.Labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		sum += sm.Value
	}
	return sum
}
