package firmwaresim

import "errors"

// Sentinel errors of the simulated buses. Drivers wrap them with %v, so
// through a driver only the message survives; the bus returns them wrapped
// with %w.
var (
	// ErrNACK is returned by I2CBus.Tx when no chip acknowledges: nothing at
	// the address, a chip in dropout, or an injected NACK fault.
	ErrNACK = errors.New("firmwaresim: i2c: no ACK")
	// ErrNoPresence is returned by OneWireBus when a reset sees no presence
	// pulse. It satisfies periph's onewire.NoDevicesError.
	ErrNoPresence error = noPresence("firmwaresim: onewire: no presence pulse")
)

type noPresence string

func (e noPresence) Error() string   { return string(e) }
func (e noPresence) NoDevices() bool { return true }
