package firmwaresim

import "math"

// bmeCalibration is the trimming data of one BMx280, with the datasheet's
// integer compensation (BME280 datasheet §4.2.3, §8.2) and its inverse.
type bmeCalibration struct {
	t1                             uint16
	t2, t3                         int16
	p1                             uint16
	p2, p3, p4, p5, p6, p7, p8, p9 int16
	h1, h3                         uint8
	h2, h4, h5                     int16
	h6                             int8
}

// datasheetCalibration is the BMP280 datasheet's worked example (§3.11.3)
// for temperature and pressure, and humidity trimming read from a real
// BME280.
var datasheetCalibration = bmeCalibration{
	t1: 27504, t2: 26435, t3: -1000,
	p1: 36477, p2: -10685, p3: 3024, p4: 2855, p5: 140, p6: -7, p7: 15500, p8: -14600, p9: 6000,
	h1: 75, h2: 362, h3: 0, h4: 313, h5: 50, h6: 30,
}

// put writes the calibration into the register file at 0x88 and 0xE1.
func (c bmeCalibration) put(regs []byte) {
	le := func(at int, v uint16) { regs[at], regs[at+1] = byte(v), byte(v>>8) }
	words := []uint16{c.t1, uint16(c.t2), uint16(c.t3), c.p1, uint16(c.p2), uint16(c.p3),
		uint16(c.p4), uint16(c.p5), uint16(c.p6), uint16(c.p7), uint16(c.p8), uint16(c.p9)}
	for i, w := range words {
		le(bmeRegCalib0+2*i, w)
	}
	regs[0xA1] = c.h1
	le(bmeRegCalib26, uint16(c.h2))
	regs[0xE3] = c.h3
	regs[0xE4] = byte(c.h4 >> 4)
	regs[0xE5] = byte(c.h4&0xF) | byte(c.h5&0xF)<<4
	regs[0xE6] = byte(c.h5 >> 4)
	regs[0xE7] = byte(c.h6)
}

// temp returns the temperature in 0.01 °C and t_fine for a raw reading.
func (c bmeCalibration) temp(raw int32) (int32, int32) {
	x := ((raw>>3 - int32(c.t1)<<1) * int32(c.t2)) >> 11
	y := ((((raw>>4 - int32(c.t1)) * (raw>>4 - int32(c.t1))) >> 12) * int32(c.t3)) >> 14
	tFine := x + y
	return (tFine*5 + 128) >> 8, tFine
}

// pressure returns the pressure in Pa/256 (Q24.8).
func (c bmeCalibration) pressure(raw, tFine int32) uint32 {
	x := int64(tFine) - 128000
	y := x * x * int64(c.p6)
	y += (x * int64(c.p5)) << 17
	y += int64(c.p4) << 35
	x = (x*x*int64(c.p3))>>8 + ((x * int64(c.p2)) << 12)
	x = ((int64(1)<<47 + x) * int64(c.p1)) >> 33
	if x == 0 {
		return 0
	}
	p := ((((1048576 - int64(raw)) << 31) - y) * 3125) / x
	x = (int64(c.p9) * (p >> 13) * (p >> 13)) >> 25
	y = (int64(c.p8) * p) >> 19
	return uint32(((p + x + y) >> 8) + (int64(c.p7) << 4))
}

// humidity returns the relative humidity in %RH/1024 (Q22.10).
func (c bmeCalibration) humidity(raw, tFine int32) uint32 {
	x := tFine - 76800
	x1 := raw<<14 - int32(c.h4)<<20 - int32(c.h5)*x
	x2 := (x1 + 16384) >> 15
	x3 := (x * int32(c.h6)) >> 10
	x4 := (x * int32(c.h3)) >> 11
	x5 := (x3 * (x4 + 32768)) >> 10
	x6 := ((x5+2097152)*int32(c.h2) + 8192) >> 14
	x = x2 * x6
	x = x - ((((x>>15)*(x>>15))>>7)*int32(c.h1))>>4
	if x < 0 {
		return 0
	}
	if x > 419430400 {
		return 419430400 >> 12
	}
	return uint32(x >> 12)
}

// rawTemp returns the 20-bit raw value whose t_fine is closest to celsius
// (t_fine is °C × 5120). t_fine grows with raw for any real calibration.
func (c bmeCalibration) rawTemp(celsius float64) int32 {
	want := celsius * 5120
	return closestRaw(1<<20, func(raw int32) float64 { _, f := c.temp(raw); return float64(f) }, want, true)
}

// rawPressure returns the 20-bit raw value reading closest to pa at tFine;
// pressure falls as raw grows.
func (c bmeCalibration) rawPressure(pa float64, tFine int32) int32 {
	return closestRaw(1<<20, func(raw int32) float64 { return float64(c.pressure(raw, tFine)) }, pa*256, false)
}

// rawHumidity returns the 16-bit raw value reading closest to rh at tFine.
func (c bmeCalibration) rawHumidity(rh float64, tFine int32) int32 {
	return closestRaw(1<<16, func(raw int32) float64 { return float64(c.humidity(raw, tFine)) }, rh*1024, true)
}

// closestRaw binary-searches [0, n) for the raw value whose f is closest to
// want, f being monotonic (rising when up).
func closestRaw(n int32, f func(int32) float64, want float64, up bool) int32 {
	lo, hi := int32(0), n // first raw past want
	for lo < hi {
		m := lo + (hi-lo)/2
		if v := f(m); (up && v >= want) || (!up && v <= want) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	best, bestD := int32(-1), math.Inf(1)
	for _, r := range []int32{lo - 1, lo} {
		if r < 0 || r >= n {
			continue
		}
		if d := math.Abs(f(r) - want); d < bestD {
			best, bestD = r, d
		}
	}
	return best
}
