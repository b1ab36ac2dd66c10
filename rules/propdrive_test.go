package rules_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
	"github.com/outposthq/outpost/rules/ruletest"
)

// How the property test drives an engine: on the gateway's clock, as
// ruletest.Replay documents it, so that a stream written as CSV replays
// the same with `outpost rules replay`.

// propRun is what one run of a case emitted, call by call.
type propRun struct {
	calls []propCall
	// restoreLost lists the restarts after which the fresh engine did
	// not take every saved instance.
	restoreLost []string
	// saved are the fingerprints of the instances saved at each restart,
	// by cut.
	saved map[int64]map[string]bool
}

// propCall is one Eval or Tick.
type propCall struct {
	tick   bool
	at     int64 // the reading's time (the last one's, for a batch), or Tick's now
	fed    int   // how many readings of the stream had been evaluated when it returned
	alerts []outpost.Alert
}

// runOpts vary a run.
type runOpts struct {
	cuts  []int64 // restart before the first call later than each
	batch bool    // evaluate the readings of one time in one Eval, as the gateway's poller delivers them
}

const second = int64(time.Second)

func (c *propCase) engineOptions() *rules.Options {
	return &rules.Options{Gateway: c.gateway, SensorLabels: propSensorLabels}
}

// parse compiles the case's rules file, once.
func (c *propCase) parse() error {
	if c.set != nil {
		return nil
	}
	set, err := rules.Parse("rules.yaml", []byte(c.yaml()))
	if err != nil {
		return fmt.Errorf("the generated rules do not parse: %w\n%s", err, c.yaml())
	}
	c.set = set
	return nil
}

// plain is the run without restarts, computed once.
func (c *propCase) plain() *propRun {
	if c.runA == nil {
		c.runA = c.run(runOpts{})
	}
	return c.runA
}

// run feeds the stream to a fresh engine, in time order: the readings
// of one time, then Tick at that time and at every whole second before
// the next reading's time; Tick at the last reading's time ends it.
func (c *propCase) run(o runOpts) *propRun {
	opts := c.engineOptions()
	e := rules.NewEngine(c.set, opts)
	out := &propRun{}
	cuts := slices.Sorted(slices.Values(o.cuts))
	call := func(tick bool, at int64, fed int, f func([]outpost.Alert) []outpost.Alert) {
		for len(cuts) > 0 && at > cuts[0] {
			e = c.restart(e, out, cuts[0])
			cuts = cuts[1:]
		}
		out.calls = append(out.calls, propCall{tick: tick, at: at, fed: fed, alerts: f(nil)})
	}
	tickAt := func(t int64, fed int) {
		call(true, t, fed, func(dst []outpost.Alert) []outpost.Alert { return e.Tick(t, dst) })
	}
	s := c.stream
	for i := 0; i < len(s); {
		if i > 0 && s[i].TS > s[i-1].TS {
			now := s[i-1].TS
			tickAt(now, i)
			for t := (now/second + 1) * second; t < s[i].TS; t += second {
				tickAt(t, i)
			}
		}
		j := i + 1
		if o.batch {
			for j < len(s) && s[j].TS == s[i].TS {
				j++
			}
		}
		call(false, s[j-1].TS, j, func(dst []outpost.Alert) []outpost.Alert { return e.Eval(s[i:j], dst) })
		i = j
	}
	if len(s) > 0 {
		tickAt(s[len(s)-1].TS, len(s))
	}
	return out
}

// restart saves e's state as the gateway does (JSON), and returns a
// fresh engine of the same rules that restored it.
func (c *propCase) restart(e *rules.Engine, out *propRun, cut int64) *rules.Engine {
	data, err := json.Marshal(e.State())
	if err != nil {
		out.restoreLost = append(out.restoreLost, fmt.Sprintf("restart after %s: the state does not encode: %v", off(cut), err))
		return e
	}
	var st rules.EngineState
	if err := json.Unmarshal(data, &st); err != nil {
		out.restoreLost = append(out.restoreLost, fmt.Sprintf("restart after %s: the state does not decode: %v", off(cut), err))
		return e
	}
	if out.saved == nil {
		out.saved = map[int64]map[string]bool{}
	}
	out.saved[cut] = map[string]bool{}
	for _, is := range st.Instances {
		out.saved[cut][is.Fingerprint] = true
	}
	fresh := rules.NewEngine(c.set, c.engineOptions())
	if n := fresh.Restore(st); n != len(st.Instances) {
		out.restoreLost = append(out.restoreLost, fmt.Sprintf("restart after %s: restored %d of %d saved instances: %s", off(cut), n, len(st.Instances), data))
	}
	return fresh
}

// replay runs the stream (in the given order) through ruletest.Replay
// with the case's reorder window and the gateway's tick.
func (c *propCase) replay(stream []outpost.Reading) ([]outpost.Alert, error) {
	var got []outpost.Alert
	err := ruletest.Replay(context.Background(), c.set, strings.NewReader(streamCSV(stream)), func(as []outpost.Alert) error {
		got = append(got, as...) // the slice is reused; the alerts' maps are not
		return nil
	}, &ruletest.ReplayOptions{Reorder: c.reorder, Engine: c.engineOptions()})
	return got, err
}

// reordered is the stream in an order where no reading comes after one
// that is c.reorder or more newer than it: each time is delayed by a
// random amount below the window, the readings of one time keep their
// order.
func (c *propCase) reordered() []outpost.Reading {
	type keyed struct {
		r   outpost.Reading
		key int64
	}
	ks := make([]keyed, len(c.stream))
	for i, r := range c.stream {
		d := rand.New(rand.NewPCG(c.seed, uint64(r.TS))).Int64N(int64(c.reorder))
		ks[i] = keyed{r, r.TS + d}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })
	out := make([]outpost.Reading, len(ks))
	for i, k := range ks {
		out[i] = k.r
	}
	return out
}

// flat is every alert of a run, in emission order.
func (r *propRun) flat() []outpost.Alert {
	var out []outpost.Alert
	for _, c := range r.calls {
		out = append(out, c.alerts...)
	}
	return out
}

// streamCSV writes readings in the replay format.
func streamCSV(rs []outpost.Reading) string {
	var b strings.Builder
	b.WriteString(ruletest.CSVHeader + "\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "%s,%s,%s,%s\n", time.Unix(0, r.TS).UTC().Format(time.RFC3339Nano), r.Sensor, r.Metric,
			strconv.FormatFloat(r.Value, 'g', -1, 64))
	}
	return b.String()
}

// off is a time as an offset from ruletest.Epoch, as in rules test files.
func off(ts int64) string { return "+" + ruletest.FormatOffset(time.Duration(ts-ruletest.Epoch)) }

// fmtAlert is an alert on one line, times as offsets.
func fmtAlert(a *outpost.Alert) string {
	return fmt.Sprintf("%-8s %-14s severity=%s value=%g started=%s changed=%s seq=%d prev=%s labels=%v message=%q",
		a.State, a.Fingerprint, a.Severity, a.Value, off(a.StartedAt), off(a.ChangedAt), a.Seq,
		a.Annotations["prev"], a.Labels, a.Message)
}

// sameAlert compares every field of two alerts (NaN equal to NaN);
// withSeq false leaves out Seq.
func sameAlert(a, b outpost.Alert, withSeq bool) bool {
	if !withSeq {
		a.Seq, b.Seq = 0, 0
	}
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b) // fmt sorts maps
}

// fmtCalls lists the calls of a run that emitted alerts, up to and
// including time until, of the fingerprints for which keep is true (nil:
// all).
func fmtCalls(r *propRun, until int64, keep func(fp string) bool) string {
	var b strings.Builder
	for _, c := range r.calls {
		if c.at > until {
			break
		}
		for i := range c.alerts {
			a := &c.alerts[i]
			if keep != nil && !keep(a.Fingerprint) {
				continue
			}
			kind := "Eval"
			if c.tick {
				kind = "Tick"
			}
			fmt.Fprintf(&b, "    %s(%s): %s\n", kind, off(c.at), fmtAlert(a))
		}
	}
	return b.String()
}
