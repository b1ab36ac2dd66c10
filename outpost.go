// Package outpost holds the domain types shared by the gateway and the
// ingestion service: readings, alerts, the columnar batch that crosses the
// wire, the application-level ack, and the sentinel errors.
//
// The wire types are MessagePack: batches in a columnar encoding written
// by hand with msgp's primitives (codec.go, encoder.go), the rest by code
// that msgp generates (wire_gen.go); docs/wire-format.md describes the
// bytes for people who decode them with another MessagePack library.
package outpost

//go:generate go tool msgp -file wire.go -o wire_gen.go -tests=false -unexported

// Quality says how far a reading can be trusted.
type Quality uint8

const (
	QualityGood      Quality = 0
	QualityUncertain Quality = 1
	QualityBad       Quality = 2
)

func (q Quality) String() string {
	switch q {
	case QualityGood:
		return "good"
	case QualityUncertain:
		return "uncertain"
	case QualityBad:
		return "bad"
	}
	return "invalid"
}

// Reading is one sampled value of one metric of one sensor.
//
// Readings travel through the gateway in slices; a slice handed to the bus is
// read-only from then on, shared by every receiver.
type Reading struct {
	Sensor  string  // sensor id from the config, e.g. "dev1-env"
	Metric  string  // e.g. "temperature"
	Unit    string  // SI unit symbol, e.g. "Cel", "%RH", "Pa"
	TS      int64   // unix nanoseconds
	Value   float64 //
	Quality Quality //
}

// SeriesKey names one time series within a gateway.
type SeriesKey struct {
	Sensor string
	Metric string
}

// Key returns the reading's series key.
func (r *Reading) Key() SeriesKey { return SeriesKey{Sensor: r.Sensor, Metric: r.Metric} }

var stateNames = [...]string{"inactive", "pending", "firing", "resolved", "nodata"}

func (s AlertState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "invalid"
}

// ParseAlertState is the inverse of AlertState.String.
func ParseAlertState(s string) (AlertState, bool) {
	for i, n := range stateNames {
		if n == s {
			return AlertState(i), true
		}
	}
	return 0, false
}

func (k Kind) String() string {
	switch k {
	case KindTelemetry:
		return "telemetry"
	case KindAlert:
		return "alert"
	case KindLoss:
		return "loss"
	}
	return "invalid"
}
