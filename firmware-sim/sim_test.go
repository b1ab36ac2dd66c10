package firmwaresim

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func TestSignals(t *testing.T) {
	const s = int64(time.Second)
	cases := []struct {
		name string
		spec SignalSpec
		at   []int64
		want []float64
	}{
		{"constant", SignalSpec{Kind: KindConstant, Value: 3}, []int64{0, 5 * s}, []float64{3, 3}},
		{"sine", SignalSpec{Kind: KindSine, Base: 10, Amplitude: 2, Period: 4 * time.Second}, []int64{0, s, 2 * s, 3 * s}, []float64{10, 12, 10, 8}},
		{"ramp", SignalSpec{Kind: KindRamp, Base: 1, Slope: 0.5}, []int64{0, 4 * s}, []float64{1, 3}},
		{"step", SignalSpec{Kind: KindStep, Base: 1, Value: 9, Period: 2 * time.Second}, []int64{0, s, 2 * s}, []float64{1, 1, 9}},
		{"resolution", SignalSpec{Kind: KindConstant, Value: 21.537, Resolution: 0.1}, []int64{0}, []float64{21.5}},
		{"resolution exact decimal", SignalSpec{Kind: KindConstant, Value: 27.5599, Resolution: 0.01}, []int64{0}, []float64{27.56}},
		{"resolution not decimal", SignalSpec{Kind: KindConstant, Value: 7.4, Resolution: 2.5}, []int64{0}, []float64{7.5}},
		{"resolution 0.3", SignalSpec{Kind: KindConstant, Value: 2.08, Resolution: 0.3}, []int64{0}, []float64{2.1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sig, err := NewSignal(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			for i, ts := range c.at {
				if got := sig.At(1e18 + ts); math.Abs(got-c.want[i]) > 1e-9 || (c.spec.Resolution > 0 && got != c.want[i]) {
					t.Errorf("At(+%ds) = %v, want %v", ts/s, got, c.want[i])
				}
			}
		})
	}
}

// TestQuantizeDecimal: a decimal resolution gives the double nearest to
// the decimal, as parsing its digits does.
func TestQuantizeDecimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, r := range []struct {
		res    float64
		m      int64
		digits int
	}{{0.01, 1, 2}, {0.1, 1, 1}, {0.5, 5, 1}, {0.25, 25, 2}, {0.3, 3, 1}, {2.5, 25, 1}, {5, 5, 0}, {0.001, 1, 3}} {
		for range 2000 {
			v := (rng.Float64()*2 - 1) * 1000
			got := quantize(v, r.res)
			n := int64(math.Round(v/r.res)) * r.m
			s := strconv.FormatInt(n, 10)
			if r.digits > 0 {
				neg := n < 0
				if neg {
					s = s[1:]
				}
				for len(s) <= r.digits {
					s = "0" + s
				}
				s = s[:len(s)-r.digits] + "." + s[len(s)-r.digits:]
				if neg {
					s = "-" + s
				}
			}
			want, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("quantize(%v, %v) = %v, want %s", v, r.res, got, s)
			}
		}
	}
}

func TestRandomWalkDeterministicAndClamped(t *testing.T) {
	spec := SignalSpec{Kind: KindRandomWalk, Base: 5, Step: 2, Min: 0, Max: 10, HasMin: true, HasMax: true, Seed: 42}
	a, _ := NewSignal(spec)
	b, _ := NewSignal(spec)
	for i := int64(0); i < 1000; i++ {
		va, vb := a.At(i), b.At(i)
		if va != vb {
			t.Fatalf("same seed differs at %d: %v vs %v", i, va, vb)
		}
		if va < 0 || va > 10 {
			t.Fatalf("walk left [0,10]: %v", va)
		}
	}
}

func TestSignalRejectsBadSpec(t *testing.T) {
	for _, s := range []SignalSpec{{Kind: "square"}, {Kind: KindSine}, {Kind: KindStep}} {
		if _, err := NewSignal(s); err == nil {
			t.Errorf("NewSignal(%+v) accepted", s)
		}
	}
}

func TestDeviceReadsSamplesPerChannel(t *testing.T) {
	d, err := NewDevice("dev1", 100*time.Millisecond, 4, []Channel{
		{Metric: "temperature", Unit: "Cel", Signal: SignalSpec{Kind: KindConstant, Value: 20}},
		{Metric: "humidity", Unit: "%RH", Signal: SignalSpec{Kind: KindConstant, Value: 40}},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	rs, err := d.Read(context.Background(), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 8 {
		t.Fatalf("%d readings, want 8", len(rs))
	}
	for i, r := range rs[:4] {
		if r.Metric != "temperature" || r.Value != 20 || r.Sensor != "dev1" {
			t.Fatalf("reading %d = %+v", i, r)
		}
		if want := now.UnixNano() - int64(3-i)*int64(25*time.Millisecond); r.TS != want {
			t.Fatalf("reading %d ts %d, want %d", i, r.TS, want)
		}
	}
}

// A poll that comes early, as a poller catching up after a late one does,
// spreads its samples over the time since the previous poll: times never
// repeat or go back.
func TestDeviceEarlyPollKeepsTimesIncreasing(t *testing.T) {
	d, err := NewDevice("dev1", 100*time.Millisecond, 10, []Channel{
		{Metric: "m", Signal: SignalSpec{Kind: KindConstant, Value: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0)
	var last int64
	for _, at := range []time.Duration{0, 130 * time.Millisecond, 160 * time.Millisecond, 260 * time.Millisecond, 260*time.Millisecond + time.Microsecond} {
		rs, err := d.Read(t.Context(), t0.Add(at), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 10 {
			t.Fatalf("poll at %v: %d readings, want 10", at, len(rs))
		}
		for _, r := range rs {
			if last != 0 && r.TS <= last {
				t.Fatalf("poll at %v: reading at %d is not after %d", at, r.TS, last)
			}
			last = r.TS
		}
		if got := rs[len(rs)-1].TS; got != t0.Add(at).UnixNano() {
			t.Fatalf("poll at %v: last sample at %d, want the poll time", at, got)
		}
	}
}
