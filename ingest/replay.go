package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// ReplayOptions say what Replay takes from a JetStream stream.
type ReplayOptions struct {
	// NATS is the server URL; Username, Password and TLS log in to it.
	NATS               string
	Username, Password string
	TLS                *tls.Config
	// Stream is the stream's name. Default DefaultStreamName.
	Stream string
	// TopicPrefix is the gateways' topic prefix. Default
	// DefaultTopicPrefix.
	TopicPrefix string
	// From is where the replay starts: FromSeq, a stream sequence, or
	// else FromTime, the time the stream stored a message; neither: the
	// stream's first message.
	FromSeq  uint64
	FromTime time.Time
	// To is where it ends, included: ToSeq, or else ToTime; neither: the
	// last message the stream held when the replay started.
	ToSeq  uint64
	ToTime time.Time
	// Follow keeps reading after the end of the stream, as messages come,
	// until ctx ends (or To is reached): a second, independent consumer
	// of the stream, such as a second database kept current.
	Follow bool
	// Auth and Keys check the batches' MACs as the live service does.
	Auth   AuthMode
	Keys   *Keys
	Logger zerolog.Logger
}

// ReplayStats are what a replay did.
type ReplayStats struct {
	Stats
	// Messages is the stream messages taken; FirstSeq and LastSeq the
	// stream sequences of the first and the last (0: none).
	Messages          int64
	FirstSeq, LastSeq uint64
}

// replaySpec is a running replay's range and progress.
type replaySpec struct {
	opts        *ReplayOptions
	done        chan struct{} // closed when the range is read
	first, last uint64        // owned by the intake until done
}

// Replay reads a range of the stream and stores its batches and
// statuses in store, as the live service does but without acking
// anybody: with an ordered consumer of its own, so that the live
// consumer is not touched. Against an empty database it gives the rows
// the live service wrote; against a database that holds some of them
// already, it adds what is missing (batches are deduplicated on
// (gateway, epoch, seq)). One worker commits, in stream order.
func Replay(ctx context.Context, store Store, ro *ReplayOptions) (ReplayStats, error) {
	if ro == nil || ro.NATS == "" {
		return ReplayStats{}, errors.New("ingest: replay: no NATS URL")
	}
	if ro.FromSeq > 0 && !ro.FromTime.IsZero() || ro.ToSeq > 0 && !ro.ToTime.IsZero() {
		return ReplayStats{}, errors.New("ingest: replay: give a start sequence or a start time, an end sequence or an end time, not both")
	}
	svc := New(store, &Options{
		NATS: ro.NATS, Username: ro.Username, Password: ro.Password, TLS: ro.TLS,
		Stream: StreamOptions{Name: ro.Stream}, TopicPrefix: ro.TopicPrefix, Group: "replay",
		Workers: 1, CompactEvery: -1, MaintainEvery: -1,
		Auth: ro.Auth, Keys: ro.Keys, Logger: ro.Logger,
	})
	rs := &replaySpec{opts: ro, done: make(chan struct{})}
	svc.replay = rs
	if err := svc.Start(ctx); err != nil {
		return ReplayStats{}, err
	}
	var err error
	select {
	case <-rs.done:
	case <-ctx.Done():
		if !ro.Follow {
			err = fmt.Errorf("ingest: replay: %w", ctx.Err())
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if cerr := svc.Close(cctx); cerr != nil && err == nil {
		err = cerr
	}
	st := ReplayStats{Stats: svc.Stats(), Messages: svc.natsTaken.Load()}
	if err == nil {
		// The intake has ended (Close waited for it).
		st.FirstSeq, st.LastSeq = rs.first, rs.last
	}
	return st, err
}

// startReplay makes the replay's ordered consumer on the existing stream
// and starts its intake.
func (s *Service) startReplay(ctx context.Context, js jetstream.JetStream) error {
	// A replay acks nobody: the gateways had their acks.
	s.publish = func(string, []byte) mqtt.Token { return &doneToken{} }
	ro := s.replay.opts
	name := s.opts.Stream.Name
	stream, err := js.Stream(ctx, name)
	if err != nil {
		return fmt.Errorf("ingest: replay: stream %s: %w", name, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("ingest: replay: stream %s: %w", name, err)
	}
	end := info.State.LastSeq
	switch {
	case ro.Follow && ro.ToSeq > 0:
		end = ro.ToSeq
	case ro.Follow:
		end = math.MaxUint64
	case ro.ToSeq > 0:
		end = min(end, ro.ToSeq)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: s.opts.natsSubjects(), DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case ro.FromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, ro.FromSeq
	case !ro.FromTime.IsZero():
		t := ro.FromTime
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	cons, err := js.OrderedConsumer(ctx, name, cfg)
	if err != nil {
		return fmt.Errorf("ingest: replay: consumer: %w", err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("ingest: replay: consumer: %w", err)
	}
	s.subscribed.Store(true)
	if !ro.Follow && ci.NumPending == 0 || end == 0 || ro.FromSeq > end {
		close(s.replay.done) // nothing in the range
		return nil
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("ingest: replay: %w", err)
	}
	s.mu.Lock()
	s.natsIter = it
	s.mu.Unlock()
	s.intake.Add(1)
	go s.replayIntake(it, end)
	return nil
}

// replayIntake hands the range's messages to the worker, then closes
// done: at the end sequence, at the first message past the end time, or
// when the consumer has nothing more.
func (s *Service) replayIntake(it jetstream.MessagesContext, end uint64) {
	defer s.intake.Done()
	rs := s.replay
	defer close(rs.done)
	for {
		m, ok := s.nextMsg(it)
		if !ok {
			return
		}
		md, err := m.Metadata()
		if err != nil {
			s.errLog.Warn().Err(err).Msg("nats: replay: a message without metadata, skipped")
			continue
		}
		seq := md.Sequence.Stream
		if seq > end || !rs.opts.ToTime.IsZero() && md.Timestamp.After(rs.opts.ToTime) {
			return
		}
		s.natsTaken.Add(1)
		if !s.enqueue(&natsMessage{m: m, topic: subjectToTopic(m.Subject()), log: &s.errLog, settled: &s.natsSettled, noAck: true}) {
			return
		}
		if rs.first == 0 {
			rs.first = seq
		}
		rs.last = seq
		if seq == end || !rs.opts.Follow && md.NumPending == 0 {
			return
		}
	}
}
