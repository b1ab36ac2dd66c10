package ingest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
)

// TestParseBatchRules: the service's own rules on top of the wire
// contract. A valid batch that breaks them for good (names, timestamps
// ahead of the clock) is refused and acked to its gateway; one over a
// limit of the service is refused and not acked; so is one from a
// gateway whose id no gateway can have.
func TestParseBatchRules(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sec := int64(time.Second)
	ts := now.Add(-time.Hour).UnixNano()
	telemetry := func(gw, sensor, metric string, times ...int64) *outpost.Batch {
		bb := outpost.NewBatchBuilder()
		for _, at := range times {
			bb.Add([]outpost.Reading{{Sensor: sensor, Metric: metric, TS: at, Value: 1}})
		}
		b := bb.Take(gw, ts)
		b.Epoch, b.Seq = 3, 4
		return b
	}
	alert := func(rule string, started, changed int64) *outpost.Batch {
		return &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindAlert, Gateway: "gw", Epoch: 3, Seq: 5,
			Alerts: []outpost.Alert{{Rule: rule, StartedAt: started, ChangedAt: changed}}}
	}
	loss := func(l outpost.Loss) *outpost.Batch {
		l.Reason = outpost.LossMaxBytes
		return &outpost.Batch{Version: outpost.WireVersion, Kind: outpost.KindLoss, Gateway: "gw", Epoch: 3, Seq: 6,
			Losses: []outpost.Loss{l}}
	}
	y2261 := time.Date(2261, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	soon := now.Add(9 * time.Minute).UnixNano()
	late := now.Add(11 * time.Minute).UnixNano()
	many := make([]int64, 11)
	for i := range many {
		many[i] = ts + int64(i)*sec
	}
	cases := []struct {
		name   string
		topic  string // default outpost/v1/gw/batch
		b      *outpost.Batch
		opts   func(*Options)
		reason string // "" accepted
		ack    bool
	}{
		{"valid", "", telemetry("gw", "dev1-env", "temperature", ts, ts+sec), nil, "", false},
		{"within the skew", "", telemetry("gw", "s", "m", ts, soon), nil, "", false},
		{"reading in 2261", "", telemetry("gw", "s", "m", ts, ts+sec, y2261), nil,
			"from the future: series 0 (s/m): reading 2 at 2261-01-01T00:00:00Z (ingest clock 2026-03-01T12:00:00Z, max skew 10m0s)", true},
		{"reading 11 minutes ahead", "", telemetry("gw", "s", "m", late), nil, "from the future: series 0 (s/m): reading 0", true},
		{"skew of an hour", "", telemetry("gw", "s", "m", late), func(o *Options) { o.MaxFutureSkew = time.Hour }, "", false},
		{"no skew check", "", telemetry("gw", "s", "m", y2261), func(o *Options) { o.MaxFutureSkew = -1 }, "", false},
		{"alert changed in 2261", "", alert("hot", ts, y2261), nil, "from the future: alert 0 (hot): changed at 2261", true},
		{"alert started in 2261", "", alert("hot", y2261, ts), nil, "from the future: alert 0 (hot)", true},
		{"alert now", "", alert("hot", ts, soon), nil, "", false},
		{"sensor with a space", "", telemetry("gw", "dev 1", "m", ts), nil, `invalid name: series 0: sensor id "dev 1" is not 1 to 64 of A-Z a-z 0-9 _ . -`, true},
		{"metric with a slash", "", telemetry("gw", "s", "temp/c", ts), nil, `series 0: metric name "temp/c"`, true},
		{"metric ..", "", telemetry("gw", "s", "..", ts), nil, `metric name ".."`, true},
		{"sensor of 65 bytes", "", telemetry("gw", strings.Repeat("s", 65), "m", ts), nil, "sensor id", true},
		{"sensor of 64 bytes", "", telemetry("gw", strings.Repeat("s", 64), "m", ts), nil, "", false},
		{"rule with a space", "", alert("too hot", ts, ts), nil, `alert 0: rule name "too hot"`, true},
		{"loss of a bad sensor", "", loss(outpost.Loss{Kind: outpost.KindTelemetry, Sensor: "a b", Metric: "m"}), nil, `loss 0: sensor id "a b"`, true},
		{"loss of an unknown series", "", loss(outpost.Loss{Kind: outpost.KindTelemetry}), nil, "", false},
		{"gateway with a colon", "outpost/v1/gw:1/batch", telemetry("gw:1", "s", "m", ts), nil, `invalid name: gateway id "gw:1"`, false},
		{"gateway mismatch", "outpost/v1/other/batch", telemetry("gw", "s", "m", ts), nil, "gateway mismatch", false},
		{"readings over the limit", "", telemetry("gw", "s", "m", many...), func(o *Options) { o.MaxReadings = 10 },
			"outpost: invalid batch: decode: series 0: outpost: over a limit: 11 readings or more, limit 10", false},
		{"readings at the limit", "", telemetry("gw", "s", "m", many[:10]...), func(o *Options) { o.MaxReadings = 10 }, "", false},
		{"alerts over the limit", "", alert("hot", ts, ts), func(o *Options) { o.MaxAlerts = 1 }, "", false},
	}
	two := alert("hot", ts, ts)
	two.Alerts = append(two.Alerts, two.Alerts[0])
	cases = append(cases, struct {
		name   string
		topic  string
		b      *outpost.Batch
		opts   func(*Options)
		reason string
		ack    bool
	}{"two alerts, limit one", "", two, func(o *Options) { o.MaxAlerts = 1 }, "2 alerts, limit 1", false})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Options{TopicPrefix: "outpost/v1", MaxPayload: 1 << 20}
			if c.opts != nil {
				c.opts(&o)
			}
			o.setLimits()
			if err := o.validateLimits(); err != nil {
				t.Fatal(err)
			}
			topic := c.topic
			if topic == "" {
				topic = "outpost/v1/gw/batch"
			}
			p, err := c.b.MarshalMsg(nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _, err := newBatchRules(&o).parseBatch(context.Background(), topic, p, now)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if b.Seq != c.b.Seq {
					t.Fatalf("seq %d, want %d", b.Seq, c.b.Seq)
				}
				return
			}
			var r *rejectError
			if !errors.As(err, &r) {
				t.Fatalf("error %v, want a rejection", err)
			}
			if !strings.Contains(r.reason, c.reason) {
				t.Fatalf("reason %q, want it to contain %q", r.reason, c.reason)
			}
			if (r.ack != nil) != c.ack {
				t.Fatalf("acked: %v, want %v", r.ack != nil, c.ack)
			}
			if r.ack != nil && (r.ack.Gateway != c.b.Gateway || r.ack.Epoch != c.b.Epoch || r.ack.Seq != c.b.Seq) {
				t.Fatalf("would ack %s %d/%d", r.ack.Gateway, r.ack.Epoch, r.ack.Seq)
			}
		})
	}
}

func TestValidateLimits(t *testing.T) {
	for _, f := range []func(*Options){
		func(o *Options) { o.MaxReadings = outpost.MaxBatchReadings + 1 },
		func(o *Options) { o.MaxSeries = -1 },
		func(o *Options) { o.MaxAlerts = outpost.MaxBatchAlerts + 1 },
		func(o *Options) { o.DecompressBudget = -1 },
	} {
		var o Options
		f(&o)
		want := o
		o.setLimits()
		if err := o.validateLimits(); err == nil {
			t.Errorf("options %+v accepted", want)
		}
	}
	var o Options
	o.setLimits()
	if err := o.validateLimits(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if o.MaxReadings != 100_000 || o.MaxFutureSkew != 10*time.Minute || o.DecompressBudget != outpost.DefaultDecompressBudget {
		t.Fatalf("defaults %+v", o)
	}
}

// TestParseBatchClosing: a worker that would wait for its share of the
// decompression budget when the service closes gives up, and the message
// is left unacked: the error is the context's, not a rejection.
func TestParseBatchClosing(t *testing.T) {
	o := Options{TopicPrefix: "outpost/v1", MaxPayload: 1 << 20}
	o.setLimits()
	r := newBatchRules(&o)
	enc, err := outpost.NewEncoder(&outpost.EncoderOptions{Compression: outpost.CompressZstd})
	if err != nil {
		t.Fatal(err)
	}
	bb := outpost.NewBatchBuilder()
	for i := range 2000 {
		bb.Add([]outpost.Reading{{Sensor: "s", Metric: "m", TS: 1e18 + int64(i)*1e9, Value: 20}})
	}
	b := bb.Take("gw", 1e18)
	b.Epoch, b.Seq = 1, 1
	p, err := enc.Encode(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	if p[3]&outpost.FlagZstd == 0 {
		t.Fatal("not compressed")
	}
	now := time.Unix(0, 2e18)
	if _, _, err := r.parseBatch(context.Background(), "outpost/v1/gw/batch", p, now); err != nil {
		t.Fatalf("open: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = r.parseBatch(ctx, "outpost/v1/gw/batch", p, now)
	var rej *rejectError
	if !errors.Is(err, context.Canceled) || errors.As(err, &rej) {
		t.Fatalf("closing: %v, want the context's error", err)
	}
}
