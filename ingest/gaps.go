package ingest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/outposthq/outpost"
)

// Gap is one stored loss record: data a gateway dropped before it could be
// delivered (see outpost.Loss), and the loss batch that reported it.
//
// In JSON the keys are the gaps column names; times are RFC 3339 with
// nanoseconds (UTC), from_ts and to_ts null when unknown (0); kind is
// "telemetry" or "alert"; epoch and lost_epoch are decimal strings (random
// 64-bit values, beyond what a JSON number keeps exactly in JavaScript).
type Gap struct {
	Gateway string
	Epoch   uint64 // the loss batch's epoch
	Seq     uint64 // the loss batch's seq
	Index   int    // the record's index in the loss batch

	Reason    string       // outpost.LossMaxBytes, … as the gateway sent it
	Kind      outpost.Kind // what was lost: KindTelemetry (readings) or KindAlert
	Sensor    string       // telemetry: the series; empty for alerts
	Metric    string       //
	Rule      string       // alerts: the rule
	From, To  int64        // unix ns of the first and last lost reading or alert; 0 unknown
	Count     uint64       // readings or alerts lost; 0 unknown
	LostEpoch uint64       // epoch of the dropped batches
	FirstSeq  uint64       // seq range of the dropped batches
	LastSeq   uint64       //
	DroppedAt int64        // unix ns when the gateway dropped them
	// ReceivedAt is unix ns when the loss batch was committed.
	ReceivedAt int64
}

// GapQuery selects one gateway's gaps, optionally of one sensor and/or
// metric ("" matches any), that overlap the window [From, To): a gap
// covers [from_ts, to_ts] (both ends included), so it is selected when
// from_ts < To and to_ts >= From. At most Limit (> 0) are returned.
type GapQuery struct {
	Gateway        string
	Sensor, Metric string
	From, To       int64
	Limit          int
}

type gapJSON struct {
	Gateway    string  `json:"gateway"`
	Epoch      string  `json:"epoch"`
	Seq        uint64  `json:"seq"`
	Index      int     `json:"idx"`
	Reason     string  `json:"reason"`
	Kind       string  `json:"kind"`
	Sensor     string  `json:"sensor"`
	Metric     string  `json:"metric"`
	Rule       string  `json:"rule"`
	From       *string `json:"from_ts"`
	To         *string `json:"to_ts"`
	Count      uint64  `json:"count"`
	LostEpoch  string  `json:"lost_epoch"`
	FirstSeq   uint64  `json:"first_seq"`
	LastSeq    uint64  `json:"last_seq"`
	DroppedAt  string  `json:"dropped_at"`
	ReceivedAt string  `json:"received_at"`
}

func formatNS(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

// MarshalJSON implements json.Marshaler.
func (g Gap) MarshalJSON() ([]byte, error) {
	opt := func(ns int64) *string {
		if ns == 0 {
			return nil
		}
		s := formatNS(ns)
		return &s
	}
	return json.Marshal(gapJSON{
		Gateway:    g.Gateway,
		Epoch:      strconv.FormatUint(g.Epoch, 10),
		Seq:        g.Seq,
		Index:      g.Index,
		Reason:     g.Reason,
		Kind:       g.Kind.String(),
		Sensor:     g.Sensor,
		Metric:     g.Metric,
		Rule:       g.Rule,
		From:       opt(g.From),
		To:         opt(g.To),
		Count:      g.Count,
		LostEpoch:  strconv.FormatUint(g.LostEpoch, 10),
		FirstSeq:   g.FirstSeq,
		LastSeq:    g.LastSeq,
		DroppedAt:  formatNS(g.DroppedAt),
		ReceivedAt: formatNS(g.ReceivedAt),
	})
}

// UnmarshalJSON implements json.Unmarshaler; a null from_ts or to_ts reads
// as 0.
func (g *Gap) UnmarshalJSON(b []byte) error {
	var j gapJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var errs []error
	ns := func(what string, s *string) int64 {
		if s == nil {
			return 0
		}
		t, err := time.Parse(time.RFC3339Nano, *s)
		if err != nil {
			errs = append(errs, fmt.Errorf("ingest: gap %s: %w", what, err))
		}
		return t.UnixNano()
	}
	u64 := func(what, s string) uint64 {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("ingest: gap %s: %w", what, err))
		}
		return v
	}
	kind, ok := parseLostKind(j.Kind)
	if !ok {
		errs = append(errs, fmt.Errorf("ingest: gap kind %q", j.Kind))
	}
	*g = Gap{
		Gateway:    j.Gateway,
		Epoch:      u64("epoch", j.Epoch),
		Seq:        j.Seq,
		Index:      j.Index,
		Reason:     j.Reason,
		Kind:       kind,
		Sensor:     j.Sensor,
		Metric:     j.Metric,
		Rule:       j.Rule,
		From:       ns("from_ts", j.From),
		To:         ns("to_ts", j.To),
		Count:      j.Count,
		LostEpoch:  u64("lost_epoch", j.LostEpoch),
		FirstSeq:   j.FirstSeq,
		LastSeq:    j.LastSeq,
		DroppedAt:  ns("dropped_at", &j.DroppedAt),
		ReceivedAt: ns("received_at", &j.ReceivedAt),
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// parseLostKind is the inverse of Kind.String for what a gap can hold.
func parseLostKind(s string) (outpost.Kind, bool) {
	for _, k := range [...]outpost.Kind{outpost.KindTelemetry, outpost.KindAlert} {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}
