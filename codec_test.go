package outpost

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/tinylib/msgp/msgp"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost/internal/decimal"
)

// The zstd encoder and decoder must not leave goroutines behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// series builds a delta-encoded series from absolute timestamps.
func series(abs []int64, vs []float64, q []byte) Series {
	s := Series{Sensor: "dev1", Metric: "m", Unit: "u", Values: vs, Quality: q}
	for i, t := range abs {
		if i == 0 {
			s.TS = append(s.TS, t)
		} else {
			s.TS = append(s.TS, t-abs[i-1])
		}
	}
	return s
}

func regular(n int, t0, step int64) []int64 {
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = t0 + int64(i)*step
	}
	return ts
}

func fill(n int, f func(i int) float64) []float64 {
	vs := make([]float64, n)
	for i := range vs {
		vs[i] = f(i)
	}
	return vs
}

func newEncoder(t testing.TB, c Compression, max int) *Encoder {
	t.Helper()
	e, err := NewEncoder(&EncoderOptions{Compression: c, MaxMessageBytes: max})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// seriesCodec returns ts_exp and value_exp of series i of an
// uncompressed version 2 batch.
func seriesCodec(t *testing.T, p []byte, i int) (tsExp, valueExp int64) {
	t.Helper()
	var err error
	skip := func(n int) {
		for range n {
			if p, err = msgp.Skip(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	header := func() {
		if _, p, err = msgp.ReadArrayHeaderBytes(p); err != nil {
			t.Fatal(err)
		}
	}
	header() // batch
	skip(7)
	header() // body
	header() // series list
	skip(i)
	header() // series
	skip(3)
	tsExp, p, err = msgp.ReadInt64Bytes(p)
	if err != nil {
		t.Fatal(err)
	}
	skip(1)
	valueExp, _, err = msgp.ReadInt64Bytes(p)
	if err != nil {
		t.Fatal(err)
	}
	return tsExp, valueExp
}

func TestSeriesRoundTrip(t *testing.T) {
	const t0 = 1_700_000_000_000_000_000
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name      string
		s         Series
		tsExp     int64 // -1: do not check
		valueExp  int64
		maxPerRdg float64 // bytes per reading the series may take, 0: no check
	}{
		{"regular seconds quantized", series(regular(100, t0, 1e9), fill(100, func(i int) float64 { return 21.5 + float64(i%7)*0.01 }), nil), 9, -2, 2.1},
		{"regular ms", series(regular(50, t0+123e6, 250e6), fill(50, func(i int) float64 { return float64(i) }), nil), 6, 0, 2.5},
		{"irregular ns", series([]int64{t0 + 1, t0 + 17, t0 + 1e9 + 3, t0 + 5e9}, []float64{1, 2, 3, 4}, nil), 0, 0, 0},
		{"negative timestamps", series([]int64{-5e9, -4e9, -1e9, 0, 3e9}, []float64{-1.5, -1, -0.5, 0, 0.5}, nil), 9, -1, 0},
		{"constant", series(regular(1000, t0, 1e9), fill(1000, func(int) float64 { return 400 }), nil), 9, 2, 2.01},
		{"raw floats", series(regular(100, t0, 1e6), fill(100, func(int) float64 { return rng.NormFloat64() }), nil), 6, decimal.Raw, 0},
		{"float32 values", series(regular(10, t0, 1e9), fill(10, func(i int) float64 { return float64(float32(rng.Float64())) }), nil), 9, decimal.Raw, 7.1},
		{"NaN and Inf", series(regular(4, t0, 1e9), []float64{math.NaN(), math.Inf(1), math.Inf(-1), 1}, nil), 9, decimal.Raw, 0},
		{"negative zero", series(regular(2, t0, 1e9), []float64{math.Copysign(0, -1), 0}, nil), 9, decimal.Raw, 0},
		{"huge values", series(regular(3, t0, 1e9), []float64{1e300, -math.MaxFloat64, math.SmallestNonzeroFloat64}, nil), 9, decimal.Raw, 0},
		{"large integers", series(regular(3, t0, 1e9), []float64{1 << 52, -(1 << 52), 1e15}, nil), 9, 0, 0},
		{"scaled too wide", series(regular(2, t0, 1e9), []float64{1e15, 0.001}, nil), 9, decimal.Raw, 0},
		{"tiny decimals", series(regular(3, t0, 1e9), []float64{1e-15, 2e-15, 0.00476416302}, nil), 9, -15, 0},
		{"quality", series(regular(3, t0, 1e9), []float64{1, 2, 3}, []byte{0, 2, 1}), 9, 0, 0},
		{"one reading", series([]int64{t0}, []float64{7}, nil), 9, 0, 0},
		{"extreme timestamps", series([]int64{math.MinInt64, -1, math.MaxInt64 - 1}, []float64{1, 2, 3}, nil), 0, 0, 0},
		{"deltas of deltas overflow", series([]int64{0, 6e18 + 1, 1}, []float64{1, 2, 3}, nil), tsDeltaMode, 0, 0},
	}
	for _, c := range cases {
		for _, comp := range []Compression{CompressNone, CompressZstd} {
			t.Run(c.name+"/"+comp.String(), func(t *testing.T) {
				bt := &Batch{Version: WireVersion, Gateway: "gw", Epoch: 1, Seq: 2, Created: t0, Flags: FlagHistorical,
					Series: []Series{c.s}}
				p, err := newEncoder(t, comp, 0).Encode(nil, bt)
				if err != nil {
					t.Fatal(err)
				}
				got, err := DecodeBatch(p)
				if err != nil {
					t.Fatal(err)
				}
				if !sameBatch(got, bt) {
					t.Fatalf("round trip differs:\n got %+v\nwant %+v", got.Series, bt.Series)
				}
				if comp == CompressZstd {
					return
				}
				if tsExp, valueExp := seriesCodec(t, p, 0); c.tsExp >= 0 && (tsExp != c.tsExp || valueExp != c.valueExp) {
					t.Errorf("ts_exp %d value_exp %d, want %d %d", tsExp, valueExp, c.tsExp, c.valueExp)
				}
				if c.maxPerRdg > 0 {
					s, _ := (&Batch{Version: WireVersion, Gateway: "gw", Epoch: 1, Seq: 2, Created: t0,
						Series: []Series{{Sensor: "dev1", Metric: "m", Unit: "u", TS: c.s.TS[:1], Values: c.s.Values[:1]}}}).MarshalMsg(nil)
					if per := float64(len(p)-len(s)) / float64(len(c.s.Values)-1); per > c.maxPerRdg {
						t.Errorf("%.2f bytes per reading, want at most %.2f", per, c.maxPerRdg)
					}
				}
			})
		}
	}
}

// sameBatch compares batches, NaN values by their bits.
func sameBatch(a, b *Batch) bool {
	if len(a.Series) != len(b.Series) {
		return false
	}
	for i := range a.Series {
		x, y := a.Series[i], b.Series[i]
		if len(x.Values) != len(y.Values) {
			return false
		}
		for j := range x.Values {
			if math.Float64bits(x.Values[j]) != math.Float64bits(y.Values[j]) {
				return false
			}
		}
		x.Values, y.Values = nil, nil
		if allZero(y.Quality) {
			y.Quality = nil
		}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	ca, cb := *a, *b
	ca.Series, cb.Series = nil, nil
	return reflect.DeepEqual(ca, cb)
}

func TestEncodeAllKinds(t *testing.T) {
	alerts := &Batch{Version: WireVersion, Kind: KindAlert, Gateway: "gw", Epoch: 1, Seq: 9, Created: 5,
		Alerts: []Alert{{Rule: "hot", Fingerprint: "hot/dev1", State: StateFiring, Severity: "warning",
			Value: 31.5, Labels: map[string]string{"sensor": "dev1"}, Message: "hot", StartedAt: 1, ChangedAt: 2, Seq: 3,
			Annotations: map[string]string{"summary": strings.Repeat("dev1 is hot. ", 20)}}}}
	losses := &Batch{Version: WireVersion, Kind: KindLoss, Gateway: "gw", Epoch: 1, Seq: 4, Created: 9,
		Losses: []Loss{{Reason: LossMaxBytes, Kind: KindTelemetry, Sensor: "s", Metric: "m", From: 10, To: 20, Count: 11, Epoch: 1, FirstSeq: 1, LastSeq: 2, At: 30}}}
	for _, bt := range []*Batch{alerts, losses} {
		for _, comp := range []Compression{CompressNone, CompressZstd} {
			p, err := newEncoder(t, comp, 0).Encode(nil, bt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeBatch(p)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, bt) {
				t.Fatalf("%s %s: got %+v want %+v", bt.Kind, comp, got, bt)
			}
		}
	}
}

func TestEncodeRefuses(t *testing.T) {
	good := func() *Batch {
		return &Batch{Version: WireVersion, Gateway: "gw", Epoch: 1, Seq: 1,
			Series: []Series{{Sensor: "s", Metric: "m", TS: []int64{1, 1}, Values: []float64{1, 2}}}}
	}
	for name, mut := range map[string]func(*Batch){
		"kind":          func(b *Batch) { b.Kind = 200 },
		"flags":         func(b *Batch) { b.Flags = 0x80 },
		"ts len":        func(b *Batch) { b.Series[0].TS = b.Series[0].TS[:1] },
		"quality len":   func(b *Batch) { b.Series[0].Quality = []byte{1} },
		"no values":     func(b *Batch) { b.Series[0].TS, b.Series[0].Values = nil, nil },
		"ts overflow":   func(b *Batch) { b.Series[0].TS = []int64{math.MaxInt64, 1} },
		"mixed content": func(b *Batch) { b.Alerts = []Alert{{Rule: "r"}} },
	} {
		b := good()
		mut(b)
		if _, err := b.MarshalMsg(nil); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	if _, err := NewEncoder(&EncoderOptions{MaxMessageBytes: 100}); err == nil {
		t.Error("cap of 100 bytes accepted")
	}
	if _, err := NewEncoder(&EncoderOptions{Compression: 9}); err == nil {
		t.Error("unknown compression accepted")
	}
}

func TestDecodeV1(t *testing.T) {
	rs := testReadings(300, 1_700_000_000_000_000_000)
	b := NewBatchBuilder()
	b.Add(rs)
	bt := b.Take("gw-1", 42)
	bt.Epoch, bt.Seq, bt.Version = 7, 1, 1
	p, err := bt.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	if p[0] != 0x9a || p[1] != 1 {
		t.Fatalf("version 1 encoding starts %x", p[:2])
	}
	got, err := DecodeBatch(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, bt) {
		t.Fatalf("v1 round trip differs")
	}
	// The bytes of the version 1 worked example, as gateways stored them.
	old := "9a0100 00a5 67772d3031 cd1234 07 d317979cfe362a0000" +
		"91 96 a464657631 ab74656d7065726174757265 a343656c" +
		"92 d317979cfe362a0000 d23b9aca00 92 cb4035800000000000 cb4035400000000000 c400" +
		"90 90"
	var raw []byte
	if _, err := fmt.Sscanf(strings.ReplaceAll(old, " ", ""), "%x", &raw); err != nil {
		t.Fatal(err)
	}
	got, err = DecodeBatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := exampleBatch()
	want.Version = 1
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("v1 example decodes as %#v", got)
	}
}

func TestSetHistorical(t *testing.T) {
	bt := exampleBatch()
	v1 := *bt
	v1.Version = 1
	p1, err := v1.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := bt.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	p3, err := newEncoder(t, CompressZstd, 0).Encode(nil, &Batch{Version: WireVersion, Gateway: "gw", Epoch: 1, Seq: 1,
		Series: []Series{series(regular(1000, 0, 1e9), fill(1000, func(i int) float64 { return float64(i % 10) }), nil)}})
	if err != nil {
		t.Fatal(err)
	}
	if p3[3]&FlagZstd == 0 {
		t.Fatal("1000 readings not compressed")
	}
	for _, p := range [][]byte{p1, p2, p3} {
		q := SetHistorical(p)
		if &q[0] == &p[0] || bytes.Equal(q, p) {
			t.Fatal("SetHistorical changed nothing or did not copy")
		}
		got, err := DecodeBatch(q)
		if err != nil {
			t.Fatal(err)
		}
		if got.Flags != FlagHistorical {
			t.Fatalf("v%d: flags %#x after SetHistorical", got.Version, got.Flags)
		}
	}
	if q := SetHistorical([]byte{0xc1, 2, 3, 4}); !bytes.Equal(q, []byte{0xc1, 2, 3, 4}) {
		t.Fatalf("garbage changed: %x", q)
	}
}

func TestDecodeRejectsV2(t *testing.T) {
	head := func(flags uint8) []byte {
		p := msgp.AppendArrayHeader(nil, 8)
		p = append(p, 2, 0, flags)
		p = msgp.AppendString(p, "gw")
		p = append(p, 1, 1, 0)
		return p
	}
	withSeries := func(tsExp int64, ts []int64, valueExp int64, vs []int64) []byte {
		p := head(0)
		p = msgp.AppendArrayHeader(p, 3)
		p = msgp.AppendArrayHeader(p, 1)
		p = msgp.AppendArrayHeader(p, 8)
		p = msgp.AppendString(p, "s")
		p = msgp.AppendString(p, "m")
		p = msgp.AppendString(p, "")
		p = msgp.AppendInt64(p, tsExp)
		p = msgp.AppendArrayHeader(p, uint32(len(ts)))
		for _, x := range ts {
			p = msgp.AppendInt64(p, x)
		}
		p = msgp.AppendInt64(p, valueExp)
		p = msgp.AppendArrayHeader(p, uint32(len(vs)))
		for _, x := range vs {
			p = msgp.AppendInt64(p, x)
		}
		p = msgp.AppendBytes(p, nil)
		return append(p, 0x90, 0x90)
	}
	if _, err := DecodeBatch(withSeries(9, []int64{1, 1, 0}, 0, []int64{1, 2, 3})); err != nil {
		t.Fatalf("good crafted batch: %v", err)
	}
	bomb, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	zeros := bomb.EncodeAll(make([]byte, 100<<20), nil)
	if err := bomb.Close(); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"t0 overflows":              withSeries(9, []int64{math.MaxInt64 / 100}, 0, []int64{1}),
		"delta overflows":           withSeries(9, []int64{1, math.MaxInt64 / 10}, 0, []int64{1, 1}),
		"delta of delta overflows":  withSeries(0, []int64{0, math.MaxInt64, math.MaxInt64}, 0, []int64{1, 1, 1}),
		"sum overflows":             withSeries(0, []int64{math.MaxInt64 - 5, 3, 3}, 0, []int64{1, 1, 1}),
		"delta mode sum overflows":  withSeries(10, []int64{math.MaxInt64 - 5, 3, 3}, 0, []int64{1, 1, 1}),
		"ts_exp":                    withSeries(20, []int64{1}, 0, []int64{1}),
		"value_exp":                 withSeries(9, []int64{1}, 16, []int64{1}),
		"scaled out of range":       withSeries(9, []int64{1}, 0, []int64{1 << 53}),
		"scaled sum out of range":   withSeries(9, []int64{1, 1}, 0, []int64{1<<53 - 1, 1}),
		"scaled delta huge":         withSeries(9, []int64{1, 1}, 0, []int64{0, math.MaxInt64}),
		"values count":              withSeries(9, []int64{1, 1}, 0, []int64{1}),
		"empty series":              withSeries(9, nil, 0, nil),
		"unknown flags":             append(head(4), 0x93, 0x90, 0x90, 0x90),
		"zstd bomb":                 msgp.AppendBytes(head(FlagZstd), zeros),
		"zstd garbage":              msgp.AppendBytes(head(FlagZstd), []byte{1, 2, 3}),
		"zstd not bin":              append(head(FlagZstd), 0x93, 0x90, 0x90, 0x90),
		"short":                     head(0),
		"body not array(3)":         append(head(0), 0x92, 0x90, 0x90),
		"series count beyond bytes": append(head(0), 0x93, 0xdc, 0xff, 0xff),
	}
	for name, p := range cases {
		if _, err := DecodeBatch(p); !errors.Is(err, ErrInvalidBatch) {
			t.Errorf("%s: DecodeBatch = %v, want ErrInvalidBatch", name, err)
		}
	}
	if _, err := DecodeBatch([]byte{0x98, 3}); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("version 3: %v", err)
	}
}

// splitBatch builds a telemetry batch of several series of n readings.
func splitBatch(n int) *Batch {
	rng := rand.New(rand.NewPCG(3, 4))
	const t0 = 1_700_000_000_000_000_000
	q := make([]byte, n)
	q[n/2] = byte(QualityBad)
	return &Batch{Version: WireVersion, Gateway: "gw-split", Epoch: 77, Seq: 100, Created: t0, Flags: FlagHistorical,
		Series: []Series{
			series(regular(n, t0, 1e9), fill(n, func(i int) float64 { return quantizeTest(20+math.Sin(float64(i)/50), 0.01) }), q),
			series(regular(3, t0, 1e9), []float64{1, 2, 3}, nil),
			series(regular(n, t0+5e5, 1e6), fill(n, func(int) float64 { return rng.Float64() }), nil),
			series(regular(n, t0, 60e9), fill(n, func(int) float64 { return 400 }), nil),
		}}
}

func quantizeTest(v, res float64) float64 {
	k := math.Round(-math.Log10(res))
	return math.Round(v/res) / math.Pow(10, k)
}

func TestSplit(t *testing.T) {
	alerts := &Batch{Version: WireVersion, Kind: KindAlert, Gateway: "gw", Epoch: 1, Seq: 9, Created: 5}
	for i := range 40 {
		alerts.Alerts = append(alerts.Alerts, Alert{Rule: fmt.Sprintf("rule-%d", i), State: StateFiring,
			Message: strings.Repeat("x", i*10), Labels: map[string]string{"i": fmt.Sprint(i)}, Seq: uint64(i),
			Annotations: map[string]string{"summary": strings.Repeat("y", i%7*10)}})
	}
	losses := &Batch{Version: WireVersion, Kind: KindLoss, Gateway: "gw", Epoch: 1, Seq: 4, Created: 9}
	for i := range 100 {
		losses.Losses = append(losses.Losses, Loss{Reason: LossMaxAge, Kind: KindTelemetry,
			Sensor: strings.Repeat("s", 128), Metric: fmt.Sprint(i), Count: uint64(i), Epoch: 1})
	}
	for _, comp := range []Compression{CompressNone, CompressZstd} {
		for _, cap := range []int{1024, 1500, 4096, 16 << 10} {
			for _, bt := range []*Batch{splitBatch(2000), splitBatch(5), alerts, losses} {
				t.Run(fmt.Sprintf("%s/%d/%s-%d", comp, cap, bt.Kind, bt.Len()), func(t *testing.T) {
					enc := newEncoder(t, comp, cap)
					p, ends, err := enc.AppendParts([]byte("prefix"), bt, 4, nil)
					if err != nil {
						t.Fatal(err)
					}
					start := len("prefix")
					var got []Reading
					var items int
					for i, end := range ends {
						msg := p[start+4 : end]
						if !bytes.Equal(p[start:start+4], []byte{0, 0, 0, 0}) {
							t.Fatal("reserved bytes not zero")
						}
						if len(msg) > cap {
							t.Fatalf("part %d: %d bytes over the cap %d", i, len(msg), cap)
						}
						part, err := DecodeBatch(msg)
						if err != nil {
							t.Fatalf("part %d: %v", i, err)
						}
						if part.Seq != bt.Seq+uint64(i) || part.Epoch != bt.Epoch || part.Flags != bt.Flags || part.Kind != bt.Kind {
							t.Fatalf("part %d header %+v", i, part)
						}
						got = part.AppendReadings(got)
						items += len(part.Alerts) + len(part.Losses)
						switch bt.Kind {
						case KindAlert:
							if !reflect.DeepEqual(part.Alerts, bt.Alerts[items-len(part.Alerts):items]) {
								t.Fatalf("part %d alerts differ", i)
							}
						case KindLoss:
							if !reflect.DeepEqual(part.Losses, bt.Losses[items-len(part.Losses):items]) {
								t.Fatalf("part %d losses differ", i)
							}
						}
						start = end
					}
					if start != len(p) {
						t.Fatalf("ends stop at %d of %d bytes", start, len(p))
					}
					if want := bt.AppendReadings(nil); !reflect.DeepEqual(got, want) {
						t.Fatalf("parts hold %d readings, want the %d of the batch in order", len(got), len(want))
					}
					if items != len(bt.Alerts)+len(bt.Losses) {
						t.Fatalf("parts hold %d items, want %d", items, len(bt.Alerts)+len(bt.Losses))
					}
					if bt.Len() > 100 && cap < 16<<10 && len(ends) < 2 {
						t.Fatalf("%d bytes in one part", len(p))
					}
					t.Logf("%d parts, %d bytes", len(ends), len(p))
				})
			}
		}
	}
}

func TestSplitTooLarge(t *testing.T) {
	bt := &Batch{Version: WireVersion, Gateway: strings.Repeat("g", 1000), Epoch: 1, Seq: 1,
		Series: []Series{series([]int64{1, 2}, []float64{1, 2}, nil)}}
	if _, _, err := newEncoder(t, CompressNone, 1024).AppendParts(nil, bt, 0, nil); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("AppendParts = %v, want ErrMessageTooLarge", err)
	}
	al := &Batch{Version: WireVersion, Kind: KindAlert, Gateway: "gw", Epoch: 1, Seq: 1,
		Alerts: []Alert{{Rule: "r", Message: strings.Repeat("m", 2000)}}}
	if _, _, err := newEncoder(t, CompressNone, 1024).AppendParts(nil, al, 0, nil); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("AppendParts = %v, want ErrMessageTooLarge", err)
	}
	if _, err := newEncoder(t, CompressNone, 1024).Encode(nil, splitBatch(1000)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("Encode = %v, want ErrMessageTooLarge", err)
	}
	// The longest valid ids and unit: one reading fits in MinMessageBytes.
	long := &Batch{Version: WireVersion, Gateway: strings.Repeat("g", MaxIDLen), Epoch: math.MaxUint64, Seq: 1, Created: math.MinInt64,
		Series: []Series{{Sensor: strings.Repeat("s", MaxIDLen), Metric: strings.Repeat("m", MaxIDLen), Unit: strings.Repeat("u", maxUnitLen),
			TS: []int64{math.MinInt64, math.MaxInt64, math.MaxInt64}, Values: []float64{math.Pi, math.E, math.NaN()}, Quality: []byte{1, 2, 1}}}}
	_, ends, err := newEncoder(t, CompressNone, MinMessageBytes).AppendParts(nil, long, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("longest ids: %d bytes for 3 readings", ends[0])
	ls := &Batch{Version: WireVersion, Kind: KindLoss, Gateway: strings.Repeat("g", MaxIDLen), Epoch: math.MaxUint64, Seq: 1, Created: math.MinInt64}
	for range 3 {
		ls.Losses = append(ls.Losses, Loss{Reason: strings.Repeat("r", MaxIDLen), Sensor: strings.Repeat("s", MaxIDLen),
			Metric: strings.Repeat("m", MaxIDLen), Rule: strings.Repeat("u", MaxIDLen), From: math.MinInt64, To: math.MaxInt64,
			Count: math.MaxUint64, Epoch: math.MaxUint64, FirstSeq: math.MaxUint64, LastSeq: math.MaxUint64, At: math.MinInt64})
	}
	if _, _, err := newEncoder(t, CompressNone, MinMessageBytes).AppendParts(nil, ls, 0, nil); err != nil {
		t.Fatalf("longest loss records: %v", err)
	}
}
