package ingest

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/outposthq/outpost"
)

// AlertRow is one stored alert transition: a row of alerts. In JSON the
// times are RFC 3339 with nanoseconds (UTC) next to their unix
// nanoseconds (started_at_ns, ts_ns), seq is a decimal string, and a NaN
// or infinite value is null.
type AlertRow struct {
	Gateway     string
	Rule        string
	Fingerprint string
	State       outpost.AlertState
	Severity    string
	Value       float64
	Labels      map[string]string
	Annotations map[string]string
	Message     string
	StartedAt   int64 // unix ns
	TS          int64 // unix ns of the transition
	Seq         uint64
}

// AlertQuery selects alert transitions with From <= TS < To, of one
// gateway, rule and state when those are set, ordered by TS (then
// gateway and seq), at most Limit (> 0) of them.
type AlertQuery struct {
	Gateway, Rule string
	State         string // an outpost.AlertState name; "" any
	From, To      int64
	Limit         int
}

// ActiveAlertQuery selects the active alert instances. An instance is
// a gateway's alert of one fingerprint (a rule and its group labels);
// its newest stored transition, by ts and then seq, is its state, and
// it is active while that state is pending, firing or nodata. Of one
// gateway if Gateway is set, ordered by gateway, then started_at, then
// fingerprint, at most Limit (> 0) of them.
//
// seq orders transitions stored with the same ts as the database
// compares the int64 bits it keeps (see package ingest, "Tables").
type ActiveAlertQuery struct {
	Gateway string
	Limit   int
}

// ActiveState reports whether an instance whose newest transition is
// st is active: pending, firing or nodata.
func ActiveState(st outpost.AlertState) bool {
	return st == outpost.StatePending || st == outpost.StateFiring || st == outpost.StateNoData
}

type alertJSON struct {
	Gateway     string            `json:"gateway"`
	Rule        string            `json:"rule"`
	Fingerprint string            `json:"fingerprint"`
	State       string            `json:"state"`
	Severity    string            `json:"severity"`
	Value       *float64          `json:"value"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Message     string            `json:"message"`
	StartedAt   string            `json:"started_at"`
	StartedAtNS int64             `json:"started_at_ns"`
	TS          string            `json:"ts"`
	TSNS        int64             `json:"ts_ns"`
	Seq         string            `json:"seq"`
}

// MarshalJSON implements json.Marshaler.
func (a AlertRow) MarshalJSON() ([]byte, error) {
	j := alertJSON{
		Gateway: a.Gateway, Rule: a.Rule, Fingerprint: a.Fingerprint, State: a.State.String(), Severity: a.Severity,
		Labels: nonNil(a.Labels), Annotations: nonNil(a.Annotations), Message: a.Message,
		StartedAt: formatNS(a.StartedAt), StartedAtNS: a.StartedAt, TS: formatNS(a.TS), TSNS: a.TS,
		Seq: strconv.FormatUint(a.Seq, 10),
	}
	if !math.IsNaN(a.Value) && !math.IsInf(a.Value, 0) {
		v := a.Value
		j.Value = &v
	}
	return json.Marshal(j)
}

// UnmarshalJSON implements json.Unmarshaler; a null value reads as NaN.
func (a *AlertRow) UnmarshalJSON(b []byte) error {
	var j alertJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	st, ok := ParseAlertState(j.State)
	if !ok {
		return fmt.Errorf("ingest: alert state %q", j.State)
	}
	seq, err := strconv.ParseUint(j.Seq, 10, 64)
	if err != nil {
		return fmt.Errorf("ingest: alert seq: %w", err)
	}
	*a = AlertRow{Gateway: j.Gateway, Rule: j.Rule, Fingerprint: j.Fingerprint, State: st, Severity: j.Severity,
		Value: math.NaN(), Labels: j.Labels, Annotations: j.Annotations, Message: j.Message,
		StartedAt: j.StartedAtNS, TS: j.TSNS, Seq: seq}
	if j.Value != nil {
		a.Value = *j.Value
	}
	return nil
}

// ParseAlertState reads an alert state's name.
func ParseAlertState(s string) (outpost.AlertState, bool) {
	for st := outpost.AlertState(0); st <= outpost.StateNoData; st++ {
		if st.String() == s {
			return st, true
		}
	}
	return 0, false
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
