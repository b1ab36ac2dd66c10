package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes. In YAML it is a plain integer (1073741824)
// or a number with a unit: B, kB/KB, MB, GB, TB (powers of 1000) or KiB,
// MiB, GiB, TiB (powers of 1024), e.g. "512MiB", "1.5GB". Units are
// case-insensitive.
type ByteSize int64

var byteUnits = []struct {
	name string
	mult float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"b", 1},
}

// ParseByteSize parses a size such as "512MiB" or "1000000".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.name) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.name)), u.mult
			break
		}
	}
	x, err := strconv.ParseFloat(t, 64)
	if err != nil || t == "" || strings.ContainsAny(t, "xpn") { // no hex, no inf/nan
		return 0, fmt.Errorf("invalid byte size %q (want bytes, or a number with a unit like 512MiB or 1GB)", s)
	}
	n := x * mult
	switch {
	case n < 0:
		return 0, fmt.Errorf("byte size %q is negative", s)
	case n >= math.MaxInt64:
		return 0, fmt.Errorf("byte size %q is too large", s)
	case n != math.Trunc(n):
		return 0, fmt.Errorf("byte size %q is not a whole number of bytes", s)
	}
	return ByteSize(n), nil
}

// UnmarshalYAMLScalar implements yamlpos.ScalarUnmarshaler.
func (b *ByteSize) UnmarshalYAMLScalar(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("byte size %d is negative", x)
		}
		*b = ByteSize(x)
		return nil
	case string:
		n, err := ParseByteSize(x)
		if err != nil {
			return err
		}
		*b = n
		return nil
	case float64: // 1e9, 1.5e6
		n, err := ParseByteSize(strconv.FormatFloat(x, 'f', -1, 64))
		if err != nil {
			return err
		}
		*b = n
		return nil
	}
	return errors.New("expected a byte size like 1073741824 or 1GiB")
}

// String formats b with the largest binary unit that divides it exactly.
func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}
