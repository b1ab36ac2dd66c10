package outpost

import (
	"context"
	"fmt"
	"iter"
	"math"

	"github.com/tinylib/msgp/msgp"
)

// Limits on what a valid batch may hold. They bound the work and memory a
// hostile payload can cost a decoder.
const (
	MaxIDLen         = 128     // gateway, sensor, metric, rule ids
	MaxBatchReadings = 1 << 20 // readings in one batch
	MaxBatchSeries   = 1 << 16
	MaxBatchAlerts   = 1 << 12
	MaxBatchLosses   = 1 << 16
	maxUnitLen       = 32

	// MaxAlertTextLen caps an alert's message and each of its annotation
	// values, in bytes.
	MaxAlertTextLen = 4096
	// MaxAlertAnnotations caps the annotations of one alert; the msgp
	// tag of Alert.Annotations holds the same number for the decoder.
	MaxAlertAnnotations = 64
	// MaxBatchLabels caps the labels and annotations of all the alerts
	// of one batch together (an average of 32 per alert at
	// MaxBatchAlerts), so that no batch decodes to more than a few tens
	// of MiB of maps.
	MaxBatchLabels = 1 << 17
)

// BatchBuilder gathers readings into the columnar series of one batch.
// It is not safe for concurrent use; the batcher owns one.
type BatchBuilder struct {
	series []Series
	last   []int64 // absolute timestamp of each series' newest reading
	index  map[SeriesKey]int
	hint   int // index of the series the previous reading went to
	n      int
	// sizes are the readings of each series in the batch taken last: a
	// series' columns in the next are allocated at that size, once,
	// rather than grown from nothing by doubling.
	sizes map[SeriesKey]int
}

// maxSized is the most series whose sizes a builder remembers.
const maxSized = 4096

// NewBatchBuilder returns an empty builder.
func NewBatchBuilder() *BatchBuilder {
	return &BatchBuilder{index: make(map[SeriesKey]int), sizes: make(map[SeriesKey]int), hint: -1}
}

// Add appends readings. It copies what it needs; rs may be shared.
func (b *BatchBuilder) Add(rs []Reading) {
	for i := range rs {
		r := &rs[i]
		si := b.seriesIndex(r)
		s := &b.series[si]
		if len(s.TS) == 0 {
			s.TS = append(s.TS, r.TS)
		} else {
			s.TS = append(s.TS, r.TS-b.last[si])
		}
		b.last[si] = r.TS
		if r.Quality != QualityGood && s.Quality == nil {
			// First non-good reading: materialise the quality column,
			// all good so far. nil means "all good" until then.
			s.Quality = make([]byte, len(s.Values), cap(s.Values))
		}
		s.Values = append(s.Values, r.Value)
		if s.Quality != nil {
			s.Quality = append(s.Quality, byte(r.Quality))
		}
	}
	b.n += len(rs)
}

func (b *BatchBuilder) seriesIndex(r *Reading) int {
	if h := b.hint; h >= 0 && b.series[h].Sensor == r.Sensor && b.series[h].Metric == r.Metric {
		return h
	}
	k := SeriesKey{Sensor: r.Sensor, Metric: r.Metric}
	si, ok := b.index[k]
	if !ok {
		si = len(b.series)
		s := Series{Sensor: r.Sensor, Metric: r.Metric, Unit: r.Unit}
		if n := b.sizes[k]; n > 0 {
			s.TS, s.Values = make([]int64, 0, n), make([]float64, 0, n)
		}
		b.series = append(b.series, s)
		b.last = append(b.last, 0)
		b.index[k] = si
	}
	b.hint = si
	return si
}

// Len is the number of readings added since the last Take.
func (b *BatchBuilder) Len() int { return b.n }

// Snapshot returns a telemetry batch of what was gathered since the last
// Take, without emptying the builder. Its series share the builder's
// memory: encode it before the next Add or Take, and do not change it.
func (b *BatchBuilder) Snapshot(gateway string, created int64) *Batch {
	return &Batch{Version: WireVersion, Kind: KindTelemetry, Gateway: gateway, Created: created, Series: b.series}
}

// Take moves the gathered series into a new telemetry batch and empties the
// builder. The caller fills in Epoch and Seq (the outbox does).
func (b *BatchBuilder) Take(gateway string, created int64) *Batch {
	bt := &Batch{
		Version: WireVersion,
		Kind:    KindTelemetry,
		Gateway: gateway,
		Created: created,
		Series:  b.series,
	}
	clear(b.sizes)
	if len(bt.Series) <= maxSized {
		for i := range bt.Series {
			s := &bt.Series[i]
			b.sizes[SeriesKey{Sensor: s.Sensor, Metric: s.Metric}] = len(s.Values)
		}
	}
	b.series = make([]Series, 0, len(bt.Series))
	b.last = b.last[:0]
	clear(b.index)
	b.hint = -1
	b.n = 0
	return bt
}

// Len is the number of readings, alerts or loss records in the batch,
// by its kind.
func (bt *Batch) Len() int {
	switch bt.Kind {
	case KindAlert:
		return len(bt.Alerts)
	case KindLoss:
		return len(bt.Losses)
	}
	n := 0
	for i := range bt.Series {
		n += len(bt.Series[i].Values)
	}
	return n
}

// Times yields each reading's index and absolute time (unix ns): TS
// holds the first time, then the difference of each from the one
// before.
func (s *Series) Times() iter.Seq2[int, int64] {
	return func(yield func(int, int64) bool) {
		var ts int64
		for j := range s.Values {
			if j == 0 {
				ts = s.TS[0]
			} else {
				ts += s.TS[j]
			}
			if !yield(j, ts) {
				return
			}
		}
	}
}

// AppendReadings expands the batch's series into readings appended to dst.
func (bt *Batch) AppendReadings(dst []Reading) []Reading {
	for i := range bt.Series {
		s := &bt.Series[i]
		for j, ts := range s.Times() {
			v := s.Values[j]
			q := QualityGood
			if len(s.Quality) > 0 {
				q = Quality(s.Quality[j])
			}
			dst = append(dst, Reading{Sensor: s.Sensor, Metric: s.Metric, Unit: s.Unit, TS: ts, Value: v, Quality: q})
		}
	}
	return dst
}

// DecodeBatch decodes and validates one encoded batch, wire version 1 or
// 2, compressed or not. Every failure wraps ErrInvalidBatch or
// ErrUnsupportedVersion, and one over a wire limit ErrOverLimit too; it
// never panics on any input, and checks every length against the limits
// and the bytes left before it allocates. Decompressions share one
// budget of DefaultDecompressBudget bytes across the process; use a
// Decoder for other limits or a budget of one's own. The batch's Version
// is the one on the wire; FlagZstd is cleared.
func DecodeBatch(p []byte) (*Batch, error) {
	return defaultDecoder.DecodeBatch(context.Background(), p)
}

// Validate checks the batch against the wire contract: a version this
// build reads (1 or 2) and no flags but FlagHistorical, besides the ids,
// lengths and limits.
func (bt *Batch) Validate() error {
	if bt.Version != 1 && bt.Version != WireVersion {
		return fmt.Errorf("%w: %d", ErrUnsupportedVersion, bt.Version)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidBatch}, args...)...)
	}
	if bt.Flags&^FlagHistorical != 0 {
		return bad("unknown flags %#x", bt.Flags)
	}
	if err := checkID("gateway", bt.Gateway); err != nil {
		return bad("%v", err)
	}
	if bt.Epoch == 0 || bt.Seq == 0 {
		return bad("epoch and seq must be non-zero")
	}
	switch bt.Kind {
	case KindTelemetry:
		if len(bt.Alerts) != 0 {
			return bad("telemetry batch carries alerts")
		}
		if len(bt.Series) > MaxBatchSeries {
			return bad("%d series, limit %d", len(bt.Series), MaxBatchSeries)
		}
		n := 0
		for i := range bt.Series {
			s := &bt.Series[i]
			if err := s.validate(); err != nil {
				return bad("series %d: %v", i, err)
			}
			n += len(s.Values)
		}
		if n > MaxBatchReadings {
			return bad("%d readings, limit %d", n, MaxBatchReadings)
		}
	case KindAlert:
		if len(bt.Series) != 0 {
			return bad("alert batch carries series")
		}
		if len(bt.Alerts) > MaxBatchAlerts {
			return bad("%d alerts, limit %d", len(bt.Alerts), MaxBatchAlerts)
		}
		labels := 0
		for i := range bt.Alerts {
			a := &bt.Alerts[i]
			if err := a.validate(); err != nil {
				return bad("alert %d: %v", i, err)
			}
			labels += len(a.Labels) + len(a.Annotations)
		}
		if labels > MaxBatchLabels {
			return bad("%d labels and annotations, limit %d", labels, MaxBatchLabels)
		}
	case KindLoss:
		if len(bt.Series) != 0 || len(bt.Alerts) != 0 {
			return bad("loss batch carries series or alerts")
		}
		if len(bt.Losses) == 0 || len(bt.Losses) > MaxBatchLosses {
			return bad("%d loss records, want 1 to %d", len(bt.Losses), MaxBatchLosses)
		}
		for i := range bt.Losses {
			if err := bt.Losses[i].validate(); err != nil {
				return bad("loss %d: %v", i, err)
			}
		}
	default:
		return bad("unknown kind %d", bt.Kind)
	}
	if bt.Kind != KindLoss && len(bt.Losses) != 0 {
		return bad("%s batch carries loss records", bt.Kind)
	}
	return nil
}

func (l *Loss) validate() error {
	if l.Reason == "" || len(l.Reason) > MaxIDLen {
		return fmt.Errorf("reason must be 1 to %d bytes", MaxIDLen)
	}
	switch l.Kind {
	case KindTelemetry:
		// Both empty means the series is unknown (a corrupt stored batch).
		if l.Sensor != "" || l.Metric != "" {
			if err := checkID("sensor", l.Sensor); err != nil {
				return err
			}
			if err := checkID("metric", l.Metric); err != nil {
				return err
			}
		}
	case KindAlert:
		if len(l.Rule) > MaxIDLen {
			return fmt.Errorf("rule id longer than %d bytes", MaxIDLen)
		}
	default:
		return fmt.Errorf("lost kind %d", l.Kind)
	}
	if l.From > l.To {
		return fmt.Errorf("from after to")
	}
	return nil
}

func (s *Series) validate() error {
	if err := checkID("sensor", s.Sensor); err != nil {
		return err
	}
	if err := checkID("metric", s.Metric); err != nil {
		return err
	}
	if len(s.Unit) > maxUnitLen {
		return fmt.Errorf("unit longer than %d bytes", maxUnitLen)
	}
	if len(s.Values) == 0 {
		return fmt.Errorf("no values")
	}
	if len(s.TS) != len(s.Values) {
		return fmt.Errorf("%d timestamps for %d values", len(s.TS), len(s.Values))
	}
	if len(s.Quality) != 0 && len(s.Quality) != len(s.Values) {
		return fmt.Errorf("%d quality bytes for %d values", len(s.Quality), len(s.Values))
	}
	for _, q := range s.Quality {
		if Quality(q) > QualityBad {
			return fmt.Errorf("quality %d out of range", q)
		}
	}
	// Timestamps must stay in int64 when the deltas are summed.
	ts := s.TS[0]
	for _, d := range s.TS[1:] {
		if (d > 0 && ts > math.MaxInt64-d) || (d < 0 && ts < math.MinInt64-d) {
			return fmt.Errorf("timestamp overflow")
		}
		ts += d
	}
	return nil
}

func (a *Alert) validate() error {
	if err := checkID("rule", a.Rule); err != nil {
		return err
	}
	if a.State > StateNoData {
		return fmt.Errorf("state %d out of range", a.State)
	}
	if len(a.Message) > MaxAlertTextLen || len(a.Fingerprint) > 4*MaxIDLen || len(a.Severity) > MaxIDLen {
		return fmt.Errorf("field too long")
	}
	if len(a.Annotations) > MaxAlertAnnotations {
		return fmt.Errorf("%d annotations, limit %d", len(a.Annotations), MaxAlertAnnotations)
	}
	for k, v := range a.Annotations {
		if len(k) > MaxIDLen {
			return fmt.Errorf("annotation name longer than %d bytes", MaxIDLen)
		}
		if len(v) > MaxAlertTextLen {
			return fmt.Errorf("annotation %q longer than %d bytes", k, MaxAlertTextLen)
		}
	}
	return nil
}

func checkID(what, id string) error {
	if id == "" {
		return fmt.Errorf("empty %s id", what)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%s id longer than %d bytes", what, MaxIDLen)
	}
	return nil
}

// DecodeAck decodes one encoded ack. The seqs' count is checked against
// the bytes left (each takes one at least) before they are allocated;
// DecodeAckLimit also caps it.
func DecodeAck(p []byte) (*Ack, error) {
	return DecodeAckLimit(p, maxAckSeqs)
}

// maxAckSeqs is the msgp limit on arrays (wire.go).
const maxAckSeqs = 1 << 20

// DecodeAckLimit decodes one encoded ack that names at most maxSeqs
// seqs: version 1, or a signed version 2, whose MAC it reads but does
// not check (VerifyAck does; Version says which it was). An ack naming
// more is an error wrapping ErrOverLimit, found from its header before
// anything is allocated for the seqs: a gateway passes the most batches
// it can have in flight, the most seqs an ack for it can name.
func DecodeAckLimit(p []byte, maxSeqs int) (*Ack, error) {
	a, err := decodeAck(p, maxSeqs)
	if err != nil {
		return nil, fmt.Errorf("outpost: decode ack: %w", err)
	}
	return a, nil
}

// decodeAck reads [1, epoch, seqs] or [2, epoch, seqs, mac]. It
// allocates nothing before the seqs' count is checked.
func decodeAck(p []byte, limit int) (*Ack, error) {
	n, p, err := msgp.ReadArrayHeaderBytes(p)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, msgp.ArrayError{Wanted: 3, Got: n}
	}
	version, p, err := msgp.ReadUint8Bytes(p)
	if err != nil {
		return nil, fmt.Errorf("version: %w", err)
	}
	switch {
	case version == AckVersion && n == 3, version == SignedAckVersion && n == 4:
	case version == AckVersion:
		return nil, msgp.ArrayError{Wanted: 3, Got: n}
	case version == SignedAckVersion:
		return nil, msgp.ArrayError{Wanted: 4, Got: n}
	default:
		return nil, fmt.Errorf("%w: ack version %d", ErrUnsupportedVersion, version)
	}
	epoch, p, err := msgp.ReadUint64Bytes(p)
	if err != nil {
		return nil, fmt.Errorf("epoch: %w", err)
	}
	m, p, err := readLen(p, limit, 1, "seqs")
	if err != nil {
		return nil, err
	}
	a := &Ack{Version: version, Epoch: epoch}
	if m > 0 {
		a.Seqs = make([]uint64, m)
	}
	for i := range a.Seqs {
		if a.Seqs[i], p, err = msgp.ReadUint64Bytes(p); err != nil {
			return nil, fmt.Errorf("seq %d: %w", i, err)
		}
	}
	if version == SignedAckVersion {
		var mac []byte
		if mac, p, err = msgp.ReadBytesZC(p); err != nil {
			return nil, fmt.Errorf("mac: %w", err)
		}
		if len(mac) != MACSize {
			return nil, fmt.Errorf("mac of %d bytes, want %d", len(mac), MACSize)
		}
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(p))
	}
	return a, nil
}

// MaxNameLen is the longest name ValidName accepts.
const MaxNameLen = 64

// ValidName reports whether s is a valid gateway id, sensor id, metric
// name or rule name, as the gateway's config and rules files accept
// them: 1 to MaxNameLen bytes of [A-Za-z0-9_.-], and not "." or "..".
// Such names are safe as MQTT topic levels and as file names. The wire
// limits (MaxIDLen) are looser; the ingest service holds batches to
// this rule.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
