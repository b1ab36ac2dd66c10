// Package uplink is the gateway's MQTT client side: it publishes the batches
// stored in the outbox, keeps a window of them in flight, deletes a batch
// only when the ingest service's app-level ack names it, resends on timeout
// or reconnect, and keeps the retained status topic (birth and last will).
package uplink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
)

// Lanes of the store, in the order they are drained.
const (
	LaneAlert     = 0
	LaneTelemetry = 1
)

// Stored is one encoded batch as the store holds it.
type Stored struct {
	Seq  uint64
	Data []byte // owned by the uplink once returned
}

// Store is what the uplink needs from the outbox.
type Store interface {
	// Next appends up to max stored batches of lane with seq > after, in
	// ascending seq order.
	Next(lane int, after uint64, max int, dst []Stored) ([]Stored, error)
	// Delete removes acknowledged batches; unknown seqs are ignored.
	Delete(seqs []uint64) error
	// Notify receives after new batches were stored.
	Notify() <-chan struct{}
	// Epoch is the epoch of every batch in the store.
	Epoch() uint64
	// Has reports whether seq is still stored in lane. A batch the store
	// evicted (and wrote a loss record for) must not be resent.
	Has(lane int, seq uint64) (bool, error)
}

// AckMode says what lets the uplink delete a batch.
type AckMode string

const (
	AckIngest AckMode = "ingest" // the ingest service's app-level ack (default)
	AckBroker AckMode = "broker" // the broker's PUBACK, for setups without ingest
)

// Options configure an Uplink. Zero fields take the documented defaults.
type Options struct {
	Broker         string        // MQTT URL, required
	Gateway        string        // gateway id, required
	ClientID       string        // default "outpost-" + Gateway
	TopicPrefix    string        // default "outpost/v1"
	Window         int           // batches in flight, default 16
	AckTimeout     time.Duration // resend unacked batches after this, default 10s
	Ack            AckMode       // default AckIngest
	KeepAlive      time.Duration // default 30s
	ConnectTimeout time.Duration // default 10s
	MaxReconnect   time.Duration // longest wait between reconnects, default 30s
	Username       string
	Password       string // never logged
	// TLS configures ssl:// and wss:// connections; nil means the
	// system's roots (see TLSConfig for building one from files).
	TLS *tls.Config
	// BackoffInitial is the first wait between connection attempts
	// (default 1s); it doubles per failed attempt up to MaxReconnect, and
	// each wait is drawn from [d/2, d] (jitter).
	BackoffInitial time.Duration
	// BacklogBandwidth limits, in bytes per second, the batches sent from
	// the backlog (stored before the current connection came up); 0 means
	// unlimited. Alerts and fresh batches are never limited.
	BacklogBandwidth int64
	Logger           zerolog.Logger
	Now              func() time.Time // default time.Now
}

func (o *Options) withDefaults() (Options, error) {
	c := *o
	if c.Broker == "" || c.Gateway == "" {
		return c, errors.New("uplink: broker and gateway are required")
	}
	if c.ClientID == "" {
		c.ClientID = "outpost-" + c.Gateway
	}
	if c.TopicPrefix == "" {
		c.TopicPrefix = "outpost/v1"
	}
	if c.Window <= 0 {
		c.Window = 16
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 10 * time.Second
	}
	switch c.Ack {
	case "":
		c.Ack = AckIngest
	case AckIngest, AckBroker:
	default:
		return c, fmt.Errorf("uplink: unknown ack mode %q", c.Ack)
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 30 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.MaxReconnect <= 0 {
		c.MaxReconnect = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Stats are the uplink's counters.
type Stats struct {
	Connected bool
	Published int64 // batches published, resends included
	Resent    int64 // of which resends
	Acked     int64 // batches deleted on ack
	InFlight  int   // batches awaiting their ack
	Dropped   int64 // in-flight batches not resent because the store evicted them
	BytesSent int64 // batch payload bytes published, resends included
}

// Uplink publishes the store's batches. Start starts its goroutine; Close
// stops it.
type Uplink struct {
	opt        Options
	store      Store
	log        zerolog.Logger
	client     mqtt.Client
	connectTok mqtt.Token

	batchTopic, ackTopic, statusTopic string

	acks chan []uint64 // seqs acknowledged, from paho's goroutines
	wake chan struct{} // coalesced: the connection went up or down
	stop chan struct{} // closed when Close begins

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	connected                       atomic.Bool
	connGen                         atomic.Int64 // counts successful connects
	published, resent, acked, bytes atomic.Int64
	dropped                         atomic.Int64
	inflightN                       atomic.Int64
}

// New checks the options and returns an uplink over store.
func New(store Store, opts *Options) (*Uplink, error) {
	if opts == nil {
		opts = &Options{}
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	base := o.TopicPrefix + "/" + o.Gateway
	u := &Uplink{
		opt: o, store: store,
		log:         o.Logger.With().Str("component", "uplink").Logger(),
		batchTopic:  base + "/batch",
		ackTopic:    base + "/ack",
		statusTopic: base + "/status",
		acks:        make(chan []uint64, 1024),
		wake:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
	}
	return u, nil
}

// Start connects in the background (it keeps retrying while the broker is
// unreachable: the outbox holds the data meanwhile) and starts publishing.
func (u *Uplink) Start(ctx context.Context) error {
	ctx, u.cancel = context.WithCancel(ctx)
	u.client = mqtt.NewClient(u.clientOptions())
	// With ConnectRetry the token completes only once connected, or once
	// Disconnect stops the retrying goroutine.
	u.connectTok = u.client.Connect()
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		u.run(ctx)
	}()
	return nil
}

func (u *Uplink) clientOptions() *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().
		AddBroker(u.opt.Broker).
		SetClientID(u.opt.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(u.opt.MaxReconnect).
		SetConnectTimeout(u.opt.ConnectTimeout).
		SetKeepAlive(u.opt.KeepAlive).
		SetWriteTimeout(u.opt.ConnectTimeout).
		SetBinaryWill(u.statusTopic, u.statusJSON("offline"), 1, true).
		SetOnConnectHandler(u.onConnect).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			u.log.Warn().Err(err).Msg("connection lost; outbox keeps the data")
			u.connected.Store(false)
			u.poke()
		})
	if u.opt.Username != "" {
		o.SetUsername(u.opt.Username)
		o.SetPassword(u.opt.Password)
	}
	return o
}

func (u *Uplink) onConnect(c mqtt.Client) {
	if u.opt.Ack == AckIngest {
		t := c.Subscribe(u.ackTopic, 1, u.onAck)
		if !t.WaitTimeout(u.opt.ConnectTimeout) || t.Error() != nil {
			u.log.Error().Err(t.Error()).Str("topic", u.ackTopic).Msg("subscribe to acks failed; reconnecting")
			c.Disconnect(0)
			return
		}
	}
	c.Publish(u.statusTopic, 1, true, u.statusJSON("online"))
	u.log.Info().Str("broker", u.opt.Broker).Msg("connected")
	u.connGen.Add(1)
	u.connected.Store(true)
	u.poke()
}

func (u *Uplink) poke() {
	select {
	case u.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

func (u *Uplink) onAck(_ mqtt.Client, m mqtt.Message) {
	a, err := outpost.DecodeAck(m.Payload())
	if err != nil {
		u.log.Warn().Err(err).Msg("bad ack ignored")
		return
	}
	if a.Epoch != u.store.Epoch() {
		return // an ack for an older buffer file: nothing of it is stored
	}
	select {
	case u.acks <- a.Seqs:
	case <-u.stop:
	}
}

func (u *Uplink) statusJSON(state string) []byte {
	b, _ := json.Marshal(struct {
		State   string `json:"state"`
		Gateway string `json:"gateway"`
		TS      string `json:"ts"`
	}{state, u.opt.Gateway, u.opt.Now().UTC().Format(time.RFC3339Nano)})
	return b
}

// Stats returns a snapshot of the counters.
func (u *Uplink) Stats() Stats {
	return Stats{
		Connected: u.connected.Load(),
		Published: u.published.Load(),
		Resent:    u.resent.Load(),
		Acked:     u.acked.Load(),
		InFlight:  int(u.inflightN.Load()),
		Dropped:   u.dropped.Load(),
		BytesSent: u.bytes.Load(),
	}
}

// Close publishes the offline status, disconnects and stops the loop.
// Batches still in flight stay in the outbox and are resent after a restart.
func (u *Uplink) Close(ctx context.Context) error {
	u.once.Do(func() {
		if u.cancel == nil {
			return
		}
		close(u.stop)
		u.cancel()
		u.wg.Wait()
		if u.client.IsConnectionOpen() {
			t := u.client.Publish(u.statusTopic, 1, true, u.statusJSON("offline"))
			wait := 2 * time.Second
			if d, ok := ctx.Deadline(); ok {
				wait = time.Until(d)
			}
			t.WaitTimeout(wait)
		}
		u.client.Disconnect(250)
		// Wait for paho's connect-retry goroutine, which sleeps between
		// attempts, so that nothing outlives Close.
		u.connectTok.WaitTimeout(u.opt.ConnectTimeout + 2*time.Second)
	})
	return nil
}
