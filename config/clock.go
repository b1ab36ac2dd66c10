package config

import "time"

// Clock trust modes (clock.trust).
const (
	// ClockAuto trusts the wall clock once it is at or after the floor
	// (the binary's build time and the newest batch in the outbox), or
	// the kernel says it is synchronised.
	ClockAuto = "auto"
	// ClockSync trusts it only once the kernel says it is synchronised
	// (Linux adjtimex(2)), and at or after the floor.
	ClockSync = "sync"
	// ClockAlways trusts it from the start: nothing is held or re-based.
	ClockAlways = "always"
)

// Clock defaults.
const (
	DefaultClockTrust         = ClockAuto
	DefaultClockStepThreshold = time.Second
	// MaxClockStepThreshold bounds clock.step_threshold: a larger one
	// would miss the steps of a clock that is minutes off.
	MaxClockStepThreshold = time.Minute
)

// ClockConfig says when the gateway trusts its wall clock (docs/clock.md).
// Telemetry taken while it is untrusted is stored but held back from the
// uplink, and re-based by the monotonic clock once it is trusted.
type ClockConfig struct {
	// Trust is auto, sync or always; default auto.
	Trust string `yaml:"trust"`
	// StepThreshold is how far the wall clock must move against the
	// monotonic clock to count as a step; 1ms to 1m, default 1s.
	StepThreshold time.Duration `yaml:"step_threshold"`
}

// SetDefaults fills the zero fields of c with their defaults.
func (c *ClockConfig) SetDefaults() {
	if c.Trust == "" {
		c.Trust = DefaultClockTrust
	}
	if c.StepThreshold == 0 {
		c.StepThreshold = DefaultClockStepThreshold
	}
}

func (c *ClockConfig) validate(k *checker) {
	k.oneOf("$.clock.trust", c.Trust, "clock trust", ClockAuto, ClockSync, ClockAlways)
	if c.StepThreshold < time.Millisecond || c.StepThreshold > MaxClockStepThreshold {
		k.errorf("$.clock.step_threshold", "must be between 1ms and %v, got %v", MaxClockStepThreshold, c.StepThreshold)
	}
}
