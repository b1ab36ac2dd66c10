package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/liveness"
)

// storeTimeout bounds one store call; a call that takes longer is retried.
const storeTimeout = 60 * time.Second

// onMessage is paho's message handler. paho calls it from its one router
// goroutine (OrderMatters), so it only queues: when the workers are behind,
// it blocks, paho stops reading, and the broker holds the rest.
//
// While it blocks, paho reads no packet at all: no PUBACK (see
// publishAck) and no PINGRESP. A queue that stays full for longer than the
// keepalive plus the ping timeout (30 s + 10 s) therefore drops the
// connection; paho reconnects once the workers catch up, and what was in
// flight is resent by the gateways. Nothing is lost, only time.
func (s *Service) onMessage(_ mqtt.Client, m mqtt.Message) { s.enqueue(m) }

// enqueue hands m to the workers, waiting for room. It reports false if
// the service closed first: m is then not acked, and comes again.
func (s *Service) enqueue(m mqtt.Message) bool {
	s.intakeMu.RLock()
	defer s.intakeMu.RUnlock()
	if s.intakeClosed {
		return false // closing: not acked, the gateway resends
	}
	select {
	case s.queue <- m:
		return true
	case <-s.stopIntake:
		return false
	}
}

// work is one worker: it handles queued messages until Close closes the
// queue.
func (s *Service) work(beat *liveness.Beat) {
	defer s.workers.Done()
	gs, _ := s.store.(GroupStore)
	for m := range s.queue {
		beat.BusyFor(time.Duration(s.workAllowance.Load()))
		if gs != nil {
			s.handleGroup(gs, m)
		} else {
			s.handle(m)
		}
		beat.Idle()
	}
}

// Group commits: a worker that finds more messages waiting in the queue
// takes up to maxGroup of them, maxGroupReadings readings in all, and
// commits their telemetry batches in one transaction (GroupStore). An
// idle service commits each batch alone, as soon as it comes; a busy one
// pays one commit for many.
const (
	maxGroup         = 16
	maxGroupReadings = 64 << 10
)

// grouped is a telemetry batch of a group, parsed and waiting for the
// group's commit.
type grouped struct {
	m   mqtt.Message
	b   *outpost.Batch
	key *outpost.Key
}

// handleGroup handles m and whatever else waits in the queue, up to the
// group's bounds: telemetry batches are committed together, anything
// else as handle does.
func (s *Service) handleGroup(gs GroupStore, m mqtt.Message) {
	var group []grouped
	readings := 0
	for {
		if b, key, ok := s.parseForGroup(m); ok {
			group = append(group, grouped{m, b, key})
			readings += b.Len()
		}
		if len(group) >= maxGroup || readings >= maxGroupReadings {
			break
		}
		var more bool
		select {
		case m, more = <-s.queue:
		default:
		}
		if !more {
			break
		}
	}
	switch len(group) {
	case 0:
		return
	case 1:
		s.commitBatch(group[0].m, group[0].b, group[0].key)
		return
	}
	bs := make([]*outpost.Batch, len(group))
	sizes := make([]int, len(group))
	for i, g := range group {
		bs[i], sizes[i] = g.b, len(g.m.Payload())
	}
	var dups []bool
	err := s.retry(func(ctx context.Context) error {
		var err error
		start := time.Now()
		dups, err = gs.CommitGroup(ctx, bs, sizes)
		if err == nil {
			s.met.commit.ObserveDuration(time.Since(start))
		}
		return err
	}, bs[0])
	switch {
	case errors.Is(err, ErrInvalidData):
		// One of them is refused for good: find it by committing each.
		for _, g := range group {
			s.commitBatch(g.m, g.b, g.key)
		}
		return
	case err != nil:
		return // closing: left unacked
	}
	for i, g := range group {
		s.committed(g.m, g.b, g.key, dups[i])
	}
}

// parseForGroup handles m unless it is a valid telemetry batch, which it
// returns parsed for the group's commit.
func (s *Service) parseForGroup(m mqtt.Message) (*outpost.Batch, *outpost.Key, bool) {
	_, kind, ok := splitTopic(s.opts.TopicPrefix, m.Topic())
	if !ok || kind != topicBatch {
		s.handle(m)
		return nil, nil, false
	}
	b, key, ok := s.parse(m)
	if !ok {
		return nil, nil, false
	}
	if b.Kind != outpost.KindTelemetry {
		s.commitBatch(m, b, key)
		return nil, nil, false
	}
	return b, key, true
}

// handle processes one message to the end: stored and acked,
// dead-lettered and acked, or (only when Close gives up) left unacked.
func (s *Service) handle(m mqtt.Message) {
	_, kind, ok := splitTopic(s.opts.TopicPrefix, m.Topic())
	switch {
	case ok && kind == topicBatch:
		s.handleBatch(m)
	case ok && kind == topicStatus:
		s.handleStatus(m)
	case !ok && s.courier != nil:
		if gw, id, reply := splitReplyTopic(s.opts.TopicPrefix, m.Topic()); reply {
			s.handleReply(m, gw, id)
			return
		}
		fallthrough
	default:
		s.deadLetter(m, fmt.Sprintf("unexpected topic %q", m.Topic()))
	}
}

func (s *Service) handleBatch(m mqtt.Message) {
	if b, key, ok := s.parse(m); ok {
		s.commitBatch(m, b, key)
	}
}

// parse decodes and checks a batch message. A message refused is
// dead-lettered (and acked if it is refused for good); ok is false then,
// and while closing.
func (s *Service) parse(m mqtt.Message) (*outpost.Batch, *outpost.Key, bool) {
	b, key, err := s.rules.parseBatch(s.workCtx, m.Topic(), m.Payload(), s.now())
	var r *rejectError
	switch {
	case errors.As(err, &r):
		if r.auth {
			s.stats.authRefused.Add(1)
		}
		if s.deadLetter(m, r.reason) && r.ack != nil {
			// Dead-lettered for good: the gateway may delete it.
			s.publishAck(r.ack, r.key)
		}
		return nil, nil, false
	case err != nil:
		return nil, nil, false // closing while waiting to decompress: left unacked
	}
	if s.expired(b) {
		// Older than what the store keeps: acked, so that the gateway
		// deletes it, and not stored.
		s.stats.expired.Add(1)
		s.errLog.Warn().Str(keyGateway, b.Gateway).Uint64(keyEpoch, b.Epoch).Uint64(keySeq, b.Seq).
			Time("created", time.Unix(0, b.Created)).Dur("retention", s.opts.Retention).
			Msg("batch older than the retention: acked, not stored")
		m.Ack()
		s.publishAck(b, key)
		return nil, nil, false
	}
	return b, key, true
}

// commitBatch commits one parsed batch, then acks it.
func (s *Service) commitBatch(m mqtt.Message, b *outpost.Batch, key *outpost.Key) {
	var dup bool
	err := s.retry(func(ctx context.Context) error {
		var err error
		start := time.Now()
		dup, err = s.store.Commit(ctx, b, len(m.Payload()))
		if err == nil {
			s.met.commit.ObserveDuration(time.Since(start))
		}
		return err
	}, b)
	switch {
	case errors.Is(err, ErrInvalidData):
		s.deadLetter(m, err.Error())
		return
	case err != nil:
		return // closing: left unacked
	}
	s.committed(m, b, key, dup)
}

// committed acks a stored batch (new or a duplicate) to the broker and to
// its gateway, and counts it.
func (s *Service) committed(m mqtt.Message, b *outpost.Batch, key *outpost.Key, dup bool) {
	m.Ack()
	s.met.committed(b.Gateway, b.Created)
	if key == nil {
		s.stats.unverified.Add(1)
	}
	n := b.Len()
	if dup {
		s.stats.duplicates.Add(1)
	} else {
		s.stats.batches.Add(1)
		switch b.Kind {
		case outpost.KindAlert:
			s.stats.alerts.Add(int64(n))
		case outpost.KindLoss:
			s.stats.losses.Add(int64(n))
			s.logLosses(b)
		default:
			s.stats.readings.Add(int64(n))
		}
		// After the commit, never before; a duplicate is not news. It
		// never waits (events.go).
		s.publishCommitted(b)
	}
	s.log.Debug().Str(keyGateway, b.Gateway).Uint64(keyEpoch, b.Epoch).Uint64(keySeq, b.Seq).
		Str("kind", b.Kind.String()).Int("n", n).Bool("dup", dup).Bool("verified", key != nil).Msg("batch committed")
	s.publishAck(b, key)
}

// maxLoggedSeries bounds the series (and rules) one loss warning names.
const maxLoggedSeries = 8

// logLosses warns, once per committed loss batch (a duplicate is not logged
// again), that a gateway dropped data: how much, why, and of what.
func (s *Service) logLosses(b *outpost.Batch) {
	var (
		readings, alerts uint64
		reasons, series  []string
		moreSeries       int
	)
	for i := range b.Losses {
		l := &b.Losses[i]
		if !slices.Contains(reasons, l.Reason) {
			reasons = append(reasons, l.Reason)
		}
		name := "alerts"
		if l.Rule != "" {
			name = "alerts of " + l.Rule
		}
		if l.Kind == outpost.KindTelemetry {
			readings += l.Count
			name = l.Sensor + "/" + l.Metric
		} else {
			alerts += l.Count
		}
		switch {
		case slices.Contains(series, name):
		case len(series) < maxLoggedSeries:
			series = append(series, name)
		default:
			moreSeries++ // may count a repeat beyond the cap: it is a log line
		}
	}
	if moreSeries > 0 {
		series = append(series, fmt.Sprintf("… %d more", moreSeries))
	}
	s.lossLog.Warn().Str(keyGateway, b.Gateway).Uint64(keyEpoch, b.Epoch).Uint64(keySeq, b.Seq).
		Str(keyReason, strings.Join(reasons, ",")).Int("records", len(b.Losses)).
		Uint64("lost_readings", readings).Uint64("lost_alerts", alerts).Strs("series", series).
		Msg("gateway reports lost data; recorded in gaps")
}

func (s *Service) handleStatus(m mqtt.Message) {
	st, err := parseStatus(s.opts.TopicPrefix, m.Topic(), m.Payload(), s.now(), s.opts.MaxFutureSkew)
	switch {
	case errors.Is(err, errSkip):
		m.Ack()
		return
	case err != nil:
		s.deadLetter(m, rejectReason(err))
		return
	}
	// The live events send a status only if the store recorded it, as
	// it recorded it (StatusRecorder); a store that cannot say is taken
	// to have recorded it as it came.
	var (
		rec      GatewayStatus
		recorded bool
	)
	sr, _ := s.store.(StatusRecorder)
	err = s.retry(func(ctx context.Context) error {
		if sr != nil {
			var err error
			rec, recorded, err = sr.RecordGatewayStatus(ctx, st.gateway, st.state, st.at, m.Payload(), st.labels)
			return err
		}
		updated := st.at
		if updated.IsZero() {
			updated = s.now()
		}
		rec, recorded = GatewayStatus{Gateway: st.gateway, State: st.state, UpdatedAt: updated.UTC(), Payload: m.Payload()}, true
		return s.store.SetGatewayStatus(ctx, st.gateway, st.state, st.at, m.Payload(), st.labels)
	}, nil)
	switch {
	case errors.Is(err, ErrInvalidData):
		s.deadLetter(m, err.Error())
		return
	case err != nil:
		return
	}
	m.Ack()
	s.stats.statuses.Add(1)
	s.log.Debug().Str(keyGateway, st.gateway).Str("state", st.state).Bool("recorded", recorded).Msg("gateway status")
	if recorded {
		s.publishStatus(rec)
		if s.courier != nil {
			s.courier.status(rec.Gateway, rec.State, rec.UpdatedAt)
		}
	}
}

// deadLetter stores a message that can never be stored normally, then acks
// it. Only the first DeadLetterPayloadLimit bytes of the payload are kept.
// It reports whether the message was acked (false: closing, left
// unacked).
func (s *Service) deadLetter(m mqtt.Message, reason string) bool {
	payload := m.Payload()
	if len(payload) > DeadLetterPayloadLimit {
		reason += fmt.Sprintf(" (payload cut to %d of %d bytes)", DeadLetterPayloadLimit, len(payload))
		payload = payload[:DeadLetterPayloadLimit]
	}
	reason = deadLetterReason(reason)
	err := s.retry(func(ctx context.Context) error {
		return s.store.DeadLetter(ctx, m.Topic(), reason, payload)
	}, nil)
	switch {
	case errors.Is(err, ErrInvalidData):
		// Nowhere left to keep it: drop it loudly rather than stall.
		s.errLog.Error().Err(err).Str(keyTopic, m.Topic()).Str(keyReason, reason).Msg("dead letter refused by the database; message dropped")
	case err != nil:
		return false // closing: left unacked
	}
	m.Ack()
	s.stats.deadLetters.Add(1)
	s.errLog.Warn().Str(keyTopic, m.Topic()).Str(keyReason, reason).Int("bytes", len(m.Payload())).Msg("message dead-lettered")
	return true
}

func rejectReason(err error) string {
	var r *rejectError
	if errors.As(err, &r) {
		return r.reason
	}
	return err.Error()
}

// retry calls f until it succeeds, fails with ErrInvalidData, or Close
// gives up on the workers. A failing database is retried with backoff for as
// long as it fails: the message stays unacked meanwhile, the queue fills,
// and the broker holds further messages. Giving up on a message instead
// would leave it unacked for good; with a clean session the broker does not
// resend it, and enough of them fill the broker's in-flight window for this
// client (Mosquitto: 20) and stop delivery until the next reconnect.
func (s *Service) retry(f func(ctx context.Context) error, b *outpost.Batch) error {
	delay := retryBase
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(s.workCtx, storeTimeout)
		err := f(ctx)
		cancel()
		if err == nil {
			s.dbFailing.Store(false)
			return nil
		}
		if errors.Is(err, ErrInvalidData) {
			s.dbFailing.Store(false) // the database answered
			return err
		}
		if s.workCtx.Err() != nil {
			return s.workCtx.Err()
		}
		s.stats.errors.Add(1)
		s.dbFailing.Store(true)
		ev := s.errLog.Error().Err(err).Int(keyAttempt, attempt).Dur("retry_in", delay)
		if b != nil {
			ev = ev.Str(keyGateway, b.Gateway).Uint64(keyEpoch, b.Epoch).Uint64(keySeq, b.Seq)
		}
		ev.Msg("store failed; retrying")
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-s.workCtx.Done():
			t.Stop()
			return s.workCtx.Err()
		}
		delay = min(2*delay, retryMax)
	}
}

// publishAck tells the gateway that the batch is stored, in an ack
// signed with key, the gateway's key that verified the batch (nil: an
// unsigned ack). The worker does not wait for the broker's PUBACK:
// while paho's router is blocked in onMessage (a full queue), paho
// cannot read PUBACKs either, so a worker waiting here would hold up the
// very queue that blocks the router. The ack tracker waits instead. A
// lost ack costs a resend, acked as a duplicate.
func (s *Service) publishAck(b *outpost.Batch, key *outpost.Key) {
	a := outpost.Ack{Version: outpost.AckVersion, Epoch: b.Epoch, Seqs: []uint64{b.Seq}}
	var p []byte
	if key != nil {
		p = a.AppendSigned(nil, key, b.Gateway)
	} else {
		var err error
		if p, err = a.MarshalMsg(nil); err != nil { // cannot happen for this type; never ignore it either
			s.errLog.Error().Err(err).Msg("encode ack")
			return
		}
	}
	topic := s.opts.TopicPrefix + "/" + b.Gateway + "/" + topicAck
	pa := pendingAck{tok: s.publish(topic, p), deadline: time.Now().Add(ackPublishTimeout), topic: topic, seq: b.Seq}
	select {
	case s.acksPending <- pa:
	case <-s.workCtx.Done():
	}
}

// pendingAck is a published app ack whose PUBACK the tracker awaits.
type pendingAck struct {
	tok      mqtt.Token
	deadline time.Time
	topic    string
	seq      uint64
}

// trackAcks waits for the PUBACK of each published ack, up to its
// deadline, and counts and logs the failures. It ends when Close closes
// acksPending (after the workers, its only senders, have stopped).
func (s *Service) trackAcks() {
	defer s.tracker.Done()
	for pa := range s.acksPending {
		s.ackBeat.BusyFor(time.Until(pa.deadline))
		var err error
		t := time.NewTimer(time.Until(pa.deadline))
		select {
		case <-pa.tok.Done():
			err = pa.tok.Error()
		case <-t.C:
			err = fmt.Errorf("no PUBACK within %v", ackPublishTimeout)
		case <-s.workCtx.Done():
			err = s.workCtx.Err()
		}
		t.Stop()
		if err != nil {
			s.stats.errors.Add(1)
			s.errLog.Warn().Err(err).Str(keyTopic, pa.topic).Uint64(keySeq, pa.seq).Msg("ack publish failed; the gateway will resend")
		}
		s.ackBeat.Idle()
	}
}
