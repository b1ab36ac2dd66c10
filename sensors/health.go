package sensors

import "time"

// Health conditions a poller reports about its sensor.
const (
	// HealthFailing: FailAfter polls in a row failed (after retries).
	HealthFailing = "failing"
	// HealthSlow: FailAfter reads in a row took longer than Timeout.
	HealthSlow = "slow"
	// HealthStuck: StuckAfter polls in a row returned unchanged values.
	HealthStuck = "stuck"
	// HealthBad: FailAfter polls in a row held a reading of QualityBad.
	HealthBad = "bad"
)

// HealthEvent is a change of one health condition of one sensor: it began
// (Active) or ended. A condition begins after FailAfter (StuckAfter)
// consecutive polls show it, and ends on the first poll that does not.
type HealthEvent struct {
	Sensor    string
	Condition string    // one of the Health* constants
	Active    bool      // true: the condition began; false: it ended
	Since     time.Time // when the first poll showing it ran
	At        time.Time // when this event was decided
	Polls     int       // consecutive polls that showed it
	Err       string    // the last error or a description, for people
}

// Supervision tunes how a poller judges its sensor. The zero value means
// the defaults below.
type Supervision struct {
	// Retries is how many times a failed read is retried at once within
	// the same poll, for transient bus errors (an I2C NACK, a 1-Wire CRC
	// error); 0 means 1, negative means none.
	Retries int
	// FailAfter is how many consecutive failed (slow, bad) polls begin the
	// failing (slow, bad) condition; 0 means 3.
	FailAfter int
	// Timeout: a read taking longer marks its readings QualityUncertain
	// and counts toward the slow condition; 0 means the poll interval.
	Timeout time.Duration
	// StuckAfter is how many consecutive polls with every value unchanged
	// begin the stuck condition, whose readings are QualityUncertain; 0
	// turns stuck detection off (a quantized quantity may well not move).
	StuckAfter int
	// MaxStep bounds the believable change of a metric between two polls;
	// a larger jump is a spike, marked QualityUncertain and not used as
	// the base for the next comparison. Missing metrics are unchecked.
	MaxStep map[string]float64
}

// Status is a snapshot of what a poller knows of its sensor (Poller.Status).
type Status struct {
	Sensor      string
	Readings    int64     // readings emitted, edges included
	Polls       int64     // polls run
	Failures    int64     // polls that failed after their retries
	Retries     int64     // reads retried within a poll
	Uncertain   int64     // readings emitted with QualityUncertain
	Bad         int64     // readings emitted with QualityBad
	Active      []string  // conditions active now, sorted
	LastError   string    // the last read error, "" if none yet
	LastErrorAt time.Time // zero if none yet
}
