package gateway

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/buffer"
)

// Shutdown stops the gateway gracefully, then closes it as Close does. It
// stops the sensors and commits the open batch and pending alerts to the
// outbox (StopSensors); then, for at most the config's shutdown grace, it
// keeps the uplink running and sending everything stored at once
// (uplink.Uplink.Drain), and returns as soon as the outbox is empty: every
// batch acked by ingest, or by its PUBACK with ack: broker. A disconnected
// uplink keeps trying to connect during the grace. Cancelling ctx ends
// the grace at once (the binary does on a second signal) and the wait
// for the offline status. What is not acked by then stays in the outbox
// and is sent at the next start; one info line says what the grace
// delivered and what is left.
//
// Before Start there is no grace. Shutdown may be called more than once,
// and along with Close; it returns Close's error.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.stopWatching()
	g.StopSensors()
	gr := g.deliver(ctx)
	return g.close(ctx, &gr)
}

// grace is what Shutdown's grace did, for its log line.
type grace struct {
	limit time.Duration // the config's shutdown grace
	took  time.Duration
	end   graceEnd
	acked int64 // batches acked during the grace
}

type graceEnd int

const (
	graceNone    graceEnd = iota // not started, or Close came first
	graceDrained                 // the outbox emptied
	graceExpired                 // the grace ran out
	graceCut                     // ctx ended it
)

// deliver runs the grace: the uplink sends what is stored until the
// outbox is empty, the grace runs out, ctx ends or Close begins.
func (g *Gateway) deliver(ctx context.Context) grace {
	gr := grace{limit: g.cfg.Grace()}
	if !g.started.Load() {
		return gr
	}
	select {
	case <-g.closing:
		return gr
	default:
	}
	start, acked := time.Now(), g.uplink.Stats().Acked
	if n := g.storedBatches(); n > 0 && gr.limit > 0 {
		g.log.Info().Int("batches", n).Bool("connected", g.uplink.Stats().Connected).Dur("grace", gr.limit).
			Msg("sensors stopped; delivering what is stored before stopping")
	}
	g.uplink.Drain()
	gr.end = g.awaitEmpty(ctx, gr.limit)
	gr.took, gr.acked = time.Since(start), g.uplink.Stats().Acked-acked
	return gr
}

// drainPoll is how often a grace checks whether the outbox is empty.
const drainPoll = 20 * time.Millisecond

func (g *Gateway) awaitEmpty(ctx context.Context, limit time.Duration) graceEnd {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	poll := time.NewTicker(drainPoll)
	defer poll.Stop()
	for g.storedBatches() > 0 {
		select {
		case <-ctx.Done():
			return graceCut
		case <-g.closing:
			return graceCut
		case <-timer.C:
			return graceExpired
		case <-poll.C:
		}
	}
	return graceDrained
}

// storedBatches counts the batches in the outbox, alerts and telemetry.
func (g *Gateway) storedBatches() int {
	st := g.outbox.Stats()
	return st.Batches[buffer.LaneAlert] + st.Batches[buffer.LaneTelemetry]
}

// leftover is what stays in the outbox for the next start.
type leftover struct {
	batches  int
	bytes    int64
	readings int // -1: not counted
}

// countLimit bounds the batches decoded at shutdown to count the readings
// left: a long backlog is not read just for a log line.
const countLimit = 256

func (g *Gateway) leftover() leftover {
	st := g.outbox.Stats()
	l := leftover{
		batches:  st.Batches[buffer.LaneAlert] + st.Batches[buffer.LaneTelemetry],
		bytes:    st.Bytes[buffer.LaneAlert] + st.Bytes[buffer.LaneTelemetry],
		readings: -1,
	}
	n := st.Batches[buffer.LaneTelemetry]
	if n == 0 {
		l.readings = 0
	}
	if n == 0 || n > countLimit {
		return l
	}
	es, err := g.outbox.Read(buffer.LaneTelemetry, 0, n, nil)
	if err != nil {
		return l
	}
	var sum int
	for _, e := range es {
		b, err := outpost.DecodeBatch(e.Data)
		if err != nil {
			return l
		}
		sum += b.Len()
	}
	l.readings = sum
	return l
}

// log finishes ev, an info event, with what the grace did and left.
func (gr *grace) log(ev *zerolog.Event, left leftover) {
	ev = ev.Int64("delivered_batches", gr.acked).Int("left_batches", left.batches).Int64("left_bytes", left.bytes)
	if left.readings >= 0 {
		ev = ev.Int("left_readings", left.readings)
	}
	if gr.end != graceNone {
		ev = ev.Dur("grace", gr.limit).Dur("took", gr.took)
	}
	switch {
	case left.batches == 0:
		ev.Msg("stopped: 0 batches left in the outbox")
	case gr.end == graceCut:
		ev.Msgf("grace cut short after %v with %d batches unacked; they are kept and sent at the next start",
			gr.took.Round(time.Millisecond), left.batches)
	case gr.end == graceNone:
		ev.Msgf("stopped with %d batches in the outbox; they are sent at the next start", left.batches)
	default:
		ev.Msgf("grace of %v ended with %d batches unacked; they are kept and sent at the next start", gr.limit, left.batches)
	}
}
