package uplink

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/outposthq/outpost"
)

// New fails without a nil-safe value to misuse: a nil *Uplink and an
// error that names the problem and never the broker's password.
func TestNewFails(t *testing.T) {
	const pw = "hunter2-secret"
	for _, tc := range []struct {
		name  string
		store Store
		opts  *Options
		want  string
	}{
		{"no store", nil, &Options{Broker: "tcp://127.0.0.1:1883", Gateway: "gw"}, "no store"},
		{"nil options", newMemStore(1), nil, "broker and gateway are required"},
		{"no gateway", newMemStore(1), &Options{Broker: "tcp://127.0.0.1:1883"}, "broker and gateway are required"},
		{"malformed URL", newMemStore(1), &Options{Broker: "tcp://u:" + pw + "@[::1", Gateway: "gw"}, "broker URL"},
		{"bad escape", newMemStore(1), &Options{Broker: "tcp://u:" + pw + "%zz@host:1883", Gateway: "gw"}, "broker URL"},
		{"unknown scheme", newMemStore(1), &Options{Broker: "http://u:" + pw + "@host:1883", Gateway: "gw"}, "unsupported scheme"},
		{"unknown ack mode", newMemStore(1), &Options{Broker: "tcp://u:" + pw + "@host:1883", Gateway: "gw", Ack: "never"}, "unknown ack mode"},
		{"bad sensor id", newMemStore(1), &Options{Broker: "tcp://host:1883", Gateway: "gw",
			SensorLabels: map[string]map[string]string{"a/b": nil}}, "not a valid name"},
		{"empty label name", newMemStore(1), &Options{Broker: "tcp://host:1883", Gateway: "gw",
			SensorLabels: map[string]map[string]string{"s": {"": "x"}}}, "sensor s: a label with an empty name"},
		{"status too big", newMemStore(1), &Options{Broker: "tcp://host:1883", Gateway: "gw",
			SensorLabels: bigLabels(2)}, "more than 65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := New(tc.store, tc.opts)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if u != nil {
				t.Errorf("New returned %p with its error", u)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "uplink: ") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want \"uplink: …%s…\"", msg, tc.want)
			}
			if strings.Contains(msg, pw) {
				t.Errorf("error shows the password: %q", msg)
			}
		})
	}
}

// bigLabels is n sensors with the most labels each that a status may
// carry of one sensor, together more than the document may hold.
func bigLabels(n int) map[string]map[string]string {
	out := map[string]map[string]string{}
	for i := range n {
		ls := map[string]string{}
		for j := range outpost.MaxSensorLabels {
			ls[fmt.Sprint("l", j)] = strings.Repeat("v", outpost.MaxLabelValueLen)
		}
		out[fmt.Sprint("s", i)] = ls
	}
	return out
}

// An uplink that was never started closes, twice, without touching a
// client it does not have.
func TestCloseWithoutStart(t *testing.T) {
	u, err := New(newMemStore(1), &Options{Broker: "tcp://127.0.0.1:1", Gateway: "gw"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := u.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
