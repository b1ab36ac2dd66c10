package gateway

import "fmt"

// Parts of the gateway that New and Start open, as StartError names them.
const (
	PartDataDir = "data dir"
	PartOutbox  = "outbox"
	PartRules   = "rules"
	PartSensor  = "sensor"
	PartUplink  = "uplink"
	PartKey     = "auth key"         // uplink.auth_key_file
	PartMetrics = "metrics listener" // metrics.listen
)

// StartError says which part of the gateway could not be opened or
// started, so that a caller can tell the operator what to do. It wraps the
// cause: errors.Is(err, fs.ErrPermission) and the like see through it.
type StartError struct {
	Part string // one of the Part constants
	Name string // the path, sensor id or broker it concerns; may be ""
	Err  error
}

func (e *StartError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("gateway: cannot open %s: %v", e.Part, e.Err)
	}
	return fmt.Sprintf("gateway: cannot open %s %s: %v", e.Part, e.Name, e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

func startErr(part, name string, err error) error {
	return &StartError{Part: part, Name: name, Err: err}
}
