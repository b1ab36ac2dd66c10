package faults

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

func TestProxyForwards(t *testing.T) {
	p := newTestProxy(t, echoServer(t))
	c := dial(t, p)
	for i := range 100 {
		msg := fmt.Appendf(nil, "message %d\n", i)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		expect(t, c, msg)
	}
	// The echo can come back before the proxy counted it.
	waitUntil(t, "the bytes counted", func() bool {
		st := p.Stats()
		return st.BytesUp == st.BytesDown && st.BytesUp > 0
	})
	if st := p.Stats(); st.Accepted != 1 || st.Dialed != 1 || st.Open != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestProxyLatencyKeepsOrder(t *testing.T) {
	p := newTestProxy(t, echoServer(t))
	// expect waits 5 s: ten times this latency's round trip, and far less
	// than 200 chunks would take if each waited for the one before.
	const lat = 500 * time.Millisecond
	p.SetLatency(lat)
	c := dial(t, p)
	var want bytes.Buffer
	start := time.Now()
	// Many small writes: each is its own chunk (or a few are coalesced),
	// and all of them must come back in order.
	for i := range 200 {
		msg := fmt.Appendf(nil, "%d,", i)
		want.Write(msg)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, c, want.Bytes())
	if rtt := time.Since(start); rtt < 2*lat {
		t.Errorf("round trip %v through %v latency each way", rtt, lat)
	}
	// Turned off, it is off: with an hour's latency still in force,
	// expect would give up.
	p.SetLatency(time.Hour)
	p.SetLatency(0)
	if _, err := c.Write([]byte("fast")); err != nil {
		t.Fatal(err)
	}
	expect(t, c, []byte("fast"))
}

func TestProxyReset(t *testing.T) {
	p := newTestProxy(t, echoServer(t))
	c := dial(t, p)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	expect(t, c, []byte("x"))
	p.Reset()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after reset: %d bytes, %v", n, err)
	}
	waitUntil(t, "the reset link forgotten", func() bool { return p.Stats().Open == 0 })
	// New connections still work.
	c2 := dial(t, p)
	if _, err := c2.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	expect(t, c2, []byte("y"))
	if st := p.Stats(); st.Resets != 1 || st.LinksReset != 1 || st.Accepted != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestProxyResetEvery(t *testing.T) {
	p := newTestProxy(t, echoServer(t))
	p.ResetEvery(20 * time.Millisecond)
	waitUntil(t, "three resets", func() bool { return p.Stats().Resets >= 3 })
	p.ResetEvery(0)
	n := p.Stats().Resets
	c := dial(t, p)
	for range 20 { // ~ 10 periods of the stopped schedule
		if _, err := c.Write([]byte("z")); err != nil {
			t.Fatal(err)
		}
		expect(t, c, []byte("z"))
		time.Sleep(10 * time.Millisecond)
	}
	if m := p.Stats().Resets; m != n {
		t.Errorf("%d resets after ResetEvery(0)", m-n)
	}
}

func TestProxyBlackhole(t *testing.T) {
	p := newTestProxy(t, echoServer(t))
	c := dial(t, p)
	p.Blackhole(true)
	p.Blackhole(true) // idempotent
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, c)
	// A connection made during the black hole is accepted and connected,
	// but nothing gets through either.
	c2 := dial(t, p)
	waitUntil(t, "the second link dialed", func() bool { return p.Stats().Dialed == 2 })
	if _, err := c2.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	expectNothing(t, c2)
	if st := p.Stats(); st.BytesUp != 0 || st.BytesDown != 0 {
		t.Errorf("bytes crossed the black hole: %+v", st)
	}
	// Nothing was dropped: the held bytes arrive, in order, after it ends.
	if _, err := c.Write([]byte(" more")); err != nil {
		t.Fatal(err)
	}
	p.Blackhole(false)
	p.Blackhole(false)
	expect(t, c, []byte("held more"))
	expect(t, c2, []byte("second"))
}

func TestProxyTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := newTestProxy(t, addr)
	c := dial(t, p)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read through a proxy to nowhere: %d bytes, %v", n, err)
	}
	if st := p.Stats(); st.DialFailures != 1 || st.Dialed != 0 {
		t.Errorf("stats %+v", st)
	}
}

// Close ends open links, even black-holed ones with data held, and a
// reset schedule; goleak (TestMain) checks nothing is left.
func TestProxyClose(t *testing.T) {
	p, err := NewProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	p.SetLatency(time.Hour)
	p.ResetEvery(time.Hour)
	c := dial(t, p)
	if _, err := c.Write([]byte("delayed for an hour")); err != nil {
		t.Fatal(err)
	}
	p.Blackhole(true)
	c2 := dial(t, p)
	if _, err := c2.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "two links", func() bool { return p.Stats().Dialed == 2 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	p.ResetEvery(time.Millisecond) // after Close: starts nothing
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Error("the proxy accepts after Close")
	}
}

// newTestProxy starts a proxy to target, closed at the test's end.
func newTestProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close proxy: %v", err)
		}
	})
	return p
}

// echoServer listens on loopback and echoes every connection until the
// test ends; it returns the address.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c) //nolint:errcheck // ends when either side closes
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// expect reads exactly want from c within 5 s.
func expect(t *testing.T, c net.Conn, want []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read %q: %v (got %q)", want, err, got)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// expectNothing checks that no byte arrives on c for a while. This is the
// one place a wait stands for an assertion: absence can only be observed
// over time. It is short, and a failure would be a byte that arrived.
func expectNothing(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	b := make([]byte, 64)
	if n, err := c.Read(b); n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %q, %v through the black hole", b[:n], err)
	}
	c.SetReadDeadline(time.Time{})
}

// waitUntil polls cond every 5 ms for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
