package uplink

// The connection's life. One paho client serves the Uplink from Start to
// Close, with paho's own reconnecting turned off: connLoop connects,
// subscribes to acks, says online, and after a failed attempt or a lost
// connection waits a jittered, capped exponential backoff before the next
// attempt. paho allows Connect again once a connection has failed or was
// lost (its status is back to disconnected before it calls the
// connection-lost handler). Close interrupts the loop anywhere: in a
// backoff, while dialing, in the TLS or the MQTT handshake.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// logEvery is how often a repeated connection problem is logged.
const logEvery = time.Minute

func (u *Uplink) clientOptions() *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().
		AddBroker(u.opt.Broker).
		SetClientID(u.opt.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(false). // connLoop reconnects
		SetConnectRetry(false).
		// Explicit 3.1.1: otherwise paho retries a refused login with
		// MQTT 3.1 and reports the broker's answer to that instead.
		SetProtocolVersion(4).
		SetConnectTimeout(u.opt.ConnectTimeout).
		SetKeepAlive(u.opt.KeepAlive).
		// Without a PINGRESP this long after a PINGREQ the link is dead:
		// with paho's default (10 s) a 2 s keepalive noticed a black hole
		// only after 12 s.
		SetPingTimeout(pingTimeout(u.opt.KeepAlive)).
		SetWriteTimeout(u.opt.ConnectTimeout).
		SetBinaryWill(u.statusTopic, u.willJSON(), 1, true).
		SetCustomOpenConnectionFn(u.openConn).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case u.lost <- err:
			default: // one pending is enough: connLoop checks the state
			}
		})
	if u.opt.TLS != nil {
		o.SetTLSConfig(u.opt.TLS)
	}
	if u.opt.Username != "" {
		o.SetUsername(u.opt.Username)
		o.SetPassword(u.opt.Password)
	}
	return o
}

// connLoop owns the connection until ctx ends (Close or Start's context).
func (u *Uplink) connLoop(ctx context.Context) {
	fails := logLimit{every: logEvery}  // failed attempts in a row
	losses := logLimit{every: logEvery} // lost connections
	announce := true                    // log the next connect at info level
	var n, failed int                   // backoff exponent; failed attempts in a row
	defer u.connBeat.Idle()
	for {
		// An attempt ends within the connect timeout, the subscription
		// within another, and an interrupted one a second after that.
		u.connBeat.BusyFor(2*u.opt.ConnectTimeout + time.Second)
		err := u.connectOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		if err == nil {
			n, failed = 0, 0
			fails.reset()
			u.up(announce)
			announce = false
			u.connBeat.Idle() // connected: waiting for a loss is no work
			err = u.waitLost(ctx)
			u.connBeat.Busy()
			if ctx.Err() != nil {
				return
			}
			u.connected.Store(false)
			u.poke()
			err = fmt.Errorf("connection lost: %w", err)
			u.setLastError(err)
			wait = backoff(n, u.opt.BackoffInitial, u.opt.MaxReconnect, u.opt.Jitter())
			n++
			if held, ok := losses.allow(u.opt.Now()); ok {
				announce = true
				ev := u.log.Warn().Str("broker", u.broker)
				if held > 0 {
					ev = ev.Int("lost_unreported", held)
				}
				ev.Msgf("%v; the outbox keeps the data; reconnecting in %s", err, roundWait(wait))
			}
		} else {
			u.connectFailures.Add(1)
			u.setLastError(err)
			wait = backoff(n, u.opt.BackoffInitial, u.opt.MaxReconnect, u.opt.Jitter())
			n++
			failed++
			if held, ok := fails.allow(u.opt.Now()); ok {
				announce = true
				ev := u.log.Warn().Str("broker", u.broker).Int("failures", failed)
				if held > 0 {
					ev = ev.Int("failures_unreported", held)
				}
				ev.Msgf("connect to %s failed: %v; retrying in %s", u.broker, err, roundWait(wait))
			}
		}
		u.connBeat.BusyFor(wait) // backing off on schedule
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// connectOnce makes one connection attempt and, when it succeeds,
// subscribes to commands (with Options.OnCommand) and acks. A nil error
// means the connection is up.
func (u *Uplink) connectOnce(ctx context.Context) error {
	for more := true; more; { // a loss reported late for an earlier connection
		select {
		case <-u.lost:
		default:
			more = false
		}
	}
	t := u.client.Connect()
	select {
	case <-t.Done():
	case <-ctx.Done():
		// openConn's hooks end the attempt now; wait for paho's goroutine
		// so that nothing outlives Close. Only a websocket dial can take
		// until ConnectTimeout.
		t.WaitTimeout(u.opt.ConnectTimeout + time.Second)
	}
	u.releaseAttempt()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := t.Error(); err != nil {
		return connectError(t, err)
	}
	if u.opt.OnCommand != nil {
		if err := u.subscribeCommands(ctx); err != nil {
			return err
		}
	}
	if u.opt.Ack != AckIngest {
		return nil
	}
	if err := u.subscribe(ctx, u.ackTopic, u.onAck); err != nil {
		if ctx.Err() == nil {
			u.client.Disconnect(0)
		}
		return err
	}
	return nil
}

// up publishes the birth, opens the uplink to the loop and runs OnConnect.
func (u *Uplink) up(announce bool) {
	u.birth()
	// What is stored now is the backlog of this connection; taken before
	// the loop can see the connection, so a batch stored once Connected
	// reports true is fresh.
	u.boundary.Store(u.store.Last())
	n := u.connGen.Add(1)
	u.connected.Store(true)
	u.poke()
	ev := u.log.Debug()
	if announce {
		ev = u.log.Info()
	}
	ev.Str("broker", u.broker).Int64("connects", n).Msg("connected")
	if u.opt.OnConnect != nil {
		u.opt.OnConnect()
	}
}

// waitLost waits until paho reports the connection lost, or ctx ends.
// Meanwhile it keeps the status document fresh (status.go): the birth
// was published just before it, and it publishes the next ones as
// statusSchedule says.
func (u *Uplink) waitLost(ctx context.Context) error {
	sched := statusSchedule{interval: u.opt.StatusInterval, holdoff: u.opt.StatusHoldoff, last: time.Now()}
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	sched.arm(due)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-u.lost:
			// paho marks the client disconnected before it reports the
			// loss, so an open connection means a report about an
			// earlier one, delivered late.
			if u.client.IsConnectionOpen() {
				continue
			}
			if err == nil {
				err = errors.New("closed")
			}
			return err
		case <-u.statusWake:
			if !sched.changed {
				sched.changed = true
				sched.arm(due)
			}
		case <-due.C:
			// paho may hold a publish up to its write timeout.
			u.connBeat.BusyFor(u.opt.ConnectTimeout)
			u.republishStatus()
			u.connBeat.Idle()
			sched.published(time.Now())
			sched.arm(due)
		}
	}
}

// openConn opens the network connection of one of paho's connect attempts
// (paho's own dialing cannot be interrupted). Dialing and the TLS
// handshake end when the Uplink closes, and so does the MQTT handshake
// paho runs next: the hook registered here closes the connection.
// releaseAttempt removes the hooks once the attempt is over.
func (u *Uplink) openConn(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(u.ctx, o.ConnectTimeout)
	defer cancel()
	var (
		conn net.Conn
		err  error
	)
	switch uri.Scheme {
	case "tcp", "mqtt":
		var d net.Dialer
		conn, err = d.DialContext(dctx, "tcp", uri.Host)
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
		// The dialer checks the certificate against the URL's host
		// unless the config names a server.
		d := tls.Dialer{Config: o.TLSConfig}
		conn, err = d.DialContext(dctx, "tcp", uri.Host)
	case "ws", "wss":
		var tc *tls.Config
		if uri.Scheme == "wss" {
			tc = o.TLSConfig
		}
		ws := *uri
		ws.User = nil // the websocket dialer rejects credentials in the URL
		conn, err = mqtt.NewWebsocket(ws.String(), tc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
	default:
		err = fmt.Errorf("unsupported scheme %q", uri.Scheme)
	}
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(u.ctx, func() { conn.Close() })
	u.attemptMu.Lock()
	u.attemptStops = append(u.attemptStops, stop)
	u.attemptMu.Unlock()
	return conn, nil
}

// releaseAttempt unhooks the connections openConn made from Close.
func (u *Uplink) releaseAttempt() {
	u.attemptMu.Lock()
	defer u.attemptMu.Unlock()
	for _, stop := range u.attemptStops {
		stop()
	}
	u.attemptStops = u.attemptStops[:0]
}

// connectError makes paho's connect error say what went wrong: the cause
// of a network error (a TLS verification failure, a refused dial) rather
// than paho's "network Error : …", and a refused login as such.
func connectError(t mqtt.Token, err error) error {
	ct, ok := t.(*mqtt.ConnectToken)
	if !ok {
		return err
	}
	switch ct.ReturnCode() {
	case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised:
		return fmt.Errorf("login refused by the broker: %w", err)
	case packets.ErrNetworkError:
		if m, ok := err.(interface{ Unwrap() []error }); ok {
			if errs := m.Unwrap(); len(errs) > 0 && errs[len(errs)-1] != nil {
				return errs[len(errs)-1]
			}
		}
	}
	return err
}

// backoff is the wait after the n-th failed attempt in a row (n from 0):
// d = min(initial·2ⁿ, maxWait), and the wait is d/2 + r·d/2 for r in
// [0, 1), so a fleet does not reconnect in step after a broker restart.
func backoff(n int, initial, maxWait time.Duration, r float64) time.Duration {
	if initial <= 0 || maxWait <= 0 {
		return 0
	}
	d := min(initial, maxWait)
	for ; n > 0 && d < maxWait; n-- {
		if d > maxWait/2 {
			d = maxWait
		} else {
			d *= 2
		}
	}
	r = min(max(r, 0), 1)
	return d/2 + time.Duration(r*float64(d-d/2))
}

// roundWait rounds a wait for people to read.
func roundWait(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// logLimit lets the first of a run of repeated events be logged, then one
// per interval, and counts the events it held back.
type logLimit struct {
	every time.Duration
	last  time.Time
	held  int
}

// allow reports whether to log now, and how many events were held back
// since the last one logged.
func (l *logLimit) allow(now time.Time) (held int, ok bool) {
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.held++
		return 0, false
	}
	held = l.held
	l.last, l.held = now, 0
	return held, true
}

// reset starts a new run: its first event is logged.
func (l *logLimit) reset() { l.last, l.held = time.Time{}, 0 }

func (u *Uplink) setLastError(err error) {
	u.errMu.Lock()
	u.lastErr = err.Error()
	u.errMu.Unlock()
}

// pingTimeout is how long to wait for a PINGRESP: the keepalive, at most
// 10 s (paho's default), at least 1 s.
func pingTimeout(keepAlive time.Duration) time.Duration {
	return min(max(keepAlive, time.Second), 10*time.Second)
}
