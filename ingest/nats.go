package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/outposthq/outpost/metrics"
)

// The JetStream path (docs/nats.md). Gateways publish over MQTT to a
// node of a NATS cluster, which maps each topic to a subject ("/" → ".",
// "." → "//"). A stream captures every gateway's batch and status
// subjects: it is the event log. The service consumes it with one durable
// pull consumer that every ingest process shares, acks a message only once
// its batch is committed (or dead-lettered), and publishes each app ack on
// the gateway's ack subject, which the gateway receives on its MQTT ack
// topic. The rest of the service (workers, group commits, validation,
// acks) is the MQTT path's: a stream message is handed to it as an
// mqtt.Message.

// Defaults of the JetStream path.
const (
	DefaultStreamName = "OUTPOST_BATCHES"
	// DefaultStreamMaxAge is how long the stream keeps a message.
	DefaultStreamMaxAge = 7 * 24 * time.Hour
	// natsAckWait is how long the server waits for the ack of a message
	// it delivered before it delivers it again (to any ingest process):
	// longer than a commit's retries take while the database answers.
	natsAckWait = 2 * time.Minute
	// natsMaxDeliver caps the deliveries of one message. One that is
	// never acked (the database down for longer than natsMaxDeliver ×
	// natsAckWait) stays in the stream, and its gateway, which saw no
	// app ack, sends the batch again.
	natsMaxDeliver = 20
	// natsRetry is the pause after a failed fetch.
	natsRetry = 250 * time.Millisecond
)

// StreamOptions configure the JetStream stream the service creates, or
// updates to this configuration, at Start. Every ingest process sharing
// a stream should be given the same.
type StreamOptions struct {
	// Name of the stream. Default DefaultStreamName.
	Name string
	// Replicas is the number of copies the cluster keeps (1, 3 or 5).
	// Default 1.
	Replicas int
	// MaxAge is how long a message is kept. Default DefaultStreamMaxAge;
	// negative: for ever.
	MaxAge time.Duration
	// MaxBytes caps the stream's size; the oldest messages go first.
	// Default 0: only the server's own limits.
	MaxBytes int64
}

func (o *StreamOptions) setDefaults() {
	if o.Name == "" {
		o.Name = DefaultStreamName
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.MaxAge == 0 {
		o.MaxAge = DefaultStreamMaxAge
	}
}

// Validate checks the options as Start does; zero fields take their
// defaults there.
func (o *StreamOptions) Validate() error {
	d := *o
	d.setDefaults()
	return d.validate()
}

func (o *StreamOptions) validate() error {
	if !natsName(o.Name) {
		return fmt.Errorf("ingest: stream name %q: want letters, digits, '-' and '_'", o.Name)
	}
	if o.Replicas < 1 || o.Replicas > 5 {
		return fmt.Errorf("ingest: stream replicas %d: want 1 to 5", o.Replicas)
	}
	if o.MaxBytes < 0 {
		return fmt.Errorf("ingest: stream max bytes %d: want 0 (no cap) or more", o.MaxBytes)
	}
	return nil
}

func (o *Options) validateNATS() error {
	// A list of servers, comma-separated, names nodes of one cluster.
	for one := range strings.SplitSeq(o.NATS, ",") {
		u, err := url.Parse(one)
		if err != nil || u.Host == "" {
			// url.Parse's error quotes the URL, and with it any password.
			return errors.New("ingest: NATS URL is not nats://host:port (e.g. nats://127.0.0.1:4222), or a comma-separated list of them")
		}
		switch u.Scheme {
		case "nats", "tls":
		default:
			return fmt.Errorf("ingest: NATS URL scheme %q: want nats or tls", u.Scheme)
		}
		if u.User != nil && o.Username != "" {
			return errors.New("ingest: credentials both in the NATS URL and in Username: give one of them")
		}
	}
	if !natsName(o.Group) {
		return fmt.Errorf("ingest: group %q names the NATS consumer: want letters, digits, '-' and '_'", o.Group)
	}
	return o.Stream.validate()
}

// redactList is redact of each URL of a comma-separated list.
func redactList(urls string) string {
	var out []string
	for one := range strings.SplitSeq(urls, ",") {
		out = append(out, redact(one))
	}
	return strings.Join(out, ",")
}

// natsName reports whether s can name a stream or a durable consumer.
func natsName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// topicToSubject maps an MQTT topic name to the NATS subject the server
// publishes it on: levels joined by ".", a "." within a level as "//".
// Outpost's topics have no empty levels, the only case it leaves out.
func topicToSubject(topic string) string {
	levels := strings.Split(topic, "/")
	for i, l := range levels {
		levels[i] = strings.ReplaceAll(l, ".", "//")
	}
	return strings.Join(levels, ".")
}

// subjectToTopic is topicToSubject's inverse.
func subjectToTopic(subject string) string {
	levels := strings.Split(subject, ".")
	for i, l := range levels {
		levels[i] = strings.ReplaceAll(l, "//", ".")
	}
	return strings.Join(levels, "/")
}

// natsSubjects are the stream's subjects: every gateway's batches and
// statuses.
func (o *Options) natsSubjects() []string {
	p := topicToSubject(o.TopicPrefix)
	return []string{p + ".*." + topicBatch, p + ".*." + topicStatus}
}

// startNATS connects to the NATS server, makes the stream and the shared
// durable consumer, and starts taking messages.
func (s *Service) startNATS(ctx context.Context, timeout time.Duration) error {
	o := &s.opts
	nopts := []nats.Option{
		nats.Name(o.ClientID),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			s.errLog.Warn().Err(err).Msg("nats connection lost; reconnecting")
		}),
		nats.ReconnectHandler(func(*nats.Conn) { s.log.Info().Msg("nats reconnected") }),
	}
	if o.Username != "" {
		nopts = append(nopts, nats.UserInfo(o.Username, o.Password))
	}
	if o.TLS != nil {
		nopts = append(nopts, nats.Secure(o.TLS))
	}
	nc, err := nats.Connect(o.NATS, nopts...)
	if err != nil {
		return fmt.Errorf("ingest: connect %s: %w", redactList(o.NATS), err)
	}
	s.mu.Lock()
	s.nc = nc
	s.mu.Unlock()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("ingest: jetstream: %w", err)
	}
	if s.replay != nil {
		return s.startReplay(ctx, js)
	}
	sc := jetstream.StreamConfig{
		Name:        o.Stream.Name,
		Description: "Outpost batches and gateway statuses",
		Subjects:    o.natsSubjects(),
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Stream.Replicas,
		MaxBytes:    -1,
	}
	if o.Stream.MaxAge > 0 {
		sc.MaxAge = o.Stream.MaxAge
	}
	if o.Stream.MaxBytes > 0 {
		sc.MaxBytes = o.Stream.MaxBytes
	}
	if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
		return fmt.Errorf("ingest: stream %s: %w", sc.Name, err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, sc.Name, jetstream.ConsumerConfig{
		Durable:        o.Group,
		Description:    "Outpost ingest, shared by every ingest process",
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        natsAckWait,
		MaxDeliver:     natsMaxDeliver,
		MaxAckPending:  max(1024, 8*o.Workers),
		FilterSubjects: sc.Subjects,
	})
	if err != nil {
		return fmt.Errorf("ingest: consumer %s: %w", o.Group, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * o.Workers))
	if err != nil {
		return fmt.Errorf("ingest: consume %s: %w", sc.Name, err)
	}
	s.mu.Lock()
	s.natsCons, s.natsIter = cons, it
	s.mu.Unlock()
	s.subscribed.Store(true)
	s.intake.Add(1)
	go s.natsIntake(it)
	return nil
}

// natsIntake hands the stream's messages to the workers until the
// iterator stops. It blocks while the queue is full, so the service
// pulls no more than it can take.
func (s *Service) natsIntake(it jetstream.MessagesContext) {
	defer s.intake.Done()
	for {
		m, ok := s.nextMsg(it)
		if !ok {
			return
		}
		s.natsTaken.Add(1)
		if !s.enqueue(&natsMessage{m: m, topic: subjectToTopic(m.Subject()), log: &s.errLog, settled: &s.natsSettled}) {
			// Closing: give it back at once, for another process,
			// rather than after the ack wait.
			if err := m.Nak(); err != nil {
				s.errLog.Debug().Err(err).Msg("nats: nak at close; the message comes again after the ack wait")
			}
			s.natsSettled.Add(1)
		}
	}
}

// nextMsg is the iterator's next message, retried after a failed fetch;
// false once the iterator or the service stops.
func (s *Service) nextMsg(it jetstream.MessagesContext) (jetstream.Msg, bool) {
	for {
		m, err := it.Next()
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return nil, false
		case err != nil:
			s.errLog.Warn().Err(err).Msg("nats: fetch failed; retrying")
			select {
			case <-s.stopIntake:
				return nil, false
			case <-time.After(natsRetry):
			}
			continue
		}
		return m, true
	}
}

// stopNATS stops pulling messages. Those already pulled still come out of
// the iterator: the intake gives them back (nak) once the service closes,
// so that another process takes them at once.
func (s *Service) stopNATS() {
	s.mu.Lock()
	it := s.natsIter
	s.mu.Unlock()
	if it != nil {
		it.Drain()
	}
}

// closeNATS sends what the connection holds (the last acks) and closes
// it.
func (s *Service) closeNATS() {
	s.mu.Lock()
	nc := s.nc
	s.mu.Unlock()
	if nc == nil {
		return
	}
	if err := nc.FlushTimeout(disconnectQuiesce); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		s.errLog.Warn().Err(err).Msg("nats: flush at close; unsent acks come again")
	}
	nc.Close()
}

// publishNATS publishes an app ack on the gateway's ack subject. The
// gateway receives it at QoS 0: an ack lost on the way costs a resend,
// acked again as a duplicate.
func (s *Service) publishNATS(topic string, payload []byte) mqtt.Token {
	s.mu.Lock()
	nc := s.nc
	s.mu.Unlock()
	if nc == nil {
		return &doneToken{err: errors.New("not connected")}
	}
	return &doneToken{err: nc.Publish(topicToSubject(topic), payload)}
}

// natsMessage is a stream message as the workers take it.
type natsMessage struct {
	m       jetstream.Msg
	topic   string
	log     *zerolog.Logger
	settled *atomic.Int64 // counts the ack
	noAck   bool          // a replay's: its consumer takes no acks
}

func (n *natsMessage) Duplicate() bool {
	md, err := n.m.Metadata()
	return err == nil && md.NumDelivered > 1
}
func (n *natsMessage) Qos() byte         { return 1 }
func (n *natsMessage) Retained() bool    { return false }
func (n *natsMessage) Topic() string     { return n.topic }
func (n *natsMessage) MessageID() uint16 { return 0 }
func (n *natsMessage) Payload() []byte   { return n.m.Data() }

// Ack acks the message to the stream's consumer. A lost ack makes the
// server deliver it again, to be acked as a duplicate.
func (n *natsMessage) Ack() {
	if n.noAck {
		n.settled.Add(1)
		return
	}
	if err := n.m.Ack(); err != nil {
		n.log.Warn().Err(err).Str(keyTopic, n.topic).Msg("nats: ack failed; the message will come again")
		return
	}
	n.settled.Add(1)
}

// natsInfoTimeout bounds the consumer-info request of a scrape.
const natsInfoTimeout = 2 * time.Second

// writeNATSMetrics appends the stream's and the consumer's state, asked of
// the server, and this process's share (docs/metrics.md). Without the
// JetStream path it writes nothing.
func (s *Service) writeNATSMetrics(w *metrics.Writer) {
	s.mu.Lock()
	cons := s.natsCons
	s.mu.Unlock()
	if cons == nil {
		return
	}
	taken, settled := s.natsTaken.Load(), s.natsSettled.Load()
	w.Single("outpost_ingest_nats_messages_total", metrics.Counter,
		"Stream messages this ingest process took from the shared consumer.", float64(taken))
	w.Single("outpost_ingest_nats_in_flight_messages", metrics.Gauge,
		"Stream messages this process took and has not acked yet: its own lag.", float64(taken-settled))
	ctx, cancel := context.WithTimeout(context.Background(), natsInfoTimeout)
	defer cancel()
	ci, err := cons.Info(ctx)
	ok := err == nil
	w.Single("outpost_ingest_nats_info_ok", metrics.Gauge,
		"1 if the server answered the consumer-info request of this scrape, else 0 (and the stream metrics are left out).", metrics.Bool(ok))
	if !ok {
		s.errLog.Debug().Err(err).Msg("nats: consumer info")
		return
	}
	w.Single("outpost_ingest_stream_pending_messages", metrics.Gauge,
		"Stream messages no ingest process has taken yet: the stream's lag.", float64(ci.NumPending))
	w.Single("outpost_ingest_stream_ack_pending_messages", metrics.Gauge,
		"Stream messages taken by an ingest process and not acked yet, all processes together.", float64(ci.NumAckPending))
	w.Single("outpost_ingest_stream_redelivered_messages", metrics.Gauge,
		"Stream messages delivered more than once and not acked yet.", float64(ci.NumRedelivered))
	w.Single("outpost_ingest_stream_delivered_seq", metrics.Gauge,
		"The stream sequence the shared consumer has delivered up to.", float64(ci.Delivered.Stream))
	w.Single("outpost_ingest_stream_acked_seq", metrics.Gauge,
		"The stream sequence below which every message is acked.", float64(ci.AckFloor.Stream))
}

// doneToken is an mqtt.Token that is already done.
type doneToken struct{ err error }

// closedChan is every doneToken's Done.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (t *doneToken) Wait() bool                     { return true }
func (t *doneToken) WaitTimeout(time.Duration) bool { return true }
func (t *doneToken) Done() <-chan struct{}          { return closedChan }
func (t *doneToken) Error() error                   { return t.err }
