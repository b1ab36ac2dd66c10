package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

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
const maxStatusPayload = 64 << 10

// rejectError is a message that can never be stored. It is dead-lettered
// with its reason and acked, never retried.
type rejectError struct{ reason string }

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

// parseBatch is everything the worker does to a batch message before the
// store: size check, decode and validate, topic/payload gateway check, and
// the text checks a database needs (valid UTF-8, no NUL). Any error is a
// *rejectError. The returned batch aliases nothing in payload.
func parseBatch(prefix, topic string, payload []byte, maxPayload int) (*outpost.Batch, error) {
	gateway, kind, ok := splitTopic(prefix, topic)
	if !ok || kind != topicBatch {
		return nil, reject("unexpected topic %q", topic)
	}
	if len(payload) > maxPayload {
		return nil, reject("payload of %d bytes exceeds the limit of %d", len(payload), maxPayload)
	}
	b, err := outpost.DecodeBatch(payload)
	if err != nil {
		if errors.Is(err, outpost.ErrUnsupportedVersion) {
			return nil, reject("unsupported version: %v", err)
		}
		return nil, reject("invalid batch: %v", err)
	}
	if b.Gateway != gateway {
		return nil, reject("gateway mismatch: topic names %q, payload %q", gateway, b.Gateway)
	}
	if err := checkBatchText(b); err != nil {
		return nil, reject("invalid batch: %v", err)
	}
	return b, nil
}

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

// status is the part of a gateway status message the service reads.
type status struct {
	State string `json:"state"`
	TS    string `json:"ts"`
}

// parseStatus reads a gateway status message. The time is the message's
// "ts" (RFC 3339) or, when it has none, received. Errors are *rejectError
// or errSkip.
func parseStatus(prefix, topic string, payload []byte, received time.Time) (gateway, state string, at time.Time, err error) {
	gateway, kind, ok := splitTopic(prefix, topic)
	if !ok || kind != topicStatus {
		return "", "", time.Time{}, reject("unexpected topic %q", topic)
	}
	if len(payload) == 0 {
		return "", "", time.Time{}, errSkip
	}
	if len(gateway) > outpost.MaxIDLen {
		return "", "", time.Time{}, reject("gateway id longer than %d bytes", outpost.MaxIDLen)
	}
	if len(payload) > maxStatusPayload {
		return "", "", time.Time{}, reject("status payload of %d bytes exceeds the limit of %d", len(payload), maxStatusPayload)
	}
	if !utf8.Valid(payload) {
		return "", "", time.Time{}, reject("status payload is not valid UTF-8")
	}
	var st status
	if err := json.Unmarshal(payload, &st); err != nil {
		return "", "", time.Time{}, reject("status is not a JSON object: %v", err)
	}
	if st.State == "" {
		return "", "", time.Time{}, reject("status has no state")
	}
	if len(st.State) > outpost.MaxIDLen {
		return "", "", time.Time{}, reject("status state longer than %d bytes", outpost.MaxIDLen)
	}
	if err := checkText("status state", st.State); err != nil {
		return "", "", time.Time{}, reject("%v", err)
	}
	// Status is informational: a missing, unreadable or absurd ts falls
	// back to the receive time rather than losing the update.
	at = received
	if t, err := time.Parse(time.RFC3339Nano, st.TS); err == nil && t.Year() > 1970 && t.Year() < 2262 {
		at = t
	}
	return gateway, st.State, at, nil
}

// deadLetterReason makes a reason safe to store as text.
func deadLetterReason(reason string) string {
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	return strings.ReplaceAll(reason, "\x00", "\\x00")
}
