package outpost

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

func testReadings(n int, t0 int64) []Reading {
	rs := make([]Reading, 0, n)
	metrics := []string{"temperature", "humidity", "pressure"}
	for i := 0; i < n; i++ {
		m := metrics[i%len(metrics)]
		q := QualityGood
		if i%17 == 5 {
			q = QualityUncertain
		}
		rs = append(rs, Reading{
			Sensor: "dev1-env", Metric: m, Unit: "u-" + m,
			TS: t0 + int64(i/len(metrics))*1e9, Value: float64(i) * 0.25, Quality: q,
		})
	}
	return rs
}

func TestBatchRoundTrip(t *testing.T) {
	rs := testReadings(300, 1_700_000_000_000_000_000)
	b := NewBatchBuilder()
	b.Add(rs[:100])
	b.Add(rs[100:])
	if b.Len() != len(rs) {
		t.Fatalf("builder len %d, want %d", b.Len(), len(rs))
	}
	bt := b.Take("gw-1", 42)
	bt.Epoch, bt.Seq = 7, 1
	if b.Len() != 0 {
		t.Fatalf("builder not empty after Take")
	}
	if len(bt.Series) != 3 {
		t.Fatalf("%d series, want 3", len(bt.Series))
	}
	p, err := bt.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, bt) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, bt)
	}
	if got.Len() != len(rs) {
		t.Fatalf("Len %d, want %d", got.Len(), len(rs))
	}
	// Expanded readings come back grouped by series, each series in order.
	back := got.AppendReadings(nil)
	want := map[SeriesKey][]Reading{}
	for _, r := range rs {
		want[r.Key()] = append(want[r.Key()], r)
	}
	gotBy := map[SeriesKey][]Reading{}
	for _, r := range back {
		gotBy[r.Key()] = append(gotBy[r.Key()], r)
	}
	if !reflect.DeepEqual(gotBy, want) {
		t.Fatalf("expanded readings differ")
	}
}

func TestBatchAllGoodHasNoQualityColumn(t *testing.T) {
	b := NewBatchBuilder()
	b.Add([]Reading{{Sensor: "s", Metric: "m", TS: 1, Value: 1}, {Sensor: "s", Metric: "m", TS: 2, Value: 2}})
	bt := b.Take("gw", 1)
	if q := bt.Series[0].Quality; len(q) != 0 {
		t.Fatalf("quality column %v for all-good readings", q)
	}
}

func TestBatchKeepsQualityOfFirstReading(t *testing.T) {
	b := NewBatchBuilder()
	b.Add([]Reading{{Sensor: "s", Metric: "m", TS: 1, Value: 1, Quality: QualityBad}, {Sensor: "s", Metric: "m", TS: 2, Value: 2}})
	bt := b.Take("gw", 1)
	if q := bt.Series[0].Quality; len(q) != 2 || Quality(q[0]) != QualityBad || Quality(q[1]) != QualityGood {
		t.Fatalf("quality column %v, want [bad good]", q)
	}
}

func TestAlertBatchRoundTrip(t *testing.T) {
	bt := &Batch{Version: WireVersion, Kind: KindAlert, Gateway: "gw", Epoch: 1, Seq: 9, Created: 5,
		Alerts: []Alert{{Rule: "hot", Fingerprint: "hot/dev1", State: StateFiring, Severity: "warning",
			Value: 31.5, Labels: map[string]string{"sensor": "dev1"}, Message: "hot", StartedAt: 1, ChangedAt: 2, Seq: 3,
			Annotations: map[string]string{"summary": "dev1 at 31.5", "runbook": "https://example.com/hot"}},
			// No annotations: nil after the round trip, as the engine emits it.
			{Rule: "cold", Labels: map[string]string{}, Seq: 4}}}
	p, err := bt.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, bt) {
		t.Fatalf("got %+v want %+v", got, bt)
	}
}

// A version 1 batch has no annotations: encoding one drops them, and the
// bytes are those of the version 1 alert, array(10), as gateways in the
// field stored them.
func TestAlertV1(t *testing.T) {
	a := Alert{Rule: "hot", Fingerprint: "hot/dev1", State: StateFiring, Severity: "warning", Value: 31.5,
		Labels: map[string]string{"sensor": "dev1"}, Message: "hot", StartedAt: 1, ChangedAt: 2, Seq: 3}
	withAnnos := a
	withAnnos.Annotations = map[string]string{"summary": "dropped in v1"}
	bt := &Batch{Version: 1, Kind: KindAlert, Gateway: "gw", Epoch: 1, Seq: 9, Created: 5, Alerts: []Alert{withAnnos}}
	p, err := bt.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The version 1 bytes, written by hand as version 1 defines them.
	want := msgp.AppendArrayHeader(nil, 10)
	want = append(want, 1, byte(KindAlert), 0)
	want = msgp.AppendString(want, "gw")
	want = append(want, 1, 9, 5, 0x90, 0x91, 0x9a)
	want = msgp.AppendString(want, "hot")
	want = msgp.AppendString(want, "hot/dev1")
	want = append(want, byte(StateFiring))
	want = msgp.AppendString(want, "warning")
	want = msgp.AppendFloat64(want, 31.5)
	want = msgp.AppendMapHeader(want, 1)
	want = msgp.AppendString(want, "sensor")
	want = msgp.AppendString(want, "dev1")
	want = msgp.AppendString(want, "hot")
	want = append(want, 1, 2, 3, 0x90)
	if !bytes.Equal(p, want) {
		t.Fatalf("v1 alert batch\n got %x\nwant %x", p, want)
	}
	got, err := DecodeBatch(want)
	if err != nil {
		t.Fatal(err)
	}
	wantBatch := *bt
	wantBatch.Alerts = []Alert{a}
	if !reflect.DeepEqual(got, &wantBatch) {
		t.Fatalf("v1 alert batch decodes as %+v", got)
	}
	// A version 2 body with a version 1 alert (array(10)) is refused.
	v2 := msgp.AppendArrayHeader(nil, 8)
	v2 = append(v2, 2, byte(KindAlert), 0)
	v2 = msgp.AppendString(v2, "gw")
	v2 = append(v2, 1, 9, 5, 0x93, 0x90, 0x91)
	v2 = append(v2, want[bytes.IndexByte(want, 0x9a):len(want)-1]...)
	v2 = append(v2, 0x90)
	if _, err := DecodeBatch(v2); !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("v2 batch with an array(10) alert: %v, want ErrInvalidBatch", err)
	}
}

func TestAlertAnnotationLimits(t *testing.T) {
	many := map[string]string{}
	for i := range MaxAlertAnnotations {
		many[fmt.Sprint("a", i)] = strings.Repeat("v", MaxAlertTextLen)
	}
	good := func() *Batch {
		return &Batch{Version: WireVersion, Kind: KindAlert, Gateway: "gw", Epoch: 1, Seq: 1,
			Alerts: []Alert{{Rule: "r", Annotations: maps.Clone(many)}}}
	}
	b := good()
	b.Alerts[0].Annotations[strings.Repeat("k", MaxIDLen)] = "longest name"
	delete(b.Alerts[0].Annotations, "a0")
	p, err := b.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeBatch(p); err != nil {
		t.Fatalf("batch at the limits: %v", err)
	}
	for name, mut := range map[string]func(a map[string]string){
		"count":       func(a map[string]string) { a["one-more"] = "" },
		"name":        func(a map[string]string) { a[strings.Repeat("k", MaxIDLen+1)] = "" },
		"value":       func(a map[string]string) { a["a0"] += "v" },
		"value alone": func(a map[string]string) { clear(a); a["x"] = strings.Repeat("v", MaxAlertTextLen+1) },
	} {
		t.Run(name, func(t *testing.T) {
			b := good()
			mut(b.Alerts[0].Annotations)
			if err := b.Validate(); !errors.Is(err, ErrInvalidBatch) {
				t.Fatalf("Validate = %v, want ErrInvalidBatch", err)
			}
			p, err := b.MarshalMsg(nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeBatch(p); !errors.Is(err, ErrInvalidBatch) {
				t.Fatalf("DecodeBatch = %v, want ErrInvalidBatch", err)
			}
		})
	}
	// The decoder refuses more than the limit before it reads them: a map
	// header claiming 65 entries and no entries.
	p, err = (&Batch{Version: WireVersion, Kind: KindAlert, Gateway: "gw", Epoch: 1, Seq: 1,
		Alerts: []Alert{{Rule: "r"}}}).MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	i := len(p) - 2 // the empty annotations map (0x80), then the empty losses (0x90)
	if p[i] != 0x80 {
		t.Fatalf("unexpected encoding %x", p)
	}
	huge := append(append(append([]byte{}, p[:i]...), 0xde, 0, MaxAlertAnnotations+1), p[i+1:]...)
	if _, err := DecodeBatch(huge); !errors.Is(err, ErrInvalidBatch) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("map of %d annotations: %v, want a limit error", MaxAlertAnnotations+1, err)
	}
}

func TestValidateRejects(t *testing.T) {
	good := func() *Batch {
		return &Batch{Version: WireVersion, Gateway: "gw", Epoch: 1, Seq: 1,
			Series: []Series{{Sensor: "s", Metric: "m", TS: []int64{1, 1}, Values: []float64{1, 2}}}}
	}
	cases := []struct {
		name string
		mut  func(*Batch)
		want error
	}{
		{"version", func(b *Batch) { b.Version = 99 }, ErrUnsupportedVersion},
		{"no gateway", func(b *Batch) { b.Gateway = "" }, ErrInvalidBatch},
		{"zero seq", func(b *Batch) { b.Seq = 0 }, ErrInvalidBatch},
		{"ts len", func(b *Batch) { b.Series[0].TS = b.Series[0].TS[:1] }, ErrInvalidBatch},
		{"quality len", func(b *Batch) { b.Series[0].Quality = []byte{0} }, ErrInvalidBatch},
		{"quality value", func(b *Batch) { b.Series[0].Quality = []byte{0, 9} }, ErrInvalidBatch},
		{"empty series", func(b *Batch) { b.Series[0].Values, b.Series[0].TS = nil, nil }, ErrInvalidBatch},
		{"ts overflow", func(b *Batch) { b.Series[0].TS = []int64{math.MaxInt64, 1} }, ErrInvalidBatch},
		{"kind", func(b *Batch) { b.Kind = 7 }, ErrInvalidBatch},
		{"alerts in telemetry", func(b *Batch) { b.Alerts = []Alert{{Rule: "r"}} }, ErrInvalidBatch},
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good batch: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := good()
			c.mut(b)
			if err := b.Validate(); !errors.Is(err, c.want) {
				t.Fatalf("Validate = %v, want %v", err, c.want)
			}
		})
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	bt := &Batch{Version: WireVersion, Gateway: "gw", Epoch: 1, Seq: 1,
		Series: []Series{{Sensor: "s", Metric: "m", TS: []int64{1}, Values: []float64{1}}}}
	p, err := bt.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range [][]byte{nil, {0xc1}, p[:len(p)-1], append(append([]byte{}, p...), 0)} {
		if _, err := DecodeBatch(in); !errors.Is(err, ErrInvalidBatch) {
			t.Errorf("DecodeBatch(%x) = %v, want ErrInvalidBatch", in, err)
		}
	}
	// An array header claiming 2^32-1 elements must fail without allocating them.
	huge := []byte{0xdd, 0xff, 0xff, 0xff, 0xff}
	if _, err := DecodeBatch(huge); err == nil {
		t.Fatal("absurd array length accepted")
	}
}

func TestAckRoundTrip(t *testing.T) {
	a := &Ack{Version: AckVersion, Epoch: 1<<63 + 5, Seqs: []uint64{1, 2, 9}}
	p, err := a.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAck(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("got %+v want %+v", got, a)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	b := NewBatchBuilder()
	b.Add(testReadings(30, 1e18))
	bt := b.Take("gw", 1)
	bt.Epoch, bt.Seq = 1, 1
	p, err := bt.MarshalMsg(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p)
	al := &Batch{Version: WireVersion, Kind: KindAlert, Gateway: "gw", Epoch: 1, Seq: 2,
		Alerts: []Alert{{Rule: "r", Labels: map[string]string{"a": "b"},
			Annotations: map[string]string{"summary": "s", "runbook": "r"}}, {Rule: "q"}}}
	p2, err := al.MarshalMsg(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p2)
	v1 := *bt
	v1.Version = 1
	p3, err := v1.MarshalMsg(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p3)
	alV1 := *al
	alV1.Version = 1
	p5, err := alV1.MarshalMsg(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p5)
	zenc, err := NewEncoder(&EncoderOptions{Compression: CompressZstd})
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range []*Batch{bt, splitBatch(50), al} {
		p, err := zenc.Encode(nil, b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	p4, err := splitBatch(20).MarshalMsg(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p4)
	// Signed messages (version 3) of the batches above, and signed acks:
	// the key is fixed, so the fuzzer may find its way to a MAC that
	// verifies only by keeping one.
	key := testKey(f)
	for _, q := range [][]byte{p, p2, p3, p4, SetHistorical(p)} {
		f.Add(SignBatch(nil, &key, "gw", q))
	}
	f.Add((&Ack{Epoch: 1, Seqs: []uint64{1, 2}}).AppendSigned(nil, &key, "gw"))
	f.Fuzz(func(t *testing.T, p []byte) {
		fuzzSigned(t, &key, p)
		// Every length is checked against the bytes left before it is
		// allocated for, so an uncompressed payload decodes to a small
		// multiple of its size, whatever its headers claim.
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		bt, err := DecodeBatch(p)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; (len(p) < 4 || p[3]&FlagZstd == 0) && n > 64*uint64(len(p))+64<<10 {
			t.Fatalf("decoding %d bytes allocated %d (%v)", len(p), n, err)
		}
		if err != nil {
			return
		}
		// A batch that validates must expand and re-encode cleanly.
		if n := len(bt.AppendReadings(nil)); n != bt.Len() && bt.Kind == KindTelemetry {
			t.Fatalf("expanded %d readings, Len %d", n, bt.Len())
		}
		q, err := bt.MarshalMsg(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeBatch(q); err != nil {
			t.Fatalf("re-encoded batch fails: %v", err)
		}
	})
}

// fuzzSigned checks the signed forms on p: the envelope never panics;
// what verifies is exactly what signing its content gives, so no other
// bytes pass for a signed message; the batch inside goes to the
// decoder like any other; an ack verifies only as signed.
func fuzzSigned(t *testing.T, key *Key, p []byte) {
	if inner, err := OpenBatch(p); err == nil {
		if _, _, err := VerifyBatch(p, "gw", *key); err == nil {
			if again := SignBatch(nil, key, "gw", inner); !bytes.Equal(again, p) {
				t.Fatalf("verified %x, but signing its batch gives %x", p, again)
			}
			if _, err := DecodeBatch(inner); err == nil && IsSigned(inner) {
				t.Fatal("a signed batch inside a signed batch decoded")
			}
		}
		if _, _, err := VerifyBatch(p, "gw2", *key); err == nil {
			t.Fatal("a message verified under two gateways' topics")
		}
	} else if !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("OpenBatch error %v does not wrap ErrInvalidBatch", err)
	}
	if a, err := DecodeAckLimit(p, 1024); err == nil && VerifyAck(p, "gw", key) == nil {
		if a.Version != SignedAckVersion {
			t.Fatalf("an ack of version %d verified", a.Version)
		}
		if again := a.AppendSigned(nil, key, "gw"); !bytes.Equal(again, p) {
			t.Fatalf("verified ack %x, but signing it gives %x", p, again)
		}
	}
}

func BenchmarkBuildEncode(b *testing.B) {
	rs := testReadings(1000, 1e18)
	bld := NewBatchBuilder()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		bld.Add(rs)
		bt := bld.Take("gw", 1)
		bt.Epoch, bt.Seq = 1, 1
		var err error
		buf, err = bt.MarshalMsg(buf[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(rs))*float64(b.N)/b.Elapsed().Seconds(), "readings/s")
	b.ReportMetric(float64(len(buf))/float64(len(rs)), "B/reading")
}

func TestLossBatchRoundTrip(t *testing.T) {
	bt := &Batch{Version: WireVersion, Kind: KindLoss, Gateway: "gw", Epoch: 1, Seq: 4, Created: 9,
		Losses: []Loss{
			{Reason: LossMaxBytes, Kind: KindTelemetry, Sensor: "s", Metric: "m", From: 10, To: 20, Count: 11, Epoch: 1, FirstSeq: 1, LastSeq: 2, At: 30},
			{Reason: LossMaxAge, Kind: KindAlert, Rule: "hot", From: 5, To: 5, Count: 1, Epoch: 1, FirstSeq: 3, LastSeq: 3, At: 30},
		}}
	p, err := bt.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, bt) {
		t.Fatalf("got %+v want %+v", got, bt)
	}
	if got.Len() != 2 {
		t.Fatalf("Len of a loss batch = %d, want its 2 records", got.Len())
	}
	for name, mut := range map[string]func(*Batch){
		"no records":       func(b *Batch) { b.Losses = nil },
		"no reason":        func(b *Batch) { b.Losses[0].Reason = "" },
		"from after to":    func(b *Batch) { b.Losses[0].From = 99 },
		"half a series id": func(b *Batch) { b.Losses[0].Sensor = "" },
		"losses elsewhere": func(b *Batch) { b.Kind = KindTelemetry },
	} {
		b := *bt
		b.Losses = append([]Loss(nil), bt.Losses...)
		mut(&b)
		if err := b.Validate(); !errors.Is(err, ErrInvalidBatch) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
}

func exampleBatch() *Batch {
	return &Batch{Version: WireVersion, Gateway: "gw-01", Epoch: 0x1234, Seq: 7, Created: 1700000000000000000,
		Series: []Series{{Sensor: "dev1", Metric: "temperature", Unit: "Cel",
			TS: []int64{1700000000000000000, 1000000000}, Values: []float64{21.5, 21.25}}}}
}

// TestWireExampleBytes pins the worked example in docs/wire-format.md.
func TestWireExampleBytes(t *testing.T) {
	b := exampleBatch()
	p, err := b.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "98 02 00 00 a5 67772d3031 cd1234 07 d317979cfe362a0000" +
		"93 91 98 a464657631 ab74656d7065726174757265 a343656c" +
		"09 92 d26553f100 01 fe 92 d10866 e7 c400" +
		"90 90"
	if got := fmt.Sprintf("%x", p); got != strings.ReplaceAll(want, " ", "") {
		t.Fatalf("example batch bytes\n got %s\nwant %s", got, strings.ReplaceAll(want, " ", ""))
	}
	got, err := DecodeBatch(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b) {
		t.Fatalf("example decodes as %+v", got)
	}
	a, err := (&Ack{Version: AckVersion, Epoch: 0x1234, Seqs: []uint64{7, 8}}).MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%x", a); got != "9301cd1234920708" {
		t.Fatalf("example ack bytes %s", got)
	}
}
