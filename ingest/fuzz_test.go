package ingest

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/outposthq/outpost"
)

const fuzzTopic = "outpost/v1/gw/batch"

// fuzzNow is the service's clock in the fuzz targets: a year after the
// seeds' readings (1e18 ns).
var fuzzNow = time.Unix(0, 1e18).Add(365 * 24 * time.Hour)

// testRules are the rules of a service with default options but the
// payload limit.
func testRules(maxPayload int) *batchRules {
	o := Options{TopicPrefix: "outpost/v1", MaxPayload: maxPayload}
	o.setLimits()
	return newBatchRules(&o)
}

func seedBatches(t testing.TB) [][]byte {
	bb := outpost.NewBatchBuilder()
	bb.Add([]outpost.Reading{
		{Sensor: "s1", Metric: "temperature", Unit: "Cel", TS: 1e18, Value: 21.5},
		{Sensor: "s1", Metric: "temperature", Unit: "Cel", TS: 1e18 + 1e9, Value: 21.6, Quality: outpost.QualityUncertain},
		{Sensor: "s2", Metric: "humidity", Unit: "%RH", TS: 1e18, Value: 40},
	})
	tel := bb.Take("gw", 1e18)
	tel.Epoch, tel.Seq = 7, 1
	al := &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindAlert, Gateway: "gw", Epoch: 7, Seq: 2,
		Alerts: []outpost.Alert{{Rule: "hot", Fingerprint: "hot{}", State: outpost.StateFiring, Labels: map[string]string{"a": "b"}, Seq: 1}}}
	loss := &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindLoss, Gateway: "gw", Epoch: 7, Seq: 3, Created: 1e18,
		Losses: []outpost.Loss{
			{Reason: outpost.LossMaxBytes, Kind: outpost.KindTelemetry, Sensor: "s1", Metric: "temperature",
				From: 1e18, To: 1e18 + 1e9, Count: 2, Epoch: 6, FirstSeq: 1, LastSeq: 4, At: 1e18 + 5e9},
			{Reason: outpost.LossCorrupt, Kind: outpost.KindAlert, Rule: "hot", Epoch: 6, FirstSeq: 5, LastSeq: 5, At: 1e18 + 5e9},
		}}
	var out [][]byte
	for _, b := range []*outpost.Batch{tel, al, loss} {
		p, err := b.MarshalMsg(nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// FuzzHandlePayload runs the worker's path up to the store on arbitrary
// payloads: it must never panic, must reject with a storable reason, and
// must only accept batches that are valid, of the topic's gateway, and
// round-trip through the codec.
func FuzzHandlePayload(f *testing.F) {
	for _, p := range seedBatches(f) {
		f.Add(p)
		f.Add(p[:len(p)/2])
	}
	f.Add([]byte{})
	f.Add([]byte("\x9a\xff"))
	rules := testRules(1 << 20)
	f.Fuzz(func(t *testing.T, payload []byte) {
		b, _, err := rules.parseBatch(context.Background(), fuzzTopic, payload, fuzzNow)
		if err != nil {
			var r *rejectError
			if !errors.As(err, &r) || r.reason == "" {
				t.Fatalf("error %v is not a rejection with a reason", err)
			}
			if reason := deadLetterReason(r.reason); !utf8.ValidString(reason) {
				t.Fatalf("reason %q is not storable", reason)
			}
			// Only a valid batch of the topic's gateway is acked.
			if a := r.ack; a != nil && (a.Gateway != "gw" || a.Validate() != nil) {
				t.Fatalf("would ack %+v, refused for %s", a, r.reason)
			}
			return
		}
		if b.Gateway != "gw" {
			t.Fatalf("accepted a batch of gateway %q on %s", b.Gateway, fuzzTopic)
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("accepted an invalid batch: %v", err)
		}
		if err := checkBatchText(b); err != nil {
			t.Fatalf("accepted bad text: %v", err)
		}
		// The service's rules: limits, names, nothing from the future.
		if len(b.Series) > DefaultMaxSeries || len(b.Alerts) > DefaultMaxAlerts ||
			b.Kind == outpost.KindTelemetry && b.Len() > DefaultMaxReadings {
			t.Fatalf("accepted %d series, %d alerts, %d items, over the limits", len(b.Series), len(b.Alerts), b.Len())
		}
		if err := checkBatchNames(b); err != nil {
			t.Fatalf("accepted a bad name: %v", err)
		}
		limit := fuzzNow.Add(DefaultMaxFutureSkew).UnixNano()
		for _, r := range b.AppendReadings(nil) {
			if r.TS > limit {
				t.Fatalf("accepted a reading at %v, after %v", time.Unix(0, r.TS), time.Unix(0, limit))
			}
		}
		for _, a := range b.Alerts {
			if a.ChangedAt > limit || a.StartedAt > limit {
				t.Fatalf("accepted an alert changed at %v, started at %v", time.Unix(0, a.ChangedAt), time.Unix(0, a.StartedAt))
			}
		}
		if n := len(b.AppendReadings(nil)); b.Kind == outpost.KindTelemetry && n != b.Len() {
			t.Fatalf("%d readings expanded, Len %d", n, b.Len())
		}
		for i := range b.Losses {
			if b.Losses[i].Count > math.MaxInt64 {
				t.Fatalf("accepted loss %d with count %d, beyond the gaps column", i, b.Losses[i].Count)
			}
		}
		again, err := b.MarshalMsg(nil)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		b2, err := outpost.DecodeBatch(again)
		if err != nil {
			t.Fatalf("decode of re-encoded batch: %v", err)
		}
		if !reflect.DeepEqual(normalize(b), normalize(b2)) {
			t.Fatalf("round trip changed the batch:\n%+v\n%+v", b, b2)
		}
	})
}

// normalize maps empty slices and maps to nil: msgp decodes both alike.
func normalize(b *outpost.Batch) *outpost.Batch {
	c := *b
	if len(c.Series) == 0 {
		c.Series = nil
	}
	if len(c.Alerts) == 0 {
		c.Alerts = nil
	}
	if len(c.Losses) == 0 {
		c.Losses = nil
	}
	c.Series = append([]outpost.Series(nil), c.Series...)
	for i := range c.Series {
		s := &c.Series[i]
		if len(s.Quality) == 0 {
			s.Quality = nil
		}
	}
	c.Alerts = append([]outpost.Alert(nil), c.Alerts...)
	for i := range c.Alerts {
		if len(c.Alerts[i].Labels) == 0 {
			c.Alerts[i].Labels = nil
		}
	}
	return &c
}

// FuzzParseStatus: the status path never panics, and accepts only a
// state it can store.
func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(`{"state":"online","ts":"2025-06-01T12:00:00Z"}`))
	f.Add([]byte(`{"state":"offline"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"state":"online","sensors":{"dev1":{"labels":{"room":"lab"}},"door":{"labels":{}}}}`))
	f.Add([]byte(`{"state":"online","sensors":{"a/b":{"labels":{"":"\u0000"}}}}`))
	f.Add([]byte(`{"state":"online","gateway":"gw","ts":"2023-11-14T22:13:20Z","version":"outpost v1.2.3 go1.26.8 linux/arm",` +
		`"started_at":"2023-11-14T21:00:00Z","sensors":{"bme-1":{"labels":{}}},"health":{"outbox_batches":12,"outbox_bytes":34567,` +
		`"outbox_oldest":"2023-11-14T22:00:00Z","readings_per_s":6.02,"alerts_firing":1,"alerts_pending":0,"sensors_failing":{"bme-1":["failing"]}}}`))
	f.Add([]byte(`{"state":"online","labels":{"site":"plant-3","ring":"canary"}}`))
	f.Add([]byte(`{"state":"online","labels":{"":"\u0000","a":1}}`))
	f.Add([]byte(`{"state":"online","version":"v\u0000","health":{"alerts_firing":-1,"readings_per_s":1e400,"sensors_failing":{"a":[],"b":["x y"]}}}`))
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, payload []byte) {
		st, err := parseStatus("outpost/v1", "outpost/v1/gw/status", payload, now, DefaultMaxFutureSkew)
		gw, state, at := st.gateway, st.state, st.at
		if err != nil {
			var r *rejectError
			if !errors.Is(err, errSkip) && !errors.As(err, &r) {
				t.Fatalf("error %v is neither a skip nor a rejection", err)
			}
			return
		}
		if gw != "gw" || state == "" || checkText("state", state) != nil || !utf8.Valid(payload) {
			t.Fatalf("accepted gw %q state %q", gw, state)
		}
		// Undated (zero: a last will) or within what unix ns hold.
		if y := at.Year(); !at.IsZero() && (y <= 1970 && !at.Equal(now) || y >= 2262) {
			t.Fatalf("time %v out of range", at)
		}
		if at.After(now.Add(DefaultMaxFutureSkew)) {
			t.Fatalf("accepted a status from %v, ahead of the clock (%v)", at, now)
		}
		if err := (&outpost.Status{Sensors: statusSensors(st.labels)}).CheckSensors(); err != nil {
			t.Fatalf("accepted labels beyond the bounds: %v", err)
		}
		var doc outpost.Status
		if err := json.Unmarshal(payload, &doc); err != nil || doc.CheckLabels() != nil {
			t.Fatalf("accepted gateway labels beyond the bounds: %v, %v", err, doc.CheckLabels())
		}
		if err := (&outpost.Status{Version: st.version}).CheckProcess(); err != nil {
			t.Fatalf("accepted a version beyond the bounds: %v", err)
		}
		if st.health != nil {
			if err := st.health.Check(); err != nil {
				t.Fatalf("accepted a health beyond the bounds: %v", err)
			}
			if _, err := json.Marshal(st.health); err != nil {
				t.Fatalf("accepted a health that does not encode again: %v", err)
			}
		}
	})
}

func statusSensors(ls SensorLabels) map[string]outpost.SensorStatus {
	out := map[string]outpost.SensorStatus{}
	for id, l := range ls {
		out[id] = outpost.SensorStatus{Labels: l}
	}
	return out
}

// FuzzHandleSigned runs the worker's path with a key registered for the
// topic's gateway: whatever the payload, a batch is accepted only if it
// is signed with that key under that gateway, and verified by it;
// refusals for authentication are never acked.
func FuzzHandleSigned(f *testing.F) {
	var raw [outpost.KeySize]byte
	for i := range raw {
		raw[i] = byte(0x40 + i)
	}
	key, err := outpost.ParseKey([]byte(hex.EncodeToString(raw[:])))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range seedBatches(f) {
		f.Add(p)
		s := outpost.SignBatch(nil, &key, "gw", p)
		f.Add(s)
		f.Add(s[:len(s)-1])
		f.Add(outpost.SignBatch(nil, &key, "other", p))
	}
	keys, err := NewKeys(map[string][]outpost.Key{"gw": {key}})
	if err != nil {
		f.Fatal(err)
	}
	o := Options{TopicPrefix: "outpost/v1", MaxPayload: 1 << 20, Keys: keys}
	o.setLimits()
	rules := newBatchRules(&o)
	f.Fuzz(func(t *testing.T, payload []byte) {
		b, k, err := rules.parseBatch(context.Background(), fuzzTopic, payload, fuzzNow)
		if err != nil {
			var r *rejectError
			if !errors.As(err, &r) || r.reason == "" {
				t.Fatalf("error %v is not a rejection with a reason", err)
			}
			if r.auth && (r.ack != nil || !strings.HasPrefix(r.reason, "auth: ")) {
				t.Fatalf("auth refusal %q would be acked, or does not say auth", r.reason)
			}
			if r.ack != nil && (r.key == nil || !r.key.Equal(key)) {
				t.Fatalf("would ack %+v unsigned, refused for %s", r.ack, r.reason)
			}
			return
		}
		if k == nil || !k.Equal(key) {
			t.Fatalf("accepted a batch of gw not verified by its key (%v)", k)
		}
		inner, _, verr := outpost.VerifyBatch(payload, "gw", key)
		if verr != nil || !bytes.Equal(outpost.SignBatch(nil, &key, "gw", inner), payload) {
			t.Fatalf("accepted a payload that does not verify: %v", verr)
		}
		if b.Gateway != "gw" {
			t.Fatalf("accepted a batch of gateway %q", b.Gateway)
		}
	})
}
