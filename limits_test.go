package outpost

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/tinylib/msgp/msgp"
)

// The tests in this file feed the decoder hostile payloads and measure
// what decoding them allocates: the bytes the heap handed out between
// the start and the end of the call (MemStats.TotalAlloc, which counts
// every allocation, freed or not), after a first call that warms up
// what is allocated once (the zstd decoder, sync.Pools).

// allocated returns the heap bytes f allocates, the least of three runs.
func allocated(t *testing.T, f func()) uint64 {
	t.Helper()
	f() // warm up
	var least uint64
	for i := range 3 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; i == 0 || n < least {
			least = n
		}
	}
	return least
}

// v1Message returns a version 1 batch header of gateway "g", epoch 1,
// seq 1, followed by rest (the series, alerts and losses fields).
func v1Message(rest ...byte) []byte {
	p := []byte{0x9a, 1, byte(KindTelemetry), 0, 0xa1, 'g', 1, 1, 0}
	return append(p, rest...)
}

// arr32 is a msgpack array32 header claiming n elements.
func arr32(n uint32) []byte { return []byte{0xdd, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)} }

// TestHostileLengthsAllocateNothing: every list's length is checked
// against the limits and the bytes left before anything is allocated
// for it, in version 1 as in version 2. The 14-byte version 1 message
// claiming 1 048 576 series made the generated decoder allocate 120 MiB.
func TestHostileLengthsAllocateNothing(t *testing.T) {
	const budget = 64 << 10
	v2 := func(rest ...byte) []byte {
		p := []byte{0x98, 2, byte(KindTelemetry), 0, 0xa1, 'g', 1, 1, 0, 0x93}
		return append(p, rest...)
	}
	cases := []struct {
		name string
		p    []byte
	}{
		{"v1 1048576 series", v1Message(arr32(1 << 20)...)},
		{"v1 65536 series", v1Message(arr32(1 << 16)...)},
		{"v1 4096 alerts", v1Message(append([]byte{0x90}, arr32(4096)...)...)},
		{"v1 65536 losses", v1Message(append([]byte{0x90, 0x90}, arr32(1<<16)...)...)},
		{"v1 1048576 readings", v1Message(append([]byte{0x91, 0x96, 0xa1, 's', 0xa1, 'm', 0xa0}, arr32(1<<20)...)...)},
		{"v1 values", v1Message(append([]byte{0x91, 0x96, 0xa1, 's', 0xa1, 'm', 0xa0, 0x91, 0x00}, arr32(1)...)...)},
		{"v2 65536 series", v2(arr32(1 << 16)...)},
		{"v2 1048576 readings", v2(append([]byte{0x91, 0x98, 0xa1, 's', 0xa1, 'm', 0xa0, 0x09}, arr32(1<<20)...)...)},
		{"v2 4096 alerts", v2(append([]byte{0x90}, arr32(4096)...)...)},
		{"v2 labels", v2(0x90, 0x91, 0x9b, 0xa1, 'r', 0xa0, 0x00, 0xa0, 0x00, 0xde, 0x04, 0x00)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			n := allocated(t, func() { _, err = DecodeBatch(c.p) })
			if !errors.Is(err, ErrInvalidBatch) {
				t.Fatalf("error %v, want ErrInvalidBatch", err)
			}
			t.Logf("%d bytes: %v; allocated %d bytes", len(c.p), err, n)
			if n > budget {
				t.Fatalf("decoding %d bytes allocated %d, want < %d", len(c.p), n, budget)
			}
		})
	}
	if p := v1Message(arr32(1 << 20)...); len(p) != 14 {
		t.Fatalf("the v1 message takes %d bytes, want the 14 of the report", len(p))
	}
}

// rleFrame is a zstd frame without a content size whose RLE blocks of
// zeros decompress to total bytes: four bytes a block of 128 KiB.
func rleFrame(total int) []byte {
	// Magic, frame header descriptor 0 (no content size, no checksum,
	// not a single segment), window descriptor 0x68 (8 MiB).
	f := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x68}
	for n := 0; n < total; n += 128 << 10 {
		size := min(128<<10, total-n)
		h := uint32(size)<<3 | 1<<1 // RLE
		if n+size >= total {
			h |= 1 // last
		}
		f = append(f, byte(h), byte(h>>8), byte(h>>16), 0)
	}
	return f
}

// streamFrame compresses p with the streaming encoder, which writes no
// content size.
func streamFrame(t *testing.T, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderCRC(false), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(buf.Bytes()); err != nil || h.HasFCS {
		t.Fatalf("stream frame header %+v, %v: want one without a content size", h, err)
	}
	return buf.Bytes()
}

// zstdMessage is a version 2 telemetry message whose body is the frame z.
func zstdMessage(z []byte) []byte {
	b := &Batch{Kind: KindTelemetry, Gateway: "gw", Epoch: 1, Seq: 1, Created: 1}
	return msgp.AppendBytes(appendHeader(nil, b, FlagZstd, 1), z)
}

// TestZstdBomb: a frame without a content size that decompresses past
// MaxBodyBytes is refused having allocated no more than MaxBodyBytes and
// a constant (the first, guessed, buffer and the slack). DecodeAll used
// to grow its output by appending, to 411 MiB for a 114 KB frame.
func TestZstdBomb(t *testing.T) {
	const slack = 2 << 20
	zeros := make([]byte, 80<<20)
	cases := []struct {
		name string
		z    []byte
	}{
		{"RLE blocks of 1 GiB", rleFrame(1 << 30)},
		{"stream of 80 MiB", streamFrame(t, zeros)},
	}
	zeros = nil
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := zstdMessage(c.z)
			var err error
			n := allocated(t, func() { _, err = DecodeBatch(p) })
			if !errors.Is(err, ErrOverLimit) || !errors.Is(err, ErrInvalidBatch) {
				t.Fatalf("error %v, want ErrOverLimit and ErrInvalidBatch", err)
			}
			t.Logf("%d-byte message: %v; allocated %.1f MiB", len(p), err, float64(n)/(1<<20))
			if n > MaxBodyBytes+slack {
				t.Fatalf("allocated %d bytes, want < %d (the cap) + %d", n, MaxBodyBytes, slack)
			}
		})
	}
}

// TestZstdWithoutContentSize: a valid body in a frame without a content
// size decodes, whether it fits the first, guessed, buffer or not.
func TestZstdWithoutContentSize(t *testing.T) {
	for _, n := range []int{3, 20000} { // a few bytes, and about 2 MiB of body
		bt := &Batch{Version: WireVersion, Kind: KindTelemetry, Gateway: "gw", Epoch: 1, Seq: 1, Created: 1,
			Series: []Series{series(regular(n, 1e18, 1e9), fill(n, func(i int) float64 { return float64(i) * 1.37 }), nil)}}
		if n > 3 {
			for i := range 20 {
				s := bt.Series[0]
				s.Metric = "m" + string(rune('a'+i%26)) + string(rune('a'+i/26))
				bt.Series = append(bt.Series, s)
			}
			bt.Series = bt.Series[1:]
		}
		body := appendBody(nil, bt, wholeBatch(bt, nil))
		z := streamFrame(t, body)
		got, err := DecodeBatch(zstdMessage(z))
		if err != nil {
			t.Fatalf("%d-byte body in a %d-byte frame: %v", len(body), len(z), err)
		}
		if !sameBatch(got, bt) {
			t.Fatalf("%d-byte body: round trip differs", len(body))
		}
		t.Logf("%d-byte body in a %d-byte frame without content size decoded (guess %d)", len(body), len(z),
			min(max(len(z)*zstdGuess, minZstdGuess), maxZstdGuess))
	}
}

// millionReadings is a valid compressed batch of 1 048 576 readings: one
// series, a reading a second of the same value. Deltas of deltas and of
// values are all 0, a byte each, and zstd makes them almost nothing.
func millionReadings(t *testing.T) []byte {
	t.Helper()
	n := MaxBatchReadings
	bt := &Batch{Version: WireVersion, Kind: KindTelemetry, Gateway: "gw", Epoch: 1, Seq: 1, Created: 1,
		Series: []Series{{Sensor: "s", Metric: "m", TS: make([]int64, n), Values: make([]float64, n)}}}
	bt.Series[0].TS[0] = 1e18
	for i := 1; i < n; i++ {
		bt.Series[0].TS[i] = 1e9
	}
	p, err := newEncoder(t, CompressZstd, 0).Encode(nil, bt)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDecoderLimits: a Decoder refuses a batch over its limits, with
// ErrOverLimit, before it allocates for the readings: the 164-byte batch
// of a million readings decodes to 16 MiB of columns without a limit.
func TestDecoderLimits(t *testing.T) {
	p := millionReadings(t)
	t.Logf("%d readings in %d bytes", MaxBatchReadings, len(p))
	if len(p) > 512 {
		t.Fatalf("the million readings take %d bytes, want a small message", len(p))
	}
	var err error
	whole := allocated(t, func() { _, err = DecodeBatch(p) })
	if err != nil {
		t.Fatalf("at the wire limits: %v", err)
	}
	d, err := NewDecoder(&DecoderOptions{MaxReadings: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	limited := allocated(t, func() { _, err = d.DecodeBatch(context.Background(), p) })
	if !errors.Is(err, ErrOverLimit) || !errors.Is(err, ErrInvalidBatch) {
		t.Fatalf("error %v, want ErrOverLimit and ErrInvalidBatch", err)
	}
	t.Logf("%v; allocated %.1f MiB, %.1f MiB without the limit", err, float64(limited)/(1<<20), float64(whole)/(1<<20))
	// The decompressed body (2 MiB) is all it holds.
	if limited > 3<<20 {
		t.Fatalf("allocated %d bytes, want < 3 MiB", limited)
	}

	alerts := &Batch{Version: WireVersion, Kind: KindAlert, Gateway: "gw", Epoch: 1, Seq: 2}
	for range 3 {
		alerts.Alerts = append(alerts.Alerts, Alert{Rule: "r", Labels: map[string]string{"a": "b"}})
	}
	twoSeries := &Batch{Version: WireVersion, Kind: KindTelemetry, Gateway: "gw", Epoch: 1, Seq: 3,
		Series: []Series{series([]int64{1}, []float64{1}, nil), series([]int64{1}, []float64{1}, nil)}}
	twoSeries.Series[1].Metric = "n"
	for _, c := range []struct {
		name string
		opts DecoderOptions
		b    *Batch
		err  string
	}{
		{"alerts", DecoderOptions{MaxAlerts: 2}, alerts, "3 alerts, limit 2"},
		{"series", DecoderOptions{MaxSeries: 1}, twoSeries, "2 series, limit 1"},
		{"readings", DecoderOptions{MaxReadings: 1}, twoSeries, "2 readings or more, limit 1"},
	} {
		for _, version := range []uint8{1, 2} {
			b := *c.b
			b.Version = version
			p, err := b.MarshalMsg(nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeBatch(p); err != nil {
				t.Fatalf("%s v%d at the wire limits: %v", c.name, version, err)
			}
			d, err := NewDecoder(&c.opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = d.DecodeBatch(context.Background(), p)
			if !errors.Is(err, ErrOverLimit) || err == nil || !bytes.Contains([]byte(err.Error()), []byte(c.err)) {
				t.Errorf("%s v%d: error %v, want ErrOverLimit saying %q", c.name, version, err, c.err)
			}
		}
	}
	for _, o := range []DecoderOptions{{MaxReadings: MaxBatchReadings + 1}, {MaxSeries: -1}, {DecompressBudget: -1}} {
		if _, err := NewDecoder(&o); err == nil {
			t.Errorf("NewDecoder(%+v) accepted", o)
		}
	}
}

// TestAlertMaps: a map is as large as the entries it holds, and a batch
// holds at most MaxBatchLabels of them. The generated decoder made each
// map as large as its header claimed (1 024 entries) and 4 096 such
// alerts, 2 KiB each of repeated keys, allocated 340 MiB.
func TestAlertMaps(t *testing.T) {
	alert := func(entries int, key func(int) string) []byte {
		p := msgp.AppendArrayHeader(nil, alertFields)
		p = msgp.AppendString(p, "r")
		p = msgp.AppendString(p, "")
		p = msgp.AppendUint8(p, 0)
		p = msgp.AppendString(p, "")
		p = msgp.AppendFloat64(p, 0)
		p = msgp.AppendMapHeader(p, uint32(entries))
		for i := range entries {
			p = msgp.AppendString(p, key(i))
			p = msgp.AppendString(p, "")
		}
		p = msgp.AppendString(p, "")
		p = append(p, 0, 0, 0)
		return msgp.AppendMapHeader(p, 0)
	}
	message := func(n int, a []byte) []byte {
		b := &Batch{Kind: KindAlert, Gateway: "gw", Epoch: 1, Seq: 1}
		p := appendHeader(nil, b, 0, 1)
		p = msgp.AppendArrayHeader(p, bodyFields)
		p = msgp.AppendArrayHeader(p, 0)
		p = msgp.AppendArrayHeader(p, uint32(n))
		for range n {
			p = append(p, a...)
		}
		return msgp.AppendArrayHeader(p, 0)
	}
	same := func(int) string { return "" }
	distinct := func(i int) string { return string([]byte{'a' + byte(i/32), 'a' + byte(i%32)}) }
	for _, c := range []struct {
		name  string
		p     []byte
		limit bool   // over MaxBatchLabels
		max   uint64 // allocation allowed
	}{
		{"one key repeated", message(64, alert(1024, same)), false, 1 << 20},
		{"distinct keys", message(64, alert(1024, distinct)), false, 16 << 20},
		{"4096 alerts of one key repeated", message(MaxBatchAlerts, alert(1024, same)), true, 4 << 20},
		{"4096 alerts of distinct keys", message(MaxBatchAlerts, alert(1024, distinct)), true, 32 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			n := allocated(t, func() { _, err = DecodeBatch(c.p) })
			if c.limit != errors.Is(err, ErrOverLimit) || !c.limit && err != nil {
				t.Fatalf("error %v, want over the limit: %v", err, c.limit)
			}
			t.Logf("%d bytes: %v; allocated %.1f MiB", len(c.p), err, float64(n)/(1<<20))
			if n > c.max {
				t.Fatalf("allocated %d bytes, want < %d", n, c.max)
			}
		})
	}
}

// TestDecompressBudget: concurrent decodes of zstd bombs through one
// Decoder never reserve more than its budget together, and all finish.
func TestDecompressBudget(t *testing.T) {
	one := int64(MaxBodyBytes + zstdSlack)
	d, err := NewDecoder(&DecoderOptions{DecompressBudget: one + one/2})
	if err != nil {
		t.Fatal(err)
	}
	p := zstdMessage(rleFrame(1 << 30))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := d.DecodeBatch(context.Background(), p); !errors.Is(err, ErrOverLimit) {
				t.Errorf("error %v, want ErrOverLimit", err)
			}
		})
	}
	wg.Wait()
	if peak := d.budget.peakUse(); peak > one+one/2 || peak < one {
		t.Fatalf("peak reservation %d, want %d to %d", peak, one, one+one/2)
	}
	small, err := NewDecoder(&DecoderOptions{DecompressBudget: MaxBodyBytes / 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.DecodeBatch(context.Background(), p); !errors.Is(err, ErrOverLimit) {
		t.Fatalf("a frame needing more than the whole budget: %v", err)
	}
}

func TestByteSem(t *testing.T) {
	s := newByteSem(10)
	ctx := context.Background()
	if err := s.acquire(ctx, 11); !errors.Is(err, ErrOverLimit) {
		t.Fatalf("more than the budget: %v", err)
	}
	if err := s.acquire(ctx, 6); err != nil {
		t.Fatal(err)
	}
	// 6 of 10 taken: a waiter for 5 waits, and one for 1 behind it too
	// (first come, first served).
	got := make(chan int64, 2)
	go func() {
		if err := s.acquire(ctx, 5); err == nil {
			got <- 5
		}
	}()
	for s.waiting() != 1 {
		time.Sleep(time.Millisecond)
	}
	go func() {
		if err := s.acquire(ctx, 1); err == nil {
			got <- 1
		}
	}()
	for s.waiting() != 2 {
		time.Sleep(time.Millisecond)
	}
	// A waiter that gives up leaves the queue.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := s.acquire(cctx, 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled wait: %v", err)
	}
	select {
	case n := <-got:
		t.Fatalf("%d granted while 6 of 10 were taken and 5 waited first", n)
	default:
	}
	s.release(6)
	if a, b := <-got, <-got; a+b != 6 {
		t.Fatalf("granted %d and %d, want 5 and 1", a, b)
	}
	s.release(5)
	s.release(1)
	if s.free != 10 || s.waiting() != 0 {
		t.Fatalf("free %d, %d waiting; want 10 and none", s.free, s.waiting())
	}
}

// TestDecodeAckLimit: an ack's seqs are counted before they are
// allocated. Eight bytes claiming a million seqs allocated 8 MiB.
func TestDecodeAckLimit(t *testing.T) {
	hostile := append([]byte{0x93, 1, 1}, arr32(1<<20)...)
	if len(hostile) != 8 {
		t.Fatalf("hostile ack of %d bytes, want 8", len(hostile))
	}
	// Honoured, the claim is 8 MiB of seqs. The bound is well above the
	// error's own few hundred bytes: allocated counts the whole process,
	// and a busy race-detector run adds a little noise.
	const bound = 64 << 10
	var err error
	if n := allocated(t, func() { _, err = DecodeAckLimit(hostile, 1024) }); !errors.Is(err, ErrOverLimit) || n > bound {
		t.Fatalf("DecodeAckLimit: %v, allocated %d bytes", err, n)
	}
	if n := allocated(t, func() { _, err = DecodeAck(hostile) }); err == nil || n > bound {
		t.Fatalf("DecodeAck: %v, allocated %d bytes", err, n)
	}
	for _, c := range []struct {
		seqs, limit int
		ok          bool
	}{{1024, 1024, true}, {1025, 1024, false}, {1, 1, true}, {0, 1, true}} {
		a := Ack{Version: AckVersion, Epoch: 7}
		for i := range c.seqs {
			a.Seqs = append(a.Seqs, uint64(i+1))
		}
		p, err := a.MarshalMsg(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeAckLimit(p, c.limit)
		if c.ok != (err == nil) || c.ok && len(got.Seqs) != c.seqs {
			t.Errorf("%d seqs, limit %d: %v", c.seqs, c.limit, err)
		}
		if !c.ok && !errors.Is(err, ErrOverLimit) {
			t.Errorf("%d seqs, limit %d: %v, want ErrOverLimit", c.seqs, c.limit, err)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, c := range []struct {
		s  string
		ok bool
	}{
		{"gw-01", true}, {"dev1-env", true}, {"temperature", true}, {"a.b_c-D9", true}, {"...", true},
		{"", false}, {".", false}, {"..", false}, {"a b", false}, {"a/b", false}, {"a+b", false}, {"é", false},
		{"x\x00", false}, {string(make([]byte, 64)), false},
		{"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl", true},   // 64
		{"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklm", false}, // 65
	} {
		if ValidName(c.s) != c.ok {
			t.Errorf("ValidName(%q) = %v, want %v", c.s, !c.ok, c.ok)
		}
	}
}
