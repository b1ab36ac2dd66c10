package config

import (
	"os"
	"testing"
)

// FuzzParse: no input may panic Parse, and a config it accepts validates.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../examples/gateway.yaml"); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		minimal,
		"gateway: {id: a}\nsensors: [{id: s, driver: sim, metrics: [{name: m, signal: {kind: sine, period: 1s}}]}]\nuplink: {broker: 'tcp://h:1'}\n",
		"buffer: {max_bytes: 1GiB}\n",
		"gateway: &g {id: a}\nother: *g\n",
		"sensors:\n  - &s {id: a, driver: sim, metrics: [{name: m}]}\n  - <<: *s\n    id: b\n",
		"a: [1, 2\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A name in a fresh directory: rules files (if any) resolve there.
		c, err := Parse("fuzz/gw.yaml", data)
		if err != nil {
			if c != nil {
				t.Fatal("a config came back with an error")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate rejects: %v", err)
		}
	})
}
