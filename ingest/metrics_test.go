package ingest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/storetest"
	"github.com/outposthq/outpost/metrics/metricstest"
)

// scrape GETs /metrics from the service's real HTTP handler, with the
// token when it is not empty, and parses and lints the answer.
func scrape(t *testing.T, url, token string) metricstest.Scrape {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("status %d, content type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	s, err := metricstest.Parse(body)
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if p := metricstest.Lint(s); len(p) > 0 {
		t.Fatalf("lint:\n%v", p)
	}
	return s
}

// The counters of /metrics equal what the database holds, behind the
// API's token; /healthz stays open.
func TestMetricsMatchTheDatabase(t *testing.T) {
	const token = "metrics-test-token"
	e := newEnv(t, nil, func(o *ingest.Options) { o.HTTPToken = token })
	srv := httptest.NewServer(e.svc.Handler())
	t.Cleanup(srv.Close)

	created := time.Now().Add(-time.Minute)
	b1 := storetest.Telemetry(e.gw, 42, 1, readings(5, storetest.T0)...)
	b2 := storetest.Telemetry(e.gw, 42, 2, readings(3, storetest.T0+int64(time.Minute))...)
	b3 := storetest.AlertBatch(e.gw, 42, 3, outpost.Alert{Rule: "hot", Fingerprint: "hot{}", State: outpost.StateFiring,
		Severity: "warning", Value: 31, Message: "hot", StartedAt: storetest.T0, ChangedAt: storetest.T0, Seq: 1})
	for _, b := range []*outpost.Batch{b1, b2, b3} {
		b.Created = created.UnixNano()
		e.publishBatch(b)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		e.waitAcks(42, seq, 1)
	}
	e.publishBatch(b1) // a duplicate
	e.waitAcks(42, 1, 2)
	e.publish(e.batchTopic(e.gw), []byte("not a batch"), false)
	eventually(t, "the dead letter", func() bool { return len(e.store.deadLetters()) == 1 })

	s := scrape(t, srv.URL, token)
	c := e.counts()
	for _, x := range []struct {
		name string
		want float64
	}{
		{"outpost_ingest_batches_total", float64(c.Batches)},
		{"outpost_ingest_readings_total", float64(c.Readings)},
		{"outpost_ingest_alerts_total", float64(c.Alerts)},
		{"outpost_ingest_dead_letters_total", float64(c.DeadLetters)},
		{"outpost_ingest_duplicate_batches_total", 1},
		{"outpost_ingest_store_errors_total", 0},
		{"outpost_ingest_healthy", 1},
		{"outpost_ingest_gateways_tracked", 1},
	} {
		if v, ok := s.Value(x.name); !ok || v != x.want {
			t.Errorf("%s = %v (present %v), want %v (database %+v)", x.name, v, ok, x.want, c)
		}
	}
	if c.Batches != 3 || c.Readings != 16 || c.DeadLetters != 1 {
		t.Fatalf("database %+v", c)
	}
	// Four commits: three batches and the duplicate.
	if n := s.Sum("outpost_ingest_commit_duration_seconds"); n != 4 {
		t.Errorf("commit latency observations %v, want 4", n)
	}
	if lag, ok := s.Value("outpost_ingest_gateway_lag_seconds", "gateway", e.gw); !ok || lag < 60 || lag > 3600 {
		t.Errorf("lag of %s: %v (present %v), want a minute or a little more", e.gw, lag, ok)
	}
	if v, _ := s.Value("go_goroutines"); v < 1 {
		t.Errorf("go_goroutines %v", v)
	}

	for _, tc := range []struct {
		path, auth string
		code       int
	}{
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", "Bearer wrong", http.StatusUnauthorized},
		{"/healthz", "", http.StatusOK},
	} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s with %q: %d, want %d", tc.path, tc.auth, resp.StatusCode, tc.code)
		}
	}
}

// Lag is tracked for at most MaxTrackedGateways gateways; the batches of
// others are counted.
func TestMetricsLagIsBounded(t *testing.T) {
	svc := ingest.New(nil, nil)
	for i := range ingest.MaxTrackedGateways + 5 {
		ingest.Committed(svc, fmt.Sprintf("gw-%d", i), time.Now().UnixNano())
	}
	ingest.Committed(svc, "gw-0", time.Now().UnixNano()) // tracked: still counted as tracked
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	s := scrape(t, srv.URL, "")
	if v, _ := s.Value("outpost_ingest_gateways_tracked"); v != ingest.MaxTrackedGateways {
		t.Errorf("tracked %v", v)
	}
	if n := len(s["outpost_ingest_gateway_lag_seconds"].Samples); n != ingest.MaxTrackedGateways {
		t.Errorf("%d lag series", n)
	}
	if v, _ := s.Value("outpost_ingest_lag_untracked_batches_total"); v != 5 {
		t.Errorf("untracked %v, want 5", v)
	}
	if v, _ := s.Value("outpost_ingest_healthy"); v != 0 {
		t.Errorf("healthy %v without a broker", v)
	}
	release := ingest.HoldScrapes(svc)
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	release()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a scrape beyond the limit: %d", resp.StatusCode)
	}
}
