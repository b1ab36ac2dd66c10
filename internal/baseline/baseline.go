// Package baseline measures the naive way to ship readings over MQTT, for
// comparison with Outpost in the same run: one JSON message per reading,
// QoS 1.
package baseline

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
)

// Result is what the naive uplink achieved.
type Result struct {
	Readings        int64
	ReadingsPerSec  float64
	BytesPerReading float64
}

// Run measures the naive way to ship readings, for comparison: one
// JSON message per reading, QoS 1, with a subscriber receiving them. It is
// what many gateways do; numbers count messages the subscriber received.
func Run(ctx context.Context, broker string, d time.Duration, log zerolog.Logger) (*Result, error) {
	topic := fmt.Sprintf("outpost-baseline/%d/reading", time.Now().UnixNano())
	connect := func(id string) (mqtt.Client, error) {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).
			SetCleanSession(true).SetConnectTimeout(10 * time.Second))
		if t := c.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
			return nil, fmt.Errorf("connect %s: %v", broker, t.Error())
		}
		return c, nil
	}
	sub, err := connect(fmt.Sprintf("outpost-baseline-sub-%d", time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	defer sub.Disconnect(250)
	var got, bytes atomic.Int64
	if t := sub.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		got.Add(1)
		bytes.Add(int64(len(m.Payload())))
	}); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("subscribe: %v", t.Error())
	}
	pub, err := connect(fmt.Sprintf("outpost-baseline-pub-%d", time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	defer pub.Disconnect(250)

	type msg struct {
		Gateway string  `json:"gateway"`
		Sensor  string  `json:"sensor"`
		Metric  string  `json:"metric"`
		Unit    string  `json:"unit"`
		TS      int64   `json:"ts"`
		Value   float64 `json:"value"`
		Quality string  `json:"quality"`
	}
	// Keep a window of QoS 1 publishes in flight, like a client library's
	// in-flight limit; waiting on each PUBACK would measure latency instead.
	const window = 256
	tokens := make([]mqtt.Token, 0, window)
	start := time.Now()
	deadline := start.Add(d)
	var sent int64
	for time.Now().Before(deadline) && ctx.Err() == nil {
		m := msg{"gw-baseline", "dev1-env", "temperature", "Cel", time.Now().UnixNano(), 20 + float64(sent%100)/10, "good"}
		p, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, pub.Publish(topic, 1, false, p))
		sent++
		if len(tokens) == window {
			for _, t := range tokens {
				t.Wait()
			}
			tokens = tokens[:0]
		}
	}
	for _, t := range tokens {
		t.Wait()
	}
	// Give the subscriber a moment to receive what the broker accepted.
	for i := 0; i < 50 && got.Load() < sent; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	el := time.Since(start).Seconds()
	n := got.Load()
	if n < sent {
		log.Warn().Int64("sent", sent).Int64("received", n).Msg("baseline: broker dropped messages")
	}
	r := &Result{Readings: n, ReadingsPerSec: float64(n) / el}
	if n > 0 {
		r.BytesPerReading = float64(bytes.Load()) / float64(n)
	}
	return r, nil
}
