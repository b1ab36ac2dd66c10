package uplink

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/testenv"
)

// 1000 lost connections and reconnects leave no goroutines and no heap
// behind: after the last one the counts are where they were after the
// first 50, give or take a small margin.
func TestThousandReconnectsWithoutGrowth(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 reconnects; not in -short")
	}
	const (
		cycles    = 1000
		warmup    = 50
		goMargin  = 5       // goroutines
		heapSlack = 2 << 20 // bytes
	)
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	px := startProxy(t, strings.TrimPrefix(broker, "tcp://"))
	s := newMemStore(1)
	u := startUplink(t, s, Options{
		Broker: "tcp://" + px.addr, Gateway: "gw", TopicPrefix: prefix,
		BackoffInitial: time.Millisecond, MaxReconnect: 5 * time.Millisecond,
		Ack: AckBroker,
	})
	var baseG int
	var baseHeap uint64
	for i := int64(1); i <= cycles; i++ {
		eventually(t, "reconnected", func() bool { return u.connGen.Load() == i && u.Stats().Connected })
		switch i {
		case warmup:
			baseG, baseHeap = settledGoroutines(t, u), heapInUse()
			t.Logf("after %d connects: %d goroutines, heap in use %.1f MB", i, baseG, mb(baseHeap))
		case cycles:
			// A batch still goes through on the last connection.
			s.put(LaneTelemetry, 1, batchBytes(t, outpost.KindTelemetry, 1, 1))
			eventually(t, "batch delivered", func() bool { return s.left() == 0 })
			var g int
			eventually(t, "goroutines back to where they were", func() bool {
				g = runtime.NumGoroutine()
				return g <= baseG+goMargin
			})
			h := heapInUse()
			t.Logf("after %d connects: %d goroutines, heap in use %.1f MB", i, settledGoroutines(t, u), mb(h))
			if h > baseHeap+heapSlack {
				t.Errorf("heap in use grew from %.1f MB to %.1f MB over %d reconnects", mb(baseHeap), mb(h), cycles-warmup)
			}
			continue
		}
		px.drop()
	}
	if st := u.Stats(); st.Connects != cycles {
		t.Errorf("%d connects, want %d", st.Connects, cycles)
	}
}

// settledGoroutines waits until the goroutine count stops changing (the
// last dropped connection's goroutines have ended) and returns it.
func settledGoroutines(t *testing.T, u *Uplink) int {
	t.Helper()
	n, same := runtime.NumGoroutine(), 0
	eventually(t, "goroutines settled", func() bool {
		m := runtime.NumGoroutine()
		if m == n && u.Stats().Connected {
			same++
		} else {
			n, same = m, 0
		}
		return same >= 10
	})
	return n
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }
