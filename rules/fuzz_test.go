package rules

import (
	"os"
	"testing"

	"github.com/outposthq/outpost"
)

// FuzzParse: no input may panic Parse; a set it accepts must run.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../examples/rules.yaml"); err == nil {
		f.Add(data)
	}
	for _, s := range []string{
		"rules:\n  - {name: a, select: {metric: t}, above: 1, for: 1s, message: '{{.Value}}'}\n",
		"rules:\n  - name: a\n    select: {metric: t, sensor: s}\n    below: 1\n    labels: {x: y}\n",
		"rules: &r [*r]\n",
		"rules:\n  - &a {name: a, select: {metric: t}, above: 1}\n  - <<: *a\n    name: b\n",
		"rules:\n  - name: a\n    message: |\n      {{ if gt .Value 1.0 }}hot{{ end }}\n",
		benchRules(3, true, 0),
		engineRules(10),
		freezer,
		"rules:\n  - name: j\n    select: {metrics: [t, u]}\n    group_by: [device]\n    condition: 'avg(t, \"1m\") > u && age(u) < 5 && metric[\"t\"] > 0'\n    reset: 'last(t) < 0'\n    keep_firing_for: 1s\n    no_data: {after: 1s, state: firing}\n    repeat: 1s\n    annotations: {s: '{{ .Labels.device }}'}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse("fuzz.yaml", data)
		if err != nil {
			if set != nil {
				t.Fatal("a set came back with an error")
			}
			return
		}
		e := NewEngine(set, &Options{Gateway: "gw"})
		rs := []outpost.Reading{{Sensor: "s", Metric: "t", TS: 1, Value: 2}, {Sensor: "s", Metric: "t", TS: 2e9, Value: 0}}
		e.Eval(rs, nil)
		e.Tick(3e9, nil)
		st := e.State()
		NewEngine(set, nil).Restore(st)
	})
}
