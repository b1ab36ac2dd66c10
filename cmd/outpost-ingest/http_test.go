package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/cmd/internal/cli"
	"github.com/outposthq/outpost/internal/testenv"
)

func TestHTTPFlags(t *testing.T) {
	m := NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if m.HTTPTokenFile != "" || m.HTTPMaxQueries != 4 || m.HTTPQueryTimeout != 2*time.Minute || m.HTTPMaxStreams != 64 {
		t.Fatalf("defaults: token file %q, max queries %d, query timeout %v, max streams %d", m.HTTPTokenFile, m.HTTPMaxQueries, m.HTTPQueryTimeout, m.HTTPMaxStreams)
	}
	m = NewMain()
	m.Stderr = io.Discard
	if err := m.ParseFlags([]string{"--http-token-file", "/t", "--http-max-queries", "2", "--http-query-timeout", "10s", "--http-max-streams", "3"}); err != nil {
		t.Fatal(err)
	}
	if m.HTTPTokenFile != "/t" || m.HTTPMaxQueries != 2 || m.HTTPQueryTimeout != 10*time.Second || m.HTTPMaxStreams != 3 {
		t.Fatalf("parsed: %+v", m)
	}
	for _, args := range [][]string{{"--http-max-queries", "0"}, {"--http-query-timeout", "0s"}, {"--http-token", "x"}, {"--http-max-streams", "0"}} {
		m := NewMain()
		m.Stderr = io.Discard
		if err := m.ParseFlags(args); cli.ExitCode(err) != cli.ExitUsage {
			t.Errorf("ParseFlags(%q) = %v, want a usage error", args, err)
		}
	}
}

// runMain runs outpost-ingest in process with args, its logs (JSON) in
// the returned buffer.
func runMain(t *testing.T, args ...string) (*Main, *testenv.Buffer) {
	t.Helper()
	logs := &testenv.Buffer{}
	m := NewMain()
	m.Stderr = logs
	args = append([]string{"--broker", testenv.MQTT(t), "--db", testenv.DB(t), "--topic-prefix", "outpost-test/cmd-http/v1", "--log-format", "json"}, args...)
	if err := m.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m, logs
}

// warnings are the log lines at level warn that mention the token.
func tokenWarnings(logs string) []string {
	var out []string
	for l := range strings.Lines(logs) {
		if strings.Contains(l, `"level":"warn"`) && strings.Contains(l, "token") {
			out = append(out, l)
		}
	}
	return out
}

// TestHTTPBindWarning: an API that listens beyond loopback without a token
// says so at start, at level warn; with a token, or on loopback, it does
// not.
func TestHTTPBindWarning(t *testing.T) {
	_, logs := runMain(t, "--http", "0.0.0.0:0")
	if w := tokenWarnings(logs.String()); len(w) != 1 || !strings.Contains(w[0], "--http-token-file") {
		t.Fatalf("on 0.0.0.0 without a token, warnings %q; logs:\n%s", w, logs)
	}
	_, logs = runMain(t, "--http", "127.0.0.1:0")
	if w := tokenWarnings(logs.String()); len(w) != 0 {
		t.Fatalf("on loopback: warnings %q", w)
	}
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, logs = runMain(t, "--http", "0.0.0.0:0", "--http-token-file", file)
	if w := tokenWarnings(logs.String()); len(w) != 0 {
		t.Fatalf("with a token: warnings %q", w)
	}
}

// TestHTTPTokenFile: the token from --http-token-file guards /api/ of the
// running binary; /healthz stays open.
func TestHTTPTokenFile(t *testing.T) {
	const token = "s3cret-0123456789"
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, logs := runMain(t, "--http", "127.0.0.1:0", "--http-token-file", file)
	if w := tokenWarnings(logs.String()); len(w) != 1 || !strings.Contains(w[0], "every user") {
		t.Errorf("a world-readable token file: warnings %q", w)
	}
	base := "http://" + m.HTTPAddr().String()
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	get := func(path, auth string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, tc := range []struct {
		path, auth string
		code       int
	}{
		{"/api/v1/latest", "", http.StatusUnauthorized},
		{"/api/v1/latest", "Bearer wrong", http.StatusUnauthorized},
		{"/api/v1/latest", "Bearer " + token, http.StatusOK},
		{"/api/v1/gateways", "Bearer " + token, http.StatusOK},
		{"/healthz", "", http.StatusOK},
	} {
		resp := get(tc.path, tc.auth)
		if resp.StatusCode != tc.code {
			t.Errorf("%s with %q: %d, want %d", tc.path, tc.auth, resp.StatusCode, tc.code)
		}
		if tc.code == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", tc.path, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if strings.Contains(logs.String(), token) {
		t.Error("the token is in the log")
	}
}

func TestHTTPTokenFileBad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ name, file, want string }{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"directory", dir, "not a regular file"},
		{"empty", write("empty", "\n"), "empty"},
		{"space", write("space", "two words\n"), "visible ASCII"},
		{"two lines", write("lines", "a\nb\n"), "visible ASCII"},
		{"large", write("large", strings.Repeat("x", 5000)), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMain()
			m.Stderr = io.Discard
			if err := m.ParseFlags([]string{"--broker", "tcp://127.0.0.1:1", "--db", filepath.Join(t.TempDir(), "x.db"), "--http-token-file", tc.file}); err != nil {
				t.Fatal(err)
			}
			err := m.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), "http token file") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run = %v, want an error about the token file: %q", err, tc.want)
			}
			if err := m.Close(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestEventStreamsEndAtClose: an open event stream neither holds the
// HTTP server's Shutdown to its deadline nor fails Close: Shutdown ends
// the streams as it starts (RegisterOnShutdown), and the client sees
// the stream end. --http-max-streams bounds the streams.
func TestEventStreamsEndAtClose(t *testing.T) {
	m, _ := runMain(t, "--http", "127.0.0.1:0", "--http-max-streams", "1")
	base := "http://" + m.HTTPAddr().String()
	resp, err := http.Get(base + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || resp.StatusCode != http.StatusOK || line != "event: hello\n" {
		t.Fatalf("events: %d, first line %q, %v", resp.StatusCode, line, err)
	}
	second, err := http.Get(base + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	second.Body.Close()
	if second.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a second stream of at most one: %d", second.StatusCode)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close with a stream open: %v", err)
	}
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "data: {\"queue\":256,\"heartbeat_s\":15}\n\n" {
		t.Fatalf("the rest of the stream: %q, %v; want the hello's data and the end", rest, err)
	}
}
