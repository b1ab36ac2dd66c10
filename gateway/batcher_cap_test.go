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

// With a small message cap, a long alert message and long annotation
// values are cut to fit, and an alert that cannot fit at all (huge labels)
// is dropped with a count instead of blocking the alerts stored with it
// and the telemetry after.
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
	annos := map[string]string{"summary": strings.Repeat("é", 2000), "runbook": "https://example.com/hot"}
	in := make(chan []outpost.Reading, 4)
	alerts := make(chan []outpost.Alert, 4)
	b := &batcher{gateway: "gw", in: in, alerts: alerts, out: ob, maxReadings: 1000,
		interval: time.Hour, maxPending: 8, maxMessage: 1024, now: time.Now}
	done := make(chan struct{})
	go func() { defer close(done); b.run(context.Background()) }()
	alerts <- []outpost.Alert{
		{Rule: "long", State: outpost.StateFiring, Message: strings.Repeat("é", 2000)},
		{Rule: "huge", State: outpost.StateFiring, Labels: huge},
		{Rule: "annotated", State: outpost.StateFiring, Annotations: annos},
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
			if a.Rule == "annotated" {
				if s := a.Annotations["summary"]; !strings.HasSuffix(s, "…") || len(s) > 256 || !strings.HasPrefix(s, "éé") {
					t.Errorf("long annotation not cut to a quarter of the cap: %d bytes", len(s))
				}
				if a.Annotations["runbook"] != annos["runbook"] {
					t.Errorf("short annotation changed: %q", a.Annotations["runbook"])
				}
			}
		}
	}
	if strings.Join(rules, ",") != "long,annotated,small" {
		t.Errorf("stored alerts of rules %v, want long, annotated and small (huge dropped)", rules)
	}
	// The dashboard keeps the alerts it observed: the batcher cut a copy.
	if len(annos["summary"]) != 4000 {
		t.Errorf("the emitted alert's annotations were changed: summary of %d bytes", len(annos["summary"]))
	}
	if b.lostAlerts.Load() != 1 || b.stored.Load() != 300 {
		t.Errorf("lost alerts %d, stored readings %d; want 1 and 300", b.lostAlerts.Load(), b.stored.Load())
	}
}

// With a large cap, a quarter of it is more than a valid alert may hold:
// the message and annotation values are cut to outpost.MaxAlertTextLen,
// so that the ingest service does not refuse the batch.
func TestBatcherCutsAlertTextsToTheWireLimit(t *testing.T) {
	enc, err := outpost.NewEncoder(&outpost.EncoderOptions{MaxMessageBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := buffer.Open(filepath.Join(t.TempDir(), OutboxFile), &buffer.Options{Gateway: "gw", Encoder: enc})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	alerts := make(chan []outpost.Alert, 1)
	b := &batcher{gateway: "gw", alerts: alerts, out: ob, maxReadings: 1000,
		interval: time.Hour, maxPending: 8, maxMessage: 1 << 20, now: time.Now}
	alerts <- []outpost.Alert{{Rule: "long", State: outpost.StateFiring, Message: strings.Repeat("m", 10000),
		Annotations: map[string]string{"summary": strings.Repeat("s", 10000)}}}
	close(alerts)
	b.run(context.Background())

	es, err := ob.Read(buffer.LaneAlert, 0, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 {
		t.Fatalf("%d alert batches stored, want 1", len(es))
	}
	bt, err := outpost.DecodeBatch(es[0].Data) // validates
	if err != nil {
		t.Fatal(err)
	}
	a := bt.Alerts[0]
	if len(a.Message) > outpost.MaxAlertTextLen || len(a.Annotations["summary"]) > outpost.MaxAlertTextLen ||
		!strings.HasSuffix(a.Annotations["summary"], "…") {
		t.Fatalf("message of %d bytes, summary of %d", len(a.Message), len(a.Annotations["summary"]))
	}
}
