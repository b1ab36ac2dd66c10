package config

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse: no input may panic Parse, and a config it accepts validates.
// Variables come from a fixed environment, so that a crash replays.
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
		// References to environment variables.
		strings.Replace(minimal, "gw-01", "${GW_ID}", 1),
		strings.Replace(minimal, "gw-01", "${UNSET:-gw-2}", 1) + "  window: ${EMPTY:-16}\n  client_id: $$x\n",
		"gateway: {id: \"${NL}\"}\nuplink: {broker: \"tcp://${H:-h}:${P:-1}\", window: \"${W:-16}\"}\n",
		"gateway:\n  id: ${UNSET}\n",
		"a: ${\n", "a: $$ ${} ${1X} $X ${A-b} ${A:-${B}}\n", "gateway: {id: 'x${GW_ID'}\n",
		"buffer: {max_bytes: \"${UNSET:-1GiB}\", max_age: ${UNSET:-1h}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A name in a fresh directory: rules files (if any) resolve there.
		c, err := parse("fuzz/gw.yaml", data, envOpts(map[string]string{
			"GW_ID": "gw-1", "EMPTY": "", "NL": "a\nb: c",
		}))
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
