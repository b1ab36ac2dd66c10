package sensors

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"periph.io/x/conn/v3/onewire"
)

// ParseI2CAddress parses a 7-bit I2C address in hex ("0x76", "0X76") or
// decimal ("118"), between 0x03 and 0x77 (the others are reserved). An
// empty s means def.
func ParseI2CAddress(s string, def uint16) (uint16, error) {
	if s == "" {
		return def, nil
	}
	t := strings.TrimSpace(s)
	base := 10
	if len(t) > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X') {
		t, base = t[2:], 16
	}
	n, err := strconv.ParseUint(t, base, 16)
	if err != nil || n < 0x03 || n > 0x77 {
		return 0, fmt.Errorf("address %q is not a 7-bit I2C address (0x03 to 0x77, e.g. \"0x76\")", s)
	}
	return uint16(n), nil
}

// ParseROM parses a 1-Wire ROM id in one of two forms:
//
//   - as Linux lists it under /sys/bus/w1/devices: the family byte, a dash
//     and the 48-bit serial number as 12 hex digits, "28-00000abcdef0"; the
//     CRC byte, which this form leaves out, is computed;
//   - as periph prints an onewire.Address: the whole 64-bit ROM as 16 hex
//     digits, CRC first and family last ("0x" optional), whose CRC must
//     be right.
func ParseROM(s string) (onewire.Address, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	var rom [8]byte
	switch {
	case len(t) == 15 && t[2] == '-':
		fam, err1 := strconv.ParseUint(t[:2], 16, 8)
		serial, err2 := strconv.ParseUint(t[3:], 16, 48)
		if err1 != nil || err2 != nil || !isHex(t[:2]) || !isHex(t[3:]) {
			return 0, fmt.Errorf("1-Wire id %q: want hex digits, like \"28-00000abcdef0\"", s)
		}
		binary.LittleEndian.PutUint64(rom[:], serial<<8|fam)
		rom[7] = onewire.CalcCRC(rom[:7])
	case len(t) == 16 || len(t) == 18 && strings.HasPrefix(t, "0x"):
		t = strings.TrimPrefix(t, "0x")
		n, err := strconv.ParseUint(t, 16, 64)
		if err != nil || !isHex(t) {
			return 0, fmt.Errorf("1-Wire id %q: want 16 hex digits, like \"7a00000abcdef028\"", s)
		}
		binary.LittleEndian.PutUint64(rom[:], n)
		if !onewire.CheckCRC(rom[:]) {
			return 0, fmt.Errorf("1-Wire id %q: bad CRC byte %02x, want %02x", s, rom[7], onewire.CalcCRC(rom[:7]))
		}
	default:
		return 0, fmt.Errorf("1-Wire id %q: want the form of /sys/bus/w1/devices (\"28-00000abcdef0\") or 16 hex digits", s)
	}
	return onewire.Address(binary.LittleEndian.Uint64(rom[:])), nil
}

// FormatROM returns a ROM id as Linux names the device under
// /sys/bus/w1/devices: family, dash, serial number ("28-00000abcdef0").
// The kernel prints the serial (ROM bytes 1 to 6, sent least significant
// first) as one big-endian number, so the last byte on the wire comes
// first.
func FormatROM(a onewire.Address) string {
	return fmt.Sprintf("%02x-%012x", uint64(a)&0xFF, uint64(a)>>8&(1<<48-1))
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
