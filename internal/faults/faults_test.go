package faults

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/outposthq/outpost/internal/testenv"
)

// The scenarios run a real gateway (simulated sensors, bbolt outbox, MQTT
// uplink) and a real ingest service (PostgreSQL when OUTPOST_TEST_PG is
// set, else SQLite) through a broken network or a broken broker, then stop
// the sensors, wait until the outbox is empty, and check that the database
// holds every reading the gateway emitted, exactly once. Each logs its
// counts. They run in parallel, so the package takes about as long as the
// broker outage plus the drain.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// brokerOutage is how long TestBrokerDownAMinute keeps the broker down;
// 5 s with -short.
var brokerOutage = time.Minute

// Faults on the gateway's link only: the gateway goes through a proxy that
// adds latency, resets every link every 2.5 s, and black-holes all traffic
// for 8 s; ingest talks to the broker directly.
func TestResetLatencyBlackhole(t *testing.T) {
	t.Parallel()
	broker := sharedOrOwnBroker(t)
	px, err := NewProxy(hostPort(t, broker))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := px.Close(); err != nil {
			t.Errorf("close proxy: %v", err)
		}
	})
	const (
		resetEvery = 2500 * time.Millisecond
		blackhole  = 8 * time.Second
	)
	px.SetLatency(30 * time.Millisecond)
	px.ResetEvery(resetEvery)

	r := newRig(t, rigOptions{gatewayBroker: px.URL("tcp"), ingestBroker: broker})
	r.startIngest()
	r.startGateway()
	r.waitAcked("a first ack through the proxy", 0, 30*time.Second)
	hold(6 * time.Second) // latency and resets

	// The black hole: no resets meanwhile, or they would tell the gateway.
	px.ResetEvery(0)
	px.Blackhole(true)
	start := time.Now()
	before := px.Stats()
	acked := r.gw.Stats().Uplink.Acked
	noticed := time.Duration(-1)
	for time.Since(start) < blackhole {
		if noticed < 0 && !r.gw.Stats().Uplink.Connected {
			noticed = time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	during := px.Stats()
	ackedDuring := r.gw.Stats().Uplink.Acked - acked
	px.Blackhole(false)
	px.ResetEvery(resetEvery)
	if noticed >= 0 {
		t.Logf("black hole of %v: the gateway noticed after %v and made %d connection attempts into it; %d batches acked during it",
			blackhole, noticed.Round(time.Millisecond), during.Accepted-before.Accepted, ackedDuring)
	} else {
		// Not a failure of this test, whose subject is exactly-once
		// delivery: the held data arrives or is resent afterwards.
		t.Logf("black hole of %v: the gateway did not notice it (keepalive %v); %d batches acked during it",
			blackhole, r.cfg.Uplink.KeepAlive, ackedDuring)
	}
	// Acks already past the proxy when it started may land; more than a
	// window's worth would mean traffic crossed it.
	if ackedDuring > int64(r.cfg.Uplink.Window) {
		t.Errorf("%d batches acked during the black hole", ackedDuring)
	}
	r.waitAcked("an ack after the black hole", r.gw.Stats().Uplink.Acked, 30*time.Second)
	hold(4 * time.Second) // latency and resets again

	// Drain with the faults still acting.
	r.finish()
	ps := px.Stats()
	t.Logf("proxy: %d connections accepted, %d reached the broker, %d resets closed %d links, %d B up, %d B down",
		ps.Accepted, ps.Dialed, ps.Resets, ps.LinksReset, ps.BytesUp, ps.BytesDown)
	if ps.LinksReset < 2 {
		t.Errorf("only %d links were reset: the gateway did not keep reconnecting", ps.LinksReset)
	}
}

// A Mosquitto with a tiny per-client queue drops QoS 1 messages for the
// slow ingest subscriber while it still PUBACKs them to the gateway. Only
// the gateway's resend after its ack timeout brings those batches in.
func TestTinyBrokerQueue(t *testing.T) {
	t.Parallel()
	m := testenv.StartMosquitto(t, &testenv.MosquittoOptions{
		Global: "max_queued_messages 5\nmax_inflight_messages 1\nsys_interval 1",
	})
	dropped := watchSys(t, m.URL("tcp"), "$SYS/broker/publish/messages/dropped")
	// One worker and at least 150 ms a commit: under 7 batches/s, while
	// the gateway seals 10/s. The broker's queue for ingest (1 in flight,
	// 5 queued) overflows within seconds, however fast the database.
	r := newRig(t, rigOptions{
		gatewayBroker: m.URL("tcp"), ingestBroker: m.URL("tcp"),
		commitDelay: 150 * time.Millisecond, workers: 1,
	})
	r.startIngest()
	r.startGateway()
	hold(8 * time.Second)
	st, _ := r.finish()
	// $SYS topics are published every sys_interval.
	waitFor(t, "the broker's dropped count", 5*time.Second, func() bool { return dropped.n.Load() > 0 })
	t.Logf("broker dropped %d messages", dropped.n.Load())
	if st.Uplink.Resent == 0 {
		t.Errorf("the broker dropped %d messages but the gateway resent none", dropped.n.Load())
	}
}

// The broker goes away for a minute while the sensors keep running, and
// comes back on the same port with no memory (persistence off). The
// gateway and ingest must reconnect on their own, and the outbox's backlog
// must arrive exactly once.
func TestBrokerDownAMinute(t *testing.T) {
	t.Parallel()
	outage := brokerOutage
	if testing.Short() {
		outage = 5 * time.Second
	}
	m := testenv.StartMosquitto(t, nil)
	r := newRig(t, rigOptions{gatewayBroker: m.URL("tcp"), ingestBroker: m.URL("tcp")})
	r.startIngest()
	r.startGateway()
	r.waitAcked("a first ack", 0, 30*time.Second)
	hold(3 * time.Second)

	m.Stop()
	down := time.Now()
	waitFor(t, "the gateway to notice the broker is gone", 15*time.Second, func() bool { return !r.gw.Stats().Uplink.Connected })
	noticed := time.Since(down)
	acked := r.gw.Stats().Uplink.Acked
	hold(outage - noticed)
	emittedDown := r.gw.Stats().ReadingsEmitted
	m.Start()
	up := time.Now()
	// An ack means both are back: the gateway published, ingest committed.
	r.waitAcked("an ack after the broker restart", acked, 2*time.Minute)
	t.Logf("broker down %v (the gateway noticed after %v); first ack %v after the restart; %d readings emitted by then",
		up.Sub(down).Round(time.Millisecond), noticed.Round(time.Millisecond), time.Since(up).Round(time.Millisecond), emittedDown)
	hold(2 * time.Second)
	r.finish()
}
