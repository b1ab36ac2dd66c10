package exectest

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/testenv"
	"github.com/outposthq/outpost/metrics/metricstest"
)

// httpGet GETs url with an optional bearer token, without keeping the
// connection.
func httpGet(t *testing.T, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// The binaries as an operator runs them: the gateway with metrics.listen
// serves /metrics and /healthz at the address it logs; ingest serves
// /metrics on its --http listener behind its token.
func TestMetricsEndpoints(t *testing.T) {
	broker, db := testenv.MQTT(t), testenv.DB(t)
	cfg, dir, prefix := gatewayFiles(t, broker, "5s")
	write(t, cfg, readFile(t, cfg)+"metrics: {listen: \"127.0.0.1:0\"}\n", 0o644)
	const token = "exectest-metrics-token"
	tokenFile := write(t, filepath.Join(dir, "token"), token+"\n", 0o600)

	ing := start(t, "outpost-ingest", "--broker", broker, "--db", db, "--http", "127.0.0.1:0", "--http-token-file", tokenFile,
		"--topic-prefix", prefix, "--group", "exectest-"+filepath.Base(dir), "--log-format", "json")
	ingAddr, _ := ing.await(t, "http api listening")["addr"].(string)
	ing.await(t, "subscribed")

	gw := start(t, "outpost", "run", "--config", cfg, "--log-format", "json")
	gwAddr, _ := gw.await(t, "serving /metrics and /healthz (no authentication: keep the address on loopback or behind a firewall)")["addr"].(string)
	gw.await(t, "connected")

	var s metricstest.Scrape
	deadline := time.Now().Add(time.Minute)
	for {
		code, body := httpGet(t, "http://"+gwAddr+"/metrics", "")
		if code != http.StatusOK {
			t.Fatalf("gateway /metrics: %d %s", code, body)
		}
		var err error
		if s, err = metricstest.Parse(body); err != nil {
			t.Fatal(err)
		}
		if v, _ := s.Value("outpost_uplink_acked_batches_total"); v > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no batch acked within a minute:\n%s", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v, _ := s.Value("outpost_uplink_connected"); v != 1 {
		t.Errorf("outpost_uplink_connected %v", v)
	}
	if code, body := httpGet(t, "http://"+gwAddr+"/healthz", ""); code != http.StatusOK {
		t.Errorf("gateway /healthz: %d %s", code, body)
	}

	if code, _ := httpGet(t, "http://"+ingAddr+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("ingest /metrics without the token: %d", code)
	}
	code, body := httpGet(t, "http://"+ingAddr+"/metrics", token)
	if code != http.StatusOK {
		t.Fatalf("ingest /metrics: %d %s", code, body)
	}
	is, err := metricstest.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := is.Value("outpost_ingest_batches_total"); v < 1 {
		t.Errorf("ingest batches %v", v)
	}
	if code, _ := httpGet(t, "http://"+ingAddr+"/healthz", ""); code != http.StatusOK {
		t.Errorf("ingest /healthz: %d", code)
	}

	gw.signal(t, syscall.SIGTERM)
	if code := gw.wait(t); code != 0 {
		t.Fatalf("outpost exit %d:\n%s", code, gw.stderr())
	}
	ing.signal(t, syscall.SIGTERM)
	if code := ing.wait(t); code != 0 {
		t.Fatalf("outpost-ingest exit %d:\n%s", code, ing.stderr())
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
