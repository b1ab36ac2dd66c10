// Package faults injects network faults between a gateway and its broker
// for tests: a loopback TCP proxy whose links can be reset, slowed down and
// black-holed while traffic flows. Its tests run a real gateway and a real
// ingest service through such faults, and through a Mosquitto that drops
// messages or goes away for a minute, and check that the database ends with
// every reading exactly once.
package faults

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// chunkSize is the largest read forwarded as one piece.
const chunkSize = 32 << 10

// queueLen bounds the chunks in flight per direction of a link while they
// wait out the latency: beyond it the reader stops reading, and TCP's own
// flow control pushes back on the sender, as a slow path would.
const queueLen = 256

// dialTimeout bounds the connection to the target.
const dialTimeout = 5 * time.Second

// Proxy forwards TCP connections from a loopback port to a target address
// and injects faults at run time. NewProxy starts it; Close stops it and
// waits for every goroutine it started. All methods are safe for
// concurrent use.
//
// A black hole (Blackhole(true)) behaves like a network path that silently
// loses every packet, not like a stream that loses bytes: the proxy stops
// reading from both sides of every link, so nothing is forwarded and
// nothing is dropped. The senders' kernel buffers fill up and TCP flow
// control stalls them; only their own timeouts (MQTT keepalive, ack and
// connect timeouts) tell them that the path is dead. Closes do not get
// through either: an endpoint that gives up is seen by the proxy only
// once the black hole ends. New connections are accepted and connected to
// the target, but get no bytes through. When the black hole ends, what was
// held is forwarded in order (an endpoint that gave up meanwhile answers
// with a reset, as a real peer would).
type Proxy struct {
	ln     net.Listener
	target string

	latency atomic.Int64 // time.Duration added to every chunk

	mu      sync.Mutex
	links   map[*link]struct{}
	flowing chan struct{} // closed while traffic flows; open during a black hole
	closed  bool

	schedMu   sync.Mutex     // serializes ResetEvery
	resetStop chan struct{}  // closed to stop the ResetEvery loop; nil if none
	resetWG   sync.WaitGroup // the ResetEvery loop

	wg        sync.WaitGroup // accept loop and links
	closeOnce sync.Once

	accepted, dialed, dialFailures, resets, linksReset atomic.Int64
	bytesUp, bytesDown                                 atomic.Int64
}

// ProxyStats are a proxy's counters.
type ProxyStats struct {
	Accepted     int64 // connections accepted from clients
	Dialed       int64 // of which connected to the target
	DialFailures int64 // of which the target refused or did not answer
	Open         int   // links open now
	Resets       int64 // calls of Reset (by hand or by ResetEvery)
	LinksReset   int64 // links those resets closed
	BytesUp      int64 // client → target bytes written
	BytesDown    int64 // target → client bytes written
}

// NewProxy listens on a free loopback port and forwards every connection
// to target (host:port).
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faults: listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, links: make(map[*link]struct{}), flowing: make(chan struct{})}
	close(p.flowing)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is the proxy's address with the given scheme, e.g. "tcp".
func (p *Proxy) URL(scheme string) string { return scheme + "://" + p.Addr() }

// SetLatency delays every chunk by d in each direction, keeping the
// order; 0 turns it off. It applies to chunks read from now on.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(max(d, 0))) }

// Blackhole starts (on) or ends (!on) a black hole; see Proxy.
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing: // flowing now
		if on {
			p.flowing = make(chan struct{})
		}
	default: // black hole now
		if !on {
			close(p.flowing)
		}
	}
}

// Reset closes every open link on both sides with a TCP reset (linger 0),
// as a NAT box or a flaky access point dropping its state would. New
// connections are accepted as before.
func (p *Proxy) Reset() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	p.resets.Add(1)
	for _, l := range links {
		if l.close(true) {
			p.linksReset.Add(1)
		}
	}
}

// ResetEvery calls Reset every d from now on, replacing an earlier
// schedule; d <= 0 stops it.
func (p *Proxy) ResetEvery(d time.Duration) {
	p.schedMu.Lock()
	defer p.schedMu.Unlock()
	if p.resetStop != nil {
		close(p.resetStop)
		p.resetStop = nil
		p.resetWG.Wait()
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if d <= 0 || closed {
		return
	}
	stop := make(chan struct{})
	p.resetStop = stop
	p.resetWG.Add(1)
	go func() {
		defer p.resetWG.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.Reset()
			}
		}
	}()
}

// Stats returns the counters.
func (p *Proxy) Stats() ProxyStats {
	p.mu.Lock()
	open := len(p.links)
	p.mu.Unlock()
	return ProxyStats{
		Accepted:     p.accepted.Load(),
		Dialed:       p.dialed.Load(),
		DialFailures: p.dialFailures.Load(),
		Open:         open,
		Resets:       p.resets.Load(),
		LinksReset:   p.linksReset.Load(),
		BytesUp:      p.bytesUp.Load(),
		BytesDown:    p.bytesDown.Load(),
	}
}

// Close stops accepting, closes every link and the reset schedule, and
// waits for all the proxy's goroutines. Idempotent.
func (p *Proxy) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		links := make([]*link, 0, len(p.links))
		for l := range p.links {
			links = append(links, l)
		}
		p.mu.Unlock()
		p.ResetEvery(0) // after closed is set, so no schedule starts again
		err = p.ln.Close()
		for _, l := range links {
			l.close(false)
		}
		p.wg.Wait()
	})
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (e.g. out of descriptors): keep going.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.accepted.Add(1)
		l := &link{client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(l)
	}
}

// serve connects l to the target and runs its two directions.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	defer p.forget(l)
	s, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		p.dialFailures.Add(1)
		l.close(false)
		return
	}
	if !l.setServer(s) {
		s.Close() // reset or closed while dialing
		return
	}
	p.dialed.Add(1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		p.pump(l, l.client, s, &p.bytesUp)
	}()
	go func() {
		defer wg.Done()
		p.pump(l, s, l.client, &p.bytesDown)
	}()
	wg.Wait()
}

func (p *Proxy) forget(l *link) {
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// gate returns the channel that is closed while traffic flows.
func (p *Proxy) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flowing
}

// wait blocks while a black hole lasts; false if the link closed meanwhile.
func (p *Proxy) wait(l *link) bool {
	select {
	case <-p.gate():
		return true
	case <-l.done:
		return false
	}
}

type chunk struct {
	b   []byte
	due time.Time
}

// pump forwards one direction of l: a reader that stamps each chunk with
// its due time, and a writer that waits for it, so latency delays the data
// without limiting the throughput. When src ends (EOF or error), what was
// read is still delivered, then the whole link closes.
func (p *Proxy) pump(l *link, src, dst net.Conn, count *atomic.Int64) {
	q := make(chan chunk, queueLen)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // writer
		defer wg.Done()
		defer l.close(false)
		t := time.NewTimer(0)
		defer t.Stop()
		for c := range q {
			if d := time.Until(c.due); d > 0 {
				t.Reset(d)
				select {
				case <-t.C:
				case <-l.done:
					return
				}
			}
			if !p.wait(l) {
				return
			}
			if _, err := dst.Write(c.b); err != nil {
				return
			}
			count.Add(int64(len(c.b)))
		}
	}()
	defer wg.Wait()
	defer close(q)
	for {
		if !p.wait(l) {
			return
		}
		b := make([]byte, chunkSize)
		n, err := src.Read(b)
		if n > 0 {
			select {
			case q <- chunk{b: b[:n], due: time.Now().Add(time.Duration(p.latency.Load()))}:
			case <-l.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// link is one proxied connection: the client's side and the target's.
type link struct {
	client net.Conn

	mu     sync.Mutex
	server net.Conn // nil until dialed
	closed bool
	done   chan struct{} // closed by close
}

// setServer records the target's side; false if l closed meanwhile.
func (l *link) setServer(s net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.server = s
	return true
}

// close closes both sides, with a TCP reset if rst; false if l was closed
// already.
func (l *link) close(rst bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.closed = true
	close(l.done)
	for _, c := range []net.Conn{l.client, l.server} {
		if c == nil {
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok && rst {
			tc.SetLinger(0) //nolint:errcheck // best effort: a plain close still ends the link
		}
		c.Close()
	}
	return true
}
