// Package embedbroker runs an in-process MQTT broker (mochi-mqtt) on a free
// loopback port: the embedded default for the demo and for tests when no
// external broker is configured. The gateway binary never links it.
package embedbroker

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is a running embedded broker. Close stops it.
type Broker struct {
	srv   *mqtt.Server
	addr  string
	stats *counter
	once  sync.Once
}

// Start starts a broker listening on 127.0.0.1 at a free port.
func Start() (*Broker, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	// The default drops messages to a subscriber with more than 8k writes
	// pending; the outpost protocol survives drops, but the demo should
	// show the pipeline, not the broker's limits.
	caps.MaximumClientWritesPending = 1 << 16
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		InlineClient: false,
	})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("embedbroker: %w", err)
	}
	c := &counter{}
	if err := srv.AddHook(c, nil); err != nil {
		return nil, fmt.Errorf("embedbroker: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "loopback", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("embedbroker: listen: %w", err)
	}
	// Serve starts the listeners' goroutines and returns.
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("embedbroker: serve: %w", err)
	}
	return &Broker{srv: srv, addr: tcp.Address(), stats: c}, nil
}

// URL is the broker's address as tcp://127.0.0.1:PORT.
func (b *Broker) URL() string { return "tcp://" + b.addr }

// Stats is what clients published through the broker.
type Stats struct {
	BatchMessages int64 // messages on topics ending in /batch
	BatchBytes    int64 // their payload bytes
}

// Stats returns the counters so far.
func (b *Broker) Stats() Stats {
	return Stats{BatchMessages: b.stats.msgs.Load(), BatchBytes: b.stats.bytes.Load()}
}

// Close stops the broker and its listener. It is idempotent.
func (b *Broker) Close() error {
	var err error
	b.once.Do(func() {
		err = b.srv.Close()
	})
	return err
}

// counter is a mochi hook that counts batch payloads crossing the broker.
type counter struct {
	mqtt.HookBase
	msgs, bytes atomic.Int64
}

func (c *counter) ID() string { return "outpost-counter" }

func (c *counter) Provides(b byte) bool { return b == mqtt.OnPublished }

func (c *counter) OnPublished(_ *mqtt.Client, pk packets.Packet) {
	if strings.HasSuffix(pk.TopicName, "/batch") {
		c.msgs.Add(1)
		c.bytes.Add(int64(len(pk.Payload)))
	}
}
