package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// What is pasted into password_env instead of a variable's name is often
// the password: the error says where, and never what.
func TestPasswordEnvNotEchoed(t *testing.T) {
	for i, pasted := range []string{"hunter2!", "s3cret pass", "p@ss-w0rd", `"quoted"`} {
		// Not named after the value: the temp dir's name would hold it.
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			src := sensorOnly + "uplink:\n  broker: tcp://127.0.0.1:1883\n  username: gw-1\n  password_env: '" +
				strings.ReplaceAll(pasted, "'", "''") + "'\n"
			_, err := Parse(filepath.Join(t.TempDir(), "gw.yaml"), []byte(src))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, "gw.yaml:10:17: uplink.password_env: is not an environment variable name") {
				t.Errorf("error does not say what is wrong where:\n%s", msg)
			}
			if strings.Contains(msg, pasted) || strings.Contains(msg, strings.Trim(pasted, `"`)) {
				t.Errorf("the value appears in the error:\n%s", msg)
			}
		})
	}
}

// sensorOnly is a config with one sensor, to which a test appends its
// uplink section.
const sensorOnly = `gateway: {id: gw-1}
sensors:
  - id: s1
    driver: sim
    metrics:
      - {name: temperature, unit: Cel, signal: {kind: constant, value: 20}}
`
