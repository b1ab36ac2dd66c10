package firmwaresim

import (
	"fmt"
	"sync"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
)

// I2CChip is a simulated chip on an I2CBus: one transaction writes w then
// reads len(r) bytes, like a repeated-start write-then-read. A chip that
// does not acknowledge returns an error wrapping ErrNACK.
type I2CChip interface {
	Tx(w, r []byte) error
}

// I2CBus is a simulated I2C bus implementing periph's i2c.Bus, so the
// real drivers run against simulated chips. It is safe for concurrent use;
// transactions are serialised like on a real bus.
type I2CBus struct {
	name  string
	mu    sync.Mutex
	chips map[uint16]I2CChip
	speed physic.Frequency
}

var _ i2c.Bus = (*I2CBus)(nil)

// NewI2CBus returns an empty bus named name (its String).
func NewI2CBus(name string) *I2CBus {
	return &I2CBus{name: name, chips: map[uint16]I2CChip{}, speed: 100 * physic.KiloHertz}
}

// Attach puts chip at the 7-bit address addr. It fails if the address is
// taken or out of range.
func (b *I2CBus) Attach(addr uint16, chip I2CChip) error {
	if chip == nil {
		return fmt.Errorf("firmwaresim: no chip to attach at 0x%02x on %s", addr, b.name)
	}
	if addr > 0x7F {
		return fmt.Errorf("firmwaresim: i2c address 0x%x out of range", addr)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.chips[addr]; ok {
		return fmt.Errorf("firmwaresim: i2c address 0x%02x already taken", addr)
	}
	b.chips[addr] = chip
	return nil
}

// Tx implements i2c.Bus. An address with no chip is not acknowledged.
func (b *I2CBus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.chips[addr]
	if !ok {
		return fmt.Errorf("firmwaresim: %s addr 0x%02x: %w", b.name, addr, ErrNACK)
	}
	if err := c.Tx(w, r); err != nil {
		return fmt.Errorf("firmwaresim: %s addr 0x%02x: %w", b.name, addr, err)
	}
	return nil
}

// SetSpeed implements i2c.Bus; the speed is recorded, not simulated.
func (b *I2CBus) SetSpeed(f physic.Frequency) error {
	if f <= 0 {
		return fmt.Errorf("firmwaresim: invalid i2c speed %s", f)
	}
	b.mu.Lock()
	b.speed = f
	b.mu.Unlock()
	return nil
}

// String implements i2c.Bus.
func (b *I2CBus) String() string { return b.name }
