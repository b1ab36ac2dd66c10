package sensors

import (
	"encoding/binary"
	"fmt"
	"testing"

	"periph.io/x/conn/v3/onewire"

	firmwaresim "github.com/outposthq/outpost/firmware-sim"
)

func TestParseI2CAddress(t *testing.T) {
	cases := []struct {
		in   string
		want uint16
		ok   bool
	}{
		{"", 0x48, true}, // the default
		{"0x76", 0x76, true},
		{"0X76", 0x76, true},
		{"118", 0x76, true},
		{" 0x77 ", 0x77, true},
		{"0x03", 0x03, true},
		{"3", 0x03, true},
		{"0x02", 0, false},
		{"0x78", 0, false},
		{"120", 0, false},
		{"0x", 0, false},
		{"x76", 0, false},
		{"0x7_6", 0, false},
		{"076", 76, true}, // decimal, not octal
		{"-1", 0, false},
		{"+118", 0, false},
		{"0x0076", 0x76, true},
		{"0x10000", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseI2CAddress(tc.in, 0x48)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseI2CAddress(%q) = %#x, %v; want %#x, ok %v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

// kernelName is the name Linux gives a 1-Wire device under
// /sys/bus/w1/devices, computed from the ROM bytes as on the wire the way
// drivers/w1 does: "%02x-%012llx" of the family and of the 48-bit id
// read little-endian from ROM bytes 1 to 6.
func kernelName(rom [8]byte) string {
	var id [8]byte
	copy(id[:], rom[1:7])
	return fmt.Sprintf("%02x-%012x", rom[0], binary.LittleEndian.Uint64(id[:]))
}

func TestROMForms(t *testing.T) {
	for _, serial := range []uint64{0x00000abcdef0, 1, 0xFFFFFFFFFFFF, 0x0123456789ab} {
		a := firmwaresim.DS18B20Address(serial)
		var rom [8]byte
		binary.LittleEndian.PutUint64(rom[:], uint64(a))
		name := kernelName(rom)
		if got := FormatROM(a); got != name {
			t.Errorf("FormatROM(%016x) = %s, the kernel says %s", uint64(a), got, name)
		}
		if want := fmt.Sprintf("28-%012x", serial); name != want {
			t.Errorf("serial %x is named %s, want %s", serial, name, want)
		}
		for _, form := range []string{name, fmt.Sprintf("%016x", uint64(a)), fmt.Sprintf("0x%016X", uint64(a))} {
			if got, err := ParseROM(form); err != nil || got != a {
				t.Errorf("ParseROM(%q) = %016x, %v; want %016x", form, uint64(got), err, uint64(a))
			}
		}
	}
	// periph's own example: a DS18B20 at 0x7a00000131825228.
	if got := FormatROM(0x7a00000131825228); got != "28-000001318252" {
		t.Errorf("FormatROM(0x7a00000131825228) = %s", got)
	}
}

func TestParseROMErrors(t *testing.T) {
	for _, in := range []string{
		"", "28", "28-", "28-00000abcdef", "28-00000abcdef0f", "28_00000abcdef0", "2g-00000abcdef0", "28-00000abcdefg",
		"28-+0000abcdef0", "7a00000131825229", "7a0000013182522", "0x7a0000013182522", "zz00000131825228",
	} {
		if _, err := ParseROM(in); err == nil {
			t.Errorf("ParseROM(%q) accepted", in)
		}
	}
}

func FuzzParseI2CAddress(f *testing.F) {
	for _, s := range []string{"0x76", "118", "0X48", "", "0x", "0x78"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseI2CAddress(s, 0x76)
		if err == nil && (a < 0x03 || a > 0x77) {
			t.Fatalf("ParseI2CAddress(%q) = %#x, out of range", s, a)
		}
	})
}

// FuzzParseROM: whatever parses has a good CRC and both its forms parse
// back to it.
func FuzzParseROM(f *testing.F) {
	for _, s := range []string{"28-00000abcdef0", "7a00000131825228", "0x7a00000131825228", "10-000000000abc", "28-xyz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseROM(s)
		if err != nil {
			return
		}
		var rom [8]byte
		binary.LittleEndian.PutUint64(rom[:], uint64(a))
		if !onewire.CheckCRC(rom[:]) {
			t.Fatalf("ParseROM(%q) = %016x, bad CRC", s, uint64(a))
		}
		for _, form := range []string{FormatROM(a), fmt.Sprintf("%016x", uint64(a))} {
			if b, err := ParseROM(form); err != nil || b != a {
				t.Fatalf("ParseROM(%q) = %016x, but its form %q parses to %016x, %v", s, uint64(a), form, uint64(b), err)
			}
		}
	})
}
