// Package uplink is the gateway's MQTT client side: it publishes the batches
// stored in the outbox, keeps a window of them in flight, deletes a batch
// only when the ingest service's app-level ack names it, resends on timeout
// or reconnect, and keeps the retained status topic (birth and last will).
// With the gateway's key it signs every batch it publishes and deletes
// only on an ack whose MAC verifies (Options.Key, Options.Auth); key.go
// reads and creates key files.
package uplink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/liveness"
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
	// Last is the highest seq the store has handed out so far (0 if none).
	// Telemetry up to it when a connection comes up is the backlog. Unlike
	// the other methods, it is called from the connection goroutine.
	Last() uint64
}

// AuthMode says whether batches are signed and which acks may delete
// them (docs/security.md).
type AuthMode string

const (
	// AuthRequired: every batch is signed, and only an ack whose MAC
	// verifies with the gateway's key deletes anything.
	AuthRequired AuthMode = "required"
	// AuthOptional: every batch is signed; a signed ack must verify,
	// but an unsigned one deletes too. For while the ingest service does
	// not hold the gateway's key yet.
	AuthOptional AuthMode = "optional"
	// AuthOff: batches go out as stored, unsigned, and any ack that
	// decodes deletes (a signed one unchecked).
	AuthOff AuthMode = "off"
)

// AckMode says what lets the uplink delete a batch.
type AckMode string

const (
	AckIngest AckMode = "ingest" // the ingest service's app-level ack (default)
	AckBroker AckMode = "broker" // the broker's PUBACK, for setups without ingest
)

// Options configure an Uplink. Zero fields take the documented defaults.
type Options struct {
	Broker      string        // MQTT URL, required
	Gateway     string        // gateway id, required
	ClientID    string        // default "outpost-" + Gateway
	TopicPrefix string        // default "outpost/v1"
	Window      int           // telemetry batches in flight, default 16 (alerts may take alertSlots more)
	AckTimeout  time.Duration // resend unacked batches after this, default 10s
	Ack         AckMode       // default AckIngest
	KeepAlive   time.Duration // default 30s
	// ConnectTimeout bounds one connection attempt (dial, TLS and MQTT
	// handshakes) and the ack subscription after it; default 10s.
	ConnectTimeout time.Duration
	// MaxReconnect is the longest wait between connection attempts,
	// default 30s (the gateway passes uplink.backoff.max). It is raised
	// to BackoffInitial if smaller.
	MaxReconnect time.Duration
	Username     string
	Password     string // never logged
	// TLS configures ssl:// (tls://, mqtts://) and wss:// connections;
	// nil means the system's roots (see TLSConfig for building one from
	// files). Its ServerName defaults to the broker URL's host.
	TLS *tls.Config
	// BackoffInitial is the first wait between connection attempts
	// (default 1s). The n-th wait after a failed attempt or a lost
	// connection is drawn from [d/2, d] with d = min(BackoffInitial·2ⁿ,
	// MaxReconnect); n starts again at 0 after a successful connect.
	BackoffInitial time.Duration
	// Jitter returns the random numbers in [0, 1) that place each wait in
	// its range; default math/rand/v2.Float64. Called from one goroutine.
	Jitter func() float64
	// OnConnect, if set, runs after each successful connect, once the
	// uplink is subscribed to acks and has published its online status
	// (for example to republish retained dashboard topics with Publish).
	// It runs on the uplink's connection goroutine, never on paho's, so
	// it may publish; it should return promptly, since a lost
	// connection is noticed only after it returns, and Close waits for it.
	OnConnect func()
	// BacklogBandwidth limits, in bytes per second, the batches sent from
	// the backlog (stored before the current connection came up); 0 means
	// unlimited. Alerts and fresh batches are never limited.
	BacklogBandwidth int64
	// Key is the gateway's key. With it every batch goes out signed
	// (wire version 3: the stored bytes, historical bit and all, and a
	// MAC over them, the gateway id and a tag), whatever its stored
	// version, and acks are checked as Auth says. The store's batches
	// stay as they are.
	Key *outpost.Key
	// Auth is AuthRequired (the default with a Key), AuthOptional, or
	// AuthOff (the default, and the only mode, without a Key). With a
	// Key, a signed ack whose MAC does not verify is always ignored, an
	// unsigned one unless Auth is AuthOptional; both are counted
	// (Stats.ForgedAcks, UnsignedAcks) and logged at most once a minute.
	Auth AuthMode
	// SensorLabels are the gateway's sensors by id with their labels (nil
	// for none), which the status document carries as "sensors" so that
	// the ingest service labels their series (docs/wire-format.md,
	// "Status"). nil leaves the field out. New refuses labels that
	// outpost.CheckSensorLabels refuses, an id that is not an
	// outpost.ValidName, and a document over outpost.MaxStatusBytes.
	SensorLabels map[string]map[string]string
	// Labels are the gateway's own labels (gateway.labels), which the
	// status document carries as "labels"; nil or empty leaves the
	// field out, as does the last will. New refuses labels that
	// outpost.CheckSensorLabels refuses, and counts them against
	// outpost.MaxStatusBytes.
	Labels map[string]string
	// Version is the gateway binary's version, which the status document
	// carries as "version" (cmd/outpost passes what `outpost --version`
	// prints); "" leaves it out. New refuses one that
	// outpost.CheckStatusVersion refuses.
	Version string
	// StartedAt, when set, returns when the gateway process started, for
	// the status's "started_at" (UTC, to the second); the zero time
	// leaves it out, as the gateway does while its wall clock is not
	// trusted. Called on the connection goroutine as each document is
	// made; it must return at once.
	StartedAt func() time.Time
	// Health, when set, returns the gateway's health for the status's
	// "health" (outpost.StatusHealth), or nil to leave it out. It is
	// called as each online or clean offline document is made, on the
	// connection goroutine or in Close, never twice at once, and must
	// return at once; what it returns is read and not kept. Its
	// sensors_failing may name only sensors of SensorLabels, which New
	// counts, each with every one of outpost.SensorConditions at worst,
	// against outpost.MaxStatusBytes. A health that breaks the
	// document's bounds (StatusHealth.Check) is left out of that
	// document and logged. The last will never has one.
	Health func() *outpost.StatusHealth
	// StatusInterval is how often a connected uplink publishes its
	// status again after the last one, so that the health stays fresh;
	// 0 (the default) publishes it only at each connect and after
	// StatusChanged. The gateway passes uplink.status_interval.
	StatusInterval time.Duration
	// StatusHoldoff is the shortest time between two status documents
	// on one connection, however often StatusChanged is called: the
	// changes within it make one document. Default 10s; the birth at
	// each connect does not wait for it. Tests shorten it.
	StatusHoldoff time.Duration
	// OnAck, when set, is called with each acked batch's ack latency:
	// from its last (re)send to the ack that deleted it, by Now. It runs
	// on the publishing goroutine and must return at once (a histogram's
	// Observe).
	OnAck func(time.Duration)
	// OnCommand, when set, receives each command request published to
	// {prefix}/{gateway}/cmd/{name} (the uplink subscribes at each
	// connect, QoS 1): the command's name, a single topic level, and the
	// payload, which it must not keep. It runs on paho's goroutine and
	// must not block (it queues, or refuses); replies go out with
	// Publish on Topic("reply/" + id) (docs/wire-format.md, "Commands").
	OnCommand func(name string, payload []byte)
	Logger    zerolog.Logger
	Now       func() time.Time // default time.Now
}

func (o *Options) withDefaults() (Options, error) {
	c := *o
	if c.Broker == "" || c.Gateway == "" {
		return c, errors.New("uplink: broker and gateway are required")
	}
	bu, err := url.Parse(c.Broker)
	if err != nil {
		// Not err itself: it quotes the URL, and with it any password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return c, fmt.Errorf("uplink: broker URL: %w", err)
	}
	switch bu.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "mqtt+ssl", "tcps", "ws", "wss":
	default:
		return c, fmt.Errorf("uplink: broker %s: unsupported scheme %q", bu.Redacted(), bu.Scheme)
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
	switch {
	case c.Auth == "" && c.Key != nil:
		c.Auth = AuthRequired
	case c.Auth == "":
		c.Auth = AuthOff
	case c.Auth != AuthRequired && c.Auth != AuthOptional && c.Auth != AuthOff:
		return c, fmt.Errorf("uplink: unknown auth mode %q", c.Auth)
	}
	if (c.Key != nil) != (c.Auth != AuthOff) {
		return c, fmt.Errorf("uplink: auth %s needs a key, and only it", c.Auth)
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 30 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.BackoffInitial <= 0 {
		c.BackoffInitial = time.Second
	}
	if c.MaxReconnect <= 0 {
		c.MaxReconnect = 30 * time.Second
	}
	c.MaxReconnect = max(c.MaxReconnect, c.BackoffInitial)
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.StatusInterval < 0 {
		return c, fmt.Errorf("uplink: status interval %v is negative", c.StatusInterval)
	}
	if c.StatusHoldoff <= 0 {
		c.StatusHoldoff = DefaultStatusHoldoff
	}
	if err := outpost.CheckStatusVersion(c.Version); err != nil {
		return c, fmt.Errorf("uplink: status: %w", err)
	}
	if c.SensorLabels != nil || c.Health != nil || c.Labels != nil {
		st := outpost.Status{Labels: c.Labels, Sensors: outpost.StatusSensors(c.SensorLabels)}
		if err := errors.Join(st.CheckLabels(), st.CheckSensors()); err != nil {
			return c, fmt.Errorf("uplink: status: %w", err)
		}
		if n := outpost.StatusSize(c.Gateway, c.Labels, st.Sensors); n > outpost.MaxStatusBytes {
			with := ""
			if len(c.Labels) > 0 {
				with = ", with the gateway's labels"
			}
			return c, fmt.Errorf("uplink: status: the sensors' labels and health make a document of up to %d bytes, more than %d%s", n, outpost.MaxStatusBytes, with)
		}
	}
	return c, nil
}

// DefaultStatusHoldoff is Options.StatusHoldoff's default: on a metered
// link a flapping sensor or alert costs one status document per 10 s at
// most.
const DefaultStatusHoldoff = 10 * time.Second

// Stats are the uplink's counters.
type Stats struct {
	Connected bool
	Published int64 // batches published, resends included
	Resent    int64 // of which resends
	Acked     int64 // batches deleted on ack
	InFlight  int   // batches awaiting their ack
	Dropped   int64 // in-flight batches not resent because the store evicted them
	BytesSent int64 // batch payload bytes published, resends included
	// Backlog counts telemetry batches first sent from the backlog (stored
	// before the connection they went out on), marked historical.
	Backlog      int64
	BacklogBytes int64 // their bytes, resends included

	// BadAcks counts acks ignored because they could not be decoded or
	// named more seqs than the window (logged at most once a minute).
	BadAcks int64
	// ForgedAcks counts signed acks ignored because their MAC did not
	// verify with the gateway's key; UnsignedAcks, unsigned acks ignored
	// under AuthRequired (each logged at most once a minute).
	ForgedAcks   int64
	UnsignedAcks int64

	Connects        int64 // successful connects
	ConnectFailures int64 // failed connection attempts
	// LastError is the last connection error (a failed attempt or a lost
	// connection), kept after a reconnect; "" if none yet.
	LastError string
}

// Uplink publishes the store's batches. Start starts its goroutines (the
// connection loop and the publishing loop); Close stops them.
type Uplink struct {
	opt    Options
	store  Store
	log    zerolog.Logger
	broker string // opt.Broker without a password, for logs
	// client is the one paho client, from Start to Close; connLoop
	// connects it, run publishes on it.
	client mqtt.Client

	sensors map[string]outpost.SensorStatus // the status document's; nil without Options.SensorLabels
	labels  map[string]string               // the status document's; nil without Options.Labels

	base                              string // prefix/gateway
	batchTopic, ackTopic, statusTopic string

	acks       chan []uint64 // seqs acknowledged, from paho's goroutines
	wake       chan struct{} // coalesced: the connection went up or down, or Drain began
	statusWake chan struct{} // coalesced: StatusChanged was called
	stop       chan struct{} // closed when Close begins
	lost       chan error    // paho's connection-lost reports, for connLoop

	ctx    context.Context // Start's, cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	attemptMu    sync.Mutex
	attemptStops []func() bool // openConn's hooks for the current attempt

	errMu   sync.Mutex
	lastErr string

	connectFailures atomic.Int64

	badAcks   atomic.Int64
	badAckMu  sync.Mutex
	badAckLog logLimit // guarded by badAckMu: paho may call onAck concurrently
	authLog   logLimit // refused by authentication; guarded by badAckMu

	forgedAcks, unsignedAcks atomic.Int64

	draining                        atomic.Bool // Drain was called
	connected                       atomic.Bool
	connGen                         atomic.Int64  // counts successful connects
	boundary                        atomic.Uint64 // store.Last() when the current connection came up
	published, resent, acked, bytes atomic.Int64
	dropped                         atomic.Int64
	backlog, backlogBytes           atomic.Int64
	inflightN                       atomic.Int64

	connBeat, sendBeat liveness.Beat // the two loops' liveness (Liveness)
}

// New checks the options and returns an uplink over store. It opens and
// starts nothing (Start does); on error it returns a nil *Uplink. Its
// errors never show the broker URL's password.
func New(store Store, opts *Options) (*Uplink, error) {
	if store == nil {
		return nil, errors.New("uplink: no store")
	}
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
		broker:      redact(o.Broker),
		base:        base,
		batchTopic:  base + "/batch",
		ackTopic:    base + "/ack",
		statusTopic: base + "/status",
		acks:        make(chan []uint64, 1024),
		wake:        make(chan struct{}, 1),
		statusWake:  make(chan struct{}, 1),
		stop:        make(chan struct{}),
		lost:        make(chan error, 1),
		badAckLog:   logLimit{every: logEvery},
		authLog:     logLimit{every: logEvery},
	}
	if o.SensorLabels != nil {
		u.sensors = outpost.StatusSensors(o.SensorLabels)
	}
	if len(o.Labels) > 0 {
		u.labels = maps.Clone(o.Labels)
	}
	return u, nil
}

// redact hides a password in a URL.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s // withDefaults parsed it already
	}
	return u.Redacted()
}

// Start connects in the background (it keeps retrying while the broker is
// unreachable: the outbox holds the data meanwhile) and starts publishing.
// Cancelling ctx stops both, as Close does, but without the offline status.
func (u *Uplink) Start(ctx context.Context) error {
	u.ctx, u.cancel = context.WithCancel(ctx)
	u.client = mqtt.NewClient(u.clientOptions())
	u.wg.Add(2)
	go func() {
		defer u.wg.Done()
		u.connLoop(u.ctx)
	}()
	go func() {
		defer u.wg.Done()
		u.run(u.ctx)
	}()
	return nil
}

func (u *Uplink) poke() {
	select {
	case u.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// onAck takes an app-level ack from paho. An ack names at most the
// window's seqs (only those can be in flight when it is sent), so one
// naming more is refused before its seqs are allocated, and ignored:
// nothing is deleted on it. With a key, an ack must then pass Auth.
func (u *Uplink) onAck(_ mqtt.Client, m mqtt.Message) {
	p := m.Payload()
	a, err := outpost.DecodeAckLimit(p, u.maxInFlight())
	if err != nil {
		u.badAcks.Add(1)
		if ev := u.refusal(&u.badAckLog); ev != nil {
			ev.Err(err).Int("bytes", len(p)).Int("window", u.opt.Window).Msg("bad ack ignored")
		}
		return
	}
	if u.opt.Key != nil {
		switch {
		case a.Version == outpost.SignedAckVersion:
			if err := outpost.VerifyAck(p, u.opt.Gateway, u.opt.Key); err != nil {
				u.forgedAcks.Add(1)
				if ev := u.refusal(&u.authLog); ev != nil {
					ev.Int("bytes", len(p)).Str("key", u.opt.Key.Fingerprint()).
						Msg("ack ignored: its MAC does not verify with this gateway's key (forged, or the ingest service holds another key for it)")
				}
				return
			}
		case u.opt.Auth == AuthRequired:
			u.unsignedAcks.Add(1)
			if ev := u.refusal(&u.authLog); ev != nil {
				ev.Int("bytes", len(p)).Str("key", u.opt.Key.Fingerprint()).
					Msg("unsigned ack ignored (uplink.auth: required): register this gateway's key with the ingest service (outpost key show)")
			}
			return
		}
	}
	if a.Epoch != u.store.Epoch() {
		return // an ack for an older buffer file: nothing of it is stored
	}
	select {
	case u.acks <- a.Seqs:
	case <-u.stop:
	}
}

// refusal returns the warning for a refused ack when lim lets one be
// logged now (saying how many went unreported since), else nil.
func (u *Uplink) refusal(lim *logLimit) *zerolog.Event {
	u.badAckMu.Lock()
	held, ok := lim.allow(u.opt.Now())
	u.badAckMu.Unlock()
	if !ok {
		return nil
	}
	ev := u.log.Warn()
	if held > 0 {
		ev = ev.Int("ignored_unreported", held)
	}
	return ev
}

// maxInFlight is the most batches in flight at once, the most seqs an
// ack can name: the window, and the alert slots beyond it.
func (u *Uplink) maxInFlight() int { return u.opt.Window + alertSlots }

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

		Backlog:      u.backlog.Load(),
		BacklogBytes: u.backlogBytes.Load(),
		BadAcks:      u.badAcks.Load(),
		ForgedAcks:   u.forgedAcks.Load(),
		UnsignedAcks: u.unsignedAcks.Load(),

		Connects:        u.connGen.Load(),
		ConnectFailures: u.connectFailures.Load(),
		LastError:       u.lastError(),
	}
}

func (u *Uplink) lastError() string {
	u.errMu.Lock()
	defer u.errMu.Unlock()
	return u.lastErr
}

// Drain prepares a graceful stop: nothing fresh will be stored, and what
// is stored should go out now. The backlog may use the whole window (no
// slot is kept for fresh batches any more), and an unacked batch is
// resent as soon as its ack timeout passes rather than at the next
// periodic check. The connection loop and the backlog bandwidth limit are
// unchanged, and a batch stored after Drain still goes out. The caller
// waits until the store is empty, or gives up, then calls Close. Drain
// returns at once; it may be called more than once, and before Start.
func (u *Uplink) Drain() {
	if !u.draining.Swap(true) {
		u.poke()
	}
}

// Close stops the connection loop wherever it is (in a backoff wait or in
// a connection attempt) and the publishing loop, publishes the offline
// status (with the health, when Options.Health is set) when connected,
// and disconnects; nothing it started outlives it.
// Batches still in flight stay in the outbox and are resent after a
// restart. Close is idempotent; ctx bounds the wait for the status (a
// cancelled ctx ends it at once). Close does not wait for PUBACKs: call
// Drain and wait for the store to empty first to deliver what is stored.
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
			timer := time.NewTimer(wait)
			select {
			case <-t.Done():
			case <-timer.C:
			case <-ctx.Done(): // Disconnect's quiesce still lets it out
			}
			timer.Stop()
		}
		u.client.Disconnect(250)
	})
	return nil
}
