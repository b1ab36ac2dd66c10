package outpost

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost/internal/decimal"
)

// The version 2 batch encoding, written by hand with msgp's primitives
// (docs/wire-format.md is the normative description):
//
//	batch:  [version=2, kind, flags, gateway, epoch, seq, created, body]
//	body:   [series, alerts, losses], or with FlagZstd a bin holding a
//	        zstd frame of exactly those bytes
//	series: [sensor, metric, unit, ts_exp, ts, value_exp, values, quality]
const (
	v2Fields     = 8
	bodyFields   = 3
	seriesFields = 8
	alertFields  = 11 // version 1: 10, without annotations
	lossFields   = 12

	// Version 1: [version=1, kind, flags, gateway, epoch, seq, created,
	// series, alerts, losses], series [sensor, metric, unit, ts, values,
	// quality] with ts delta-encoded in ns and values float64.
	v1Fields       = 10
	seriesV1Fields = 6

	// ts_exp 0..9: ts holds t0, the first delta, then deltas of deltas,
	// in units of 10^ts_exp ns. 10..19: the same units, but ts holds t0
	// then plain deltas, for the rare series whose deltas of deltas
	// would overflow int64.
	maxTSExp    = 9
	tsDeltaMode = 10

	// value_exp decimal.MinExp..decimal.MaxExp: values hold n0 then
	// deltas of the integers n with value = n × 10^value_exp
	// (decimal.Unscale). decimal.Raw: values are floats.
)

var pow10i = [...]int64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

var errTSOverflow = errors.New("timestamp overflow")

// MarshalMsg appends the batch's encoding to b: version 1 (the msgp tuple
// of batchV1) if bt.Version is 1, else version 2, uncompressed, in one
// message. Use an Encoder for compression and the byte cap. It
// implements msgp.Marshaler.
func (bt *Batch) MarshalMsg(b []byte) ([]byte, error) {
	if bt.Version == 1 {
		v1 := batchV1{Version: 1, Kind: bt.Kind, Flags: bt.Flags &^ FlagZstd, Gateway: bt.Gateway,
			Epoch: bt.Epoch, Seq: bt.Seq, Created: bt.Created, Losses: bt.Losses}
		if bt.Alerts != nil {
			// Version 1 has no annotations: they are left out.
			v1.Alerts = make([]alertV1, len(bt.Alerts))
			for i := range bt.Alerts {
				v1.Alerts[i] = bt.Alerts[i].v1()
			}
		}
		if bt.Series != nil {
			v1.Series = make([]seriesV1, len(bt.Series))
			for i := range bt.Series {
				v1.Series[i] = seriesV1(bt.Series[i])
			}
		}
		return v1.MarshalMsg(b)
	}
	return plainEncoder.Encode(b, bt)
}

// UnmarshalMsg decodes one encoded batch, version 1 or 2, from the head
// of p into bt and returns the rest of p. It checks the structure and
// the limits that bound allocation (the wire limits, with the shared
// default decompression budget), but not the contract: DecodeBatch does
// that too. Nothing in bt refers to p afterwards. It implements
// msgp.Unmarshaler.
func (bt *Batch) UnmarshalMsg(p []byte) ([]byte, error) {
	return bt.unmarshal(context.Background(), defaultDecoder, p)
}

// unmarshal is UnmarshalMsg within d's limits and budget.
func (bt *Batch) unmarshal(ctx context.Context, d *Decoder, p []byte) ([]byte, error) {
	n, q, err := msgp.ReadArrayHeaderBytes(p)
	if err != nil {
		return p, err
	}
	version, q, err := msgp.ReadUint8Bytes(q)
	if err != nil || n == 0 {
		return p, fmt.Errorf("version: %w", errOr(err, msgp.ErrShortBytes))
	}
	st := &decodeState{ctx: ctx, d: d}
	switch version {
	case 1:
		if n != v1Fields {
			return p, msgp.ArrayError{Wanted: v1Fields, Got: n}
		}
		*bt = Batch{Version: 1}
		return bt.unmarshalV1(q, st)
	case 2:
		if n != v2Fields {
			return p, msgp.ArrayError{Wanted: v2Fields, Got: n}
		}
		*bt = Batch{Version: 2}
		return bt.unmarshalV2(q, st)
	case SignedVersion:
		return p, fmt.Errorf("%w: %d, a signed batch: VerifyBatch (or OpenBatch) returns the batch inside", ErrUnsupportedVersion, version)
	}
	return p, fmt.Errorf("%w: %d", ErrUnsupportedVersion, version)
}

// decodeState is one batch being decoded: the decoder, and the readings
// and map entries decoded so far.
type decodeState struct {
	ctx      context.Context
	d        *Decoder
	readings int
	labels   int
}

// unmarshalV1 decodes a version 1 batch after its version field. It
// reads the msgp tuple of batchV1 with the checks of version 2 (every
// list's length against the limits and the bytes left before anything
// is allocated for it) instead of the generated code, which allocates
// whatever length the header claims, up to the msgp limit.
func (bt *Batch) unmarshalV1(p []byte, st *decodeState) (_ []byte, err error) {
	if p, err = bt.readHeader(p); err != nil {
		return p, err
	}
	n, p, err := readLen(p, st.d.lim.series, minSeriesV1Bytes, "series")
	if err != nil {
		return p, err
	}
	if n > 0 {
		bt.Series = make([]Series, n)
	}
	for i := range bt.Series {
		if p, err = readSeriesV1(p, &bt.Series[i], st); err != nil {
			return p, fmt.Errorf("series %d: %w", i, err)
		}
	}
	if n, p, err = readLen(p, st.d.lim.alerts, minAlertV1Bytes, "alerts"); err != nil {
		return p, err
	}
	if n > 0 {
		bt.Alerts = make([]Alert, n)
	}
	for i := range bt.Alerts {
		if p, err = readAlert(p, &bt.Alerts[i], alertFields-1, st); err != nil {
			return p, fmt.Errorf("alert %d: %w", i, err)
		}
	}
	return bt.readLosses(p)
}

// readSeriesV1 decodes one version 1 series.
func readSeriesV1(p []byte, s *Series, st *decodeState) (_ []byte, err error) {
	n, p, err := msgp.ReadArrayHeaderBytes(p)
	if err != nil {
		return p, err
	}
	if n != seriesV1Fields {
		return p, msgp.ArrayError{Wanted: seriesV1Fields, Got: n}
	}
	if s.Sensor, p, err = msgp.ReadStringBytes(p); err != nil {
		return p, fmt.Errorf("sensor: %w", err)
	}
	if s.Metric, p, err = msgp.ReadStringBytes(p); err != nil {
		return p, fmt.Errorf("metric: %w", err)
	}
	if s.Unit, p, err = msgp.ReadStringBytes(p); err != nil {
		return p, fmt.Errorf("unit: %w", err)
	}
	if n, p, err = readReadings(p, st); err != nil {
		return p, err
	}
	if n > 0 {
		s.TS = make([]int64, n)
	}
	for i := range s.TS {
		if s.TS[i], p, err = msgp.ReadInt64Bytes(p); err != nil {
			return p, fmt.Errorf("ts %d: %w", i, err)
		}
	}
	if n, p, err = readLen(p, MaxBatchReadings, 1, "values"); err != nil {
		return p, err
	}
	if int64(n) != int64(len(s.TS)) {
		return p, fmt.Errorf("%d values for %d timestamps", n, len(s.TS))
	}
	if n > 0 {
		s.Values = make([]float64, n)
	}
	for i := range s.Values {
		if s.Values[i], p, err = msgp.ReadFloat64Bytes(p); err != nil {
			return p, fmt.Errorf("value %d: %w", i, err)
		}
	}
	if s.Quality, p, err = msgp.ReadBytesBytes(p, nil); err != nil {
		return p, fmt.Errorf("quality: %w", err)
	}
	if len(s.Quality) == 0 {
		s.Quality = nil
	}
	return p, nil
}

// readAlert decodes one alert of fields fields: alertFields (version 2)
// or one fewer, without the annotations (version 1). It reads what the
// generated Alert.UnmarshalMsg reads, but sizes each map by the entries
// it holds rather than by its header's claim.
func readAlert(p []byte, a *Alert, fields uint32, st *decodeState) (_ []byte, err error) {
	n, p, err := msgp.ReadArrayHeaderBytes(p)
	if err != nil {
		return p, err
	}
	if n != fields {
		return p, msgp.ArrayError{Wanted: fields, Got: n}
	}
	if a.Rule, p, err = msgp.ReadStringBytes(p); err != nil {
		return p, fmt.Errorf("rule: %w", err)
	}
	if a.Fingerprint, p, err = msgp.ReadStringBytes(p); err != nil {
		return p, fmt.Errorf("fingerprint: %w", err)
	}
	var state uint8
	if state, p, err = msgp.ReadUint8Bytes(p); err != nil {
		return p, fmt.Errorf("state: %w", err)
	}
	a.State = AlertState(state)
	if a.Severity, p, err = msgp.ReadStringBytes(p); err != nil {
		return p, fmt.Errorf("severity: %w", err)
	}
	if a.Value, p, err = msgp.ReadFloat64Bytes(p); err != nil {
		return p, fmt.Errorf("value: %w", err)
	}
	if a.Labels, p, err = readStringMap(p, maxMapEntries, "labels", st); err != nil {
		return p, err
	}
	if a.Message, p, err = msgp.ReadStringBytes(p); err != nil {
		return p, fmt.Errorf("message: %w", err)
	}
	if a.StartedAt, p, err = msgp.ReadInt64Bytes(p); err != nil {
		return p, fmt.Errorf("started_at: %w", err)
	}
	if a.ChangedAt, p, err = msgp.ReadInt64Bytes(p); err != nil {
		return p, fmt.Errorf("changed_at: %w", err)
	}
	if a.Seq, p, err = msgp.ReadUint64Bytes(p); err != nil {
		return p, fmt.Errorf("seq: %w", err)
	}
	if fields < alertFields {
		return p, nil
	}
	if a.Annotations, p, err = readStringMap(p, MaxAlertAnnotations, "annotations", st); err != nil {
		return p, err
	}
	if len(a.Annotations) == 0 {
		a.Annotations = nil // as the rules engine emits an alert without any
	}
	return p, nil
}

const (
	// maxMapEntries is the msgp limit on maps (wire.go).
	maxMapEntries = 1024
	// mapHint is the most entries a map is made for before it has them.
	mapHint = 64
)

// readStringMap decodes a map of strings of at most limit entries, and
// counts them against the batch's MaxBatchLabels. The map is never nil.
// Its size is the entries the payload holds, not what the header
// claims: keys that repeat count once, and it starts at most
// mapHint entries large.
func readStringMap(p []byte, limit int, what string, st *decodeState) (map[string]string, []byte, error) {
	n, p, err := msgp.ReadMapHeaderBytes(p)
	switch {
	case err != nil:
		return nil, p, fmt.Errorf("%s: %w", what, err)
	case int64(n) > int64(limit):
		return nil, p, fmt.Errorf("%s: %d entries, limit %d: %w", what, n, limit, msgp.ErrLimitExceeded)
	case int64(n) > int64(len(p)/2):
		return nil, p, fmt.Errorf("%s: %d entries in %d bytes: %w", what, n, len(p), msgp.ErrShortBytes)
	case st.labels+int(n) > MaxBatchLabels:
		return nil, p, fmt.Errorf("%w: %d labels and annotations or more, limit %d", ErrOverLimit, st.labels+int(n), MaxBatchLabels)
	}
	st.labels += int(n)
	m := make(map[string]string, min(n, mapHint))
	for range n {
		var k, v string
		if k, p, err = msgp.ReadStringBytes(p); err != nil {
			return nil, p, fmt.Errorf("%s: %w", what, err)
		}
		if v, p, err = msgp.ReadStringBytes(p); err != nil {
			return nil, p, fmt.Errorf("%s %q: %w", what, k, err)
		}
		m[k] = v
	}
	return m, p, nil
}

// v1 is a's version 1 encoding, without the annotations.
func (a *Alert) v1() alertV1 {
	return alertV1{Rule: a.Rule, Fingerprint: a.Fingerprint, State: a.State, Severity: a.Severity, Value: a.Value,
		Labels: a.Labels, Message: a.Message, StartedAt: a.StartedAt, ChangedAt: a.ChangedAt, Seq: a.Seq}
}

// readHeader decodes the fields between the version and the series
// (version 1) or the body (version 2), which both versions share.
func (bt *Batch) readHeader(p []byte) (_ []byte, err error) {
	var kind uint8
	if kind, p, err = msgp.ReadUint8Bytes(p); err != nil {
		return p, fmt.Errorf("kind: %w", err)
	}
	bt.Kind = Kind(kind)
	if bt.Flags, p, err = msgp.ReadUint8Bytes(p); err != nil {
		return p, fmt.Errorf("flags: %w", err)
	}
	if bt.Gateway, p, err = msgp.ReadStringBytes(p); err != nil {
		return p, fmt.Errorf("gateway: %w", err)
	}
	if bt.Epoch, p, err = msgp.ReadUint64Bytes(p); err != nil {
		return p, fmt.Errorf("epoch: %w", err)
	}
	if bt.Seq, p, err = msgp.ReadUint64Bytes(p); err != nil {
		return p, fmt.Errorf("seq: %w", err)
	}
	if bt.Created, p, err = msgp.ReadInt64Bytes(p); err != nil {
		return p, fmt.Errorf("created: %w", err)
	}
	return p, nil
}

// unmarshalV2 decodes a version 2 batch after its version field.
func (bt *Batch) unmarshalV2(p []byte, st *decodeState) (_ []byte, err error) {
	if p, err = bt.readHeader(p); err != nil {
		return p, err
	}
	if bt.Flags&FlagZstd == 0 {
		return bt.readBody(p, st)
	}
	bt.Flags &^= FlagZstd
	z, rest, err := msgp.ReadBytesZC(p)
	if err != nil {
		return p, fmt.Errorf("body: %w", err)
	}
	body, release, err := st.d.decompress(st.ctx, z)
	if err != nil {
		return p, err
	}
	defer release() // nothing in bt refers to body
	tail, err := bt.readBody(body, st)
	if err != nil {
		return p, err
	}
	if len(tail) != 0 {
		return p, fmt.Errorf("body: %d trailing bytes in the zstd frame", len(tail))
	}
	return rest, nil
}

// The fewest bytes an encoded element takes: an array header and a byte
// per field. A list of n elements needs n times that many bytes left,
// which readLen checks before anything is allocated for them.
const (
	minSeriesBytes   = 1 + seriesFields
	minSeriesV1Bytes = 1 + seriesV1Fields
	minAlertBytes    = 1 + alertFields
	minAlertV1Bytes  = 1 + alertFields - 1
	minLossBytes     = 1 + lossFields
)

// readBody decodes [series, alerts, losses].
func (bt *Batch) readBody(p []byte, st *decodeState) (_ []byte, err error) {
	n, p, err := msgp.ReadArrayHeaderBytes(p)
	if err != nil {
		return p, fmt.Errorf("body: %w", err)
	}
	if n != bodyFields {
		return p, fmt.Errorf("body: %w", msgp.ArrayError{Wanted: bodyFields, Got: n})
	}
	if n, p, err = readLen(p, st.d.lim.series, minSeriesBytes, "series"); err != nil {
		return p, err
	}
	if n > 0 {
		bt.Series = make([]Series, n)
	}
	for i := range bt.Series {
		if p, err = readSeries(p, &bt.Series[i], st); err != nil {
			return p, fmt.Errorf("series %d: %w", i, err)
		}
	}
	if n, p, err = readLen(p, st.d.lim.alerts, minAlertBytes, "alerts"); err != nil {
		return p, err
	}
	if n > 0 {
		bt.Alerts = make([]Alert, n)
	}
	for i := range bt.Alerts {
		if p, err = readAlert(p, &bt.Alerts[i], alertFields, st); err != nil {
			return p, fmt.Errorf("alert %d: %w", i, err)
		}
	}
	return bt.readLosses(p)
}

// readLosses decodes the list of loss records, the last field of both
// versions.
func (bt *Batch) readLosses(p []byte) (_ []byte, err error) {
	n, p, err := readLen(p, MaxBatchLosses, minLossBytes, "losses")
	if err != nil {
		return p, err
	}
	if n > 0 {
		bt.Losses = make([]Loss, n)
	}
	for i := range bt.Losses {
		if p, err = bt.Losses[i].UnmarshalMsg(p); err != nil {
			return p, fmt.Errorf("loss %d: %w", i, err)
		}
	}
	return p, nil
}

// readLen reads an array header of at most limit elements, each of which
// takes size bytes at least: a short input cannot make the caller
// allocate. A count over limit wraps ErrOverLimit.
func readLen(p []byte, limit, size int, what string) (uint32, []byte, error) {
	n, p, err := msgp.ReadArrayHeaderBytes(p)
	switch {
	case err != nil:
		return 0, p, fmt.Errorf("%s: %w", what, err)
	case int64(n) > int64(limit):
		return 0, p, fmt.Errorf("%w: %d %s, limit %d", ErrOverLimit, n, what, limit)
	case int64(n) > int64(len(p)/size):
		return 0, p, fmt.Errorf("%s: %d elements in %d bytes: %w", what, n, len(p), msgp.ErrShortBytes)
	}
	return n, p, nil
}

// readReadings reads the array header of a series' timestamps, checking
// the count against the batch's readings limit and the bytes left.
func readReadings(p []byte, st *decodeState) (uint32, []byte, error) {
	n, q, err := readLen(p, MaxBatchReadings, 1, "ts")
	if err != nil {
		return 0, p, err
	}
	if limit := st.d.lim.readings; st.readings+int(n) > limit {
		return 0, p, fmt.Errorf("%w: %d readings or more, limit %d", ErrOverLimit, st.readings+int(n), limit)
	}
	st.readings += int(n)
	return n, q, nil
}

// readSeries decodes one version 2 series.
func readSeries(p []byte, s *Series, st *decodeState) (_ []byte, err error) {
	n, p, err := msgp.ReadArrayHeaderBytes(p)
	if err != nil {
		return p, err
	}
	if n != seriesFields {
		return p, msgp.ArrayError{Wanted: seriesFields, Got: n}
	}
	if s.Sensor, p, err = msgp.ReadStringBytes(p); err != nil {
		return p, fmt.Errorf("sensor: %w", err)
	}
	if s.Metric, p, err = msgp.ReadStringBytes(p); err != nil {
		return p, fmt.Errorf("metric: %w", err)
	}
	if s.Unit, p, err = msgp.ReadStringBytes(p); err != nil {
		return p, fmt.Errorf("unit: %w", err)
	}
	if p, err = s.readTS(p, st); err != nil {
		return p, err
	}
	if p, err = s.readValues(p); err != nil {
		return p, err
	}
	if s.Quality, p, err = msgp.ReadBytesBytes(p, nil); err != nil {
		return p, fmt.Errorf("quality: %w", err)
	}
	if len(s.Quality) == 0 {
		s.Quality = nil
	}
	return p, nil
}

func (s *Series) readTS(p []byte, st *decodeState) (_ []byte, err error) {
	k, p, err := msgp.ReadInt64Bytes(p)
	if err != nil {
		return p, fmt.Errorf("ts_exp: %w", err)
	}
	deltas := k >= tsDeltaMode
	if deltas {
		k -= tsDeltaMode
	}
	if k < 0 || k > maxTSExp {
		return p, fmt.Errorf("ts_exp %d out of range", k)
	}
	unit := pow10i[k]
	n, p, err := readReadings(p, st)
	if err != nil {
		return p, err
	}
	s.TS = make([]int64, n)
	var abs, d int64 // absolute time in ns; delta in units
	for i := range s.TS {
		var x int64
		if x, p, err = msgp.ReadInt64Bytes(p); err != nil {
			return p, fmt.Errorf("ts %d: %w", i, err)
		}
		ok := true
		switch {
		case i == 0:
			abs, ok = mul64(x, unit)
			s.TS[0] = abs
			if !ok {
				return p, errTSOverflow
			}
			continue
		case i == 1 || deltas:
			d = x
		default:
			d, ok = add64(d, x)
		}
		dn, ok2 := mul64(d, unit)
		var ok3 bool
		abs, ok3 = add64(abs, dn)
		if !ok || !ok2 || !ok3 {
			return p, errTSOverflow
		}
		s.TS[i] = dn
	}
	return p, nil
}

func (s *Series) readValues(p []byte) (_ []byte, err error) {
	e, p, err := msgp.ReadInt64Bytes(p)
	if err != nil {
		return p, fmt.Errorf("value_exp: %w", err)
	}
	if e != decimal.Raw && (e < decimal.MinExp || e > decimal.MaxExp) {
		return p, fmt.Errorf("value_exp %d out of range", e)
	}
	n, p, err := readLen(p, MaxBatchReadings, 1, "values")
	if err != nil {
		return p, err
	}
	if int64(n) != int64(len(s.TS)) {
		return p, fmt.Errorf("%d values for %d timestamps", n, len(s.TS))
	}
	s.Values = make([]float64, n)
	if e == decimal.Raw {
		for i := range s.Values {
			if s.Values[i], p, err = msgp.ReadFloat64Bytes(p); err != nil {
				return p, fmt.Errorf("value %d: %w", i, err)
			}
		}
		return p, nil
	}
	var acc int64
	for i := range s.Values {
		var x int64
		if x, p, err = msgp.ReadInt64Bytes(p); err != nil {
			return p, fmt.Errorf("value %d: %w", i, err)
		}
		// Bounding x first keeps the sum from overflowing.
		if x <= -2*decimal.MaxScaled || x >= 2*decimal.MaxScaled {
			return p, fmt.Errorf("value %d: scaled integer out of range", i)
		}
		if i == 0 {
			acc = x
		} else {
			acc += x
		}
		if acc <= -decimal.MaxScaled || acc >= decimal.MaxScaled {
			return p, fmt.Errorf("value %d: scaled integer out of range", i)
		}
		s.Values[i] = decimal.Unscale(acc, int(e))
	}
	return p, nil
}

// appendSeries appends the version 2 encoding of readings lo to hi of s,
// t0 being the absolute timestamp of reading lo. The caller has checked s
// (checkSeries).
func appendSeries(dst []byte, s *Series, lo, hi int, t0 int64) []byte {
	dst = msgp.AppendArrayHeader(dst, seriesFields)
	dst = msgp.AppendString(dst, s.Sensor)
	dst = msgp.AppendString(dst, s.Metric)
	dst = msgp.AppendString(dst, s.Unit)
	dst = appendTS(dst, s.TS[lo:hi], t0)
	dst = appendValues(dst, s.Values[lo:hi])
	var q []byte
	if len(s.Quality) > 0 {
		q = s.Quality[lo:hi]
		if allZero(q) {
			q = nil
		}
	}
	return msgp.AppendBytes(dst, q)
}

// appendTS appends ts_exp and the ts array of a delta-encoded column
// whose first timestamp is t0 (ts[0] is ignored).
func appendTS(dst []byte, ts []int64, t0 int64) []byte {
	k := maxTSExp
	abs := t0
	for i := 0; i < len(ts) && k > 0; i++ {
		if i > 0 {
			abs += ts[i] // checkSeries proved the sums fit
		}
		for k > 0 && abs%pow10i[k] != 0 {
			k--
		}
	}
	unit := pow10i[k]
	mark := len(dst)
	dst = msgp.AppendInt64(dst, int64(k))
	dst = msgp.AppendArrayHeader(dst, uint32(len(ts)))
	var prev int64
	for i := range ts {
		switch i {
		case 0:
			dst = msgp.AppendInt64(dst, t0/unit)
		case 1:
			prev = ts[1] / unit
			dst = msgp.AppendInt64(dst, prev)
		default:
			d := ts[i] / unit
			dd, ok := sub64(d, prev)
			if !ok {
				return appendTSDeltas(dst[:mark], ts, t0, k)
			}
			dst = msgp.AppendInt64(dst, dd)
			prev = d
		}
	}
	return dst
}

func appendTSDeltas(dst []byte, ts []int64, t0 int64, k int) []byte {
	unit := pow10i[k]
	dst = msgp.AppendInt64(dst, int64(tsDeltaMode+k))
	dst = msgp.AppendArrayHeader(dst, uint32(len(ts)))
	dst = msgp.AppendInt64(dst, t0/unit)
	for _, d := range ts[1:] {
		dst = msgp.AppendInt64(dst, d/unit)
	}
	return dst
}

// appendValues appends value_exp and the values array. Raw values are
// float32 where that is exact, else float64.
func appendValues(dst []byte, vs []float64) []byte {
	e := decimal.Exp(vs)
	dst = msgp.AppendInt64(dst, int64(e))
	dst = msgp.AppendArrayHeader(dst, uint32(len(vs)))
	if e == decimal.Raw {
		for _, v := range vs {
			if f := float32(v); math.Float64bits(float64(f)) == math.Float64bits(v) {
				dst = msgp.AppendFloat32(dst, f)
			} else {
				dst = msgp.AppendFloat64(dst, v)
			}
		}
		return dst
	}
	var prev int64
	for _, v := range vs {
		n, _ := decimal.Scale(v, e)
		dst = msgp.AppendInt64(dst, n-prev)
		prev = n
	}
	return dst
}

// checkSeries checks what the encoder relies on: matching column lengths
// and timestamps that stay in int64.
func checkSeries(s *Series) error {
	if len(s.Values) == 0 {
		return errors.New("no values")
	}
	if len(s.TS) != len(s.Values) {
		return fmt.Errorf("%d timestamps for %d values", len(s.TS), len(s.Values))
	}
	if len(s.Quality) != 0 && len(s.Quality) != len(s.Values) {
		return fmt.Errorf("%d quality bytes for %d values", len(s.Quality), len(s.Values))
	}
	abs := s.TS[0]
	for _, d := range s.TS[1:] {
		var ok bool
		if abs, ok = add64(abs, d); !ok {
			return errTSOverflow
		}
	}
	return nil
}

// SetHistorical returns a copy of an encoded batch (version 1 or 2) with
// FlagHistorical set. Both versions start with a fixarray header and
// version, kind and flags as positive fixints, so the flags are the byte
// at offset 3. Anything else comes back as an unchanged copy.
func SetHistorical(p []byte) []byte {
	q := append([]byte(nil), p...)
	if len(q) > 3 && (q[0] == 0x9a && q[1] == 1 || q[0] == 0x98 && q[1] == 2) && q[3] < 0x80 {
		q[3] |= FlagHistorical
	}
	return q
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func add64(a, b int64) (int64, bool) {
	c := a + b
	return c, (c > a) == (b > 0)
}

func sub64(a, b int64) (int64, bool) {
	c := a - b
	return c, (c < a) == (b > 0)
}

func mul64(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	c := a * b
	return c, c/b == a && !(a == -1 && b == math.MinInt64) && !(b == -1 && a == math.MinInt64)
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}
