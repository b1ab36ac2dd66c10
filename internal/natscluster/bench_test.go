package natscluster

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/config"
	"github.com/outposthq/outpost/gateway"
	"github.com/outposthq/outpost/internal/drainbench"
	"github.com/outposthq/outpost/internal/testenv"
)

// BenchmarkCluster measures the cloud side on a 3-node cluster on this
// machine: three gateways over MQTT, one per node, each with simulated
// sensors offering up to 600 000 readings/s each (what the cores leave them)
// in batches of 5 000, into
// outpost-ingest processes on the stream (PostgreSQL with
// OUTPOST_TEST_PG, else SQLite). It reports the readings/s the ingest
// processes committed (their /metrics) over 10 s after a 3 s warm-up,
// with the stream kept on 1 or 3 nodes and 1 or 2 ingest processes.
//
//	OUTPOST_TEST_PG=… go test -run '^$' -bench Cluster -benchtime 1x ./internal/natscluster/
func BenchmarkCluster(b *testing.B) {
	for _, replicas := range []int{1, 3} {
		for _, ingests := range []int{1, 2} {
			b.Run(fmt.Sprintf("stream-replicas=%d/ingest=%d", replicas, ingests), func(b *testing.B) {
				for range b.N {
					benchCluster(b, replicas, ingests, false)
				}
			})
		}
	}
	// A node killed under load: how far the stream's lag rises and how
	// long it takes to come back.
	b.Run("stream-replicas=3/ingest=2/node-killed", func(b *testing.B) {
		for range b.N {
			benchCluster(b, 3, 2, true)
		}
	})
}

func benchCluster(b *testing.B, replicas, ingests int, kill bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := newCluster(b)
	for i := range 3 {
		c.start(i)
	}
	c.waitReady(ctx)
	db := testenv.DB(b)
	prefix := fmt.Sprintf("outpost-clusterbench/%d", time.Now().UnixNano())
	stream := fmt.Sprintf("BENCH_%d", time.Now().UnixNano())
	ports := freePorts(b, ingests)
	var metricsURLs []string
	for i := range ingests {
		addr := fmt.Sprintf("127.0.0.1:%d", ports[i])
		c.startIngest(ctx, fmt.Sprint(i), db, prefix, stream, replicas, "--http", addr, "--log-level", "info")
		metricsURLs = append(metricsURLs, "http://"+addr+"/metrics")
	}
	env := []config.Metric{
		{Name: "temperature", Unit: "Cel", Signal: config.Signal{Kind: config.SignalRandomWalk, Base: 21, Step: 0.02, Resolution: 0.01, Seed: 1}},
		{Name: "humidity", Unit: "%RH", Signal: config.Signal{Kind: config.SignalRandomWalk, Base: 45, Step: 0.05, Resolution: 0.01, Seed: 2}},
		{Name: "pressure", Unit: "Pa", Signal: config.Signal{Kind: config.SignalSine, Base: 101325, Amplitude: 150, Period: 10 * time.Minute, Noise: 2, Resolution: 1}},
	}
	var gws []*gateway.Gateway
	for i := range 3 {
		gws = append(gws, c.startGateway(ctx, fmt.Sprintf("gw-%d", i+1), i, prefix, 5000,
			config.Sensor{ID: "dev1", Driver: config.SimDriver, Interval: 10 * time.Millisecond, Samples: clusterSamples, Metrics: env},
			config.Sensor{ID: "dev2", Driver: config.SimDriver, Interval: 10 * time.Millisecond, Samples: clusterSamples, Metrics: env}))
	}
	emitted := func() (n int64) {
		for _, g := range gws {
			n += g.Stats().ReadingsEmitted
		}
		return n
	}

	time.Sleep(3 * time.Second)
	before := drainbench.ReadCPU()
	r0, _ := scrape(metricsURLs)
	e0 := emitted()
	t0 := time.Now()
	if !kill {
		time.Sleep(10 * time.Second)
	} else {
		killNode(b, c, metricsURLs, gws)
	}
	r1, _ := scrape(metricsURLs)
	e1 := emitted()
	el := time.Since(t0)
	after := drainbench.ReadCPU()
	busy, self, _, pg := before.Cores(after)
	b.ReportMetric((r1-r0)/el.Seconds(), "readings/s")
	b.ReportMetric(float64(e1-e0)/el.Seconds(), "emitted/s")
	b.ReportMetric(busy, "cores-busy")
	b.ReportMetric(self, "cores-gateways")
	b.ReportMetric(pg, "cores-postgres")
	b.ReportMetric(0, "ns/op")
}

// killNode kills node 3 under load and restarts it 5 s later, sampling
// every 250 ms, and reports how long the ingest processes committed
// less than a tenth of their rate before the kill (the stall), the
// stream's peak lag, and how long after the kill both the commit rate
// (over a second) was back within 10 % of it and the gateways' outboxes
// held no more than before.
func killNode(b *testing.B, c *cluster, urls []string, gws []*gateway.Gateway) {
	backlog := func() (n int) {
		for _, g := range gws {
			st := g.Stats().Outbox
			n += st.Batches[0] + st.Batches[1]
		}
		return n
	}
	r0, _ := scrape(urls)
	time.Sleep(2 * time.Second)
	r1, _ := scrape(urls)
	rate := (r1 - r0) / 2
	base := backlog()
	c.nodes[2].kill()
	killed := time.Now()
	restarted := false
	type sample struct {
		at time.Duration
		n  float64
	}
	var samples []sample
	var stall, lowSince, back time.Duration
	lowSince = -1
	peakLag := 0
	for time.Since(killed) < 90*time.Second {
		time.Sleep(250 * time.Millisecond)
		at := time.Since(killed)
		if !restarted && at >= 5*time.Second {
			c.start(2)
			restarted = true
		}
		n, err := scrape(urls)
		if err != nil {
			continue
		}
		samples = append(samples, sample{at, n})
		peakLag = max(peakLag, lagNow(urls))
		// The rate over the last second.
		k := len(samples) - 1
		for k > 0 && at-samples[k].at < time.Second {
			k--
		}
		if at-samples[k].at < time.Second {
			continue
		}
		r := (n - samples[k].n) / (at - samples[k].at).Seconds()
		switch {
		case r < rate/10 && lowSince < 0:
			lowSince = samples[k].at
		case r >= rate/10 && lowSince >= 0:
			stall = max(stall, at-lowSince)
			lowSince = -1
		}
		if restarted && r >= 0.9*rate && backlog() <= base+2 {
			back = at
			break
		}
	}
	b.ReportMetric(rate, "rate-before-readings/s")
	b.ReportMetric(stall.Seconds(), "stall-s")
	b.ReportMetric(back.Seconds(), "back-s")
	b.ReportMetric(float64(peakLag), "lag-peak-messages")
}

// scrape sums outpost_ingest_readings_total over the ingest processes.
// clusterSamples is each poll's samples per metric: 6 series × 1 000
// every 10 ms per gateway.
const clusterSamples = 1000

func scrape(urls []string) (float64, error) {
	var sum float64
	for _, u := range urls {
		v, err := metric(u, "outpost_ingest_readings_total")
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// lagNow is the stream's pending messages as the first process sees it
// (every process reports the consumer's figure), plus what it has
// taken and not acked; -1 if it cannot tell.
func lagNow(urls []string) int {
	p, err := metric(urls[0], "outpost_ingest_stream_pending_messages")
	if err != nil {
		return -1
	}
	a, _ := metric(urls[0], "outpost_ingest_stream_ack_pending_messages")
	return int(p + a)
}

func metric(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", url, name)
}
