package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
)

// Topic kinds the service consumes: {prefix}/{gateway}/{kind}.
const (
	topicBatch  = "batch"
	topicStatus = "status"
	topicAck    = "ack"
)

// maxStatusPayload bounds a gateway status message; status is a small JSON
// object.
const maxStatusPayload = outpost.MaxStatusBytes

// Defaults for the limits in Options.
const (
	// DefaultMaxReadings is a hundred times what a gateway sends by
	// default (batch.max_readings: 1000).
	DefaultMaxReadings = 100_000
	DefaultMaxSeries   = 10_000
	DefaultMaxAlerts   = outpost.MaxBatchAlerts
	// DefaultDecompressBudget holds two bodies of the largest size.
	DefaultDecompressBudget = outpost.DefaultDecompressBudget
	DefaultMaxFutureSkew    = 10 * time.Minute
)

// rejectError is a message that can never be stored. It is dead-lettered
// with its reason and acked, never retried. A valid batch whose content
// breaks the service's rules for good (names, text, timestamps ahead of
// its clock) is also acked to its gateway (ack), which then deletes it:
// it would send it again for ever. A batch refused for a limit of this
// service, which an operator may raise, is not: the gateway keeps it;
// nor is one whose gateway id no gateway can have.
type rejectError struct {
	reason string
	ack    *outpost.Batch // the batch to ack to its gateway, or nil
	key    *outpost.Key   // the key that verified the batch, to sign the ack with; nil: unsigned
	auth   bool           // refused by message authentication
}

func (e *rejectError) Error() string { return "ingest: rejected: " + e.reason }

func reject(format string, args ...any) error {
	return &rejectError{reason: fmt.Sprintf(format, args...)}
}

// errSkip is a message to ack and otherwise ignore (an empty retained
// status: someone cleared the topic).
var errSkip = errors.New("ingest: nothing to store")

// splitTopic splits {prefix}/{gateway}/{kind}. The gateway is one topic
// level: it is what the subscription's + matched.
func splitTopic(prefix, topic string) (gateway, kind string, ok bool) {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return "", "", false
	}
	gateway, kind, ok = strings.Cut(rest, "/")
	if !ok || gateway == "" || strings.Contains(kind, "/") {
		return "", "", false
	}
	return gateway, kind, true
}

// batchRules are what a worker holds a message to before the store: the
// gateways' keys, the service's limits, its clock, and the decoder whose
// decompression budget the workers share.
type batchRules struct {
	prefix     string
	maxPayload int
	maxSkew    time.Duration // < 0: no check
	dec        *outpost.Decoder
	auth       AuthMode
	keys       *Keys          // nil: none registered
	log        zerolog.Logger // rate-limited: key reloads
}

// newBatchRules returns the rules of o, whose limits are set (setLimits)
// and valid (validateLimits). Its log, of key reloads, is the caller's
// to set.
func newBatchRules(o *Options) *batchRules {
	dec, err := outpost.NewDecoder(&outpost.DecoderOptions{
		MaxSeries: o.MaxSeries, MaxReadings: o.MaxReadings, MaxAlerts: o.MaxAlerts,
		DecompressBudget: o.DecompressBudget,
	})
	if err != nil { // validateLimits fails Start for these options
		dec, _ = outpost.NewDecoder(nil) // nil options cannot fail
	}
	return &batchRules{prefix: o.TopicPrefix, maxPayload: o.MaxPayload, maxSkew: o.MaxFutureSkew, dec: dec,
		auth: o.Auth, keys: o.Keys, log: zerolog.Nop()}
}

// setLimits gives the limits their defaults.
func (o *Options) setLimits() {
	if o.MaxReadings == 0 {
		o.MaxReadings = DefaultMaxReadings
	}
	if o.MaxSeries == 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	if o.MaxAlerts == 0 {
		o.MaxAlerts = DefaultMaxAlerts
	}
	if o.DecompressBudget == 0 {
		o.DecompressBudget = DefaultDecompressBudget
	}
	if o.MaxFutureSkew == 0 {
		o.MaxFutureSkew = DefaultMaxFutureSkew
	}
}

// validateLimits checks the limits after setLimits.
func (o *Options) validateLimits() error {
	for _, l := range []struct {
		name     string
		v, limit int
	}{
		{"MaxReadings", o.MaxReadings, outpost.MaxBatchReadings},
		{"MaxSeries", o.MaxSeries, outpost.MaxBatchSeries},
		{"MaxAlerts", o.MaxAlerts, outpost.MaxBatchAlerts},
	} {
		if l.v < 1 || l.v > l.limit {
			return fmt.Errorf("ingest: %s %d, want 1 to %d (the wire limit)", l.name, l.v, l.limit)
		}
	}
	if o.DecompressBudget < 0 {
		return fmt.Errorf("ingest: DecompressBudget %d is negative", o.DecompressBudget)
	}
	return nil
}

// parseBatch is everything the worker does to a batch message before the
// store: size check, the MAC (authenticate), decode within the limits,
// validate, topic/payload gateway check, names, the text checks a
// database needs (valid UTF-8, no NUL), and timestamps no further ahead
// of now than maxSkew. It returns the batch and the key that verified
// it (nil for a batch taken unchecked), with which its ack is signed.
// Any error is a *rejectError, but for ctx's, when ctx ends while the
// decoder waits for its decompression budget. The returned batch aliases
// nothing in payload.
func (r *batchRules) parseBatch(ctx context.Context, topic string, payload []byte, now time.Time) (*outpost.Batch, *outpost.Key, error) {
	gateway, kind, ok := splitTopic(r.prefix, topic)
	if !ok || kind != topicBatch {
		return nil, nil, reject("unexpected topic %q", topic)
	}
	if len(payload) > r.maxPayload {
		return nil, nil, reject("payload of %d bytes exceeds the limit of %d", len(payload), r.maxPayload)
	}
	payload, key, err := r.authenticate(gateway, payload)
	if err != nil {
		return nil, nil, err
	}
	b, err := r.dec.DecodeBatch(ctx, payload)
	switch {
	case err == nil:
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return nil, nil, err
	case errors.Is(err, outpost.ErrUnsupportedVersion):
		return nil, nil, reject("unsupported version: %v", err)
	case errors.Is(err, outpost.ErrOverLimit):
		return nil, nil, reject("%v", err) // says "over a limit"
	default:
		return nil, nil, reject("invalid batch: %v", err)
	}
	if b.Gateway != gateway {
		return nil, nil, reject("gateway mismatch: topic names %q, payload %q", gateway, b.Gateway)
	}
	if err := r.checkContent(b, now); err != nil {
		refusal := &rejectError{reason: err.Error(), key: key}
		if outpost.ValidName(b.Gateway) { // no ack to an id no gateway can have
			refusal.ack = b
		}
		return nil, nil, refusal
	}
	return b, key, nil
}

// authenticate checks a batch's MAC before anything else reads it, and
// returns the batch inside and the key that verified it. A gateway with
// a registered key must sign with it; one without is refused under
// AuthRequired and taken unchecked (nil key) under AuthOptional, signed
// or not. A refusal is never acked: a forged batch must not make its
// gateway delete a real one, nor take its seq in the store. When the
// gateway has no key, or none verifies, the keys file is read again if
// it changed: a key registered since, or the next key of a rotation.
func (r *batchRules) authenticate(gateway string, payload []byte) ([]byte, *outpost.Key, error) {
	refuse := func(format string, args ...any) ([]byte, *outpost.Key, error) {
		return nil, nil, &rejectError{reason: "auth: " + fmt.Sprintf(format, args...), auth: true}
	}
	signed := outpost.IsSigned(payload)
	keys := r.keys.Lookup(gateway)
	if len(keys) == 0 && r.refreshKeys() {
		keys = r.keys.Lookup(gateway)
	}
	switch {
	case len(keys) > 0 && !signed:
		return refuse("unsigned batch from gateway %q, which has a registered key (%s): its batches must be signed",
			gateway, fingerprints(keys))
	case len(keys) > 0:
		batch, i, err := outpost.VerifyBatch(payload, gateway, keys...)
		if errors.Is(err, outpost.ErrBadMAC) && r.refreshKeys() {
			keys = r.keys.Lookup(gateway)
			batch, i, err = outpost.VerifyBatch(payload, gateway, keys...)
		}
		switch {
		case errors.Is(err, outpost.ErrInvalidBatch):
			return refuse("invalid signed batch: %v", err)
		case err != nil && len(keys) == 0:
			return refuse("gateway %q has no registered key any more", gateway)
		case err != nil:
			return refuse("bad MAC: no registered key of gateway %q (%s) verifies it", gateway, fingerprints(keys))
		}
		return batch, &keys[i], nil
	case r.auth == AuthRequired:
		return refuse("gateway %q has no registered key, and the service requires one (--auth required)", gateway)
	case signed:
		batch, err := outpost.OpenBatch(payload)
		if err != nil {
			return refuse("invalid signed batch: %v", err)
		}
		return batch, nil, nil
	}
	return payload, nil, nil
}

// refreshKeys reloads the keys file if it changed, and reports whether
// it did.
func (r *batchRules) refreshKeys() bool {
	reloaded, err := r.keys.refresh()
	if err != nil {
		r.log.Error().Err(err).Msg("auth keys file changed but cannot be read; the keys loaded before stay")
		return false
	}
	if reloaded {
		gws, n := r.keys.Len()
		r.log.Info().Int("gateways", gws).Int("keys", n).Msg("auth keys file changed: reloaded")
	}
	return reloaded
}

// checkContent checks what the service requires of a valid batch
// besides the wire contract. Its errors are the reasons of refusals.
func (r *batchRules) checkContent(b *outpost.Batch, now time.Time) error {
	if err := checkBatchText(b); err != nil {
		return fmt.Errorf("invalid batch: %w", err)
	}
	if err := checkBatchNames(b); err != nil {
		return fmt.Errorf("invalid name: %w", err)
	}
	if r.maxSkew >= 0 {
		if err := checkBatchTime(b, now.Add(r.maxSkew).UnixNano()); err != nil {
			return fmt.Errorf("from the future: %w (ingest clock %s, max skew %v)",
				err, now.UTC().Format(time.RFC3339), r.maxSkew)
		}
	}
	if err := checkBatchSpan(b); err != nil {
		return fmt.Errorf("too long a span: %w", err)
	}
	return nil
}

// MaxBatchSpan is the longest time the readings of one batch may span,
// from the earliest to the latest, and so the alert transitions. A
// gateway seals a batch within seconds of its readings (weeks later only
// for readings it held while its clock was untrusted, which it re-dates
// together); a batch spread over years would make the store a partition
// for every day it names.
const MaxBatchSpan = 31 * 24 * time.Hour

// checkBatchSpan refuses a batch whose readings, or whose alerts, span
// more than MaxBatchSpan.
func checkBatchSpan(b *outpost.Batch) error {
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for i := range b.Series {
		var ts int64
		for j, d := range b.Series[i].TS {
			if j == 0 {
				ts = d
			} else {
				ts += d // Validate proved the sums fit
			}
			lo, hi = min(lo, ts), max(hi, ts)
		}
	}
	if err := span(lo, hi, "readings"); err != nil {
		return err
	}
	lo, hi = int64(math.MaxInt64), int64(math.MinInt64)
	for i := range b.Alerts {
		lo, hi = min(lo, b.Alerts[i].ChangedAt), max(hi, b.Alerts[i].ChangedAt)
	}
	return span(lo, hi, "alerts")
}

// span refuses [lo, hi] longer than MaxBatchSpan (none when lo > hi).
func span(lo, hi int64, what string) error {
	if lo > hi {
		return nil
	}
	if d := hi - lo; d > int64(MaxBatchSpan) || d < 0 {
		return fmt.Errorf("%s dated from %s to %s, more than %v", what, fmtNanos(lo), fmtNanos(hi), MaxBatchSpan)
	}
	return nil
}

// checkBatchNames holds the gateway id, sensor ids and metric and rule
// names to the rule of the gateway's config (outpost.ValidName): a name
// outside it did not come from a gateway's config, and would be stored
// and served under a name no gateway can have.
func checkBatchNames(b *outpost.Batch) error {
	if !outpost.ValidName(b.Gateway) {
		return badName("gateway id", b.Gateway)
	}
	for i := range b.Series {
		s := &b.Series[i]
		if !outpost.ValidName(s.Sensor) {
			return fmt.Errorf("series %d: %w", i, badName("sensor id", s.Sensor))
		}
		if !outpost.ValidName(s.Metric) {
			return fmt.Errorf("series %d: %w", i, badName("metric name", s.Metric))
		}
	}
	for i := range b.Alerts {
		if r := b.Alerts[i].Rule; !outpost.ValidName(r) {
			return fmt.Errorf("alert %d: %w", i, badName("rule name", r))
		}
	}
	for i := range b.Losses {
		// Empty names are allowed: an unknown series, or alerts of no
		// one rule.
		l := &b.Losses[i]
		for _, f := range [...]struct{ what, v string }{{"sensor id", l.Sensor}, {"metric name", l.Metric}, {"rule name", l.Rule}} {
			if f.v != "" && !outpost.ValidName(f.v) {
				return fmt.Errorf("loss %d: %w", i, badName(f.what, f.v))
			}
		}
	}
	return nil
}

func badName(what, s string) error {
	const most = 80 // the rule allows 64: more is cut in the reason
	if len(s) > most {
		s = s[:most] + "…"
	}
	return fmt.Errorf("%s %q is not 1 to %d of A-Z a-z 0-9 _ . - (nor . or ..)", what, s, outpost.MaxNameLen)
}

// checkBatchTime refuses readings and alerts dated after limit (unix ns):
// one reading from the far future would be the series' latest for good,
// and hide every true one after it.
func checkBatchTime(b *outpost.Batch, limit int64) error {
	for i := range b.Series {
		s := &b.Series[i]
		var ts int64
		for j, d := range s.TS {
			if j == 0 {
				ts = d
			} else {
				ts += d // Validate proved the sums fit
			}
			if ts > limit {
				return fmt.Errorf("series %d (%s/%s): reading %d at %s", i, s.Sensor, s.Metric, j, fmtNanos(ts))
			}
		}
	}
	for i := range b.Alerts {
		a := &b.Alerts[i]
		if a.ChangedAt > limit || a.StartedAt > limit {
			return fmt.Errorf("alert %d (%s): changed at %s, started at %s", i, a.Rule, fmtNanos(a.ChangedAt), fmtNanos(a.StartedAt))
		}
	}
	return nil
}

func fmtNanos(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// checkBatchText rejects text that PostgreSQL would refuse (invalid UTF-8,
// NUL bytes), and loss counts beyond int64, so that such a batch is
// dead-lettered at once, in every store, instead of failing its commit.
func checkBatchText(b *outpost.Batch) error {
	if err := checkText("gateway id", b.Gateway); err != nil {
		return err
	}
	for i := range b.Series {
		s := &b.Series[i]
		for _, f := range [...]struct{ name, v string }{{"sensor", s.Sensor}, {"metric", s.Metric}, {"unit", s.Unit}} {
			if err := checkText(f.name, f.v); err != nil {
				return fmt.Errorf("series %d: %w", i, err)
			}
		}
	}
	for i := range b.Alerts {
		a := &b.Alerts[i]
		for _, f := range [...]struct{ name, v string }{
			{"rule", a.Rule}, {"fingerprint", a.Fingerprint}, {"severity", a.Severity}, {"message", a.Message},
		} {
			if err := checkText(f.name, f.v); err != nil {
				return fmt.Errorf("alert %d: %w", i, err)
			}
		}
		for k, v := range a.Labels {
			if err := checkText("label name", k); err != nil {
				return fmt.Errorf("alert %d: %w", i, err)
			}
			if err := checkText("label value", v); err != nil {
				return fmt.Errorf("alert %d: %w", i, err)
			}
		}
	}
	for i := range b.Losses {
		l := &b.Losses[i]
		for _, f := range [...]struct{ name, v string }{
			{"reason", l.Reason}, {"sensor", l.Sensor}, {"metric", l.Metric}, {"rule", l.Rule},
		} {
			if err := checkText(f.name, f.v); err != nil {
				return fmt.Errorf("loss %d: %w", i, err)
			}
		}
		// gaps.count is a signed bigint that Counts sums: no real
		// count comes near this.
		if l.Count > math.MaxInt64 {
			return fmt.Errorf("loss %d: count %d out of range", i, l.Count)
		}
	}
	return nil
}

func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s contains a NUL byte", what)
	}
	return nil
}

// statusMsg is what the service reads of a gateway status message.
type statusMsg struct {
	gateway, state string
	at             time.Time
	labels         SensorLabels // nil: the status says nothing of them
	// version and startedAt are the gateway binary's version and when
	// its process started; "" and zero when the status does not say
	// (the last will, a gateway of an earlier release).
	version   string
	startedAt time.Time
	// health is the gateway's health as the status says it, checked
	// (outpost.StatusHealth.Check); nil when it says none (the last
	// will, a gateway of an earlier release).
	health *outpost.StatusHealth
}

// parseStatus reads a gateway status message (outpost.Status). The time
// is the message's "ts" (RFC 3339) or, when it has none, received. A
// "ts" more than maxSkew after received (unless maxSkew < 0) is refused:
// stored, it would outrank every later status of the gateway, as the
// store keeps the newest. So are sensors or labels beyond the document's
// bounds (outpost.Status.CheckSensors, and CheckLabels for the
// gateway's own labels), a version or start time it may
// not carry (outpost.Status.CheckProcess: at most 256 bytes of UTF-8
// without NUL; RFC 3339), and a health beyond its bounds
// (outpost.StatusHealth.Check: counts and rate >= 0, times RFC 3339,
// sensors_failing of valid sensor ids and short condition names, each
// list bounded); the payload's size is checked before it is parsed, and
// JSON that does not fit the types (a count that is not an integer) is
// refused with the decoder's error. A status without version, start time
// or health, from a gateway of an earlier release or a last will, is
// accepted as before. Errors are *rejectError or errSkip.
func parseStatus(prefix, topic string, payload []byte, received time.Time, maxSkew time.Duration) (statusMsg, error) {
	gateway, kind, ok := splitTopic(prefix, topic)
	if !ok || kind != topicStatus {
		return statusMsg{}, reject("unexpected topic %q", topic)
	}
	if len(payload) == 0 {
		return statusMsg{}, errSkip
	}
	if !outpost.ValidName(gateway) {
		return statusMsg{}, reject("invalid name: %v", badName("gateway id", gateway))
	}
	if len(payload) > maxStatusPayload {
		return statusMsg{}, reject("status payload of %d bytes exceeds the limit of %d", len(payload), maxStatusPayload)
	}
	if !utf8.Valid(payload) {
		return statusMsg{}, reject("status payload is not valid UTF-8")
	}
	var st outpost.Status
	if err := json.Unmarshal(payload, &st); err != nil {
		return statusMsg{}, reject("status is not a JSON object: %v", err)
	}
	if st.State == "" {
		return statusMsg{}, reject("status has no state")
	}
	if len(st.State) > outpost.MaxIDLen {
		return statusMsg{}, reject("status state longer than %d bytes", outpost.MaxIDLen)
	}
	if err := checkText("status state", st.State); err != nil {
		return statusMsg{}, reject("%v", err)
	}
	if err := st.CheckSensors(); err != nil {
		return statusMsg{}, reject("status sensors: %v", err)
	}
	if err := st.CheckLabels(); err != nil {
		return statusMsg{}, reject("status %v", err)
	}
	if err := st.CheckProcess(); err != nil {
		return statusMsg{}, reject("status %v", err)
	}
	if st.Health != nil {
		if err := st.Health.Check(); err != nil {
			return statusMsg{}, reject("status health: %v", err)
		}
	}
	// Status is informational: an unreadable or absurd ts falls back to
	// the receive time rather than losing the update. One ahead of the
	// clock is refused, the year 9999 as well as 2261. A missing one (a
	// gateway's last will) leaves at zero: newer than the stored status.
	msg := statusMsg{gateway: gateway, state: st.State, at: received, labels: sensorLabels(st.Sensors),
		version: st.Version, health: st.Health}
	if st.StartedAt != "" {
		msg.startedAt, _ = time.Parse(time.RFC3339Nano, st.StartedAt) // checked by CheckProcess
	}
	if st.TS == "" {
		msg.at = time.Time{}
		return msg, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, st.TS); err == nil {
		if maxSkew >= 0 && t.After(received.Add(maxSkew)) {
			return statusMsg{}, reject("from the future: status ts %s (ingest clock %s, max skew %v)",
				st.TS, received.UTC().Format(time.RFC3339), maxSkew)
		}
		if t.Year() > 1970 && t.Year() < 2262 {
			msg.at = t
		}
	}
	return msg, nil
}

// sensorLabels are the labels of a status's sensors: nil when it has no
// sensors field, a sensor without labels left out.
func sensorLabels(sensors map[string]outpost.SensorStatus) SensorLabels {
	if sensors == nil {
		return nil
	}
	out := make(SensorLabels, len(sensors))
	for id, ss := range sensors {
		if len(ss.Labels) > 0 {
			out[id] = ss.Labels
		}
	}
	return out
}

// deadLetterReason makes a reason safe to store as text.
func deadLetterReason(reason string) string {
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	return strings.ReplaceAll(reason, "\x00", "\\x00")
}
