package outpost

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds of a gateway's status document (docs/wire-format.md, "Status").
// A gateway keeps within them (its config is checked against them), and
// the ingest service refuses a status that breaks one.
const (
	// MaxStatusBytes caps a status document, in bytes of JSON.
	MaxStatusBytes = 64 << 10
	// MaxSensorLabels caps the labels of one sensor.
	MaxSensorLabels = 64
	// MaxLabelNameLen and MaxLabelValueLen cap a sensor label's name
	// (at least one byte) and value, in bytes.
	MaxLabelNameLen  = 128
	MaxLabelValueLen = 1024
	// MaxStatusVersionLen caps the version string, in bytes.
	MaxStatusVersionLen = 256
	// MaxStatusSensors caps the sensors a document names, in "sensors"
	// and in the health's "sensors_failing" each. No document of a
	// gateway comes near it: within MaxStatusBytes a gateway's "sensors"
	// holds at most some 3 400 (19 bytes each at the least), and the
	// config's size check, which counts every sensor failing with every
	// condition, keeps a gateway to fewer than 1 200.
	MaxStatusSensors = 4096
	// MaxSensorConditions caps the conditions listed for one sensor in
	// "sensors_failing", and MaxConditionLen the bytes of each: room
	// for conditions a later release may add to SensorConditions.
	MaxSensorConditions = 16
	MaxConditionLen     = 32
)

// SensorConditions returns the names of the health conditions a gateway
// of this release reports of a sensor (sensors.HealthBad,
// HealthFailing, HealthSlow, HealthStuck), sorted: what a status
// document's "sensors_failing" lists. StatusSize counts them all for
// every sensor. The ingest service accepts any name that is a ValidName
// of at most MaxConditionLen bytes, so that a later release may add
// some.
func SensorConditions() []string { return []string{"bad", "failing", "slow", "stuck"} }

// Status is a gateway's status document, which its uplink publishes
// retained on {prefix}/{gateway}/status: online at every connect and
// then while connected (every uplink.status_interval, and soon after a
// change of its health that matters), offline on a clean stop and as
// the connection's last will (docs/wire-format.md, "Status"). The JSON
// names are a contract with the ingest service and the web console.
type Status struct {
	State   string `json:"state"`
	Gateway string `json:"gateway"`
	// TS is when the gateway published it, RFC 3339 with nanoseconds,
	// UTC; empty (left out) in the last will, which the broker publishes
	// when the connection dies, at a time the gateway cannot know.
	TS string `json:"ts,omitempty"`
	// Version is the gateway binary's version, as `outpost --version`
	// prints it ("outpost v1.2.3 go1.26.8 linux/arm"); at most
	// MaxStatusVersionLen bytes of UTF-8 without NUL. Empty (left out)
	// when unknown, and in the last will.
	Version string `json:"version,omitempty"`
	// StartedAt is when the gateway process started, RFC 3339, UTC, to
	// the second. Empty (left out) when unknown: in the last will, and
	// while the gateway's wall clock is not trusted yet (docs/clock.md).
	StartedAt string `json:"started_at,omitempty"`
	// Labels are the gateway's labels (gateway.labels of its config),
	// within the bounds of a sensor's (CheckLabels). Left out when it
	// has none, and in the last will; nil from gateways of earlier
	// releases.
	Labels map[string]string `json:"labels,omitzero"`
	// Sensors are the gateway's sensors by id, every one of its config,
	// each with its labels. A status without the field (nil: from a
	// gateway of an earlier release) says nothing of them; an empty
	// one, that no sensor has labels.
	Sensors map[string]SensorStatus `json:"sensors,omitzero"`
	// Health is what the gateway's pipeline looks like as the document
	// is made. nil (left out) in the last will, and from gateways of
	// earlier releases.
	Health *StatusHealth `json:"health,omitempty"`
}

// StatusHealth is the "health" of a status document: a snapshot of the
// gateway's outbox, throughput, alerts and sensors, taken as the
// document is made. Counts are int64 so that a 32-bit gateway and a
// 64-bit ingest service read the same document alike.
type StatusHealth struct {
	// OutboxBatches are the batches stored in the outbox now, both lanes
	// (telemetry, and alerts with loss records), waiting for their ack;
	// OutboxBytes, their stored bytes.
	OutboxBatches int64 `json:"outbox_batches"`
	OutboxBytes   int64 `json:"outbox_bytes"`
	// OutboxOldest is when the oldest stored batch was made, RFC 3339,
	// UTC, to the second; empty (left out) when the outbox is empty.
	OutboxOldest string `json:"outbox_oldest,omitempty"`
	// ReadingsPerS are the readings the sensors produced per second
	// since the previous status document of the process (or since it
	// started), to three significant digits.
	ReadingsPerS float64 `json:"readings_per_s"`
	// AlertsFiring and AlertsPending count the alert instances firing
	// and pending now: the rules' instances, and the sensors' health
	// conditions (rule sensor_health), which fire while they hold. A
	// rule's nodata instances count in neither.
	AlertsFiring  int64 `json:"alerts_firing"`
	AlertsPending int64 `json:"alerts_pending"`
	// SensorsFailing maps each sensor with a health condition active now
	// to its active conditions, sorted; {} when none. The gateway never
	// leaves it null; the ingest service takes null or its absence for
	// "not said".
	SensorsFailing map[string][]string `json:"sensors_failing"`
}

// SensorStatus is what a status document says of one sensor.
type SensorStatus struct {
	// Labels are the sensor's labels from the gateway's config
	// (sensors[].labels), {} when it has none.
	Labels map[string]string `json:"labels"`
}

// CheckSensors reports a sensor of s that breaks the document's bounds:
// more than MaxStatusSensors of them, an id that is not a ValidName, or
// labels that CheckSensorLabels refuses.
func (s *Status) CheckSensors() error {
	if len(s.Sensors) > MaxStatusSensors {
		return fmt.Errorf("%d sensors, more than %d", len(s.Sensors), MaxStatusSensors)
	}
	for id, ss := range s.Sensors {
		if !ValidName(id) {
			return fmt.Errorf("sensor id %.*q is not a valid name", MaxNameLen+1, id)
		}
		if err := CheckSensorLabels(ss.Labels); err != nil {
			return fmt.Errorf("sensor %s: %w", id, err)
		}
	}
	return nil
}

// CheckLabels reports gateway labels of s that break the document's
// bounds: those of a sensor's labels (CheckSensorLabels).
func (s *Status) CheckLabels() error {
	if err := CheckSensorLabels(s.Labels); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	return nil
}

// CheckSensorLabels reports labels that a status document may not
// carry: more than MaxSensorLabels, a name empty or longer than
// MaxLabelNameLen bytes, a value longer than MaxLabelValueLen bytes, or
// text that is not UTF-8 or holds a NUL byte.
func CheckSensorLabels(labels map[string]string) error {
	if len(labels) > MaxSensorLabels {
		return fmt.Errorf("%d labels, more than %d", len(labels), MaxSensorLabels)
	}
	for name, value := range labels {
		switch {
		case name == "":
			return errors.New("a label with an empty name")
		case len(name) > MaxLabelNameLen:
			return fmt.Errorf("label name of %d bytes, longer than %d", len(name), MaxLabelNameLen)
		case len(value) > MaxLabelValueLen:
			return fmt.Errorf("label %.*q: value of %d bytes, longer than %d", MaxLabelNameLen, name, len(value), MaxLabelValueLen)
		}
		if err := labelText(name); err != nil {
			return fmt.Errorf("label name %q %w", name, err)
		}
		if err := labelText(value); err != nil {
			return fmt.Errorf("label %q: value %w", name, err)
		}
	}
	return nil
}

func labelText(s string) error {
	switch {
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return errors.New("contains a NUL byte")
	}
	return nil
}

// StatusSensors is the Sensors of a status document for sensors with
// these labels (by sensor id): a copy, with {} for a sensor without
// labels.
func StatusSensors(labels map[string]map[string]string) map[string]SensorStatus {
	out := make(map[string]SensorStatus, len(labels))
	for id, ls := range labels {
		m := make(map[string]string, len(ls))
		maps.Copy(m, ls)
		out[id] = SensorStatus{Labels: m}
	}
	return out
}

// CheckProcess reports a Version or StartedAt of s that a status
// document may not carry: a version that CheckStatusVersion refuses, or
// a start time that is not RFC 3339. Both may be empty.
func (s *Status) CheckProcess() error {
	if err := CheckStatusVersion(s.Version); err != nil {
		return err
	}
	if err := checkStatusTime("started_at", s.StartedAt); err != nil {
		return err
	}
	return nil
}

// CheckStatusVersion reports a version string that a status document
// may not carry: longer than MaxStatusVersionLen bytes, not UTF-8, or
// holding a NUL byte. "" (unknown) passes.
func CheckStatusVersion(v string) error {
	if len(v) > MaxStatusVersionLen {
		return fmt.Errorf("version of %d bytes, longer than %d", len(v), MaxStatusVersionLen)
	}
	if err := labelText(v); err != nil {
		return fmt.Errorf("version %w", err)
	}
	return nil
}

// maxStatusTimeLen bounds a time of the document as shown in an error.
const maxStatusTimeLen = len("2006-01-02T15:04:05.999999999-07:00")

// checkStatusTime reports a time of the document, named field, that is
// not RFC 3339; "" (left out) passes.
func checkStatusTime(field, v string) error {
	if v == "" {
		return nil
	}
	if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
		return fmt.Errorf("%s %.*q is not an RFC 3339 time", field, maxStatusTimeLen, v)
	}
	return nil
}

// Check reports what in h a status document may not carry: a negative
// count, a rate that is negative or not finite, an outbox_oldest that
// is not RFC 3339, or a sensors_failing with more than MaxStatusSensors
// sensors, an id that is not a ValidName, or a sensor without
// conditions, with more than MaxSensorConditions, or with one that is
// not a ValidName of at most MaxConditionLen bytes or is listed twice.
// Errors name the field.
func (h *StatusHealth) Check() error {
	for _, c := range []struct {
		name string
		n    int64
	}{
		{"outbox_batches", h.OutboxBatches}, {"outbox_bytes", h.OutboxBytes},
		{"alerts_firing", h.AlertsFiring}, {"alerts_pending", h.AlertsPending},
	} {
		if c.n < 0 {
			return fmt.Errorf("%s is negative (%d)", c.name, c.n)
		}
	}
	if r := h.ReadingsPerS; math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
		return fmt.Errorf("readings_per_s is %v, not a finite number >= 0", r)
	}
	if err := checkStatusTime("outbox_oldest", h.OutboxOldest); err != nil {
		return err
	}
	if len(h.SensorsFailing) > MaxStatusSensors {
		return fmt.Errorf("sensors_failing: %d sensors, more than %d", len(h.SensorsFailing), MaxStatusSensors)
	}
	for id, conds := range h.SensorsFailing {
		if !ValidName(id) {
			return fmt.Errorf("sensors_failing: sensor id %.*q is not a valid name", MaxNameLen+1, id)
		}
		if err := checkConditions(conds); err != nil {
			return fmt.Errorf("sensors_failing: sensor %s: %w", id, err)
		}
	}
	return nil
}

// checkConditions reports a list of one sensor's conditions that
// StatusHealth.Check refuses.
func checkConditions(conds []string) error {
	switch {
	case len(conds) == 0:
		return errors.New("no conditions (a sensor without any is left out)")
	case len(conds) > MaxSensorConditions:
		return fmt.Errorf("%d conditions, more than %d", len(conds), MaxSensorConditions)
	}
	for i, c := range conds {
		if len(c) > MaxConditionLen || !ValidName(c) {
			return fmt.Errorf("condition %.*q is not a valid name of at most %d bytes", MaxConditionLen+1, c, MaxConditionLen)
		}
		if slices.Contains(conds[:i], c) {
			return fmt.Errorf("condition %s listed twice", c)
		}
	}
	return nil
}

// maxStatusTS is the longest TS a status document holds.
const maxStatusTS = "2006-01-02T15:04:05.999999999Z"

// widestRate is a rate whose JSON (Go's shortest form, in decimal
// notation from 1e-6 to 1e21) is as long as a float64's can be: 24
// bytes.
const widestRate = 1.2345678901234567e-6

// StatusSize is the size in bytes of the largest status document that
// gateway publishes with these labels (its own) and sensors: its longest
// state and times, a version of MaxStatusVersionLen bytes that JSON
// escapes each as six ("\u003c"), and a health with every count at its
// widest and every sensor failing with every one of SensorConditions.
// The gateway's sensors are the only ones its health names, so the
// health's size is bounded by its config.
func StatusSize(gateway string, labels map[string]string, sensors map[string]SensorStatus) int {
	failing := make(map[string][]string, len(sensors))
	conds := SensorConditions()
	for id := range sensors {
		failing[id] = conds
	}
	b, err := json.Marshal(Status{
		State: "offline", Gateway: gateway, TS: maxStatusTS,
		Version: strings.Repeat("<", MaxStatusVersionLen), StartedAt: maxStatusTS, Labels: labels, Sensors: sensors,
		Health: &StatusHealth{
			OutboxBatches: math.MaxInt64, OutboxBytes: math.MaxInt64, OutboxOldest: maxStatusTS,
			ReadingsPerS: widestRate, AlertsFiring: math.MaxInt64, AlertsPending: math.MaxInt64,
			SensorsFailing: failing,
		},
	})
	if err != nil { // cannot happen: strings, integers and a finite float marshal
		return math.MaxInt
	}
	return len(b)
}
