package outpost

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// testKey is a fixed key: bytes 1 to 32.
func testKey(t testing.TB) Key {
	t.Helper()
	var b [KeySize]byte
	for i := range b {
		b[i] = byte(i + 1)
	}
	k, err := ParseKey([]byte(hex.EncodeToString(b[:])))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseKey(t *testing.T) {
	want := testKey(t)
	raw := want.bytes()
	for _, text := range []string{
		hex.EncodeToString(raw),
		strings.ToUpper(hex.EncodeToString(raw)),
		"  " + hex.EncodeToString(raw) + "\n",
		base64.StdEncoding.EncodeToString(raw),
		base64.RawStdEncoding.EncodeToString(raw) + "\r\n",
		base64.URLEncoding.EncodeToString(raw),
	} {
		k, err := ParseKey([]byte(text))
		if err != nil || !k.Equal(want) {
			t.Errorf("ParseKey(%q) = %v, %v; want the test key", text, k, err)
		}
	}
	secret := hex.EncodeToString(raw)
	for _, text := range []string{
		"", "\n", secret[:62], secret + "00", secret[:63] + "g",
		base64.StdEncoding.EncodeToString(raw[:31]), base64.StdEncoding.EncodeToString(append(raw, 1)),
		strings.Repeat("0", 64), base64.StdEncoding.EncodeToString(make([]byte, 32)),
		secret[:32] + " " + secret[32:63],
	} {
		_, err := ParseKey([]byte(text))
		if err == nil {
			t.Errorf("ParseKey(%q) accepted", text)
			continue
		}
		if len(text) > 8 && strings.Contains(err.Error(), strings.TrimSpace(text)[:8]) {
			t.Errorf("ParseKey's error %q quotes the text", err)
		}
	}
}

// TestKeyNeverPrinted: no format verb, no JSON, shows the key, only its
// fingerprint.
func TestKeyNeverPrinted(t *testing.T) {
	k := testKey(t)
	secret := k.Hex()
	fp := k.Fingerprint()
	if len(fp) != 16 || strings.Contains(secret, fp) {
		t.Fatalf("fingerprint %q", fp)
	}
	j, err := json.Marshal(struct{ K Key }{k})
	if err != nil {
		t.Fatal(err)
	}
	outs := []string{string(j), fmt.Sprint(k), fmt.Sprint(&k), fmt.Sprintf("%+v %#v %v", k, k, []Key{k})}
	for _, verb := range []string{"%s", "%x", "%X", "%q", "%d", "%v", "%08b", "%p"} {
		outs = append(outs, fmt.Sprintf(verb, k))
	}
	upper := strings.ToUpper(secret)
	for _, out := range outs {
		for _, leak := range []string{secret[:16], upper[:16], "1 2 3 4 5 6", "[1 2 3", "0x1020304"} {
			if strings.Contains(out, leak) {
				t.Errorf("printed %q, which shows the key", out)
			}
		}
	}
	if got := fmt.Sprint(k); !strings.Contains(got, fp) {
		t.Errorf("printed %q, want the fingerprint %s", got, fp)
	}
	// The fingerprint of the test key, pinned: docs and operators
	// compare it across machines.
	if fp != "dd0d243f84fa994a" {
		t.Errorf("fingerprint of the test key %s changed", fp)
	}
	if a, b := NewKey(), NewKey(); a.Equal(b) || a.zero() {
		t.Error("NewKey returned the same key twice, or zeros")
	}
}

// signedTestBatches are the encodings signed in the tests: plain,
// compressed and historical, an alert batch, a version 1 batch.
func signedTestBatches(t testing.TB) [][]byte {
	t.Helper()
	bt := exampleBatch()
	plain, err := bt.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	z, err := newEncoder(t, CompressZstd, 0).Encode(nil, splitBatch(200))
	if err != nil {
		t.Fatal(err)
	}
	al := &Batch{Version: WireVersion, Kind: KindAlert, Gateway: "gw-01", Epoch: 9, Seq: 3,
		Alerts: []Alert{{Rule: "hot", Fingerprint: "hot/s1", State: StateFiring, Labels: map[string]string{"a": "b"}, Seq: 1}}}
	pa, err := al.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	v1 := *bt
	v1.Version = 1
	p1, err := v1.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{plain, SetHistorical(z), pa, p1}
}

func TestSignBatch(t *testing.T) {
	k := testKey(t)
	other := NewKey()
	for i, batch := range signedTestBatches(t) {
		p := SignBatch(nil, &k, "gw-01", batch)
		if !IsSigned(p) || IsSigned(batch) || len(p) > len(batch)+SignedOverhead {
			t.Fatalf("batch %d: signed %d bytes of %d (IsSigned %v)", i, len(p), len(batch), IsSigned(p))
		}
		if again := SignBatch([]byte("prefix"), &k, "gw-01", batch); !bytes.Equal(again[6:], p) {
			t.Fatalf("batch %d: signing again gave other bytes", i)
		}
		inner, which, err := VerifyBatch(p, "gw-01", other, k)
		if err != nil || which != 1 || !bytes.Equal(inner, batch) {
			t.Fatalf("batch %d: VerifyBatch = %d, %v", i, which, err)
		}
		if _, err := DecodeBatch(inner); err != nil {
			t.Fatalf("batch %d inside: %v", i, err)
		}
		if o, err := OpenBatch(p); err != nil || !bytes.Equal(o, batch) {
			t.Fatalf("batch %d: OpenBatch: %v", i, err)
		}
		for _, c := range []struct {
			what    string
			gateway string
			keys    []Key
		}{
			{"another key", "gw-01", []Key{other}},
			{"no key", "gw-01", nil},
			{"another gateway's topic", "gw-02", []Key{k}},
			{"a gateway id that extends this one", "gw-011", []Key{k}},
			{"an empty gateway id", "", []Key{k}},
		} {
			if _, _, err := VerifyBatch(p, c.gateway, c.keys...); !errors.Is(err, ErrBadMAC) {
				t.Errorf("batch %d, %s: %v, want ErrBadMAC", i, c.what, err)
			}
		}
		// A decoder that does not verify refuses it, as an older
		// ingest service does.
		if _, err := DecodeBatch(p); !errors.Is(err, ErrUnsupportedVersion) {
			t.Errorf("batch %d: DecodeBatch of a signed message: %v", i, err)
		}
		// Setting the historical bit leaves a signed message alone.
		if !bytes.Equal(SetHistorical(p), p) {
			t.Errorf("batch %d: SetHistorical changed a signed message", i)
		}
	}
	for _, p := range [][]byte{nil, {0x93}, {0x93, 3}, {0x93, 3, 0xc4, 0}, {0x98, 2, 0, 0}} {
		if _, _, err := VerifyBatch(p, "gw-01", k); !errors.Is(err, ErrInvalidBatch) {
			t.Errorf("VerifyBatch(%x) = %v, want ErrInvalidBatch", p, err)
		}
		if _, err := OpenBatch(p); !errors.Is(err, ErrInvalidBatch) {
			t.Errorf("OpenBatch(%x) = %v, want ErrInvalidBatch", p, err)
		}
	}
}

// TestSignedBitFlips: every single-bit change of a signed batch or ack,
// and every cut or added byte, is refused.
func TestSignedBitFlips(t *testing.T) {
	k := testKey(t)
	var msgs [][]byte
	for _, batch := range signedTestBatches(t) {
		msgs = append(msgs, SignBatch(nil, &k, "gw-01", batch))
	}
	for i, p := range msgs {
		n := 0
		for bit := range 8 * len(p) {
			q := slices.Clone(p)
			q[bit/8] ^= 1 << (bit % 8)
			if _, _, err := VerifyBatch(q, "gw-01", k); err == nil {
				t.Fatalf("batch %d: flipping bit %d of byte %d verifies", i, bit%8, bit/8)
			}
			n++
		}
		for cut := range len(p) {
			if _, _, err := VerifyBatch(p[:cut], "gw-01", k); err == nil {
				t.Fatalf("batch %d: the first %d bytes verify", i, cut)
			}
		}
		if _, _, err := VerifyBatch(append(slices.Clone(p), 0), "gw-01", k); err == nil {
			t.Fatalf("batch %d: a byte added verifies", i)
		}
		t.Logf("batch %d: %d bytes, %d bit flips refused", i, len(p), n)
	}

	for _, seqs := range [][]uint64{nil, {7}, {1, 2, 3, 1 << 40}} {
		a := Ack{Epoch: math.MaxUint64 - 1, Seqs: seqs}
		p := a.AppendSigned(nil, &k, "gw-01")
		for bit := range 8 * len(p) {
			q := slices.Clone(p)
			q[bit/8] ^= 1 << (bit % 8)
			if ackAccepted(q, &k) {
				t.Fatalf("ack %v: flipping bit %d of byte %d verifies", seqs, bit%8, bit/8)
			}
		}
		for cut := range len(p) {
			if ackAccepted(p[:cut], &k) {
				t.Fatalf("ack %v: the first %d bytes verify", seqs, cut)
			}
		}
	}
}

// ackAccepted is what a gateway with key k accepts: an ack that decodes
// and whose MAC verifies.
func ackAccepted(p []byte, k *Key) bool {
	_, err := DecodeAckLimit(p, 1024)
	return err == nil && VerifyAck(p, "gw-01", k) == nil
}

func TestSignedAck(t *testing.T) {
	k := testKey(t)
	a := Ack{Version: AckVersion, Epoch: 0x1234, Seqs: []uint64{7, 8}}
	p := a.AppendSigned(nil, &k, "gw-01")
	if !IsSignedAck(p) {
		t.Fatalf("%x is not a signed ack", p)
	}
	got, err := DecodeAckLimit(p, 2)
	if err != nil || got.Version != SignedAckVersion || got.Epoch != a.Epoch || !slices.Equal(got.Seqs, a.Seqs) {
		t.Fatalf("DecodeAckLimit = %+v, %v", got, err)
	}
	if _, err := DecodeAckLimit(p, 1); !errors.Is(err, ErrOverLimit) {
		t.Fatalf("DecodeAckLimit with a limit of 1: %v", err)
	}
	if err := VerifyAck(p, "gw-01", &k); err != nil {
		t.Fatal(err)
	}
	other := NewKey()
	if err := VerifyAck(p, "gw-01", &other); !errors.Is(err, ErrBadMAC) {
		t.Errorf("another key: %v", err)
	}
	if err := VerifyAck(p, "gw-02", &k); !errors.Is(err, ErrBadMAC) {
		t.Errorf("another gateway: %v", err)
	}
	plain, err := a.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyAck(plain, "gw-01", &k); !errors.Is(err, ErrBadMAC) || IsSignedAck(plain) {
		t.Errorf("an unsigned ack: %v", err)
	}
	// The same bytes MACed as a batch do not pass for an ack.
	signed := p[:len(p)-macField]
	if bm := k.mac(batchTag, "gw-01", signed); bytes.Equal(bm[:], p[len(p)-MACSize:]) {
		t.Error("the batch and ack tags give the same MAC")
	}
	// Version 2 without its MAC, and version 1 with one, are refused.
	for _, q := range [][]byte{
		append([]byte{0x94, 2}, plain[2:]...),
		append(append([]byte{0x94, 1}, plain[2:]...), p[len(p)-macField:]...),
		append([]byte{0x93, 2}, plain[2:]...),
		append(slices.Clone(p[:len(p)-macField]), 0xc4, 31),
	} {
		if _, err := DecodeAckLimit(q, 16); err == nil {
			t.Errorf("DecodeAckLimit(%x) accepted", q)
		}
	}
}

// TestSignedExampleBytes pins the signed forms of the worked example in
// docs/wire-format.md, with the key of bytes 1 to 32.
func TestSignedExampleBytes(t *testing.T) {
	k := testKey(t)
	batch, err := exampleBatch().MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := SignBatch(nil, &k, "gw-01", batch)
	want := "93 03 c4 41" + hex.EncodeToString(batch) +
		"c4 20 3d6f4b8b4d0018101539895adb232255342552db2d3c00036288d1cff1270009"
	if got := fmt.Sprintf("%x", p); got != strings.ReplaceAll(want, " ", "") {
		t.Errorf("signed example batch\n got %s\nwant %s", got, strings.ReplaceAll(want, " ", ""))
	}
	a := (&Ack{Epoch: 0x1234, Seqs: []uint64{7, 8}}).AppendSigned(nil, &k, "gw-01")
	if got, want := fmt.Sprintf("%x", a), "9402cd1234920708c420"+"3e168ad54746e98bb9d90d65b15413e936379bfec6ee57ecf100897ae54954bc"; got != want {
		t.Errorf("signed example ack\n got %s\nwant %s", got, want)
	}
}

// TestSignedEncoderCap: a signing encoder leaves room for the envelope,
// and one reading with the longest ids still fits under the smallest cap.
func TestSignedEncoderCap(t *testing.T) {
	k := testKey(t)
	for _, c := range []Compression{CompressNone, CompressZstd} {
		e, err := NewEncoder(&EncoderOptions{Compression: c, MaxMessageBytes: 2048, Signed: true})
		if err != nil {
			t.Fatal(err)
		}
		if e.MaxMessageBytes() != 2048-SignedOverhead {
			t.Fatalf("MaxMessageBytes %d", e.MaxMessageBytes())
		}
		bt := splitBatch(3000)
		p, ends, err := e.AppendParts(nil, bt, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := 0
		for _, end := range ends {
			if n := len(SignBatch(nil, &k, "gw", p[start:end])); n > 2048 {
				t.Fatalf("%v: a signed part of %d bytes, cap 2048", c, n)
			}
			start = end
		}
		t.Logf("%v: %d parts", c, len(ends))
	}
	e, err := NewEncoder(&EncoderOptions{MaxMessageBytes: MinMessageBytes, Signed: true})
	if err != nil {
		t.Fatal(err)
	}
	long := &Batch{Version: WireVersion, Gateway: strings.Repeat("g", MaxIDLen), Epoch: math.MaxUint64, Seq: 1, Created: math.MinInt64,
		Series: []Series{{Sensor: strings.Repeat("s", MaxIDLen), Metric: strings.Repeat("m", MaxIDLen), Unit: strings.Repeat("u", maxUnitLen),
			TS: []int64{math.MinInt64}, Values: []float64{math.Pi}, Quality: []byte{1}}}}
	if _, _, err := e.AppendParts(nil, long, 0, nil); err != nil {
		t.Fatalf("one reading with the longest ids, signed, under %d bytes: %v", MinMessageBytes, err)
	}
	ls := &Batch{Version: WireVersion, Kind: KindLoss, Gateway: strings.Repeat("g", MaxIDLen), Epoch: math.MaxUint64, Seq: 1,
		Losses: []Loss{{Reason: strings.Repeat("r", MaxIDLen), Sensor: strings.Repeat("s", MaxIDLen),
			Metric: strings.Repeat("m", MaxIDLen), Rule: strings.Repeat("u", MaxIDLen), From: math.MinInt64, To: math.MaxInt64,
			Count: math.MaxUint64, Epoch: math.MaxUint64, FirstSeq: math.MaxUint64, LastSeq: math.MaxUint64, At: math.MinInt64}}}
	if _, _, err := e.AppendParts(nil, ls, 0, nil); err != nil {
		t.Fatalf("the longest loss record, signed, under %d bytes: %v", MinMessageBytes, err)
	}
}

// BenchmarkSign and BenchmarkVerify: the cost of the MAC for a batch of
// 1000 and of 5000 readings (the drain benchmark's size), compressed.
func BenchmarkSign(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		batch := benchSigned(b, n)
		k := testKey(b)
		b.Run(fmt.Sprintf("readings=%d/bytes=%d", n, len(batch)), func(b *testing.B) {
			var dst []byte
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				dst = SignBatch(dst[:0], &k, "gw-01", batch)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		batch := benchSigned(b, n)
		k := testKey(b)
		p := SignBatch(nil, &k, "gw-01", batch)
		b.Run(fmt.Sprintf("readings=%d/bytes=%d", n, len(batch)), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := VerifyBatch(p, "gw-01", k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchSigned(b *testing.B, n int) []byte {
	b.Helper()
	bld := NewBatchBuilder()
	bld.Add(testReadings(n, 1e18))
	bt := bld.Take("gw-01", 1)
	bt.Epoch, bt.Seq = 1, 1
	p, err := newEncoder(b, CompressZstd, 0).Encode(nil, bt)
	if err != nil {
		b.Fatal(err)
	}
	return p
}
