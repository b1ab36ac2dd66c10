package firmwaresim

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/onewire"
)

// OneWireBus is a simulated 1-Wire bus implementing periph's onewire.Bus
// and onewire.BusSearcher, with DS18B20s attached by ROM id. Every Tx
// starts with a reset; a device that is absent (dropout) or silent (nack
// fault) gives no presence and reads as 0xFF, like an open bus. Safe for
// concurrent use, but a search is a sequence of calls, so one master at a
// time, as on a real bus.
type OneWireBus struct {
	name string
	mu   sync.Mutex
	devs []*DS18B20
	// search state between Tx(0xF0) and the SearchTriplet calls
	searching []*DS18B20
	bit       int
}

var (
	_ onewire.Bus         = (*OneWireBus)(nil)
	_ onewire.BusSearcher = (*OneWireBus)(nil)
)

// NewOneWireBus returns an empty bus named name.
func NewOneWireBus(name string) *OneWireBus { return &OneWireBus{name: name} }

// Attach puts d on the bus; its ROM id must be unique.
func (b *OneWireBus) Attach(d *DS18B20) error {
	if d == nil {
		return fmt.Errorf("firmwaresim: no device to attach to %s", b.name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, o := range b.devs {
		if o.addr == d.addr {
			return fmt.Errorf("firmwaresim: onewire rom %016x already on %s", uint64(d.addr), b.name)
		}
	}
	b.devs = append(b.devs, d)
	return nil
}

// String implements onewire.Bus.
func (b *OneWireBus) String() string { return b.name }

// Search implements onewire.Bus with periph's search algorithm over
// SearchTriplet, so the ROM search runs bit by bit as on the wire.
func (b *OneWireBus) Search(alarmOnly bool) ([]onewire.Address, error) {
	return onewire.Search(b, alarmOnly)
}

// SearchTriplet implements onewire.BusSearcher: the participating devices
// send the bit and its complement, the master writes dir when both answer,
// and devices whose bit differs drop out.
func (b *OneWireBus) SearchTriplet(dir byte) (onewire.TripletResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var res onewire.TripletResult
	if b.bit >= 64 {
		return res, fmt.Errorf("firmwaresim: %s: search past 64 bits", b.name)
	}
	for _, d := range b.searching {
		if uint64(d.addr)>>b.bit&1 == 0 {
			res.GotZero = true
		} else {
			res.GotOne = true
		}
	}
	switch {
	case res.GotZero && res.GotOne:
		res.Taken = dir & 1
	case res.GotOne:
		res.Taken = 1
	}
	kept := b.searching[:0]
	for _, d := range b.searching {
		if byte(uint64(d.addr)>>b.bit&1) == res.Taken {
			kept = append(kept, d)
		}
	}
	b.searching = kept
	b.bit++
	return res, nil
}

// Tx implements onewire.Bus: reset, a ROM command (search 0xF0, alarm
// search 0xEC, match 0x55, skip 0xCC, read 0x33), then a function command
// for the selected devices. Reads with several devices selected are the
// wired AND of their answers.
func (b *OneWireBus) Tx(w, r []byte, _ onewire.Pullup) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.searching = nil
	var present []*DS18B20
	for _, d := range b.devs {
		if d.reset() {
			present = append(present, d)
		}
	}
	if len(present) == 0 {
		return fmt.Errorf("firmwaresim: %s: %w", b.name, ErrNoPresence)
	}
	for i := range r {
		r[i] = 0xFF
	}
	if len(w) == 0 {
		return nil
	}
	sel := present
	switch w[0] {
	case 0xF0, 0xEC:
		b.bit = 0
		b.searching = nil
		for _, d := range present {
			if w[0] == 0xF0 || d.alarm() {
				b.searching = append(b.searching, d)
			}
		}
		return nil
	case 0x55:
		if len(w) < 9 {
			return fmt.Errorf("firmwaresim: %s: match ROM needs 8 address bytes", b.name)
		}
		a := onewire.Address(binary.LittleEndian.Uint64(w[1:9]))
		sel = nil
		for _, d := range present {
			if d.addr == a {
				sel = append(sel, d)
			}
		}
		w = w[9:]
	case 0xCC:
		w = w[1:]
	case 0x33:
		var rom [8]byte
		for i := range rom {
			rom[i] = 0xFF
		}
		for _, d := range present {
			var mine [8]byte
			binary.LittleEndian.PutUint64(mine[:], uint64(d.addr))
			for i := range rom {
				rom[i] &= mine[i]
			}
		}
		copy(r, rom[:])
		return nil
	default:
		return fmt.Errorf("firmwaresim: %s: unknown ROM command 0x%02x", b.name, w[0])
	}
	if len(w) == 0 {
		return nil
	}
	buf := make([]byte, len(r))
	for _, d := range sel {
		for i := range buf {
			buf[i] = 0xFF
		}
		d.function(w, buf)
		for i := range r {
			r[i] &= buf[i]
		}
	}
	return nil
}

// DS18B20Options configure a simulated DS18B20. Nil options mean a
// fault-free chip on the real clock at 20 °C.
type DS18B20Options struct {
	ChipOptions
	Temperature SignalSpec // °C; empty Kind means constant 20
}

// DS18B20 is a simulated Maxim DS18B20: convert T latches the signal at
// the conversion's start and publishes it after the datasheet conversion
// time for the configured resolution (93.75 ms × 2^(bits−9)); until the
// first conversion completes the scratchpad holds the power-on 85 °C.
type DS18B20 struct {
	mu       sync.Mutex
	addr     onewire.Address
	f        *faults
	t        *Signal
	spad     [8]byte // without CRC
	eeprom   [3]byte // TH, TL, config
	pending  bool
	doneAt   time.Time
	next     int16
	silent   bool // this transaction: nack fault fired
	txNow    time.Time
	hasAlarm bool
}

// DS18B20Address returns the ROM id of a DS18B20 (family 0x28) with the
// 48-bit serial number and its CRC8.
func DS18B20Address(serial uint64) onewire.Address {
	var rom [8]byte
	binary.LittleEndian.PutUint64(rom[:], serial<<8|0x28)
	rom[7] = onewire.CalcCRC(rom[:7])
	return onewire.Address(binary.LittleEndian.Uint64(rom[:]))
}

// NewDS18B20 returns a simulated DS18B20 with ROM id addr, which must be
// a DS18B20 id with a valid CRC (see DS18B20Address).
func NewDS18B20(addr onewire.Address, opts *DS18B20Options) (*DS18B20, error) {
	var rom [8]byte
	binary.LittleEndian.PutUint64(rom[:], uint64(addr))
	if rom[0] != 0x28 || !onewire.CheckCRC(rom[:]) {
		return nil, fmt.Errorf("firmwaresim: %016x is not a DS18B20 ROM id with a valid CRC", uint64(addr))
	}
	if opts == nil {
		opts = &DS18B20Options{}
	}
	f, err := newFaults(opts.ChipOptions)
	if err != nil {
		return nil, err
	}
	d := &DS18B20{addr: addr, f: f, eeprom: [3]byte{0x4B, 0x46, 0x7F}}
	if d.t, err = signalOr(opts.Temperature, 20, f.start); err != nil {
		return nil, fmt.Errorf("firmwaresim: ds18b20 temperature: %w", err)
	}
	d.spad = [8]byte{0x50, 0x05, d.eeprom[0], d.eeprom[1], d.eeprom[2], 0xFF, 0x0C, 0x10}
	return d, nil
}

// Address is the device's ROM id.
func (d *DS18B20) Address() onewire.Address { return d.addr }

// reset runs the bus faults for one transaction and says whether the
// device answers the reset with a presence pulse.
func (d *DS18B20) reset() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now, ok := d.f.begin()
	d.txNow, d.silent = now, !ok
	d.settle(now)
	return ok
}

// settle publishes a finished conversion.
func (d *DS18B20) settle(now time.Time) {
	if d.pending && !now.Before(d.doneAt) {
		d.pending = false
		d.spad[0], d.spad[1] = byte(d.next), byte(d.next>>8)
		th, tl := int8(d.spad[2]), int8(d.spad[3])
		c := d.next >> 4
		d.hasAlarm = c >= int16(th) || c <= int16(tl)
	}
}

func (d *DS18B20) alarm() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hasAlarm
}

func (d *DS18B20) bits() int { return 9 + int(d.spad[4]>>5&3) }

// function runs a function command w[0] with data w[1:], filling r.
func (d *DS18B20) function(w, r []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.silent {
		return
	}
	switch w[0] {
	case 0x44: // convert T
		bits := d.bits()
		c := d.f.value(qTemperature, d.t.At(d.txNow.UnixNano()), d.txNow)
		c = math.Max(-55, math.Min(125, c))
		step := 1 << (12 - bits) // in 1/16 °C
		raw := int16(math.Round(c*16/float64(step))) * int16(step)
		d.next, d.pending = raw, true
		d.doneAt = d.txNow.Add(time.Duration(93750*(1<<(bits-9))) * time.Microsecond)
		for i := range r {
			r[i] = 0 // busy while converting
		}
	case 0xBE: // read scratchpad
		var sp [9]byte
		copy(sp[:], d.spad[:])
		sp[8] = onewire.CalcCRC(sp[:8])
		if d.f.corruptCRC(d.txNow) {
			sp[8] ^= 0x5A
		}
		copy(r, sp[:])
	case 0x4E: // write scratchpad: TH, TL, config
		for i := 1; i < len(w) && i <= 3; i++ {
			v := w[i]
			if i == 3 {
				v = v&0x60 | 0x1F
			}
			d.spad[1+i] = v
		}
	case 0x48: // copy scratchpad
		copy(d.eeprom[:], d.spad[2:5])
	case 0xB8: // recall E²
		copy(d.spad[2:5], d.eeprom[:])
	case 0xB4: // read power supply: externally powered
		for i := range r {
			r[i] = 0xFF
		}
	}
}
