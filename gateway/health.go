package gateway

import (
	"fmt"
	"maps"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
	"github.com/outposthq/outpost/sensors"
)

// HealthRule is the rule name of sensor health events. They travel as
// alerts (the alert lane, the ingest's alerts table, the dashboard's alert
// topic): firing when a condition begins, resolved when it ends. Their Seq
// is 0: the alert sequence is the rule engine's.
const HealthRule = rules.ReservedRule

// HealthSeverity is the severity of health events.
const HealthSeverity = "warning"

// healthAlert turns a poller's health event into an alert. labels are the
// sensor's labels from the config; "sensor" and "condition" win over them.
func healthAlert(ev sensors.HealthEvent, labels map[string]string) outpost.Alert {
	l := make(map[string]string, len(labels)+2)
	maps.Copy(l, labels)
	l["sensor"] = ev.Sensor
	l["condition"] = ev.Condition
	a := outpost.Alert{
		Rule:        HealthRule,
		Fingerprint: HealthRule + "/" + ev.Sensor + "/" + ev.Condition,
		State:       outpost.StateFiring,
		Severity:    HealthSeverity,
		Value:       float64(ev.Polls),
		Labels:      l,
		StartedAt:   ev.Since.UnixNano(),
		ChangedAt:   ev.At.UnixNano(),
	}
	if ev.Active {
		a.Message = fmt.Sprintf("sensor %s is %s after %d polls", ev.Sensor, ev.Condition, ev.Polls)
		if ev.Err != "" {
			a.Message += ": " + ev.Err
		}
	} else {
		a.State = outpost.StateResolved
		a.Message = fmt.Sprintf("sensor %s is no longer %s", ev.Sensor, ev.Condition)
	}
	return a
}

// onHealth is each poller's OnHealth hook: it hands the event to
// Options.OnAlert (from the poller's goroutine), shows it on the dashboard
// and hands it to the batcher's alert input, and tells the uplink that
// the status document's health changed (a condition began or ended: the
// failing sensors and the firing alerts are not what they were). It
// blocks only while the batcher is busy, like a reading under the block
// policy.
func (g *Gateway) onHealth(labels map[string]string) func(sensors.HealthEvent) {
	notify := g.alertHook()
	return func(ev sensors.HealthEvent) {
		a := healthAlert(ev, labels)
		g.healthRaised.Add(1)
		g.uplink.StatusChanged() // never blocks; the poller's status has the change already
		if notify != nil {
			notify(a)
		}
		if g.dash != nil {
			g.dash.observe([]outpost.Alert{a})
		}
		g.health <- []outpost.Alert{a}
	}
}

// alertHook is Options.OnAlert, or nil.
func (g *Gateway) alertHook() func(outpost.Alert) { return g.onAlert }
