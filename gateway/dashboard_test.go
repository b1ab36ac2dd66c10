package gateway

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/internal/testenv"
)

// fakePub is a publisher that records messages; offline makes it refuse
// them as the uplink does while disconnected.
type fakePub struct {
	mu      sync.Mutex
	msgs    []pubMsg
	offline bool
}

type pubMsg struct {
	topic    string
	qos      byte
	retained bool
	payload  string
}

func (f *fakePub) Publish(topic string, qos byte, retained bool, payload []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.offline {
		return false
	}
	f.msgs = append(f.msgs, pubMsg{topic, qos, retained, string(payload)})
	return true
}

// take returns the messages published since the last take.
func (f *fakePub) take() []pubMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.msgs
	f.msgs = nil
	return m
}

func (f *fakePub) setOffline(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offline = v
}

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

var t0 = time.Date(2026, 11, 26, 15, 40, 0, 0, time.UTC)

func newTestDashboard(o dashboardOptions) (*dashboard, *fakePub, *fakeClock) {
	pub, clk := &fakePub{}, &fakeClock{t: t0}
	o.Base, o.Gateway, o.Now = "outpost/v1/gw/", "gw", clk.now
	return newDashboard(pub, o), pub, clk
}

// live is a reading of series sensor/m with value v, taken at t0+at s.
func live(sensor string, at, v float64) outpost.Reading {
	return outpost.Reading{Sensor: sensor, Metric: "m", Unit: "Cel", TS: t0.Add(time.Duration(at * float64(time.Second))).UnixNano(), Value: v}
}

// liveBrief renders live messages as "sensor=value ..." in publish order.
func liveBrief(t *testing.T, ms []pubMsg) string {
	t.Helper()
	var out []string
	for _, m := range ms {
		sensor, ok := strings.CutPrefix(m.topic, "outpost/v1/gw/live/")
		if !ok || m.qos != 0 || !m.retained {
			t.Fatalf("not a live message: %+v", m)
		}
		var doc struct{ Value *float64 }
		if err := json.Unmarshal([]byte(m.payload), &doc); err != nil {
			t.Fatalf("%s: %v", m.payload, err)
		}
		v := "null"
		if doc.Value != nil {
			v = fmt.Sprint(*doc.Value)
		}
		out = append(out, strings.TrimSuffix(sensor, "/m")+"="+v)
	}
	return strings.Join(out, " ")
}

func TestDashboardLiveRateLimit(t *testing.T) {
	// Each step sets the clock to at (seconds after t0), hands readings to
	// the dashboard or, with flush, ends the intervals that are due, and
	// lists the live messages that must go out.
	type step struct {
		at    float64
		rs    []outpost.Reading
		flush bool
		want  string
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"first reading of a quiet series goes at once", []step{
			{at: 0, rs: []outpost.Reading{live("a", 0, 1)}, want: "a=1"},
		}},
		{"later readings are held, the latest goes when the interval ends", []step{
			{at: 0, rs: []outpost.Reading{live("a", 0, 1)}, want: "a=1"},
			{at: 0.2, rs: []outpost.Reading{live("a", 0.2, 2)}, want: ""},
			{at: 0.5, rs: []outpost.Reading{live("a", 0.5, 3)}, want: ""},
			{at: 0.9, flush: true, want: ""},
			{at: 1, flush: true, want: "a=3"},
			{at: 1.5, flush: true, want: ""},
		}},
		{"a burst in one slice sends its newest", []step{
			{at: 0, rs: []outpost.Reading{live("a", 0, 1), live("a", 0.01, 2), live("a", 0.02, 3)}, want: "a=3"},
			{at: 1, flush: true, want: ""},
		}},
		{"series interleaved in one slice send their newest each", []step{
			{at: 0, rs: []outpost.Reading{live("a", 0, 1), live("b", 0, 10), live("a", 0.01, 2), live("b", 0.01, 11), live("a", 0.02, 3)}, want: "b=11 a=3"},
			{at: 0.5, rs: []outpost.Reading{live("b", 0.5, 12), live("a", 0.5, 4), live("b", 0.6, 13)}, want: ""},
			{at: 1, flush: true, want: "a=4 b=13"},
		}},
		{"a series quiet for an interval sends at once again", []step{
			{at: 0, rs: []outpost.Reading{live("a", 0, 1)}, want: "a=1"},
			{at: 1, rs: []outpost.Reading{live("a", 1, 2)}, want: "a=2"},
			{at: 1.5, rs: []outpost.Reading{live("a", 1.5, 3)}, want: ""},
			{at: 2, rs: []outpost.Reading{live("a", 2, 4)}, want: ""}, // held: goes on the flush
			{at: 2, flush: true, want: "a=4"},
		}},
		{"series are limited independently", []step{
			{at: 0, rs: []outpost.Reading{live("a", 0, 1), live("b", 0, 10)}, want: "a=1 b=10"},
			{at: 0.5, rs: []outpost.Reading{live("a", 0.5, 2)}, want: ""},
			{at: 0.7, rs: []outpost.Reading{live("c", 0.7, 100), live("b", 0.7, 11)}, want: "c=100"},
			{at: 1, flush: true, want: "a=2 b=11"},
			{at: 1.2, rs: []outpost.Reading{live("c", 1.2, 101)}, want: ""},
			{at: 1.7, flush: true, want: "c=101"},
		}},
		{"non-finite values are null", []step{
			{at: 0, rs: []outpost.Reading{live("a", 0, math.NaN()), live("b", 0, math.Inf(1)), live("c", 0, math.Inf(-1))}, want: "a=null b=null c=null"},
		}},
		{"readings of bad quality are shown too", []step{
			{at: 0, rs: []outpost.Reading{{Sensor: "a", Metric: "m", Quality: outpost.QualityBad, Value: 5}}, want: "a=5"},
		}},
		{"a series that is no topic level is skipped", []step{
			{at: 0, rs: []outpost.Reading{live("a/b", 0, 1), live("+", 0, 1), live("", 0, 1), live("ok", 0, 2)}, want: "ok=2"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, pub, clk := newTestDashboard(dashboardOptions{Interval: time.Second})
			for i, s := range c.steps {
				clk.t = t0.Add(time.Duration(s.at * float64(time.Second)))
				if s.flush {
					d.flushHeld(false)
				} else {
					d.onReadings(s.rs)
				}
				if got := liveBrief(t, pub.take()); got != s.want {
					t.Fatalf("step %d at %gs: got %q, want %q", i, s.at, got, s.want)
				}
			}
		})
	}
}

func TestDashboardNextDue(t *testing.T) {
	d, _, clk := newTestDashboard(dashboardOptions{Interval: time.Second})
	d.onReadings([]outpost.Reading{live("a", 0, 1)})
	clk.t = t0.Add(300 * time.Millisecond)
	d.onReadings([]outpost.Reading{live("b", 0.3, 1)})
	clk.t = t0.Add(600 * time.Millisecond)
	d.onReadings([]outpost.Reading{live("b", 0.6, 2), live("a", 0.6, 2)}) // both held
	if got, want := d.nextDue(), t0.Add(time.Second); !got.Equal(want) {
		t.Fatalf("next due %v, want %v: a was sent first", got, want)
	}
	clk.t = t0.Add(time.Second)
	d.flushHeld(false)
	if got, want := d.nextDue(), t0.Add(1300*time.Millisecond); len(d.held) != 1 || !got.Equal(want) {
		t.Fatalf("after a went: held %d, next due %v, want %v", len(d.held), got, want)
	}
}

func TestDashboardLiveJSON(t *testing.T) {
	d, pub, _ := newTestDashboard(dashboardOptions{})
	r := outpost.Reading{Sensor: "dev1-env", Metric: "temperature", Unit: "Cel", Value: 21.5,
		TS: time.Date(2026, 11, 26, 15, 40, 2, 123000000, time.UTC).UnixNano()}
	unsure := outpost.Reading{Sensor: "dev1-env", Metric: "humidity", Unit: "%RH", Value: math.NaN(),
		Quality: outpost.QualityUncertain, TS: r.TS}
	d.onReadings([]outpost.Reading{r, unsure})
	got := pub.take()
	want := []pubMsg{
		{"outpost/v1/gw/live/dev1-env/temperature", 0, true, `{"ts":"2026-11-26T15:40:02.123Z","value":21.5,"unit":"Cel","quality":"good"}`},
		{"outpost/v1/gw/live/dev1-env/humidity", 0, true, `{"ts":"2026-11-26T15:40:02.123Z","value":null,"unit":"%RH","quality":"uncertain"}`},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got\n%v\nwant\n%v", got, want)
	}
}

// alertAt is a transition of instance rule/sensor at t0+at s.
func alertAt(rule, sensor string, state outpost.AlertState, since, at, v float64, seq uint64) outpost.Alert {
	sec := func(s float64) int64 { return t0.Add(time.Duration(s * float64(time.Second))).UnixNano() }
	return outpost.Alert{
		Rule: rule, Fingerprint: rule + "/" + sensor, State: state, Severity: "critical", Value: v,
		Labels:  map[string]string{"sensor": sensor, "metric": "temperature"},
		Message: fmt.Sprintf("%s %s is %g", state, sensor, v), StartedAt: sec(since), ChangedAt: sec(at), Seq: seq,
	}
}

// alertDocs decodes the alert messages by rule, checking QoS and retain.
func alertDocs(t *testing.T, ms []pubMsg) map[string]alertDocJSON {
	t.Helper()
	docs := map[string]alertDocJSON{}
	for _, m := range ms {
		rule, ok := strings.CutPrefix(m.topic, "outpost/v1/gw/alert/")
		if !ok || m.qos != 1 || !m.retained {
			t.Fatalf("not an alert message: %+v", m)
		}
		var doc alertDocJSON
		if err := json.Unmarshal([]byte(m.payload), &doc); err != nil {
			t.Fatalf("%s: %v", m.payload, err)
		}
		if doc.Rule != rule {
			t.Fatalf("topic %s carries rule %q", m.topic, doc.Rule)
		}
		docs[rule] = doc
	}
	return docs
}

// alertDocJSON is an alert document as a consumer decodes it.
type alertDocJSON struct {
	Rule, Gateway, State, Severity, Message, Since, Changed, TS string
	Value                                                       *float64
	Active                                                      int
	Instances                                                   []struct {
		Fingerprint, State, Severity, Message, Since, Changed string
		Value                                                 *float64
		Labels                                                map[string]string
	}
}

// brief renders a document as "state severity value active [fp:state ...]".
func (d alertDocJSON) brief() string {
	v := "null"
	if d.Value != nil {
		v = fmt.Sprint(*d.Value)
	}
	var in []string
	for _, i := range d.Instances {
		in = append(in, strings.TrimPrefix(i.Fingerprint, d.Rule+"/")+":"+i.State)
	}
	return fmt.Sprintf("%s %s %s %d [%s]", d.State, d.Severity, v, d.Active, strings.Join(in, " "))
}

func TestDashboardAlertJSON(t *testing.T) {
	d, pub, clk := newTestDashboard(dashboardOptions{Alerts: true, Rules: []ruleSeed{{Name: "cold", Severity: "warning"}}})
	clk.t = t0.Add(5 * time.Second)
	dev1 := alertAt("hot", "dev1", outpost.StateFiring, 1, 4, 27.5, 2)
	dev1.Annotations = map[string]string{"summary": "dev1 at 27.5", "runbook": "https://example.com/hot"}
	d.observe([]outpost.Alert{
		alertAt("hot", "dev2", outpost.StatePending, 3, 3, 26, 1), // no annotations: {}
		dev1,
	})
	d.publishAlerts(false)
	got := pub.take()
	want := `{"rule":"hot","gateway":"gw","state":"firing","severity":"critical","value":27.5,"active":2,` +
		`"message":"firing dev1 is 27.5","annotations":{"runbook":"https://example.com/hot","summary":"dev1 at 27.5"},` +
		`"since":"2026-11-26T15:40:01Z","changed":"2026-11-26T15:40:04Z","instances":[` +
		`{"fingerprint":"hot/dev1","state":"firing","severity":"critical","value":27.5,"labels":{"metric":"temperature","sensor":"dev1"},` +
		`"message":"firing dev1 is 27.5","annotations":{"runbook":"https://example.com/hot","summary":"dev1 at 27.5"},` +
		`"since":"2026-11-26T15:40:01Z","changed":"2026-11-26T15:40:04Z"},` +
		`{"fingerprint":"hot/dev2","state":"pending","severity":"critical","value":26,"labels":{"metric":"temperature","sensor":"dev2"},` +
		`"message":"pending dev2 is 26","annotations":{},"since":"2026-11-26T15:40:03Z","changed":"2026-11-26T15:40:03Z"}],` +
		`"ts":"2026-11-26T15:40:05Z"}`
	if len(got) != 1 || got[0].topic != "outpost/v1/gw/alert/hot" || got[0].qos != 1 || !got[0].retained || got[0].payload != want {
		t.Fatalf("got %+v\nwant payload\n%s", got, want)
	}
	// A rule that has not alerted: annotations {}, as labels would be.
	d.publishAlerts(true)
	for _, m := range pub.take() {
		if m.topic != "outpost/v1/gw/alert/cold" {
			continue
		}
		want := `{"rule":"cold","gateway":"gw","state":"inactive","severity":"warning","value":null,"active":0,` +
			`"message":"","annotations":{},"instances":[],"ts":"2026-11-26T15:40:05Z"}`
		if m.payload != want {
			t.Fatalf("document of a rule that has not alerted\n got %s\nwant %s", m.payload, want)
		}
		return
	}
	t.Fatal("no document for the seeded rule")
}

func TestDashboardAlertAggregation(t *testing.T) {
	// Each step observes transitions (nil: none), then publishes what
	// changed, or everything with all, and lists the documents by rule.
	type step struct {
		as      []outpost.Alert
		offline bool
		all     bool
		want    map[string]string // rule → brief; nil: no document
	}
	const P, F, R, I = outpost.StatePending, outpost.StateFiring, outpost.StateResolved, outpost.StateInactive
	cases := []struct {
		name  string
		seeds []ruleSeed
		steps []step
	}{
		{"worst instance on top: firing over pending", nil, []step{
			{as: []outpost.Alert{alertAt("hot", "a", P, 0, 0, 26, 1)}, want: map[string]string{"hot": "pending critical 26 1 [a:pending]"}},
			{as: []outpost.Alert{alertAt("hot", "b", F, 1, 1, 30, 2)}, want: map[string]string{"hot": "firing critical 30 2 [a:pending b:firing]"}},
			{as: []outpost.Alert{alertAt("hot", "a", F, 0, 2, 27, 3)}, want: map[string]string{"hot": "firing critical 27 2 [a:firing b:firing]"}}, // the latest change wins a tie
		}},
		{"resolved shown once, then dropped", nil, []step{
			{as: []outpost.Alert{alertAt("hot", "a", F, 0, 0, 30, 1), alertAt("hot", "b", F, 0, 0, 31, 2)}, want: map[string]string{"hot": "firing critical 30 2 [a:firing b:firing]"}}, // a full tie: the first fingerprint
			{as: []outpost.Alert{alertAt("hot", "b", R, 0, 1, 20, 3)}, want: map[string]string{"hot": "firing critical 30 1 [a:firing b:resolved]"}},
			{as: []outpost.Alert{alertAt("hot", "a", R, 0, 2, 21, 4)}, want: map[string]string{"hot": "resolved critical 21 0 [a:resolved]"}},
			{all: true, want: map[string]string{"hot": "resolved critical 21 0 []"}},
		}},
		{"pending cleared before for: inactive, then dropped", nil, []step{
			{as: []outpost.Alert{alertAt("hot", "a", P, 0, 0, 26, 1)}, want: map[string]string{"hot": "pending critical 26 1 [a:pending]"}},
			{as: []outpost.Alert{alertAt("hot", "a", I, 0, 3, 24, 2)}, want: map[string]string{"hot": "inactive critical 24 0 [a:inactive]"}},
			{all: true, want: map[string]string{"hot": "inactive critical 24 0 []"}},
		}},
		{"transitions between publishes coalesce into the current state", nil, []step{
			{as: []outpost.Alert{alertAt("hot", "a", F, 0, 0, 30, 1), alertAt("hot", "a", R, 0, 1, 20, 2), alertAt("hot", "a", F, 2, 2, 32, 3)},
				want: map[string]string{"hot": "firing critical 32 1 [a:firing]"}},
		}},
		{"a resolved instance stays listed until a document with it went out", nil, []step{
			{as: []outpost.Alert{alertAt("hot", "a", F, 0, 0, 30, 1)}, want: map[string]string{"hot": "firing critical 30 1 [a:firing]"}},
			{as: []outpost.Alert{alertAt("hot", "a", R, 0, 1, 20, 2)}, offline: true},
			{all: true, want: map[string]string{"hot": "resolved critical 20 0 [a:resolved]"}},
			{all: true, want: map[string]string{"hot": "resolved critical 20 0 []"}},
		}},
		{"seeded rules publish inactive with no value", []ruleSeed{{"hot", "critical"}, {"cold", "warning"}}, []step{
			{want: map[string]string{}}, // nothing changed
			{all: true, want: map[string]string{"hot": "inactive critical null 0 []", "cold": "inactive warning null 0 []"}},
			{as: []outpost.Alert{alertAt("cold", "a", F, 0, 0, -10, 1)}, want: map[string]string{"cold": "firing critical -10 1 [a:firing]"}},
		}},
		{"only changed rules are published", nil, []step{
			{as: []outpost.Alert{alertAt("hot", "a", F, 0, 0, 30, 1), alertAt("cold", "a", F, 0, 0, -9, 2)},
				want: map[string]string{"hot": "firing critical 30 1 [a:firing]", "cold": "firing critical -9 1 [a:firing]"}},
			{as: []outpost.Alert{alertAt("cold", "a", R, 0, 1, 0, 3)}, want: map[string]string{"cold": "resolved critical 0 0 [a:resolved]"}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, pub, _ := newTestDashboard(dashboardOptions{Alerts: true, Rules: c.seeds})
			for i, s := range c.steps {
				pub.setOffline(s.offline)
				d.observe(s.as)
				d.publishAlerts(s.all)
				docs := alertDocs(t, pub.take())
				if s.want == nil {
					if len(docs) != 0 {
						t.Fatalf("step %d: published %v while offline", i, docs)
					}
					continue
				}
				got := map[string]string{}
				for rule, doc := range docs {
					got[rule] = doc.brief()
				}
				if fmt.Sprint(got) != fmt.Sprint(s.want) {
					t.Fatalf("step %d: got\n%v\nwant\n%v", i, got, s.want)
				}
			}
		})
	}
}

func TestDashboardAlertsOff(t *testing.T) {
	d, pub, _ := newTestDashboard(dashboardOptions{Rules: []ruleSeed{{"hot", "critical"}}})
	d.observe([]outpost.Alert{alertAt("hot", "a", outpost.StateFiring, 0, 0, 30, 1)})
	d.publishAlerts(false)
	d.republishNow()
	if ms := pub.take(); len(ms) != 0 {
		t.Fatalf("alert topics off, yet published %v", ms)
	}
}

func TestDashboardRepublish(t *testing.T) {
	d, pub, clk := newTestDashboard(dashboardOptions{Interval: time.Second, Alerts: true, Rules: []ruleSeed{{"hot", "critical"}, {"cold", "warning"}}})
	pub.setOffline(true) // everything happens while the uplink is away
	d.onReadings([]outpost.Reading{live("b", 0, 1), live("a", 0, 1)})
	clk.t = t0.Add(300 * time.Millisecond)
	d.onReadings([]outpost.Reading{live("a", 0.3, 2)}) // held
	d.observe([]outpost.Alert{alertAt("hot", "x", outpost.StateFiring, 0, 0.3, 30, 1)})
	d.publishAlerts(false)
	if st := d.stats(); st.Unsent != 3 || st.Live != 0 || st.Alerts != 0 {
		t.Fatalf("stats offline %+v", st)
	}

	pub.setOffline(false)
	d.republishNow()
	ms := pub.take()
	if len(ms) != 4 {
		t.Fatalf("republished %d messages, want 2 alert documents and 2 live values: %v", len(ms), ms)
	}
	docs := alertDocs(t, ms[:2])
	if got := fmt.Sprint(docs["cold"].brief(), " | ", docs["hot"].brief()); got != "inactive warning null 0 [] | firing critical 30 1 [x:firing]" {
		t.Fatalf("alert documents: %s", got)
	}
	if got := liveBrief(t, ms[2:]); got != "a=2 b=1" {
		t.Fatalf("live values %q, want the latest of each series", got)
	}
	if len(d.held) != 0 {
		t.Fatalf("%d series still held after republish", len(d.held))
	}
	// The republish counts as the series' latest send.
	clk.t = t0.Add(time.Second)
	d.onReadings([]outpost.Reading{live("a", 1, 3)})
	if got := liveBrief(t, pub.take()); got != "" {
		t.Fatalf("sent %q within the interval after the republish", got)
	}
	if st := d.stats(); st.Live != 2 || st.Alerts != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// The goroutine: readings from its queue, alerts from observe, republish
// on demand; stopping publishes what is held. No timing is asserted: the
// interval is an hour, so only the stop can send a held reading.
func TestDashboardRun(t *testing.T) {
	in := make(chan []outpost.Reading, 4)
	pub := &fakePub{}
	d := newDashboard(pub, dashboardOptions{Base: "outpost/v1/gw/", Gateway: "gw", Interval: time.Hour, Live: in, Alerts: true})
	done := make(chan struct{})
	go func() { defer close(done); d.run() }()

	in <- []outpost.Reading{live("a", 0, 1)}
	in <- []outpost.Reading{live("a", 1, 2)}
	waitFor(t, func() bool { return d.stats().Live == 1 })
	d.observe([]outpost.Alert{alertAt("hot", "x", outpost.StateFiring, 0, 0, 30, 1)})
	waitFor(t, func() bool { return d.stats().Alerts == 1 })
	d.republish()
	d.republish() // coalesced with the first, or a second full round
	waitFor(t, func() bool { return d.stats().Alerts >= 2 })
	close(in) // the bus closes first; alerts may still come
	d.observe([]outpost.Alert{alertAt("hot", "x", outpost.StateResolved, 0, 2, 20, 2)})
	d.stopRun()
	d.stopRun()
	<-done

	ms := pub.take()
	last := map[string]string{}
	for _, m := range ms {
		last[m.topic] = m.payload
	}
	if !strings.Contains(last["outpost/v1/gw/live/a/m"], `"value":2`) {
		t.Errorf("live a ends with %s, want value 2", last["outpost/v1/gw/live/a/m"])
	}
	if !strings.Contains(last["outpost/v1/gw/alert/hot"], `"state":"resolved"`) {
		t.Errorf("alert hot ends with %s, want resolved", last["outpost/v1/gw/alert/hot"])
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// dashboardConfig is a gateway with one simulated sensor at a constant 30
// and a rule that fires above 25 at once.
func dashboardConfig(t *testing.T, broker string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, []byte("rules:\n  - {name: hot, select: {metric: temperature}, above: 25, severity: critical}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Gateway: config.GatewayConfig{ID: "gw-dash"},
		DataDir: filepath.Join(dir, "data"),
		Sensors: []config.Sensor{{ID: "dev1", Driver: SimDriver, Interval: 5 * time.Millisecond,
			Metrics: []config.Metric{{Name: "temperature", Unit: "Cel", Signal: config.Signal{Kind: "constant", Value: 30}}}}},
		Batch:     config.BatchConfig{MaxReadings: 100, Interval: 50 * time.Millisecond},
		Uplink:    config.UplinkConfig{Broker: broker, Ack: "broker"},
		Rules:     config.RulesConfig{Files: []string{rulesFile}},
		Dashboard: config.DashboardConfig{LiveInterval: 20 * time.Millisecond},
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestGatewayDashboardWiring(t *testing.T) {
	off := false
	cases := []struct {
		name        string
		live, alert *bool
		wantLive    bool
		wantAlert   bool
	}{
		{"both on by default", nil, nil, true, true},
		{"live off", &off, nil, false, true},
		{"alerts off", nil, &off, true, false},
		{"both off", &off, &off, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := dashboardConfig(t, "tcp://127.0.0.1:1") // nothing listens: the uplink stays offline
			cfg.Dashboard.Live, cfg.Dashboard.Alerts = c.live, c.alert
			g, err := New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if (g.dash == nil) != (!c.wantLive && !c.wantAlert) {
				t.Fatalf("dashboard %v with live %v alerts %v", g.dash, c.wantLive, c.wantAlert)
			}
			pub := &fakePub{}
			if g.dash != nil {
				g.dash.pub = pub // instead of the offline uplink
			}
			if err := g.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return g.Stats().AlertsRaised >= 1 && g.Stats().ReadingsEmitted >= 20 })
			g.onConnect() // the uplink's OnConnect hook
			if g.dash != nil {
				waitFor(t, func() bool { st := g.Stats().Dashboard; return st.Live+st.Alerts > 1 })
			}
			if err := g.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			var gotLive, gotAlert, gotHealth bool
			for _, m := range pub.take() {
				switch m.topic {
				case "outpost/v1/gw-dash/live/dev1/temperature":
					gotLive = true
				case "outpost/v1/gw-dash/alert/hot":
					gotAlert = true
					if !strings.Contains(m.payload, `"state":"firing"`) {
						t.Errorf("alert document %s", m.payload)
					}
				case "outpost/v1/gw-dash/alert/sensor_health":
					// Known from the start, like a rule: no sensor failed.
					gotHealth = true
					if !strings.Contains(m.payload, `"state":"inactive"`) {
						t.Errorf("health document %s", m.payload)
					}
				default:
					t.Errorf("unexpected topic %s", m.topic)
				}
			}
			if gotHealth != c.wantAlert {
				t.Errorf("published the sensor_health document: %v, want %v", gotHealth, c.wantAlert)
			}
			if gotLive != c.wantLive || gotAlert != c.wantAlert {
				t.Fatalf("published live %v alert %v, want %v %v", gotLive, gotAlert, c.wantLive, c.wantAlert)
			}
			if _, ok := g.bus.Dropped()["live"]; ok != c.wantLive {
				t.Fatalf("live receiver on the bus: %v, want %v", ok, c.wantLive)
			}
		})
	}
}

// A fresh subscriber finds the retained live value and alert document on a
// real broker (OUTPOST_TEST_MQTT, else an embedded one), published through
// the real uplink.
func TestDashboardRetainedOnBroker(t *testing.T) {
	broker := testenv.MQTT(t)
	cfg := dashboardConfig(t, broker)
	cfg.Gateway.ID = fmt.Sprintf("gw-dash-%d", time.Now().UnixNano())
	cfg.Uplink.TopicPrefix = "outpost-test/dashboard"
	cfg.Uplink.ClientID = ""
	base := cfg.Uplink.TopicPrefix + "/" + cfg.Gateway.ID + "/"
	liveTopic, alertTopic := base+"live/dev1/temperature", base+"alert/hot"

	g, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return g.Stats().Uplink.Connected && g.Stats().AlertsRaised >= 1 })
	// The rule fired at the first reading, likely before the connection
	// was up: the OnConnect hook's republish is what brings it out.
	g.onConnect()
	waitFor(t, func() bool { st := g.Stats().Dashboard; return st.Live >= 1 && st.Alerts >= 1 })
	if err := g.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	got := make(chan mqtt.Message, 64)
	sub := brokerClient(t, broker)
	t.Cleanup(func() { // leave no retained messages behind on a shared broker
		for _, topic := range []string{liveTopic, alertTopic, base + "status"} {
			sub.Publish(topic, 1, true, []byte{}).WaitTimeout(5 * time.Second)
		}
	})
	if tok := sub.Subscribe(base+"#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	docs := map[string][]byte{}
	timeout := time.After(10 * time.Second)
	for docs[liveTopic] == nil || docs[alertTopic] == nil {
		select {
		case m := <-got:
			if !m.Retained() {
				t.Fatalf("%s arrived not retained", m.Topic())
			}
			docs[m.Topic()] = m.Payload()
		case <-timeout:
			t.Fatalf("retained messages after 10s: %v", slices.Collect(maps.Keys(docs)))
		}
	}
	var lv struct {
		TS      time.Time
		Value   float64
		Unit    string
		Quality string
	}
	if err := json.Unmarshal(docs[liveTopic], &lv); err != nil || lv.Value != 30 || lv.Unit != "Cel" || lv.Quality != "good" || lv.TS.IsZero() {
		t.Errorf("live %s (%v)", docs[liveTopic], err)
	}
	var al alertDocJSON
	if err := json.Unmarshal(docs[alertTopic], &al); err != nil || al.brief() != "firing critical 30 1 [dev1:firing]" || al.Gateway != cfg.Gateway.ID {
		t.Errorf("alert %s (%v)", docs[alertTopic], err)
	}
}

func brokerClient(t testing.TB, broker string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("gateway-test-%d", time.Now().UnixNano())).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(250) })
	return c
}

// The live view's per-reading path: a held series only records the reading.
func BenchmarkDashboardLive(b *testing.B) {
	d, pub, clk := newTestDashboard(dashboardOptions{Interval: time.Second})
	rs := make([]outpost.Reading, 64)
	for i := range rs {
		rs[i] = live(fmt.Sprint("s", i%8), 0, float64(i))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		clk.t = t0.Add(time.Duration(i) * time.Millisecond)
		d.onReadings(rs)
		if len(d.held) > 0 && clk.t.Sub(d.nextDue()) >= 0 {
			d.flushHeld(false)
		}
		pub.take()
	}
}
