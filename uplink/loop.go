package uplink

import (
	"context"
	"slices"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
)

// flight is one published batch awaiting its ack.
type flight struct {
	lane    int
	backlog bool
	data    []byte // what was published; resends send the same bytes
	sentAt  time.Time
}

// loop is the uplink's single-goroutine state: what is in flight and how far
// each stream has been read. Only run touches it.
//
// Telemetry is read as two streams. Batches stored before the current
// connection came up (seq <= boundary) are the backlog: they are marked
// historical and go out only when no fresh batch is waiting, within the
// backlog bandwidth budget, and never fill the whole window. Fresh batches
// (seq > boundary) go right after alerts, so dashboards and rules in the
// cloud see the present first after an outage.
type loop struct {
	u        *Uplink
	inflight map[uint64]*flight
	alertCur uint64 // highest alert seq read
	liveCur  uint64 // highest fresh telemetry seq read
	backCur  uint64 // highest backlog seq read
	boundary uint64 // telemetry seq <= boundary is backlog
	bucket   bucket
	buf      []Stored
	del      []uint64
	errs     int
	gen      int64 // connGen when in-flight batches were last (re)sent
	// draining: Drain was called. No slot is kept for fresh batches, and
	// an unacked batch is resent when its ack timeout passes, not at the
	// next tick.
	draining bool

	lastResendLog  time.Time
	resentSinceLog int
}

func (u *Uplink) run(ctx context.Context) {
	l := &loop{u: u, inflight: make(map[uint64]*flight)}
	l.bucket = bucket{rate: float64(u.opt.BacklogBandwidth)}
	tick := time.NewTicker(max(u.opt.AckTimeout/4, 10*time.Millisecond))
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		u.sendBeat.Idle()
		select {
		case <-ctx.Done():
			return
		case <-u.wake: // fill notices a new connection
		case seqs := <-u.acks:
			u.sendBeat.Busy()
			l.del = append(l.del[:0], seqs...)
			// Take every ack already queued, so one transaction deletes them all.
			for more := true; more; {
				select {
				case s := <-u.acks:
					l.del = append(l.del, s...)
				default:
					more = false
				}
			}
			l.ack(l.del)
		case <-u.store.Notify():
		case <-tick.C:
			u.sendBeat.Busy()
			l.resendExpired()
		case <-retry.C:
			u.sendBeat.Busy()
			if l.draining {
				l.resendExpired()
			}
		}
		u.sendBeat.Busy()
		if !l.draining && u.draining.Load() {
			l.draining = true
			l.resendExpired()
		}
		wait, err := l.fill()
		if err != nil {
			l.errs++
			if l.errs == 1 || l.errs%100 == 0 {
				u.log.Error().Err(err).Int("errors", l.errs).Msg("reading outbox failed; retrying")
			}
			wait = time.Second
		} else {
			l.errs = 0
		}
		if l.draining {
			if d, ok := l.nextResend(); ok && (wait <= 0 || d < wait) {
				wait = d
			}
		}
		if wait > 0 {
			retry.Reset(wait)
		}
		u.inflightN.Store(int64(len(l.inflight)))
	}
}

// connected runs after each successful connect: a clean session lost
// whatever was in flight, and everything stored by now is backlog.
func (l *loop) connected() {
	l.resendAll()
	if b := l.u.boundary.Load(); b > l.boundary {
		l.boundary = b
	}
	l.liveCur = max(l.liveCur, l.boundary)
	// Rescan the backlog from its start: batches read before but not in
	// flight any more were acked (deleted) or evicted, so what the scan
	// finds that is not in flight still needs sending.
	l.backCur = 0
}

// fill publishes stored batches until the window is full: alerts, then
// fresh telemetry, then backlog. It returns how long to wait before the
// backlog budget allows the next backlog batch (0: no need to wake up).
func (l *loop) fill() (time.Duration, error) {
	u := l.u
	if !u.connected.Load() {
		return 0, nil
	}
	if g := u.connGen.Load(); g != l.gen {
		l.gen = g
		l.connected()
	}
	var err error
	// Alerts and loss records: all of them, in order.
	if l.alertCur, err = l.stream(LaneAlert, l.alertCur, 0, false); err != nil {
		return 0, err
	}
	// Fresh telemetry.
	if l.liveCur, err = l.stream(LaneTelemetry, l.liveCur, 0, false); err != nil {
		return 0, err
	}
	if u.opt.Window-len(l.inflight) <= 0 {
		return 0, nil
	}
	return l.fillBacklog()
}

// alertSlots is how many alert batches (and loss records) may be in
// flight beyond the window: a window full of telemetry, which frees a
// slot only at the next ack, never holds an alert back.
const alertSlots = 8

// stream publishes batches of lane with seq > after (and <= until, when
// until > 0) while the window has room (with alertSlots more for the
// alert lane), and returns the new cursor.
func (l *loop) stream(lane int, after, until uint64, backlog bool) (uint64, error) {
	u := l.u
	limit := u.opt.Window
	if lane == LaneAlert {
		limit = u.maxInFlight()
	}
	for {
		room := limit - len(l.inflight)
		if room <= 0 {
			return after, nil
		}
		var err error
		l.buf, err = u.store.Next(lane, after, room, l.buf[:0])
		if err != nil {
			return after, err
		}
		for _, s := range l.buf {
			if until > 0 && s.Seq > until {
				return after, nil
			}
			after = s.Seq
			l.send(lane, s, backlog)
		}
		if len(l.buf) < room {
			return after, nil
		}
	}
}

// fillBacklog sends backlog batches while the window keeps a slot free for
// fresh batches and the bandwidth budget allows.
func (l *loop) fillBacklog() (time.Duration, error) {
	u := l.u
	reserve := max(1, u.opt.Window/8)
	if u.opt.Window == 1 || l.draining {
		reserve = 0 // nothing fresh is coming while draining
	}
	for l.backCur < l.boundary {
		room := u.opt.Window - reserve - len(l.inflight)
		if room <= 0 {
			return 0, nil
		}
		if l.bucket.rate > 0 {
			room = 1 // the budget is checked per batch
		}
		now := u.opt.Now()
		if wait := l.bucket.wait(now); wait > 0 {
			return wait, nil
		}
		var err error
		l.buf, err = u.store.Next(LaneTelemetry, l.backCur, room, l.buf[:0])
		if err != nil {
			return 0, err
		}
		for _, s := range l.buf {
			if s.Seq > l.boundary {
				break
			}
			l.backCur = s.Seq
			if _, ok := l.inflight[s.Seq]; ok {
				continue // resent by connected() already
			}
			l.send(LaneTelemetry, s, true)
			l.bucket.take(now, len(l.inflight[s.Seq].data))
		}
		if len(l.buf) < room || l.buf[len(l.buf)-1].Seq > l.boundary {
			l.backCur = l.boundary // the backlog is drained
		}
	}
	return 0, nil
}

// send puts a stored batch in flight and publishes it.
func (l *loop) send(lane int, s Stored, backlog bool) {
	if _, ok := l.inflight[s.Seq]; ok {
		return // already in flight (read again by a rescan)
	}
	f := &flight{lane: lane, backlog: backlog, data: s.Data}
	if backlog {
		f.data = outpost.SetHistorical(s.Data)
		l.u.backlog.Add(1)
	}
	if k := l.u.opt.Key; k != nil {
		// Signed once per send: resends reuse the signed bytes.
		f.data = outpost.SignBatch(make([]byte, 0, len(f.data)+outpost.SignedOverhead), k, l.u.opt.Gateway, f.data)
	}
	l.inflight[s.Seq] = f
	l.publish(s.Seq, f)
}

func (l *loop) publish(seq uint64, f *flight) {
	u := l.u
	f.sentAt = u.opt.Now()
	t := u.client.Publish(u.batchTopic, 1, false, f.data)
	u.published.Add(1)
	u.bytes.Add(int64(len(f.data)))
	if f.backlog {
		u.backlogBytes.Add(int64(len(f.data)))
	}
	if u.opt.Ack == AckBroker {
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			u.waitPuback(t, seq)
		}()
	}
}

// waitPuback turns a PUBACK into an ack, for AckBroker mode. Close does
// not wait for PUBACKs: the run loop is gone by then, so a late one could
// not delete its batch anyway, and the batch is resent after a restart.
func (u *Uplink) waitPuback(t mqtt.Token, seq uint64) {
	timeout := time.NewTimer(u.opt.AckTimeout)
	defer timeout.Stop()
	select {
	case <-t.Done():
	case <-timeout.C:
		return // the ack timeout resends it
	case <-u.stop:
		return
	}
	if t.Error() != nil {
		return // the ack timeout resends it
	}
	select {
	case u.acks <- []uint64{seq}:
	case <-u.stop:
	}
}

func (l *loop) ack(seqs []uint64) {
	u := l.u
	// Acks for batches not in flight still delete: they may have been sent
	// before a restart.
	if err := u.store.Delete(seqs); err != nil {
		u.log.Error().Err(err).Msg("deleting acked batches failed; they will be resent and deduplicated")
		return
	}
	for _, s := range seqs {
		if f, ok := l.inflight[s]; ok {
			if u.opt.OnAck != nil {
				u.opt.OnAck(u.opt.Now().Sub(f.sentAt))
			}
			l.land(s, f)
			u.acked.Add(1)
		}
	}
}

// land takes a batch out of the window.
func (l *loop) land(seq uint64, _ *flight) {
	delete(l.inflight, seq)
}

func (l *loop) resendExpired() {
	u := l.u
	if !u.connected.Load() {
		return
	}
	deadline := u.opt.Now().Add(-u.opt.AckTimeout)
	var n int
	for _, seq := range l.sortedInflight() {
		f := l.inflight[seq]
		if f.sentAt.Before(deadline) && l.stillStored(seq, f) {
			l.publish(seq, f)
			u.resent.Add(1)
			n++
		}
	}
	if n == 0 {
		return
	}
	// While ingest is away this happens every tick: say it once a minute.
	l.resentSinceLog += n
	if now := u.opt.Now(); now.Sub(l.lastResendLog) >= time.Minute {
		u.log.Warn().Int("batches", l.resentSinceLog).Dur("ack_timeout", u.opt.AckTimeout).
			Msg("no ack in time; resent (is the ingest service running?)")
		l.lastResendLog, l.resentSinceLog = now, 0
	}
}

// nextResend is how long until the first in-flight batch reaches its ack
// timeout; false when nothing is in flight or the uplink is disconnected
// (a reconnect resends everything in flight).
func (l *loop) nextResend() (time.Duration, bool) {
	if len(l.inflight) == 0 || !l.u.connected.Load() {
		return 0, false
	}
	var first time.Time
	for _, f := range l.inflight {
		if first.IsZero() || f.sentAt.Before(first) {
			first = f.sentAt
		}
	}
	// At least a millisecond: resendExpired takes what is due by then.
	return max(first.Add(l.u.opt.AckTimeout).Sub(l.u.opt.Now()), time.Millisecond), true
}

func (l *loop) resendAll() {
	for _, seq := range l.sortedInflight() {
		if f := l.inflight[seq]; l.stillStored(seq, f) {
			l.publish(seq, f)
			l.u.resent.Add(1)
		}
	}
}

// stillStored checks, before a resend, that the store has not evicted the
// batch meanwhile; an evicted one leaves the window, since the store
// reported it lost. On a store error it errs on the side of resending.
func (l *loop) stillStored(seq uint64, f *flight) bool {
	ok, err := l.u.store.Has(f.lane, seq)
	if err != nil || ok {
		return true
	}
	l.land(seq, f)
	l.u.dropped.Add(1)
	return false
}

func (l *loop) sortedInflight() []uint64 {
	seqs := make([]uint64, 0, len(l.inflight))
	for s := range l.inflight {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	return seqs
}

// bucket is a token bucket that may go into debt: a batch is sent when
// the balance is not negative and then costs its size, so any batch size
// works and the long-run rate is exactly the budget. rate 0 is unlimited.
type bucket struct {
	rate    float64 // bytes per second
	balance float64 // bytes; at most one second's worth
	at      time.Time
}

func (b *bucket) refill(now time.Time) {
	if !b.at.IsZero() {
		b.balance = min(b.rate, b.balance+now.Sub(b.at).Seconds()*b.rate)
	}
	b.at = now
}

// wait is how long until the balance is no longer negative.
func (b *bucket) wait(now time.Time) time.Duration {
	if b.rate <= 0 {
		return 0
	}
	b.refill(now)
	if b.balance >= 0 {
		return 0
	}
	return time.Duration(-b.balance / b.rate * float64(time.Second))
}

func (b *bucket) take(now time.Time, n int) {
	if b.rate <= 0 {
		return
	}
	b.refill(now)
	b.balance -= float64(n)
}
