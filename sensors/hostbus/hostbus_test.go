package hostbus

import (
	"errors"
	"strings"
	"testing"
)

func TestParseOneWireMaster(t *testing.T) {
	cases := []struct {
		name string
		want uint32
		ok   bool
	}{
		{"w1", 1, true},
		{"w1-1", 1, true},
		{"w1-3", 3, true},
		{"w1_bus_master1", 1, true},
		{"w1_bus_master12", 12, true},
		{"", 0, false},
		{"w1-", 0, false},
		{"w1-0", 0, false},
		{"w1-x", 0, false},
		{"w1-+2", 0, false},
		{"w1--2", 0, false},
		{"w1_bus_master", 0, false},
		{"w2", 0, false},
		{"sim-w1-0", 0, false},
		{"w1-99999999999", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOneWireMaster(tc.name)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseOneWireMaster(%q) = %d, %v; want %d, ok %v", tc.name, got, err, tc.want, tc.ok)
			}
		})
	}
}

// TestCleanErrors runs on any machine, with or without the hardware: names
// that cannot be on a host get errors, not panics.
func TestCleanErrors(t *testing.T) {
	b := New()
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	cases := []struct {
		name string
		open func() error
		want string
	}{
		{"unknown i2c bus", func() error { _, err := b.I2C("no-such-bus"); return err }, `hostbus: i2c bus "no-such-bus"`},
		{"bad 1-Wire name", func() error { _, err := b.OneWire("onewire0"); return err }, `want w1, w1-N or w1_bus_masterN`},
		{"1-Wire master 0", func() error { _, err := b.OneWire("w1-0"); return err }, `not a whole number from 1`},
		{"absent 1-Wire master", func() error { _, err := b.OneWire("w1-4000000000"); return err }, `no w1 master 4000000000`},
		{"pin on another bus", func() error { _, err := b.Pin("sim-gpio0", "GPIO17"); return err }, `the host's pins are on bus "host"`},
		{"no pin name", func() error { _, err := b.Pin("host", ""); return err }, `no pin name`},
		{"unknown pin", func() error { _, err := b.Pin("", "NO_SUCH_PIN"); return err }, `no GPIO pin "NO_SUCH_PIN"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.open()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

func TestClosed(t *testing.T) {
	b := New()
	for range 2 {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.I2C("1"); !errors.Is(err, ErrClosed) {
		t.Errorf("I2C after Close: %v, want ErrClosed", err)
	}
	if _, err := b.OneWire("w1"); !errors.Is(err, ErrClosed) {
		t.Errorf("OneWire after Close: %v, want ErrClosed", err)
	}
	if _, err := b.Pin("host", "GPIO17"); !errors.Is(err, ErrClosed) {
		t.Errorf("Pin after Close: %v, want ErrClosed", err)
	}
}
