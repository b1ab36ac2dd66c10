package uplink

import (
	"context"
	"slices"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// flight is one published batch awaiting its ack.
type flight struct {
	lane   int
	data   []byte
	sentAt time.Time
}

// loop is the uplink's single-goroutine state: what is in flight and how far
// each lane has been read. Only run touches it.
type loop struct {
	u        *Uplink
	inflight map[uint64]*flight
	cursor   [2]uint64 // highest seq read from each lane
	buf      []Stored
	del      []uint64
	errs     int
	gen      int64 // connGen when in-flight batches were last (re)sent

	lastResendLog  time.Time
	resentSinceLog int
}

func (u *Uplink) run(ctx context.Context) {
	l := &loop{u: u, inflight: make(map[uint64]*flight)}
	tick := time.NewTicker(max(u.opt.AckTimeout/4, 10*time.Millisecond))
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.wake:
			if g := u.connGen.Load(); g != l.gen {
				l.gen = g
				l.resendAll() // a clean session lost whatever was in flight
			}
		case seqs := <-u.acks:
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
			l.resendExpired()
		case <-retry.C:
		}
		if err := l.fill(); err != nil {
			l.errs++
			if l.errs == 1 || l.errs%100 == 0 {
				u.log.Error().Err(err).Int("errors", l.errs).Msg("reading outbox failed; retrying")
			}
			retry.Reset(time.Second)
		} else {
			l.errs = 0
		}
		u.inflightN.Store(int64(len(l.inflight)))
	}
}

// fill publishes stored batches until the window is full: alerts first.
func (l *loop) fill() error {
	u := l.u
	if !u.connected.Load() {
		return nil
	}
	for lane := LaneAlert; lane <= LaneTelemetry; lane++ {
		room := u.opt.Window - len(l.inflight)
		if room <= 0 {
			return nil
		}
		var err error
		l.buf, err = u.store.Next(lane, l.cursor[lane], room, l.buf[:0])
		if err != nil {
			return err
		}
		for _, s := range l.buf {
			l.cursor[lane] = s.Seq
			f := &flight{lane: lane, data: s.Data}
			l.inflight[s.Seq] = f
			l.publish(s.Seq, f)
		}
		if len(l.buf) == room {
			return nil
		}
	}
	return nil
}

func (l *loop) publish(seq uint64, f *flight) {
	u := l.u
	f.sentAt = u.opt.Now()
	t := u.client.Publish(u.batchTopic, 1, false, f.data)
	u.published.Add(1)
	u.bytes.Add(int64(len(f.data)))
	if u.opt.Ack == AckBroker {
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			u.waitPuback(t, seq)
		}()
	}
}

// waitPuback turns a PUBACK into an ack, for AckBroker mode.
func (u *Uplink) waitPuback(t mqtt.Token, seq uint64) {
	if !t.WaitTimeout(u.opt.AckTimeout) || t.Error() != nil {
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
		if _, ok := l.inflight[s]; ok {
			delete(l.inflight, s)
			u.acked.Add(1)
		}
	}
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
	delete(l.inflight, seq)
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
