package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/ingest/storetest"
	"github.com/outposthq/outpost/internal/testenv"
)

// api is a Service's HTTP API over a store, without a broker: the API
// only queries the store.
type api struct {
	svc  *ingest.Service
	srv  *httptest.Server
	logs *testenv.Buffer
}

func newAPI(t *testing.T, store ingest.Store, opts func(*ingest.Options)) *api {
	t.Helper()
	a := &api{logs: &testenv.Buffer{}}
	o := &ingest.Options{Logger: zerolog.New(a.logs)}
	if opts != nil {
		opts(o)
	}
	a.svc = ingest.New(store, o)
	a.srv = httptest.NewServer(a.svc.Handler())
	t.Cleanup(func() {
		a.srv.Close()
		if err := a.svc.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return a
}

// get requests target and reads the whole answer.
func (a *api) get(t *testing.T, target string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.srv.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", target, err)
	}
	return resp, body
}

// getJSON requests target, wants code and decodes the answer into v.
func (a *api) getJSON(t *testing.T, target string, code int, v any) *http.Response {
	t.Helper()
	resp, body := a.get(t, target)
	if resp.StatusCode != code {
		t.Fatalf("GET %s: %d, want %d; body %s", target, resp.StatusCode, code, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: content type %q", target, ct)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: decode %s: %v", target, body, err)
	}
	return resp
}

// dbStore is one real store the HTTP tests run against.
type dbStore struct{ name, dsn string }

// dbStores are SQLite always, and PostgreSQL when OUTPOST_TEST_PG is set.
func dbStores(t *testing.T) []dbStore {
	ss := []dbStore{{"sqlite", "sqlite:" + t.TempDir() + "/ingest.db"}}
	if base := os.Getenv(testenv.EnvPG); base != "" {
		ss = append(ss, dbStore{"postgres", testenv.PostgresSchema(t, base)})
	}
	return ss
}

func openStore(t *testing.T, dsn string) ingest.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := stores.Open(ctx, dsn, zerolog.Nop())
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

func commitAll(t *testing.T, st ingest.Store, bs ...*outpost.Batch) {
	t.Helper()
	for _, b := range bs {
		if _, err := st.Commit(context.Background(), b, 1); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
}

// genStore answers queries with made-up rows, without a database: n
// points of the asked series for Range and Latest, n gaps, no gateways.
type genStore struct {
	ingest.Store // nil: only the queries are called

	n       int
	failAt  int           // > 0: fail after this many rows
	entered chan struct{} // not nil: told when a query starts
	release chan struct{} // not nil: a query waits for it before its first row

	mu   sync.Mutex
	seen []string // the ids of every query, for the fuzz target
}

// errGen is a failure with the look of a database's.
var errGen = errors.New(`postgres: range: ERROR: invalid byte sequence for encoding "UTF8": 0x00 (SQLSTATE 22021)`)

func genRows[T any](g *genStore, ctx context.Context, limit int, row func(i int) T) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if g.entered != nil {
			g.entered <- struct{}{}
		}
		if g.release != nil {
			select {
			case <-g.release:
			case <-ctx.Done():
				yield(zero, ctx.Err())
				return
			}
		}
		for i := range min(g.n, limit) {
			if g.failAt > 0 && i == g.failAt {
				yield(zero, errGen)
				return
			}
			if ctx.Err() != nil {
				yield(zero, ctx.Err())
				return
			}
			if !yield(row(i), nil) {
				return
			}
		}
	}
}

func (g *genStore) saw(ids ...string) {
	g.mu.Lock()
	g.seen = append(g.seen, ids...)
	g.mu.Unlock()
}

func (g *genStore) Range(ctx context.Context, q ingest.RangeQuery) iter.Seq2[ingest.Point, error] {
	g.saw(q.Gateway, q.Sensor, q.Metric)
	return genRows(g, ctx, q.Limit, func(i int) ingest.Point {
		return ingest.Point{Gateway: q.Gateway, Sensor: q.Sensor, Metric: q.Metric, TS: q.From + int64(i), Value: float64(i)}
	})
}

func (g *genStore) Latest(ctx context.Context, q ingest.LatestQuery) iter.Seq2[ingest.Point, error] {
	g.saw(q.Gateway, q.After.Gateway, q.After.Sensor, q.After.Metric)
	return genRows(g, ctx, q.Limit, func(i int) ingest.Point {
		return ingest.Point{Gateway: "gw", Sensor: fmt.Sprintf("s%09d", i), Metric: "m", TS: storetest.T0, Value: float64(i)}
	})
}

func (g *genStore) Series(ctx context.Context, q ingest.SeriesQuery) iter.Seq2[ingest.SeriesInfo, error] {
	g.saw(q.Gateway, q.Sensor, q.Metric, q.After.Gateway, q.After.Sensor, q.After.Metric)
	for k, v := range q.Labels {
		g.saw(k) // a name is at most an id's length; a value may be longer
		if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			g.saw("\x00 a label value of bad text: " + v)
		}
	}
	return genRows(g, ctx, q.Limit, func(i int) ingest.SeriesInfo {
		return ingest.SeriesInfo{Gateway: "gw", Sensor: fmt.Sprintf("s%09d", i), Metric: "m", FirstTS: storetest.T0, LastTS: storetest.T0}
	})
}

func (g *genStore) Gaps(ctx context.Context, q ingest.GapQuery) iter.Seq2[ingest.Gap, error] {
	g.saw(q.Gateway, q.Sensor, q.Metric)
	return genRows(g, ctx, q.Limit, func(i int) ingest.Gap {
		return ingest.Gap{Gateway: q.Gateway, Epoch: 1, Seq: uint64(i), Reason: outpost.LossMaxAge, Kind: outpost.KindTelemetry}
	})
}

func (g *genStore) Alerts(ctx context.Context, q ingest.AlertQuery) iter.Seq2[ingest.AlertRow, error] {
	g.saw(q.Gateway, q.Rule)
	return genRows(g, ctx, q.Limit, func(i int) ingest.AlertRow {
		return ingest.AlertRow{Gateway: q.Gateway, Rule: q.Rule, State: outpost.StateFiring, TS: int64(i), Seq: uint64(i)}
	})
}

func (g *genStore) ActiveAlerts(ctx context.Context, q ingest.ActiveAlertQuery) iter.Seq2[ingest.AlertRow, error] {
	g.saw(q.Gateway)
	return genRows(g, ctx, q.Limit, func(i int) ingest.AlertRow {
		return ingest.AlertRow{Gateway: q.Gateway, Fingerprint: fmt.Sprint(i), State: outpost.StateFiring, Seq: uint64(i)}
	})
}

func (g *genStore) Gateways(ctx context.Context) iter.Seq2[ingest.GatewayStatus, error] {
	return genRows(g, ctx, 0, func(int) ingest.GatewayStatus { return ingest.GatewayStatus{} })
}

// TestHTTPSlowReadersMemory: many clients that read a large answer
// slowly cost the service a bounded amount of memory. Each asks for
// 100 000 points (about 12 MB of JSON) and reads the first 8 KiB a few
// bytes at a time; with every client at
// that point, the live heap is measured; then they read the rest, which
// must be the whole answer. Built in memory, the answers held the heap
// at 40 × 12 MB.
func TestHTTPSlowReadersMemory(t *testing.T) {
	const readers, points = 40, ingest.MaxRangeLimit
	target := func(gw string) string {
		return fmt.Sprintf("/api/v1/readings?gateway=%s&sensor=s&metric=m&from=0&to=%d&limit=%d",
			gw, time.Unix(0, storetest.T0).Add(time.Hour).UnixMilli(), points)
	}
	// Without a database, every reader streams at once: the memory is
	// the stream's alone.
	t.Run("streams", func(t *testing.T) {
		a := newAPI(t, &genStore{n: points}, func(o *ingest.Options) { o.MaxQueries = readers })
		codes, growth := slowReaders(t, a, readers, target("gw"))
		if codes[http.StatusOK] != readers {
			t.Fatalf("answers %v, want %d × 200", codes, readers)
		}
		checkGrowth(t, growth, readers)
	})
	// A real store, with the default limits: the readers beyond
	// MaxQueries get 503 at once.
	for _, db := range dbStores(t) {
		t.Run(db.name, func(t *testing.T) {
			st := openStore(t, db.dsn)
			gw := "gw-" + unique(t)
			const perBatch = 10000
			for i := range points / perBatch {
				start := storetest.T0 + int64(i*perBatch)*int64(time.Millisecond)
				commitAll(t, st, storetest.Telemetry(gw, 1, uint64(i+1), storetest.Series("s", "m", start, time.Millisecond, perBatch, 0)...))
			}
			a := newAPI(t, st, nil)
			codes, growth := slowReaders(t, a, readers, target(gw))
			if codes[http.StatusOK] < 1 || codes[http.StatusOK] > ingest.DefaultMaxQueries ||
				codes[http.StatusOK]+codes[http.StatusServiceUnavailable] != readers {
				t.Fatalf("answers %v, want 1 to %d × 200, the rest 503", codes, ingest.DefaultMaxQueries)
			}
			checkGrowth(t, growth, readers)
		})
	}
}

// checkGrowth fails if the heap grew by more than 256 KiB per reader and
// 8 MiB besides; an answer built whole costs 12 MB.
func checkGrowth(t *testing.T, growth int64, readers int) {
	t.Helper()
	limit := int64(readers)*256<<10 + 8<<20
	t.Logf("live heap grew by %.1f MiB with %d slow readers (limit %.1f MiB)", float64(growth)/(1<<20), readers, float64(limit)/(1<<20))
	if growth > limit {
		t.Errorf("live heap grew by %d bytes, more than %d", growth, limit)
	}
}

// slowReaders runs n slowRead clients of target at once and returns how
// many got each status, and the live heap's growth while all were in the
// middle of their answers.
func slowReaders(t *testing.T, a *api, n int, target string) (map[int]int, int64) {
	t.Helper()
	resp, body := a.get(t, target)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reference answer: %d %.200s", resp.StatusCode, body)
	}
	want := sha256.Sum256(body)
	wantLen := len(body)
	body = nil

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	started := make(chan int, n)
	release := make(chan struct{})
	errs := make(chan error, n)
	for range n {
		go func() { errs <- slowRead(a.srv.Listener.Addr().String(), target, started, release, want, wantLen) }()
	}
	codes := map[int]int{}
	for range n {
		codes[<-started]++
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	growth := int64(ms.HeapAlloc) - int64(base)
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	return codes, growth
}

// readBuffer is a slow reader's socket buffer: small, so that the
// kernel's buffers hold only a part of a 12 MB answer, and at least two
// loopback segments, so that reading the rest does not crawl on delayed
// acks.
const readBuffer = 256 << 10

// slowRead asks for target and reads the start of the answer 16 bytes at
// a time; it then reports the status on started (0 if it failed), waits
// for release, and reads the rest, which must hash to want. A 503 must
// carry Retry-After.
func slowRead(addr, target string, started chan<- int, release <-chan struct{}, want [sha256.Size]byte, wantLen int) (err error) {
	reported := false
	report := func(code int) {
		reported = true
		started <- code
		<-release
	}
	defer func() {
		if !reported {
			report(0)
		}
	}()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Minute)); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).SetReadBuffer(readBuffer); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: ingest\r\nConnection: close\r\n\r\n", target); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 16), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusServiceUnavailable:
		if resp.Header.Get("Retry-After") == "" {
			return errors.New("503 without Retry-After")
		}
		_, err := io.Copy(io.Discard, resp.Body)
		report(resp.StatusCode)
		return err
	default:
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	h := sha256.New()
	buf := make([]byte, 16)
	got := 0
	for got < 8<<10 {
		k, err := resp.Body.Read(buf)
		h.Write(buf[:k])
		got += k
		if err != nil {
			return fmt.Errorf("after %d bytes: %w", got, err)
		}
	}
	report(resp.StatusCode)
	k, err := io.Copy(h, resp.Body)
	got += int(k)
	if err != nil {
		return fmt.Errorf("after %d bytes: %w", got, err)
	}
	if got != wantLen || !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("answer of %d bytes differs from the reference (%d bytes)", got, wantLen)
	}
	return nil
}

// TestHTTPQueryLimit: queries beyond MaxQueries get 503 with Retry-After
// at once, not a place in a queue; the slots free up when queries end.
func TestHTTPQueryLimit(t *testing.T) {
	g := &genStore{n: 10, entered: make(chan struct{}, 10), release: make(chan struct{})}
	a := newAPI(t, g, func(o *ingest.Options) { o.MaxQueries = 2 })
	const target = "/api/v1/readings?gateway=gw&sensor=s&metric=m"
	var wg sync.WaitGroup
	codes := make(chan string, 2)
	for range 2 {
		wg.Go(func() {
			resp, err := a.srv.Client().Get(a.srv.URL + target)
			if err != nil {
				codes <- err.Error()
				return
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- fmt.Sprint(resp.StatusCode, err)
		})
	}
	<-g.entered
	<-g.entered
	for _, path := range []string{target, "/api/v1/latest", "/api/v1/gaps?gateway=gw", "/api/v1/gateways"} {
		var body map[string]string
		resp := a.getJSON(t, path, http.StatusServiceUnavailable, &body)
		if resp.Header.Get("Retry-After") != "1" || !strings.Contains(body["error"], "too many queries") {
			t.Errorf("%s over the limit: Retry-After %q, body %v", path, resp.Header.Get("Retry-After"), body)
		}
	}
	// Bad parameters are refused before a slot is taken.
	var body map[string]string
	a.getJSON(t, "/api/v1/readings?gateway=gw", http.StatusBadRequest, &body)
	close(g.release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != "200 <nil>" {
			t.Errorf("a query within the limit: %s", c)
		}
	}
	var pts struct{ Points []ingest.Point }
	a.getJSON(t, target, http.StatusOK, &pts)
	if len(pts.Points) != 10 {
		t.Fatalf("after the limit: %d points", len(pts.Points))
	}
}

// storeWords are what a store's error text holds and a client must
// never see.
var storeWords = []string{"postgres", "sqlite", "SQLSTATE", "pgx", "sql:", "ERROR", "invalid byte sequence", "genStore"}

func checkNoStoreText(t *testing.T, what string, body []byte) {
	t.Helper()
	for _, w := range storeWords {
		if bytes.Contains(body, []byte(w)) {
			t.Errorf("%s: the answer shows store text %q: %s", what, w, body)
		}
	}
}

// TestHTTPBadBytes: parameters that no id can hold (NUL, invalid UTF-8,
// too long), and malformed times, limits and cursors, get 400 with a
// short reason, in every store, and never reach the database. A store
// failure gets 500 with a request id, and the store's words only in the
// log, under that id.
func TestHTTPBadBytes(t *testing.T) {
	long := strings.Repeat("g", outpost.MaxIDLen+1)
	bad := []struct{ name, target, msg string }{
		{"NUL in gateway", "/api/v1/readings?gateway=gw%00x&sensor=s&metric=m", "NUL"},
		{"invalid UTF-8 in sensor", "/api/v1/readings?gateway=gw&sensor=%ff%fe&metric=m", "UTF-8"},
		{"NUL alone as metric", "/api/v1/readings?gateway=gw&sensor=s&metric=%00", "NUL"},
		{"long gateway", "/api/v1/readings?gateway=" + long + "&sensor=s&metric=m", "longer than 128"},
		{"NUL in from", "/api/v1/readings?gateway=gw&sensor=s&metric=m&from=1%00", `"from"`},
		{"long to", "/api/v1/readings?gateway=gw&sensor=s&metric=m&to=" + strings.Repeat("9", 100), `"to"`},
		{"NUL in limit", "/api/v1/readings?gateway=gw&sensor=s&metric=m&limit=1%00", `"limit"`},
		{"negative limit", "/api/v1/readings?gateway=gw&sensor=s&metric=m&limit=-1", `"limit"`},
		{"step below a second", "/api/v1/readings?gateway=gw&sensor=s&metric=m&step=1ms", `"step"`},
		{"step not a duration", "/api/v1/readings?gateway=gw&sensor=s&metric=m&step=hourly", `"step"`},
		{"negative step", "/api/v1/readings?gateway=gw&sensor=s&metric=m&step=-1h", `"step"`},
		{"bad escape", "/api/v1/readings?gateway=%zz&sensor=s&metric=m", "malformed query"},
		{"gateway twice", "/api/v1/readings?gateway=a&gateway=b&sensor=s&metric=m", "more than once"},
		{"gaps: NUL in sensor", "/api/v1/gaps?gateway=gw&sensor=a%00", "NUL"},
		{"gaps: invalid UTF-8 gateway", "/api/v1/gaps?gateway=%c3%28", "UTF-8"},
		{"gaps: long metric", "/api/v1/gaps?gateway=gw&metric=" + long, "longer than"},
		{"latest: NUL gateway", "/api/v1/latest?gateway=%00", "NUL"},
		{"latest: invalid UTF-8 in after", "/api/v1/latest?after=gw/%ff/m", "UTF-8"},
		{"latest: NUL in after", "/api/v1/latest?after=gw/s/m%2500", "NUL"},
		{"latest: after of two parts", "/api/v1/latest?after=gw/s", "three parts"},
		{"latest: empty part in after", "/api/v1/latest?after=gw//m", "empty part"},
		{"latest: bad escape in after", "/api/v1/latest?after=gw/s%25zz/m", "escape"},
		{"latest: limit too big", "/api/v1/latest?limit=100001", `"limit"`},
		{"series: NUL in sensor", "/api/v1/series?sensor=s%00", "NUL"},
		{"series: label without a colon", "/api/v1/series?label=room", "name:value"},
		{"series: label without a name", "/api/v1/series?label=:lab", "name:value"},
		{"series: NUL in a label", "/api/v1/series?label=room:a%00b", "NUL"},
		{"series: invalid UTF-8 in a label", "/api/v1/series?label=room%ff:a", "UTF-8"},
		{"series: long label", "/api/v1/series?label=room:" + strings.Repeat("v", outpost.MaxLabelValueLen+1), "longer than 1024"},
		{"series: a label name twice", "/api/v1/series?label=room:a&label=room:b", "more than once"},
		{"series: too many labels", "/api/v1/series?" + strings.Repeat("label=a:b&", 17), "more than 16"},
		{"series: unknown parameter", "/api/v1/series?lable=room:lab", `unknown parameter "lable"`},
		{"series: metric twice", "/api/v1/series?metric=a&metric=b", "more than once"},
		{"series: bad after", "/api/v1/series?after=gw/s", "three parts"},
		{"series: limit zero", "/api/v1/series?limit=0", `"limit"`},
	}
	for _, db := range dbStores(t) {
		t.Run(db.name, func(t *testing.T) {
			st := openStore(t, db.dsn)
			gw := "gw-" + unique(t)
			commitAll(t, st, storetest.Telemetry(gw, 1, 1, storetest.Series("s", "m", storetest.T0, time.Second, 3, 0)...))
			a := newAPI(t, st, nil)
			for _, tc := range bad {
				resp, body := a.get(t, tc.target)
				var e map[string]string
				if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || !strings.Contains(e["error"], tc.msg) {
					t.Errorf("%s: %d %s, want 400 with an error about %q", tc.name, resp.StatusCode, body, tc.msg)
				}
				if len(body) > 300 {
					t.Errorf("%s: a reason of %d bytes is not short", tc.name, len(body))
				}
				checkNoStoreText(t, tc.name, body)
			}
			// What is stored still answers, ids with any text included.
			var pts struct{ Points []ingest.Point }
			a.getJSON(t, "/api/v1/readings?gateway="+gw+"&sensor=s&metric=m&from=0&to="+fmt.Sprint(time.Unix(0, storetest.T0).Add(time.Hour).UnixMilli()), http.StatusOK, &pts)
			if len(pts.Points) != 3 {
				t.Fatalf("good query: %d points", len(pts.Points))
			}

			// A failing store: 500, the request id, no store text.
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			for _, target := range []string{"/api/v1/latest", "/api/v1/gateways", "/api/v1/readings?gateway=gw&sensor=s&metric=m", "/api/v1/gaps?gateway=gw", "/api/v1/series?label=a:b"} {
				resp, body := a.get(t, target)
				id := resp.Header.Get("X-Request-Id")
				want := `{"error":"internal error, request id ` + id + `"}` + "\n"
				if resp.StatusCode != http.StatusInternalServerError || id == "" || string(body) != want {
					t.Errorf("%s with the store closed: %d %q, want 500 %q", target, resp.StatusCode, body, want)
				}
				checkNoStoreText(t, target, body)
				logged := logLine(a.logs.String(), id)
				if !strings.Contains(logged, `"level":"error"`) || !strings.Contains(logged, db.name+":") {
					t.Errorf("%s: the log has no error line with the store's words under request id %s: %q", target, id, logged)
				}
			}
		})
	}
}

// logLine is the log line that names request id, or "".
func logLine(logs, id string) string {
	for l := range strings.Lines(logs) {
		if strings.Contains(l, `"request_id":"`+id+`"`) {
			return l
		}
	}
	return ""
}

// TestHTTPFailWhileStreaming: a store failure after part of the answer
// is out breaks the connection: the client never takes a cut answer for
// a whole one. Before the first chunk, it is a clean 500.
func TestHTTPFailWhileStreaming(t *testing.T) {
	a := newAPI(t, &genStore{n: 100000, failAt: 50000}, nil)
	resp, err := a.srv.Client().Get(a.srv.URL + "/api/v1/readings?gateway=gw&sensor=s&metric=m&limit=100000")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err == nil {
		t.Fatalf("a failure in mid-answer: %d, %d bytes, read error %v; want 200 and a broken body", resp.StatusCode, len(body), err)
	}
	checkNoStoreText(t, "broken answer", body)

	a = newAPI(t, &genStore{n: 100000, failAt: 10}, nil)
	r, body := a.get(t, "/api/v1/readings?gateway=gw&sensor=s&metric=m&limit=100000")
	if r.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "request id "+r.Header.Get("X-Request-Id")) {
		t.Fatalf("a failure before the first chunk: %d %s", r.StatusCode, body)
	}
	if l := logLine(a.logs.String(), r.Header.Get("X-Request-Id")); !strings.Contains(l, "SQLSTATE") {
		t.Fatalf("log line %q lacks the store's error", l)
	}
}

// TestHTTPStalledReader: a client that stops reading is dropped after the
// write stall, freeing its query slot; a query that runs past the query
// timeout ends with 503.
func TestHTTPStalledReader(t *testing.T) {
	a := newAPI(t, &genStore{n: 100000}, func(o *ingest.Options) {
		o.MaxQueries = 1
		o.WriteStall = 100 * time.Millisecond
	})
	c, err := net.Dial("tcp", a.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.(*net.TCPConn).SetReadBuffer(readBuffer); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(c, "GET /api/v1/readings?gateway=gw&sensor=s&metric=m&limit=100000 HTTP/1.1\r\nHost: ingest\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The stalled client holds the only slot until it is dropped; then
	// the next query gets it.
	eventually(t, "the stalled reader's slot", func() bool {
		resp, _ := a.get(t, "/api/v1/readings?gateway=gw&sensor=s&metric=m&limit=1")
		return resp.StatusCode == http.StatusOK
	})

	g := &genStore{n: 1, release: make(chan struct{})} // never released
	a = newAPI(t, g, func(o *ingest.Options) { o.QueryTimeout = 100 * time.Millisecond })
	var body map[string]string
	resp := a.getJSON(t, "/api/v1/latest", http.StatusServiceUnavailable, &body)
	if !strings.Contains(body["error"], "took longer") || !strings.Contains(body["error"], resp.Header.Get("X-Request-Id")) {
		t.Fatalf("timed out query: %v", body)
	}
}

// TestHTTPSlowQueryWriteTimeout: a query whose first row, or failure,
// comes after the server's WriteTimeout still answers in full: the query
// sets its own write deadlines.
func TestHTTPSlowQueryWriteTimeout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		failAt int
		code   int
	}{
		{"answer", 0, http.StatusOK},
		{"failure", 1, http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &genStore{n: 50000, failAt: tc.failAt, entered: make(chan struct{}, 1), release: make(chan struct{})}
			svc := ingest.New(g, &ingest.Options{Logger: zerolog.Nop()})
			srv := httptest.NewUnstartedServer(svc.Handler())
			srv.Config.WriteTimeout = 50 * time.Millisecond
			srv.Start()
			defer srv.Close()
			go func() {
				<-g.entered
				time.Sleep(200 * time.Millisecond) // past the server's WriteTimeout
				close(g.release)
			}()
			resp, err := srv.Client().Get(srv.URL + "/api/v1/readings?gateway=gw&sensor=s&metric=m&limit=50000")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var pg readingsPage
			if err := json.NewDecoder(resp.Body).Decode(&pg); err != nil || resp.StatusCode != tc.code ||
				(tc.code == http.StatusOK && len(pg.Points) != 50000) {
				t.Fatalf("%d, %d points, %v", resp.StatusCode, len(pg.Points), err)
			}
			if err := svc.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHTTPToken: with a token, /api/ needs it (401 with a Bearer
// challenge otherwise); /healthz stays open.
func TestHTTPToken(t *testing.T) {
	const token = "s3cret-token-of-some-length"
	st := openStore(t, "sqlite:"+t.TempDir()+"/ingest.db")
	gw := "gw-" + unique(t)
	commitAll(t, st, storetest.Telemetry(gw, 1, 1, storetest.Series("s", "m", storetest.T0, time.Second, 2, 0)...))
	a := newAPI(t, st, func(o *ingest.Options) { o.HTTPToken = token })
	for _, path := range []string{"/api/v1/latest", "/api/v1/gateways", "/api/v1/readings?gateway=" + gw + "&sensor=s&metric=m", "/api/v1/gaps?gateway=" + gw, "/api/v1/series?label=room:lab"} {
		for _, h := range []struct{ name, value, challenge string }{
			{"none", "", `Bearer realm="outpost-ingest"`},
			{"wrong", "Bearer " + token + "x", `error="invalid_token"`},
			{"prefix", "Bearer " + token[:5], `error="invalid_token"`},
			{"empty", "Bearer ", `Bearer realm`}, // the header's value is trimmed: no token
			{"basic", "Basic " + token, `Bearer realm`},
		} {
			resp, body := a.get(t, path, "Authorization", h.value)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), h.challenge) {
				t.Errorf("%s, token %s: %d, WWW-Authenticate %q, want 401 and %q", path, h.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), h.challenge)
			}
			if strings.Contains(string(body), "\"points\"") || strings.Contains(string(body), "\"series\"") || strings.Contains(string(body), token) {
				t.Errorf("%s, token %s: body %s", path, h.name, body)
			}
		}
		for _, auth := range []string{"Bearer " + token, "bearer " + token} {
			if resp, body := a.get(t, path, "Authorization", auth); resp.StatusCode != http.StatusOK {
				t.Errorf("%s with %q: %d %s", path, auth, resp.StatusCode, body)
			}
		}
	}
	// Unstarted, the service is unhealthy, but it says so without a token.
	var health map[string]string
	a.getJSON(t, "/healthz", http.StatusServiceUnavailable, &health)
	if health["status"] != "unavailable" {
		t.Fatalf("healthz = %v", health)
	}
}

// latestPage is an answer of /api/v1/latest.
type latestPage struct {
	Points    []ingest.Point
	Limit     int
	Truncated *bool
	Next      *string
}

// TestHTTPLatestPages: walking /api/v1/latest from each answer's next to
// the end gives every series exactly once, in every store; the last
// page says it is not cut.
func TestHTTPLatestPages(t *testing.T) {
	for _, db := range dbStores(t) {
		t.Run(db.name, func(t *testing.T) {
			st := openStore(t, db.dsn)
			prefix := "gw-" + unique(t)
			want := map[string]bool{}
			seq := uint64(0)
			for _, gw := range []string{prefix + "-a", prefix + "-b", prefix + "-c"} {
				var rs []outpost.Reading
				for _, sensor := range []string{"s1", "s2", "a/b", "s2 ☃", "x%y", "S1", "s1.x"} {
					for _, metric := range []string{"temperature", "humidity", "co2"} {
						rs = append(rs, storetest.Series(sensor, metric, storetest.T0, time.Second, 1, 1)...)
						want[gw+"|"+sensor+"|"+metric] = true
					}
				}
				seq++
				commitAll(t, st, storetest.Telemetry(gw, 1, seq, rs...))
			}
			a := newAPI(t, st, nil)
			var all latestPage
			a.getJSON(t, "/api/v1/latest", http.StatusOK, &all)
			if len(all.Points) != len(want) || all.Limit != ingest.DefaultRangeLimit || all.Truncated == nil || *all.Truncated || all.Next != nil {
				t.Fatalf("whole latest: %d points (want %d), limit %d, truncated %v, next %v", len(all.Points), len(want), all.Limit, all.Truncated, all.Next)
			}
			for _, limit := range []int{1, 10, len(want) - 1, len(want)} {
				seen := map[string]int{}
				var walked []ingest.Point
				after, pages := "", 0
				for {
					var pg latestPage
					a.getJSON(t, fmt.Sprintf("/api/v1/latest?limit=%d&after=%s", limit, url.QueryEscape(after)), http.StatusOK, &pg)
					pages++
					for _, p := range pg.Points {
						seen[p.Gateway+"|"+p.Sensor+"|"+p.Metric]++
					}
					walked = append(walked, pg.Points...)
					if pg.Truncated == nil || !*pg.Truncated {
						if pg.Next != nil {
							t.Fatalf("limit %d: the last page has next %q", limit, *pg.Next)
						}
						break
					}
					if pg.Next == nil || len(pg.Points) != limit || pages > len(want)+1 {
						t.Fatalf("limit %d: a cut page of %d points with next %v", limit, len(pg.Points), pg.Next)
					}
					after = *pg.Next
				}
				for k := range want {
					if seen[k] != 1 {
						t.Errorf("limit %d: series %s seen %d times", limit, k, seen[k])
					}
				}
				if len(seen) != len(want) || len(walked) != len(all.Points) {
					t.Errorf("limit %d: walked %d points of %d series, want %d", limit, len(walked), len(seen), len(want))
				}
				for i := range walked {
					if walked[i] != all.Points[i] {
						t.Fatalf("limit %d: point %d is %+v, the whole answer's %+v", limit, i, walked[i], all.Points[i])
					}
				}
			}
			// One gateway's 21 series, 20 and then 1.
			var one latestPage
			a.getJSON(t, "/api/v1/latest?gateway="+prefix+"-b&limit=20", http.StatusOK, &one)
			if len(one.Points) != 20 || !*one.Truncated || one.Next == nil {
				t.Fatalf("gateway b, limit 20: %d points, truncated %v", len(one.Points), *one.Truncated)
			}
			var rest latestPage
			a.getJSON(t, "/api/v1/latest?gateway="+prefix+"-b&after="+url.QueryEscape(*one.Next), http.StatusOK, &rest)
			if len(rest.Points) != 1 || rest.Points[0].Gateway != prefix+"-b" || *rest.Truncated {
				t.Fatalf("gateway b after its 20th: %+v", rest)
			}
		})
	}
}

// seriesPage is an answer of /api/v1/series.
type seriesPage struct {
	Series    []ingest.SeriesInfo
	Limit     int
	Truncated *bool
	Next      *string
}

// TestHTTPSeries: /api/v1/series lists the series with their unit,
// labels and times (RFC 3339 next to nanoseconds), filtered by gateway,
// sensor, metric and labels, in pages whose next walks every series
// once, in every store.
func TestHTTPSeries(t *testing.T) {
	for _, db := range dbStores(t) {
		t.Run(db.name, func(t *testing.T) {
			st := openStore(t, db.dsn)
			prefix := "gw-" + unique(t)
			sec := int64(time.Second)
			want := map[string]bool{}
			for i, gw := range []string{prefix + "-a", prefix + "-b"} {
				var rs []outpost.Reading
				for _, sensor := range []string{"s1", "s2", "a/b", "s2 ☃"} {
					for _, metric := range []string{"temperature", "co2"} {
						rs = append(rs, storetest.Series(sensor, metric, storetest.T0, time.Second, 3, 1)...)
						want[gw+"|"+sensor+"|"+metric] = true
					}
				}
				commitAll(t, st, storetest.Telemetry(gw, 1, uint64(i+1), rs...))
				labels := ingest.SensorLabels{"s1": {"room": "lab", "site": "hq"}, "s2": {"room": fmt.Sprint("r", i)}}
				if err := st.SetGatewayStatus(context.Background(), gw, "online", time.Unix(0, storetest.T0), []byte(`{"state":"online"}`), labels); err != nil {
					t.Fatal(err)
				}
			}
			a := newAPI(t, st, nil)

			_, body := a.get(t, "/api/v1/series?gateway="+prefix+"-a&sensor=s1&metric=temperature")
			for _, field := range []string{`"series":[{"gateway":"` + prefix + `-a","sensor":"s1","metric":"temperature","unit":"Cel","labels":{"room":"lab","site":"hq"}`,
				`"first_ts":"2025-06-01T12:00:00Z","first_ts_ns":1748779200000000000`, `"last_ts":"2025-06-01T12:00:02Z","last_ts_ns":1748779202000000000`,
				`"limit":10000,"truncated":false,"next":null}`} {
				if !strings.Contains(string(body), field) {
					t.Fatalf("the answer lacks %s: %s", field, body)
				}
			}

			for _, tc := range []struct {
				query string
				n     int
			}{
				{"", len(want)},
				{"gateway=" + prefix + "-b", len(want) / 2},
				{"sensor=s1", 4},
				{"metric=co2", len(want) / 2},
				{"sensor=" + url.QueryEscape("s2 ☃") + "&metric=co2", 2},
				{"label=room:lab", 4},
				{"label=room:r1", 2},
				{"label=site:hq&label=room:lab&gateway=" + prefix + "-a", 2},
				{"label=site:hq&label=room:r0", 0},
				{"label=room:", 0},
			} {
				var pg seriesPage
				a.getJSON(t, "/api/v1/series?"+tc.query, http.StatusOK, &pg)
				if len(pg.Series) != tc.n || *pg.Truncated {
					t.Errorf("%s: %d series, truncated %v; want %d", tc.query, len(pg.Series), *pg.Truncated, tc.n)
				}
			}

			var all seriesPage
			a.getJSON(t, "/api/v1/series", http.StatusOK, &all)
			for _, limit := range []int{1, 3, len(want) - 1, len(want)} {
				var walked []ingest.SeriesInfo
				after := ""
				for pages := 0; ; pages++ {
					var pg seriesPage
					a.getJSON(t, fmt.Sprintf("/api/v1/series?limit=%d&after=%s", limit, url.QueryEscape(after)), http.StatusOK, &pg)
					walked = append(walked, pg.Series...)
					if !*pg.Truncated {
						if pg.Next != nil {
							t.Fatalf("limit %d: the last page has next %q", limit, *pg.Next)
						}
						break
					}
					if pg.Next == nil || len(pg.Series) != limit || pages > len(want) {
						t.Fatalf("limit %d: a cut page of %d series with next %v", limit, len(pg.Series), pg.Next)
					}
					after = *pg.Next
				}
				seen := map[string]int{}
				for _, si := range walked {
					seen[si.Gateway+"|"+si.Sensor+"|"+si.Metric]++
				}
				for k := range want {
					if seen[k] != 1 {
						t.Errorf("limit %d: series %s seen %d times", limit, k, seen[k])
					}
				}
				if len(walked) != len(all.Series) {
					t.Fatalf("limit %d: walked %d series, want %d", limit, len(walked), len(all.Series))
				}
				for i := range walked {
					if walked[i].Key() != all.Series[i].Key() {
						t.Fatalf("limit %d: series %d is %+v, the whole answer's %+v", limit, i, walked[i], all.Series[i])
					}
				}
			}
			// A filtered walk: a gateway's series of one label, one at a time.
			var walked []ingest.SeriesInfo
			after := ""
			for range 5 {
				var pg seriesPage
				a.getJSON(t, "/api/v1/series?limit=1&label=site:hq&gateway="+prefix+"-b&after="+url.QueryEscape(after), http.StatusOK, &pg)
				walked = append(walked, pg.Series...)
				if !*pg.Truncated {
					break
				}
				after = *pg.Next
			}
			if len(walked) != 2 || walked[0].Metric != "co2" || walked[1].Metric != "temperature" || walked[1].LastTS != storetest.T0+2*sec {
				t.Fatalf("walked %+v, want gateway b's two series of s1", walked)
			}
		})
	}
}

// readingsPage is an answer of /api/v1/readings.
type readingsPage struct {
	Points    []ingest.Point
	Limit     int
	Truncated *bool
	Next      *string
}

// TestHTTPTruncated: an answer cut at limit says so, and its next
// continues it; one that fits says it is whole.
func TestHTTPTruncated(t *testing.T) {
	for _, db := range dbStores(t) {
		t.Run(db.name, func(t *testing.T) {
			st := openStore(t, db.dsn)
			gw := "gw-" + unique(t)
			commitAll(t, st, storetest.Telemetry(gw, 1, 1, storetest.Series("s", "m", storetest.T0, time.Second, 25, 0)...))
			l := outpost.Loss{Reason: outpost.LossMaxAge, Kind: outpost.KindTelemetry, Sensor: "s", Metric: "m", From: storetest.T0, To: storetest.T0 + 1, Count: 1, At: storetest.T0}
			commitAll(t, st, storetest.LossBatch(gw, 1, 2, l, l, l))
			a := newAPI(t, st, nil)
			base := "/api/v1/readings?gateway=" + gw + "&sensor=s&metric=m&to=" + fmt.Sprint(time.Unix(0, storetest.T0).Add(time.Hour).UnixMilli())

			var whole readingsPage
			a.getJSON(t, base+"&limit=25", http.StatusOK, &whole)
			if len(whole.Points) != 25 || whole.Truncated == nil || *whole.Truncated || whole.Next != nil || whole.Limit != 25 {
				t.Fatalf("limit 25 of 25: %d points, truncated %v, next %v", len(whole.Points), whole.Truncated, whole.Next)
			}
			var got []ingest.Point
			from := time.Unix(0, storetest.T0).Add(-time.Minute).Format(time.RFC3339Nano)
			for pages := 0; ; pages++ {
				var pg readingsPage
				a.getJSON(t, base+"&limit=10&from="+url.QueryEscape(from), http.StatusOK, &pg)
				got = append(got, pg.Points...)
				if !*pg.Truncated {
					if pg.Next != nil || len(pg.Points) != 5 {
						t.Fatalf("last page: %d points, next %v", len(pg.Points), pg.Next)
					}
					break
				}
				if len(pg.Points) != 10 || pg.Next == nil || pages > 3 {
					t.Fatalf("cut page: %d points, next %v", len(pg.Points), pg.Next)
				}
				// next is the first point not sent.
				if want := time.Unix(0, pg.Points[9].TS+int64(time.Second)).UTC().Format(time.RFC3339Nano); *pg.Next != want {
					t.Fatalf("next = %s, want %s", *pg.Next, want)
				}
				from = *pg.Next
			}
			if len(got) != 25 {
				t.Fatalf("walked %d points, want 25", len(got))
			}
			for i, p := range got {
				if p != whole.Points[i] {
					t.Fatalf("point %d = %+v, want %+v", i, p, whole.Points[i])
				}
			}

			var gaps struct {
				Gaps      []ingest.Gap
				Truncated *bool
			}
			window := "&from=0&to=" + fmt.Sprint(time.Unix(0, storetest.T0).Add(time.Hour).UnixMilli())
			a.getJSON(t, "/api/v1/gaps?gateway="+gw+window+"&limit=2", http.StatusOK, &gaps)
			if len(gaps.Gaps) != 2 || gaps.Truncated == nil || !*gaps.Truncated {
				t.Fatalf("gaps, 2 of 3: %d, truncated %v", len(gaps.Gaps), gaps.Truncated)
			}
			a.getJSON(t, "/api/v1/gaps?gateway="+gw+window+"&limit=3", http.StatusOK, &gaps)
			if len(gaps.Gaps) != 3 || *gaps.Truncated {
				t.Fatalf("gaps, 3 of 3: %d, truncated %v", len(gaps.Gaps), *gaps.Truncated)
			}
		})
	}
}

// FuzzHTTPQuery: whatever the query string, the API answers 200 or 400,
// and every id that reaches the store is one that ingest can store.
func FuzzHTTPQuery(f *testing.F) {
	for _, q := range []string{
		"gateway=gw&sensor=s&metric=m", "gateway=gw%00&sensor=s&metric=m", "gateway=%ff&sensor=s&metric=m",
		"after=gw/s/m", "after=a%2Fb/c/d&limit=3", "from=0&to=1&limit=5", "from=2025-06-01T12:00:00Z",
		"gateway=a&gateway=b", "gateway=%zz", "limit=100001", "after=gw/s%2500/m",
		"rule=hot&state=firing", "state=melting", "rule=%00",
		"label=room:lab&label=site:hq", "label=room", "label=:x", "label=a%00:b", "sensor=s&label=room:%ff",
	} {
		f.Add(q)
	}
	g := &genStore{n: 3}
	svc := ingest.New(g, &ingest.Options{Logger: zerolog.Nop()})
	f.Cleanup(func() {
		if err := svc.Close(context.Background()); err != nil {
			f.Error(err)
		}
	})
	h := svc.Handler()
	f.Fuzz(func(t *testing.T, rawQuery string) {
		for _, path := range []string{"/api/v1/readings", "/api/v1/gaps", "/api/v1/latest", "/api/v1/alerts", "/api/v1/alerts/active", "/api/v1/series"} {
			g.mu.Lock()
			g.seen = nil
			g.mu.Unlock()
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.URL.RawQuery = rawQuery
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
				t.Fatalf("%s?%s: %d %s", path, rawQuery, rec.Code, rec.Body)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s?%s: not JSON: %s", path, rawQuery, rec.Body)
			}
			g.mu.Lock()
			for _, id := range g.seen {
				if len(id) > outpost.MaxIDLen || strings.ContainsRune(id, 0) || !utf8.ValidString(id) {
					t.Errorf("%s?%s: the store saw id %q", path, rawQuery, id)
				}
			}
			g.mu.Unlock()
		}
	})
}

// TestHTTPAlerts: /api/v1/alerts answers the stored transitions with
// RFC 3339 times next to their nanoseconds, filtered, in pages that walk
// every transition once; a bad state is 400.
func TestHTTPAlerts(t *testing.T) {
	for _, db := range dbStores(t) {
		t.Run(db.name, func(t *testing.T) {
			st := openStore(t, db.dsn)
			gw := "gw-" + unique(t)
			for i := range 7 {
				a := outpost.Alert{Rule: "hot", Fingerprint: "hot{}", State: outpost.StateFiring, Severity: "critical", Value: float64(i),
					Labels: map[string]string{"room": "a"}, Message: "hot", StartedAt: storetest.T0, ChangedAt: storetest.T0 + int64(i)*int64(time.Second), Seq: uint64(i + 1)}
				if i%2 == 1 {
					a.State = outpost.StateResolved
				}
				commitAll(t, st, storetest.AlertBatch(gw, 1, uint64(i+1), a))
			}
			a := newAPI(t, st, nil)
			window := "&from=" + fmt.Sprint(time.Unix(0, storetest.T0).UnixMilli()) + "&to=" + fmt.Sprint(time.Unix(0, storetest.T0).Add(time.Hour).UnixMilli())
			type page struct {
				Alerts    []ingest.AlertRow
				Truncated *bool
				Next      *string
			}
			var all page
			_, body := a.get(t, "/api/v1/alerts?gateway="+gw+window)
			if err := json.Unmarshal(body, &all); err != nil || len(all.Alerts) != 7 || *all.Truncated {
				t.Fatalf("all alerts: %v, %s", err, body)
			}
			for _, field := range []string{`"ts_ns":`, `"started_at_ns":`, `"ts":"` + time.Unix(0, storetest.T0).UTC().Format(time.RFC3339Nano), `"seq":"1"`, `"labels":{"room":"a"}`} {
				if !strings.Contains(string(body), field) {
					t.Fatalf("the answer lacks %s: %s", field, body)
				}
			}
			var firing page
			a.getJSON(t, "/api/v1/alerts?gateway="+gw+"&state=firing&rule=hot"+window, http.StatusOK, &firing)
			if len(firing.Alerts) != 4 {
				t.Fatalf("%d firing alerts, want 4", len(firing.Alerts))
			}
			var walked []ingest.AlertRow
			from := fmt.Sprint(time.Unix(0, storetest.T0).UnixMilli())
			for pages := 0; pages < 5; pages++ {
				var pg page
				a.getJSON(t, "/api/v1/alerts?gateway="+gw+"&limit=3&from="+url.QueryEscape(from)+"&to="+fmt.Sprint(time.Unix(0, storetest.T0).Add(time.Hour).UnixMilli()), http.StatusOK, &pg)
				walked = append(walked, pg.Alerts...)
				if !*pg.Truncated {
					break
				}
				from = *pg.Next
			}
			if len(walked) != 7 {
				t.Fatalf("walked %d alerts in pages, want 7", len(walked))
			}
			for i := range walked {
				if walked[i].Seq != uint64(i+1) || walked[i].Value != float64(i) {
					t.Fatalf("page walk: alert %d = %+v", i, walked[i])
				}
			}
			var bad struct{ Error string }
			a.getJSON(t, "/api/v1/alerts?state=melting", http.StatusBadRequest, &bad)
			if !strings.Contains(bad.Error, "state") {
				t.Fatalf("a bad state: %q", bad.Error)
			}
		})
	}
}

// TestHTTPReadingsStep: /api/v1/readings with a step answers buckets
// with the unit, count, min, max, avg and last, times as RFC 3339 and
// nanoseconds, and pages them with next like points.
func TestHTTPReadingsStep(t *testing.T) {
	for _, db := range dbStores(t) {
		t.Run(db.name, func(t *testing.T) {
			st := openStore(t, db.dsn)
			gw := "gw-" + unique(t)
			start := storetest.T0 - storetest.T0%int64(time.Hour)
			commitAll(t, st, storetest.Telemetry(gw, 1, 1, storetest.Series("s", "m", start, time.Second, 180, 0)...))
			a := newAPI(t, st, nil)
			var page struct {
				Buckets []struct {
					Unit     string   `json:"unit"`
					TS       string   `json:"ts"`
					TSNS     int64    `json:"ts_ns"`
					N        int64    `json:"n"`
					Count    int64    `json:"count"`
					Min      *float64 `json:"min"`
					Max      *float64 `json:"max"`
					Avg      *float64 `json:"avg"`
					Last     *float64 `json:"last"`
					LastTSNS int64    `json:"last_ts_ns"`
				}
				Truncated bool
				Next      *string
			}
			target := fmt.Sprintf("/api/v1/readings?gateway=%s&sensor=s&metric=m&from=%d&to=%d&step=1m&limit=2",
				gw, time.Unix(0, start).UnixMilli(), time.Unix(0, start).Add(time.Hour).UnixMilli())
			a.getJSON(t, target, http.StatusOK, &page)
			if len(page.Buckets) != 2 || !page.Truncated || page.Next == nil {
				t.Fatalf("first page: %+v", page)
			}
			b := page.Buckets[1]
			if b.Unit != "Cel" || b.TSNS != start+int64(time.Minute) || b.N != 60 || b.Count != 60 ||
				b.Min == nil || *b.Min != 60 || b.Avg == nil || *b.Avg != 89.5 || b.Last == nil || *b.Last != 119 ||
				b.LastTSNS != start+119*int64(time.Second) || b.TS != time.Unix(0, b.TSNS).UTC().Format(time.RFC3339Nano) {
				t.Fatalf("second bucket: %+v", b)
			}
			if want := time.Unix(0, start).Add(2 * time.Minute).UTC().Format(time.RFC3339Nano); *page.Next != want {
				t.Fatalf("next %s, want %s", *page.Next, want)
			}
		})
	}
}
