package gateway

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
)

// With a small message cap, a long alert message is cut to fit, and an
// alert that cannot fit at all (huge labels) is dropped with a count
// instead of blocking the alerts stored with it and the telemetry after.
func TestBatcherFitsAlertsUnderTheMessageCap(t *testing.T) {
	enc, err := outpost.NewEncoder(&outpost.EncoderOptions{MaxMessageBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := buffer.Open(filepath.Join(t.TempDir(), OutboxFile), &buffer.Options{Gateway: "gw", Encoder: enc})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()

	huge := map[string]string{}
	for i := range 100 {
		huge[strings.Repeat("k", 20)+string(rune('a'+i%26))+strings.Repeat("x", i)] = strings.Repeat("v", 30)
	}
	in := make(chan []outpost.Reading, 4)
	alerts := make(chan []outpost.Alert, 4)
	b := &batcher{gateway: "gw", in: in, alerts: alerts, out: ob, maxReadings: 1000,
		interval: time.Hour, maxPending: 8, maxMessage: 1024, now: time.Now}
	done := make(chan struct{})
	go func() { defer close(done); b.run(context.Background()) }()
	alerts <- []outpost.Alert{
		{Rule: "long", State: outpost.StateFiring, Message: strings.Repeat("é", 2000)},
		{Rule: "huge", State: outpost.StateFiring, Labels: huge},
		{Rule: "small", State: outpost.StateFiring, Message: "ok"},
	}
	in <- readings("a", 300, 0)
	close(in)
	close(alerts)
	<-done

	es, err := ob.Read(buffer.LaneAlert, 0, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, e := range es {
		if len(e.Data) > 1024 {
			t.Errorf("stored alert batch of %d bytes, cap 1024", len(e.Data))
		}
		bt, err := outpost.DecodeBatch(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range bt.Alerts {
			rules = append(rules, a.Rule)
			if a.Rule == "long" && (!strings.HasSuffix(a.Message, "…") || len(a.Message) > 256) {
				t.Errorf("long message not cut to a quarter of the cap: %d bytes", len(a.Message))
			}
		}
	}
	if strings.Join(rules, ",") != "long,small" {
		t.Errorf("stored alerts of rules %v, want long and small (huge dropped)", rules)
	}
	if b.lostAlerts.Load() != 1 || b.stored.Load() != 300 {
		t.Errorf("lost alerts %d, stored readings %d; want 1 and 300", b.lostAlerts.Load(), b.stored.Load())
	}
}
