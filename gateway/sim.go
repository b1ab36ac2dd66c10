package gateway

import (
	"fmt"

	"github.com/outposthq/outpost/config"
	firmwaresim "github.com/outposthq/outpost/firmware-sim"
	"github.com/outposthq/outpost/sensors"
)

// SimDriver is the registry name of simulated sensors.
const SimDriver = "sim"

// DefaultRegistry returns a registry with every driver this build has.
func DefaultRegistry() *sensors.Registry {
	r := sensors.NewRegistry()
	if err := r.Register(SimDriver, newSimSensor); err != nil {
		panic(err) // a programming error: names here are constants
	}
	return r
}

// newSimSensor builds a firmware-sim device; spec.Options is []firmwaresim.Channel.
func newSimSensor(spec sensors.Spec) (sensors.Sensor, error) {
	chans, ok := spec.Options.([]firmwaresim.Channel)
	if !ok {
		return nil, fmt.Errorf("sim driver: options are %T, want []firmwaresim.Channel", spec.Options)
	}
	return firmwaresim.NewDevice(spec.ID, spec.Interval, spec.Samples, chans)
}

// sensorSpec turns a sensor's config into the registry's spec.
func sensorSpec(s *config.Sensor) sensors.Spec {
	spec := sensors.Spec{ID: s.ID, Driver: s.Driver, Interval: s.Interval, Samples: s.Samples, Labels: s.Labels}
	if s.Driver == SimDriver {
		chans := make([]firmwaresim.Channel, 0, len(s.Metrics))
		for _, m := range s.Metrics {
			sg := m.Signal
			chans = append(chans, firmwaresim.Channel{Metric: m.Name, Unit: m.Unit, Signal: firmwaresim.SignalSpec{
				Kind: sg.Kind, Value: sg.Value, Base: sg.Base, Amplitude: sg.Amplitude, Period: sg.Period,
				Slope: sg.Slope, Step: sg.Step, Min: sg.Min, Max: sg.Max, HasMin: sg.HasMin, HasMax: sg.HasMax,
				Noise: sg.Noise, Resolution: sg.Resolution, Seed: uint64(sg.Seed),
			}})
		}
		spec.Options = chans
	}
	return spec
}
