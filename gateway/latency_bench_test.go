package gateway

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/rules"
)

// latencyRules: "hot" fires at once on the probe sensor; the background
// telemetry is evaluated by it too (same metric) but never crosses it.
const latencyRules = `rules:
  - name: hot
    select: {metric: temperature}
    above: 100
    for: 0s
    send_resolved: false
`

// stampedOutbox is the real outbox; it notes when each alert's batch is
// durably appended (Append returned: the bbolt transaction committed).
type stampedOutbox struct {
	*buffer.Outbox
	stored chan time.Time
}

func (s *stampedOutbox) Append(bs []*outpost.Batch) error {
	if err := s.Outbox.Append(bs); err != nil {
		return err
	}
	now := time.Now()
	for _, b := range bs {
		if b.Kind == outpost.KindAlert {
			for range b.Alerts {
				s.stored <- now
			}
		}
	}
	return nil
}

// BenchmarkAlertLatency measures, per alert, the time from publishing
// the triggering reading on the bus to its alert batch being durably
// appended to a bbolt outbox: bus → ruler → batcher → outbox, the real
// pieces with the config's defaults (bus queue 256, batches of 1000
// readings or 1 s). It reports p50, p99 and max; with load, a background
// publisher adds the given rate of non-alerting readings (100 sensors, the
// rule's metric) in slices of 100.
func BenchmarkAlertLatency(b *testing.B) {
	for _, rate := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("load=%dk", rate/1000), func(b *testing.B) {
			benchAlertLatency(b, rate)
		})
	}
}

func benchAlertLatency(b *testing.B, rate int) {
	set, err := rules.Parse("latency.yaml", []byte(latencyRules))
	if err != nil {
		b.Fatal(err)
	}
	ob, err := buffer.Open(filepath.Join(b.TempDir(), OutboxFile), &buffer.Options{Gateway: "gw"})
	if err != nil {
		b.Fatal(err)
	}
	out := &stampedOutbox{Outbox: ob, stored: make(chan time.Time, 16)}

	var bus Bus
	opts := &rules.Options{Gateway: "gw"}
	r := newRuler(rules.NewEngine(set, opts), set, opts)
	r.in = bus.Subscribe("rules", config.DefaultBusQueue, Block)
	alerts := make(chan []outpost.Alert, 64)
	r.out, r.store, r.tick, r.now, r.log = alerts, ob, time.Second, time.Now, zerolog.Nop()
	bt := &batcher{gateway: "gw", in: bus.Subscribe("batcher", config.DefaultBusQueue, Block), alerts: alerts,
		out: out, maxReadings: 1000, interval: config.DefaultBatchInterval, maxPending: 4096,
		maxMessage: 256 << 10, log: zerolog.Nop(), now: time.Now}
	var pipe sync.WaitGroup
	pipe.Add(2)
	go func() { defer pipe.Done(); r.run() }()
	go func() { defer pipe.Done(); bt.run(context.Background()) }()

	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	var sent int
	if rate > 0 {
		load.Add(1)
		go func() { defer load.Done(); sent = publishLoad(&bus, rate, stopLoad) }()
	}

	lat := make([]time.Duration, 0, 1024)
	start := time.Now()
	for b.Loop() {
		// The reset reading first, then the trigger: the bus keeps their
		// order, so every trigger fires a new alert.
		ts := time.Now().UnixNano()
		bus.Publish(context.Background(), []outpost.Reading{{Sensor: "probe", Metric: "temperature", TS: ts, Value: 20}})
		t0 := time.Now()
		bus.Publish(context.Background(), []outpost.Reading{{Sensor: "probe", Metric: "temperature", TS: ts + 1, Value: 150}})
		lat = append(lat, (<-out.stored).Sub(t0))
	}
	elapsed := time.Since(start)
	close(stopLoad)
	load.Wait()
	bus.Close()
	pipe.Wait()
	if err := ob.Close(); err != nil {
		b.Fatal(err)
	}

	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "load-readings/s")
	b.ReportMetric(0, "ns/op") // ns/op is the latency plus the reset: see p50
}

// publishLoad publishes rate readings per second of 100 sensors, in slices
// of 100, until stop; it returns how many it published.
func publishLoad(bus *Bus, rate int, stop <-chan struct{}) int {
	const slice = 100
	var names [slice]string
	for i := range names {
		names[i] = fmt.Sprintf("s%03d", i)
	}
	start := time.Now()
	sent := 0
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return sent
		case <-t.C:
		}
		due := int(time.Since(start).Seconds() * float64(rate))
		for ; sent+slice <= due; sent += slice {
			ts := time.Now().UnixNano()
			rs := make([]outpost.Reading, slice)
			for i := range rs {
				rs[i] = outpost.Reading{Sensor: names[i], Metric: "temperature", TS: ts, Value: 20 + float64(i%7)}
			}
			bus.Publish(context.Background(), rs)
		}
	}
}
