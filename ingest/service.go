package ingest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/liveness"
)

// Defaults for Options.
const (
	DefaultGroup        = "outpost-ingest"
	DefaultTopicPrefix  = "outpost/v1"
	DefaultWorkers      = 4
	DefaultMaxPayload   = 16 << 20
	DefaultMaxReconnect = 10 * time.Second
)

// Options configure a Service. A nil *Options, and every zero field, means
// the documented default.
type Options struct {
	// Broker is the MQTT broker URL, e.g. tcp://127.0.0.1:1883. Required,
	// unless NATS is given instead.
	Broker string
	// NATS, instead of Broker, is a NATS server URL (nats://host:4222):
	// the service then consumes a JetStream stream of every gateway's
	// batches and statuses, with a durable consumer named Group that all
	// ingest processes share, and publishes acks on NATS (docs/nats.md).
	// Username, Password and TLS apply to it.
	NATS string
	// Stream configures that stream; NATS only.
	Stream StreamOptions
	// ClientID is the MQTT client id. Default "outpost-ingest-<random>";
	// every ingest process needs its own.
	ClientID string
	// Group is the shared subscription group; processes in one group split
	// the batches between them. Default "outpost-ingest".
	Group string
	// TopicPrefix is the topic root, without a trailing slash. Default
	// "outpost/v1".
	TopicPrefix string
	// Workers is how many batches are committed concurrently. Default 4.
	// The queue between the MQTT client and the workers holds 2×Workers.
	Workers int
	// MaxPayload is the largest batch payload in bytes; larger ones are
	// dead-lettered (with their first DeadLetterPayloadLimit bytes).
	// Default 16 MiB. Set the broker's own message size limit too: the
	// MQTT client has read a message whole before the service sees it.
	MaxPayload int
	// MaxReconnect is the longest wait between reconnect attempts after
	// the broker connection is lost (the wait starts at 1 s and doubles).
	// Default 10 s: gateways resend into the void until ingest is back.
	MaxReconnect time.Duration
	// MaxReadings, MaxSeries and MaxAlerts cap one batch's readings,
	// series and alerts; a batch over one is dead-lettered with the
	// reason and not acked (the gateway keeps it, and resends it: raise
	// the limit to take it). The decoder counts before it allocates, so
	// they bound a batch's memory too. Defaults DefaultMaxReadings
	// (100 000), DefaultMaxSeries (10 000) and DefaultMaxAlerts (4 096);
	// at most the wire limits (outpost.MaxBatchReadings and so on). Keep
	// MaxReadings at or above the fleet's batch.max_readings.
	MaxReadings int
	MaxSeries   int
	MaxAlerts   int
	// DecompressBudget caps the bytes that the workers' decompressed
	// zstd bodies take at once, together; a worker waits for its share.
	// A body takes the content size its frame declares; one whose frame
	// declares none takes up to 1 MiB, and outpost.MaxBodyBytes (64 MiB)
	// if it is larger. Default DefaultDecompressBudget (130 MiB: two of
	// the largest at once).
	DecompressBudget int64
	// MaxFutureSkew is how far ahead of the service's clock a reading,
	// an alert or a gateway status may be dated. A batch holding one
	// dated later is dead-lettered whole, and acked so that the gateway
	// deletes it; such a status is dead-lettered. Default
	// DefaultMaxFutureSkew (10 minutes); a negative value turns the
	// check off.
	MaxFutureSkew time.Duration
	// Logger receives the service's logs, with component=ingest. The zero
	// Logger logs nothing.
	Logger zerolog.Logger

	// CompactEvery is how often the service compacts a store that can
	// (Compactor; docs/storage.md, "Compaction"): folds the rows of
	// closed windows into chunks. Default 1 minute; negative: never.
	// Among ingest processes sharing a database one compacts at a time.
	CompactEvery time.Duration
	// CompactGrace is how long after a window ends the compactor waits
	// before folding it, so that late batches still land in it as rows.
	// Default 10 minutes.
	CompactGrace time.Duration
	// Retention is how long the store keeps readings, alerts, gaps,
	// dead letters and the dedup ledger (docs/storage.md, "Partitions
	// and retention"); 0 keeps them for ever. A batch made (sealed by its
	// gateway) before the retention's horizon is acked and not stored:
	// it would be dropped at once, and its ledger row with it.
	Retention time.Duration
	// RetentionMinute is how long the store keeps the minute rollups; 0
	// for ever. The hour rollups are kept for ever.
	RetentionMinute time.Duration
	// MaintainEvery is how often the service maintains a store that can
	// (Maintainer): partitions made ahead, the retention applied.
	// Default 1 hour; negative: never.
	MaintainEvery time.Duration

	// The HTTP API (Handler; docs/http-api.md).

	// HTTPToken, when set, is the bearer token that every /api/ request
	// must carry (Authorization: Bearer TOKEN); /healthz stays open.
	HTTPToken string
	// MaxQueries is how many API queries may run at once; a request over
	// it gets 503 with Retry-After at once (requests never queue).
	// Default 4. A running query holds a database connection while its
	// answer streams: keep it within the store's read connections
	// (SQLite: 4; PostgreSQL: the pool beyond Workers, 4 by default).
	MaxQueries int
	// QueryTimeout bounds one API request, its streamed answer
	// included. Default 2 minutes.
	QueryTimeout time.Duration
	// WriteStall is how long a client may take to accept each 32 KiB of
	// an answer, or each write of an event stream, before it is
	// dropped. Default 30 s.
	WriteStall time.Duration
	// MaxStreams is how many live event streams (GET /api/v1/events)
	// may be open at once; one more gets 503 with Retry-After at once.
	// Streams take no query slot: they hold no database connection.
	// Default DefaultMaxStreams (64).
	MaxStreams int

	// Message authentication (docs/security.md).

	// Auth is AuthOptional (the default) or AuthRequired. In both, a
	// gateway with a key in Keys must sign its batches with it: an
	// unsigned batch, or one whose MAC no key of it verifies, is
	// dead-lettered with the reason and not acked, before it reaches the
	// dedup ledger, so a forgery can neither take a real batch's seq nor
	// make the gateway delete anything. Its acks are signed with the key
	// that verified the batch. A gateway without a key is refused the
	// same way under AuthRequired; under AuthOptional its batches are
	// taken unchecked, signed or not, and acked unsigned.
	Auth AuthMode
	// Keys are the gateways' keys (LoadKeys); nil means none. The
	// service looks at the keys file again, at most once a second, when
	// a batch of a gateway without a key or with a MAC no key verifies
	// arrives; Keys.Reload (on SIGHUP) reads it at once.
	Keys *Keys

	// Commands turns on the command courier (docs/commands.md, "Audit
	// and the queue"): the service records the gateways' replies to
	// commands in the store's commands table, and sends a gateway the
	// commands queued for it when it comes online. The store must be a
	// CommandStore, and the broker must let the service read
	// {prefix}/+/reply/# and publish to {prefix}/+/cmd/# (the shipped
	// ACL does); a broker that refuses the reply subscription leaves
	// the service running, without replies recorded, and says so in
	// the log. MQTT only.
	Commands bool
	// courierSweep is how often the courier sweeps; 0 means
	// courierSweep (tests shorten it).
	courierSweep time.Duration

	// The broker login and TLS (deploy/mosquitto, docs/security.md).

	// Username and Password log in to the broker, as the ingest identity
	// of its ACL. They replace credentials in Broker's URL
	// (tcp://user:pass@host), which are still accepted but not with
	// Username. Neither password is ever logged, nor is a URL's user info.
	Username string
	Password string
	// TLS configures ssl:// (tls://, mqtts://) and wss:// brokers: the CAs
	// to trust and, for mutual TLS, the client certificate. nil means the
	// system's roots and no client certificate. Its ServerName defaults
	// to the broker URL's host.
	TLS *tls.Config
}

// ackTrackerDepth is how many published acks may await their PUBACK
// before workers wait for the tracker.
const ackTrackerDepth = 1024

// DeadLetterPayloadLimit is how many bytes of a dead-lettered payload are
// stored; the reason says when a payload was cut.
const DeadLetterPayloadLimit = 64 << 10

// Timeouts and backoff of the MQTT side.
const (
	subscribeTimeout   = 10 * time.Second
	ackPublishTimeout  = 10 * time.Second
	unsubscribeTimeout = 2 * time.Second
	disconnectQuiesce  = 250 * time.Millisecond
	retryBase          = 100 * time.Millisecond
	retryMax           = 5 * time.Second
)

// Log keys.
const (
	keyComponent = "component"
	keyTopic     = "topic"
	keyGateway   = "gateway"
	keyEpoch     = "epoch"
	keySeq       = "seq"
	keyReason    = "reason"
	keyAttempt   = "attempt"
)

// Service consumes batches from MQTT into a Store. Create it with New, run
// it with Start, stop it with Close. It does not own the Store: close the
// Store after the Service.
type Service struct {
	store  Store
	opts   Options
	log    zerolog.Logger
	errLog zerolog.Logger // rate-limited, for errors that repeat per message
	// lossLog is rate-limited like errLog, with a budget of its own: a
	// storm of loss batches must not silence the errors, nor the reverse.
	lossLog zerolog.Logger
	now     func() time.Time
	rules   *batchRules // the workers' checks and their shared decoder

	client mqtt.Client
	queue  chan mqtt.Message // handler → workers
	// publish sends an app ack: on the MQTT client, or on NATS.
	publish func(topic string, payload []byte) mqtt.Token

	// The JetStream path (nats.go): the connection, the consumer's
	// message iterator and the goroutine that feeds the queue from it.
	nc       *nats.Conn
	natsCons jetstream.Consumer
	natsIter jetstream.MessagesContext
	intake   sync.WaitGroup
	// Messages this process took from the stream, and those it settled:
	// acked, or given back at close.
	natsTaken, natsSettled atomic.Int64
	replay                 *replaySpec // set by Replay: what to replay

	// The intake (paho's handler) stops before queue is closed: Close
	// closes stopIntake to release a blocked handler, then sets
	// intakeClosed under intakeMu so no handler sends afterwards.
	intakeMu     sync.RWMutex
	intakeClosed bool
	stopIntake   chan struct{}

	workCtx      context.Context // cancelled when Close gives up waiting
	cancelWork   context.CancelFunc
	workers      sync.WaitGroup
	compactor    sync.WaitGroup     // the compaction loop
	maintainer   sync.WaitGroup     // the maintenance loop
	stopCompact  context.CancelFunc // ends it
	stopMaintain context.CancelFunc // ends the maintenance loop

	acksPending chan pendingAck // workers → trackAcks
	tracker     sync.WaitGroup

	mu       sync.Mutex // guards started, closing and hooks.Add
	started  bool
	closing  bool
	hooks    sync.WaitGroup // OnConnect goroutines that paho starts
	stopHook chan struct{}  // closed by Close: subscribe retry loops end

	subscribed atomic.Bool     // subscribed on the current connection
	firstSub   chan error      // the first subscribe result, for Start
	dbFailing  atomic.Bool     // the last store call failed (cleared on success)
	closeOnce  sync.Once       //
	closeErr   error           //
	stats      serviceCounters //

	courier *courier // the command courier (commands.go); nil when commands are off

	api    *api            // the HTTP API's state
	events *eventHub       // the live event streams (events.go)
	met    *serviceMetrics // commit latency and lag, for /metrics

	workBeats     []liveness.Beat // one per worker (Liveness)
	ackBeat       liveness.Beat   // the ack tracker
	workAllowance atomic.Int64    // a time.Duration: workerAllowance, shorter in tests
}

// Stats are counters since Start.
type Stats struct {
	Batches     int64 // batches committed (not counting duplicates)
	Duplicates  int64 // batches that were already stored (acked again)
	Readings    int64 // readings committed
	Alerts      int64 // alerts committed
	Losses      int64 // loss records committed (gaps rows; not counting duplicate batches)
	Statuses    int64 // gateway status messages recorded
	DeadLetters int64 // messages dead-lettered
	Errors      int64 // failed store calls (each retry counts) and failed ack publishes
	// AuthRefused counts batches dead-lettered by message
	// authentication (unsigned, bad MAC, no key under AuthRequired);
	// Unverified, batches committed without a verified MAC (gateways
	// without a key, under AuthOptional), duplicates included.
	AuthRefused int64
	Unverified  int64
	// CompactedWindows counts the series windows this process folded
	// into chunks (Options.CompactEvery).
	CompactedWindows int64
	// Expired counts batches acked and not stored because they were
	// made before the retention's horizon (Options.Retention).
	Expired int64
	// CommandsSent counts the commands the courier published (each
	// attempt); CommandReplies, the replies recorded to commands.
	CommandsSent   int64
	CommandReplies int64
}

type serviceCounters struct {
	batches, duplicates, readings, alerts, losses, statuses, deadLetters, errors atomic.Int64
	authRefused, unverified, compacted, expired                                  atomic.Int64
	commandsSent, commandReplies                                                 atomic.Int64
}

// New returns a Service that stores into store. Nothing starts until Start,
// which fails if store is nil or the options are invalid.
func New(store Store, opts *Options) *Service {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.ClientID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		o.ClientID = "outpost-ingest-" + hex.EncodeToString(b[:])
	}
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = DefaultTopicPrefix
	}
	o.TopicPrefix = strings.TrimSuffix(o.TopicPrefix, "/")
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.CompactEvery == 0 {
		o.CompactEvery = time.Minute
	}
	if o.CompactGrace <= 0 {
		o.CompactGrace = 10 * time.Minute
	}
	if o.MaintainEvery == 0 {
		o.MaintainEvery = time.Hour
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.MaxReconnect <= 0 {
		o.MaxReconnect = DefaultMaxReconnect
	}
	if o.Auth == "" {
		o.Auth = AuthOptional
	}
	o.Stream.setDefaults()
	o.setLimits()
	log := o.Logger.With().Str(keyComponent, "ingest").Logger()
	workCtx, cancel := context.WithCancel(context.Background())
	s := &Service{
		store:       store,
		opts:        o,
		log:         log,
		errLog:      log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute}),
		lossLog:     log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute}),
		now:         time.Now,
		rules:       newBatchRules(&o),
		queue:       make(chan mqtt.Message, 2*o.Workers),
		acksPending: make(chan pendingAck, ackTrackerDepth),
		stopIntake:  make(chan struct{}),
		workCtx:     workCtx,
		cancelWork:  cancel,
		stopHook:    make(chan struct{}),
		firstSub:    make(chan error, 1),
		api:         newAPI(&o, log),
		events:      newEventHub(cmpOr(o.MaxStreams, DefaultMaxStreams)),
		met:         newServiceMetrics(),
		workBeats:   make([]liveness.Beat, o.Workers),
	}
	s.workAllowance.Store(int64(workerAllowance))
	s.rules.log = log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute})
	return s
}

func (o *Options) validate() error {
	switch {
	case o.Broker == "" && o.NATS == "":
		return errors.New("ingest: no broker URL")
	case o.Broker != "" && o.NATS != "":
		return errors.New("ingest: both an MQTT broker and a NATS server: give one of them")
	case o.NATS != "":
		if err := o.validateNATS(); err != nil {
			return err
		}
		if o.Commands {
			return errors.New("ingest: commands need an MQTT broker; with NATS they are off")
		}
	default:
		u, err := url.Parse(o.Broker)
		if err != nil || u.Scheme == "" || u.Host == "" {
			// url.Parse's error quotes the URL, and with it any password.
			return errors.New("ingest: broker URL is not scheme://host:port (e.g. tcp://127.0.0.1:1883)")
		}
		if u.User != nil && o.Username != "" {
			return errors.New("ingest: credentials both in the broker URL and in Username: give one of them")
		}
	}
	if strings.ContainsAny(o.TopicPrefix, "+#") || strings.HasPrefix(o.TopicPrefix, "$") {
		return fmt.Errorf("ingest: topic prefix %q has wildcards or starts with $", o.TopicPrefix)
	}
	if o.Group == "" || strings.ContainsAny(o.Group, "/+#") {
		return fmt.Errorf("ingest: group %q must be one topic level without wildcards", o.Group)
	}
	if err := o.validateLimits(); err != nil {
		return err
	}
	switch o.Auth {
	case AuthOptional:
	case AuthRequired:
		if o.Keys == nil {
			return errors.New("ingest: auth required, but no keys: every batch would be refused")
		}
	default:
		return fmt.Errorf("ingest: unknown auth mode %q (want optional or required)", o.Auth)
	}
	return nil
}

// filters are the subscriptions, with their QoS.
func (s *Service) filters() map[string]byte {
	p := s.opts.TopicPrefix
	return map[string]byte{
		"$share/" + s.opts.Group + "/" + p + "/+/" + topicBatch: 1,
		p + "/+/" + topicStatus:                                 1,
	}
}

// replyFilter is the subscription to the gateways' command replies,
// shared so that one process of the group records each.
func (s *Service) replyFilter() string {
	return "$share/" + s.opts.Group + "/" + s.opts.TopicPrefix + "/+/" + topicReply + "/+"
}

// Start connects to the broker and subscribes, within ctx (its deadline
// also bounds each later reconnect attempt, at most 30 s). It returns an
// error if the broker cannot be reached or refuses the subscriptions; the
// Service is closed then. After Start, the client reconnects by itself.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closing:
		s.mu.Unlock()
		return outpost.ErrClosed
	case s.started:
		s.mu.Unlock()
		return errors.New("ingest: already started")
	}
	s.started = true
	s.mu.Unlock()

	err := s.opts.validate()
	if err == nil && s.store == nil {
		err = errors.New("ingest: no store")
	}
	if err == nil && s.opts.Commands {
		if cs, ok := s.store.(CommandStore); ok {
			s.courier = newCourier(s, cs)
		} else {
			err = fmt.Errorf("ingest: commands on, but the store (%T) keeps no commands table", s.store)
		}
	}
	if err != nil {
		s.abort()
		return err
	}
	connectTimeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		connectTimeout = min(max(time.Until(d), time.Second), 30*time.Second)
	}
	s.startLoops()
	if s.opts.NATS != "" {
		s.publish = s.publishNATS
		if err := s.startNATS(ctx, connectTimeout); err != nil {
			s.abort()
			return err
		}
		gws, keys := s.opts.Keys.Len()
		s.log.Info().Str("nats", redactList(s.opts.NATS)).Str("client_id", s.opts.ClientID).
			Str("stream", s.opts.Stream.Name).Str("consumer", s.opts.Group).Str("prefix", s.opts.TopicPrefix).
			Int("workers", s.opts.Workers).Str("auth", string(s.opts.Auth)).Int("key_gateways", gws).Int("keys", keys).
			Msg("ingest started")
		return nil
	}
	return s.startMQTT(ctx, connectTimeout)
}

// startLoops starts the workers, the ack tracker, and the compaction and
// maintenance loops of a store that has them.
func (s *Service) startLoops() {
	s.workers.Add(s.opts.Workers)
	for i := range s.opts.Workers {
		go s.work(&s.workBeats[i])
	}
	s.tracker.Add(1)
	go s.trackAcks()
	if c, ok := s.store.(Compactor); ok && s.opts.CompactEvery > 0 {
		cctx, cancel := context.WithCancel(context.Background())
		s.stopCompact = cancel
		s.compactor.Add(1)
		go s.compactLoop(cctx, c)
	}
	if m, ok := s.store.(Maintainer); ok && s.opts.MaintainEvery > 0 {
		mctx, cancel := context.WithCancel(context.Background())
		s.stopMaintain = cancel
		s.maintainer.Add(1)
		go s.maintainLoop(mctx, m)
	}
	if s.courier != nil {
		s.courier.start()
	}
}

// startMQTT connects to the MQTT broker and subscribes.
func (s *Service) startMQTT(ctx context.Context, connectTimeout time.Duration) error {
	broker, username, password := s.opts.login()
	o := mqtt.NewClientOptions().
		AddBroker(broker). // without user info: paho never sees it
		SetUsername(username).
		SetPassword(password).
		SetClientID(s.opts.ClientID).
		SetProtocolVersion(4). // MQTT 3.1.1; $share needs a broker that supports it
		SetCleanSession(true).
		SetAutoAckDisabled(true). // msg.Ack only after the commit
		SetOrderMatters(true).    // the handler only queues; it blocks when the queue is full
		SetAutoReconnect(true).
		SetMaxReconnectInterval(s.opts.MaxReconnect).
		SetConnectTimeout(connectTimeout).
		SetKeepAlive(30 * time.Second).
		SetPingTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetDefaultPublishHandler(s.onMessage).
		SetOnConnectHandler(s.onConnect).
		SetConnectionLostHandler(s.onConnectionLost)
	if s.opts.TLS != nil {
		o.SetTLSConfig(s.opts.TLS)
	}
	s.mu.Lock()
	s.client = mqtt.NewClient(o)
	s.mu.Unlock()
	s.publish = func(topic string, payload []byte) mqtt.Token { return s.client.Publish(topic, 1, false, payload) }

	tok := s.client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		// The attempt ends by itself within connectTimeout; wait for it
		// so that nothing outlives Start.
		<-tok.Done()
		if tok.Error() == nil {
			s.abort()
			return fmt.Errorf("ingest: connect %s: %w", s.opts.brokerName(), ctx.Err())
		}
	}
	if err := tok.Error(); err != nil {
		s.abort()
		return fmt.Errorf("ingest: connect %s: %w", s.opts.brokerName(), connectError(tok, err))
	}
	select {
	case err := <-s.firstSub:
		if err != nil {
			s.abort()
			return err
		}
	case <-ctx.Done():
		s.abort()
		return fmt.Errorf("ingest: subscribe: %w", ctx.Err())
	}
	gws, keys := s.opts.Keys.Len()
	s.log.Info().Str("broker", redact(s.opts.Broker)).Str("username", username).Str("client_id", s.opts.ClientID).
		Str("group", s.opts.Group).Str("prefix", s.opts.TopicPrefix).Int("workers", s.opts.Workers).
		Str("auth", string(s.opts.Auth)).Int("key_gateways", gws).Int("keys", keys).
		Msg("ingest started")
	return nil
}

// redact is a broker URL fit for a log line or an error: without its
// user info, which may hold a password (the username is logged apart).
func redact(broker string) string {
	u, err := url.Parse(broker)
	if err != nil {
		return "(broker URL)"
	}
	u.User = nil
	return u.String()
}

// login is the broker URL to dial, without user info, and the
// credentials: Username and Password, or else the URL's.
func (o *Options) login() (broker, username, password string) {
	u, err := url.Parse(o.Broker)
	if err != nil { // validate refused it already
		return o.Broker, o.Username, o.Password
	}
	username, password = o.Username, o.Password
	if u.User != nil {
		username = u.User.Username()
		password, _ = u.User.Password()
		u.User = nil
	}
	return u.String(), username, password
}

// brokerName names the broker and the login for an error message.
func (o *Options) brokerName() string {
	if _, username, _ := o.login(); username != "" {
		return redact(o.Broker) + " as " + username
	}
	return redact(o.Broker)
}

// connectError says when the broker refused the login.
func connectError(t mqtt.Token, err error) error {
	if ct, ok := t.(*mqtt.ConnectToken); ok {
		switch ct.ReturnCode() {
		case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised:
			return fmt.Errorf("login refused by the broker (check the username and password): %w", err)
		}
	}
	return err
}

// abort tears down a Start that failed.
func (s *Service) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		s.log.Warn().Err(err).Msg("cleanup after failed start")
	}
}

// onConnect runs (in a goroutine of paho's) on every connect and
// reconnect: the session is clean, so the subscriptions are made anew.
func (s *Service) onConnect(c mqtt.Client) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.hooks.Add(1)
	s.mu.Unlock()
	defer s.hooks.Done()

	delay := retryBase
	for {
		err := s.subscribe(c)
		if err == nil {
			s.subscribed.Store(true) // before Start hears of it: healthz is ok once Start returns
		}
		select {
		case s.firstSub <- err:
		default:
		}
		if err == nil {
			s.log.Info().Msg("subscribed")
			return
		}
		s.errLog.Error().Err(err).Msg("subscribe failed; retrying")
		select {
		case <-s.stopHook:
			return
		case <-time.After(delay):
		}
		if !c.IsConnectionOpen() {
			return // the next OnConnect subscribes
		}
		delay = min(2*delay, retryMax)
	}
}

func (s *Service) subscribe(c mqtt.Client) error {
	filters := s.filters()
	tok := c.SubscribeMultiple(filters, s.onMessage)
	select {
	case <-tok.Done():
	case <-time.After(subscribeTimeout):
		return fmt.Errorf("ingest: subscribe: no answer within %v", subscribeTimeout)
	case <-s.stopHook:
		return outpost.ErrClosed
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("ingest: subscribe: %w", err)
	}
	st, ok := tok.(*mqtt.SubscribeToken)
	if !ok {
		return nil
	}
	for f, qos := range st.Result() {
		if qos > 2 { // 0x80: refused
			return fmt.Errorf("ingest: subscribe: broker refused %q (shared subscriptions unsupported, or not allowed)", f)
		}
	}
	if s.courier != nil {
		s.subscribeReplies(c)
	}
	return nil
}

// subscribeReplies subscribes to the command replies. A refusal is
// logged and not retried until the next connect: the batches flow on,
// and commands sent meanwhile lapse unanswered in the table.
func (s *Service) subscribeReplies(c mqtt.Client) {
	f := s.replyFilter()
	tok := c.Subscribe(f, 1, s.onMessage)
	select {
	case <-tok.Done():
	case <-time.After(subscribeTimeout):
		s.errLog.Error().Str("filter", f).Msg("commands: no answer to the reply subscription; replies are not recorded until the next connect")
		return
	case <-s.stopHook:
		return
	}
	refused := tok.Error() != nil
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for _, qos := range st.Result() {
			refused = refused || qos > 2
		}
	}
	if refused {
		s.errLog.Error().Err(tok.Error()).Str("filter", f).
			Msg("commands: the broker refused the reply subscription (check its ACL: the ingest identity reads {prefix}/+/reply/#); replies are not recorded")
	}
}

func (s *Service) onConnectionLost(_ mqtt.Client, err error) {
	s.subscribed.Store(false)
	s.errLog.Warn().Err(err).Msg("broker connection lost; reconnecting")
}

// Close stops consuming and waits, within ctx, for the workers to finish
// what they hold, then disconnects. Messages not committed by then stay
// unacked (the gateway resends them). It ends every live event stream
// first (EndStreams) and waits, within ctx, for their handlers to
// return, also when the service never started. Close is idempotent; it
// does not close the Store. Call it after Start has returned, not
// concurrently with it.
func (s *Service) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.events.end()
		s.closeErr = s.close(ctx)
		if !s.events.wait(ctx.Done()) && s.closeErr == nil {
			s.closeErr = fmt.Errorf("ingest: close: event streams still writing: %w", ctx.Err())
		}
	})
	return s.closeErr
}

func (s *Service) close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	started := s.started
	s.mu.Unlock()
	close(s.stopHook)
	if !started {
		s.cancelWork()
		return nil
	}

	// Ask the broker to stop sending, then drain what was delivered.
	s.stopNATS()
	if s.client != nil && s.client.IsConnectionOpen() {
		var topics []string
		for f := range s.filters() {
			topics = append(topics, f)
		}
		if s.courier != nil {
			topics = append(topics, s.replyFilter())
		}
		tok := s.client.Unsubscribe(topics...)
		t := time.NewTimer(unsubscribeTimeout)
		select {
		case <-tok.Done():
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	close(s.stopIntake)
	s.intakeMu.Lock()
	s.intakeClosed = true
	s.intakeMu.Unlock()
	close(s.queue)
	s.intake.Wait()

	var err error
	done := make(chan struct{})
	go func() { s.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("ingest: close: workers still busy: %w", ctx.Err())
		s.cancelWork() // abandon retries; what is left stays unacked
		<-done
	}
	close(s.acksPending) // the workers, its only senders, are done
	tracked := make(chan struct{})
	go func() { s.tracker.Wait(); close(tracked) }()
	select {
	case <-tracked:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("ingest: close: acks still in flight: %w", ctx.Err())
		}
		s.cancelWork()
		<-tracked
	}
	s.cancelWork()
	if s.stopCompact != nil {
		s.stopCompact() // a compaction in progress rolls back: nothing lost
		s.compactor.Wait()
	}
	if s.stopMaintain != nil {
		s.stopMaintain()
		s.maintainer.Wait()
	}
	if s.courier != nil {
		s.courier.close() // after the workers, who mark gateways due
	}
	if s.client != nil {
		s.client.Disconnect(uint(disconnectQuiesce / time.Millisecond))
	}
	s.closeNATS()
	s.hooks.Wait()
	s.subscribed.Store(false)
	st := s.Stats()
	s.log.Info().Int64("batches", st.Batches).Int64("duplicates", st.Duplicates).
		Int64("losses", st.Losses).Int64("dead_letters", st.DeadLetters).Int64("errors", st.Errors).Msg("ingest stopped")
	return err
}

// Stats returns the counters so far.
func (s *Service) Stats() Stats {
	c := &s.stats
	return Stats{
		Batches:     c.batches.Load(),
		Duplicates:  c.duplicates.Load(),
		Readings:    c.readings.Load(),
		Alerts:      c.alerts.Load(),
		Losses:      c.losses.Load(),
		Statuses:    c.statuses.Load(),
		DeadLetters: c.deadLetters.Load(),
		Errors:      c.errors.Load(),
		AuthRefused: c.authRefused.Load(),
		Unverified:  c.unverified.Load(),

		CompactedWindows: c.compacted.Load(),
		Expired:          c.expired.Load(),
		CommandsSent:     c.commandsSent.Load(),
		CommandReplies:   c.commandReplies.Load(),
	}
}

// healthy reports whether the service consumes: connected, subscribed, and
// the store's last call succeeded.
func (s *Service) healthy() (bool, string) {
	s.mu.Lock()
	c, nc := s.client, s.nc
	s.mu.Unlock()
	switch {
	case nc != nil:
		if !nc.IsConnected() {
			return false, "not connected to NATS"
		}
	case c == nil || !c.IsConnectionOpen():
		return false, "not connected to the broker"
	}
	switch {
	case !s.subscribed.Load():
		return false, "not subscribed"
	case s.dbFailing.Load():
		return false, "database errors"
	}
	return true, ""
}
