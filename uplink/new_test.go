package uplink

import (
	"context"
	"strings"
	"testing"
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
