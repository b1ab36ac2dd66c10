package gateway

import (
	"fmt"

	"github.com/outposthq/outpost/config"
	firmwaresim "github.com/outposthq/outpost/firmware-sim"
	"github.com/outposthq/outpost/sensors"
)

// SimDriver is the registry name of simulated sensors.
const SimDriver = config.SimDriver

// DefaultRegistry returns a registry with every driver this build has: the
// sim driver and the periph drivers of package sensors.
func DefaultRegistry() *sensors.Registry {
	r := sensors.NewRegistry()
	if err := r.Register(SimDriver, newSimSensor); err != nil {
		panic(err) // a programming error: names here are constants
	}
	if err := sensors.RegisterBuiltin(r); err != nil {
		panic(err)
	}
	return r
}

// newSimSensor builds a firmware-sim device; spec.Options is []firmwaresim.Channel.
func newSimSensor(spec sensors.Spec) (sensors.Sensor, error) {
	chans, ok := spec.Options.([]firmwaresim.Channel)
	if !ok {
		return nil, fmt.Errorf("sim driver: sensor %s: options are %T, want []firmwaresim.Channel", spec.ID, spec.Options)
	}
	return firmwaresim.NewDevice(spec.ID, spec.Interval, spec.Samples, chans)
}

// simSignal is a config signal as firmware-sim takes it.
func simSignal(sg config.Signal) firmwaresim.SignalSpec {
	return firmwaresim.SignalSpec{
		Kind: sg.Kind, Value: sg.Value, Base: sg.Base, Amplitude: sg.Amplitude, Period: sg.Period,
		Slope: sg.Slope, Step: sg.Step, Min: sg.Min, Max: sg.Max, HasMin: sg.HasMin, HasMax: sg.HasMax,
		Noise: sg.Noise, Resolution: sg.Resolution, Seed: uint64(sg.Seed),
		ReplayPath: sg.File, ReplayColumn: sg.Column,
	}
}

// sensorSpec turns a sensor's config into the registry's spec.
func sensorSpec(s *config.Sensor, buses sensors.Buses) sensors.Spec {
	spec := sensors.Spec{
		ID: s.ID, Driver: s.Driver, Interval: s.Interval, Samples: s.Samples, Labels: s.Labels,
		Bus: s.Bus, Address: s.Address, Buses: buses,
	}
	if s.Driver == SimDriver {
		chans := make([]firmwaresim.Channel, 0, len(s.Metrics))
		for _, m := range s.Metrics {
			chans = append(chans, firmwaresim.Channel{Metric: m.Name, Unit: m.Unit, Signal: simSignal(m.Signal)})
		}
		spec.Options = chans
		return spec
	}
	for _, m := range s.Metrics {
		spec.Metrics = append(spec.Metrics, sensors.Metric{Name: m.Name, Unit: m.Unit})
	}
	o := &s.Options
	switch s.Driver {
	case config.DriverBME280, config.DriverBMP280:
		spec.Options = &sensors.BMEOptions{Oversampling: o.Oversampling, Filter: o.Filter}
	case config.DriverDS18B20:
		spec.Options = &sensors.DS18B20Options{ResolutionBits: o.ResolutionBits}
	case config.DriverGPIO:
		spec.Options = &sensors.GPIOOptions{Pull: o.Pull, ActiveLow: o.ActiveLow, Debounce: o.Debounce, NoEdges: o.Edges != nil && !*o.Edges}
	case config.DriverADS1115:
		ao := &sensors.ADCOptions{Channel: o.Channel, FullScale: o.FullScale}
		if sc := o.Scale; sc != nil {
			ao.Scale = &sensors.LinearScale{InMin: sc.InMin, InMax: sc.InMax, OutMin: sc.OutMin, OutMax: sc.OutMax}
			if sc.FaultBelow != nil {
				ao.Scale.FaultBelow, ao.Scale.HasFaultBelow = *sc.FaultBelow, true
			}
			if sc.FaultAbove != nil {
				ao.Scale.FaultAbove, ao.Scale.HasFaultAbove = *sc.FaultAbove, true
			}
		}
		spec.Options = ao
	}
	return spec
}

// supervision is a sensor's supervision config as the poller takes it.
func supervision(s *config.Sensor) sensors.Supervision {
	v := s.Supervision
	sv := sensors.Supervision{FailAfter: v.FailAfter, Timeout: v.Timeout, StuckAfter: v.StuckAfter, MaxStep: v.MaxStep}
	if v.Retries != nil {
		sv.Retries = *v.Retries
		if sv.Retries == 0 {
			sv.Retries = -1 // the poller's zero means its default
		}
	}
	return sv
}
