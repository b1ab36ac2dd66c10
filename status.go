package outpost

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
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
)

// Status is a gateway's status document, which its uplink publishes
// retained on {prefix}/{gateway}/status: online at every connect,
// offline on a clean stop and as the connection's last will.
type Status struct {
	State   string `json:"state"`
	Gateway string `json:"gateway"`
	// TS is when the gateway published it, RFC 3339 with nanoseconds,
	// UTC; empty (left out) in the last will, which the broker publishes
	// when the connection dies, at a time the gateway cannot know.
	TS string `json:"ts,omitempty"`
	// Sensors are the gateway's sensors by id, every one of its config,
	// each with its labels. A status without the field (nil: from a
	// gateway of an earlier release) says nothing of them; an empty
	// one, that no sensor has labels.
	Sensors map[string]SensorStatus `json:"sensors,omitzero"`
}

// SensorStatus is what a status document says of one sensor.
type SensorStatus struct {
	// Labels are the sensor's labels from the gateway's config
	// (sensors[].labels), {} when it has none.
	Labels map[string]string `json:"labels"`
}

// CheckSensors reports a sensor of s that breaks the document's bounds:
// an id that is not a ValidName, or labels that CheckSensorLabels
// refuses.
func (s *Status) CheckSensors() error {
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

// maxStatusTS is the longest TS a status document holds.
const maxStatusTS = "2006-01-02T15:04:05.999999999Z"

// StatusSize is the size in bytes of the largest status document that
// gateway publishes with these sensors: its longest state and time.
func StatusSize(gateway string, sensors map[string]SensorStatus) int {
	b, err := json.Marshal(Status{State: "offline", Gateway: gateway, TS: maxStatusTS, Sensors: sensors})
	if err != nil { // cannot happen: maps of strings marshal
		return math.MaxInt
	}
	return len(b)
}
