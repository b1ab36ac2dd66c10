package rules

import (
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// MessageData is what a rule's message template sees, e.g.
// "{{ .Sensor }} {{ .Metric }} is {{ .Value }}". Missing labels render
// as "". A rule with no message gets
// "{Sensor} {Metric} is {Value} ({Rule}: {Condition})".
//
// One template renders every transition of a rule, so a template that
// reads well for each branches on State, e.g.
// `{{ if eq .State "resolved" }}back to {{ .Value }}{{ else }}{{ .Value }}, above 25 for {{ .Duration }}{{ end }}`.
type MessageData struct {
	Rule     string
	Sensor   string
	Metric   string
	Value    float64
	Severity string
	// State is the transition being emitted: pending, firing (also a
	// change of level and a repeat), resolved, inactive (pending that
	// cleared before firing) or nodata.
	State string
	// Previous is the state the instance leaves: inactive, pending,
	// firing or nodata ("firing" for a change of level and a repeat).
	Previous string
	// Since is when the episode began: the instance went pending (or
	// straight to firing, or to nodata), in UTC; Alert.StartedAt.
	Since time.Time
	// Duration is how long the episode has lasted at this transition,
	// from Since: rounded to the second, or to the millisecond when
	// shorter than a second. 0 for pending.
	Duration time.Duration
	// For is the `for` of the level the alert is at (no_data's after for
	// a nodata alert, one that no_data fired, and the resolved that ends
	// either).
	For     time.Duration
	Gateway string            // "" unless the engine was given one
	Labels  map[string]string // the alert's labels (group labels included)
	// Annotations are the rule's annotations, rendered; an annotation's
	// own template sees the ones before it in name order.
	Annotations map[string]string
}

// annotation is one of a rule's annotations, compiled.
type annotation struct {
	name string
	msg  *message
}

// message renders a rule's alert messages.
type message struct {
	tmpl *template.Template // nil: the default message
}

// compileMessage parses src, a template for r, and runs it once on
// sample data, since text/template checks field names only when it runs.
func compileMessage(r *Rule, src string) (*message, error) {
	if src == "" {
		return &message{}, nil
	}
	t, err := template.New("message").Option("missingkey=zero").Parse(src)
	if err != nil {
		return nil, templateErr(src, err)
	}
	sample := MessageData{
		Rule: r.Name, Sensor: r.Select.Sensor, Metric: r.Select.Metric,
		Severity: r.Severity, State: "firing", Previous: "pending", For: r.For,
		Labels: map[string]string{}, Annotations: map[string]string{},
	}
	if sample.Sensor == "" {
		sample.Sensor = "sensor"
	}
	if err := t.Execute(io.Discard, &sample); err != nil {
		return nil, templateErr(src, err)
	}
	return &message{tmpl: t}, nil
}

func (m *message) render(r *Rule, d *MessageData) string {
	if m == nil || m.tmpl == nil {
		return defaultMessage(r, d)
	}
	var b strings.Builder
	if err := m.tmpl.Execute(&b, d); err != nil {
		// Cannot happen for templates that ran at compile time, short of
		// data-dependent failures; an alert must still go out.
		return defaultMessage(r, d) + " (message template failed: " + err.Error() + ")"
	}
	return b.String()
}

func defaultMessage(r *Rule, d *MessageData) string {
	return d.Sensor + " " + d.Metric + " is " + strconv.FormatFloat(d.Value, 'g', -1, 64) +
		" (" + r.Name + ": " + r.Condition + ")"
}

// roundDuration rounds an episode's length for people: to the second, or
// to the millisecond below a second (readings' timestamps have ns).
func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// text/template errors look like
//
//	template: message:2: function "x" not defined
//	template: message:1:9: executing "message" at <.X>: can't evaluate field X in type ...
var templateErrRE = regexp.MustCompile(`^template: message:(\d+)(?::\d+)?: (?:executing "message" )?(.*)$`)

// templateErr turns a text/template error into a message for a person:
// the template's own name and position are noise, except for the line
// within a template of several lines.
func templateErr(src string, err error) error {
	m := templateErrRE.FindStringSubmatch(err.Error())
	if m == nil {
		return errors.New("invalid template: " + err.Error())
	}
	if strings.Contains(strings.TrimRight(src, "\n"), "\n") {
		return errors.New("invalid template, line " + m[1] + ": " + m[2])
	}
	return errors.New("invalid template: " + m[2])
}
