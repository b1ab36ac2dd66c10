package uplink

import (
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/testenv"
)

func TestOnAckReportsEachAckedBatch(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	s := newMemStore(9)
	for seq := uint64(1); seq <= 20; seq++ {
		s.put(LaneTelemetry, seq, batchBytes(t, outpost.KindTelemetry, 9, seq))
	}
	var mu sync.Mutex
	var lat []time.Duration
	startAcker(t, broker, prefix, "gw-onack", nil)
	u := startUplink(t, s, Options{Broker: broker, Gateway: "gw-onack", TopicPrefix: prefix, Window: 4,
		OnAck: func(d time.Duration) {
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
		}})
	eventually(t, "all batches acked", func() bool { return s.left() == 0 })
	mu.Lock()
	defer mu.Unlock()
	if int64(len(lat)) != u.Stats().Acked || len(lat) != 20 {
		t.Fatalf("OnAck called %d times, acked %d, want 20", len(lat), u.Stats().Acked)
	}
	for _, d := range lat {
		if d < 0 {
			t.Fatalf("negative ack latency %v", d)
		}
	}
}
