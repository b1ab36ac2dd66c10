package ingest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/storetest"
)

// sseEvent is one event of a text/event-stream, or a comment.
type sseEvent struct {
	name      string // the event field; "" for a comment
	data      string
	dataLines int    // data fields the event had: the service writes one
	comment   string // a comment line's text, without the colon
	raw       string // the lines as they came, for the log
}

// readSSE parses a text/event-stream from r as the HTML standard's
// event-stream interpretation does (lines end in LF, CRLF or CR; a
// blank line dispatches; a leading colon is a comment; a field's value
// loses one leading space; data fields join with LF), sending each
// event and each comment on events. It returns the read's end: io.EOF
// when the stream ended cleanly.
func readSSE(r io.Reader, events chan<- sseEvent) error {
	br := bufio.NewReader(r)
	var ev sseEvent
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF && line != "" {
				return io.ErrUnexpectedEOF // a line not ended
			}
			return err
		}
		ev.raw += line
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		switch {
		case line == "":
			if len(data) > 0 {
				ev.data, ev.dataLines = strings.Join(data, "\n"), len(data)
				if ev.name == "" {
					ev.name = "message"
				}
				events <- ev
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
			events <- sseEvent{comment: strings.TrimPrefix(line[1:], " "), raw: ev.raw}
			ev.raw = ""
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				ev.name = value
			case "data":
				data = append(data, value)
			}
		}
	}
}

// sseClient is an open event stream.
type sseClient struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent
	end    chan error // the reader's end, once
	ended  error
}

// openEvents opens GET url+"/api/v1/events"+query, with a token when not
// empty, and wants 200 and the hello event. The stream is closed at the
// test's end (before the server).
func openEvents(t *testing.T, srvURL, query, token string) *sseClient {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srvURL+"/api/v1/events"+query, nil)
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
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET events%s: %d %s", query, resp.StatusCode, body)
	}
	for k, v := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("GET events%s: %s %q, want %q", query, k, got, v)
		}
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("GET events%s: no X-Request-Id", query)
	}
	c := &sseClient{t: t, resp: resp, events: make(chan sseEvent, 64), end: make(chan error, 1)}
	go func() { c.end <- readSSE(resp.Body, c.events) }()
	t.Cleanup(c.close)
	if ev := c.next(); ev.name != "hello" || ev.data != fmt.Sprintf(`{"queue":%d,"heartbeat_s":15}`, ingest.EventQueue) {
		t.Fatalf("first event %+v, want hello", ev)
	}
	return c
}

// next is the next event, comments skipped.
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	for {
		ev := c.nextAny()
		if ev.name != "" {
			return ev
		}
	}
}

// nextAny is the next event or comment; the stream must not end first.
func (c *sseClient) nextAny() sseEvent {
	c.t.Helper()
	t := time.NewTimer(waitFor)
	defer t.Stop()
	select {
	case ev := <-c.events:
		if ev.dataLines > 1 {
			c.t.Fatalf("event %q has %d data lines: %q", ev.name, ev.dataLines, ev.raw)
		}
		return ev
	case err := <-c.end:
		c.ended = err
		c.end <- err
		c.t.Fatalf("the stream ended: %v", err)
	case <-t.C:
		c.t.Fatalf("no event within %v", waitFor)
	}
	return sseEvent{}
}

// want reads the next event, which must be name, and returns its data.
func (c *sseClient) want(name string) string {
	c.t.Helper()
	ev := c.next()
	if ev.name != name {
		c.t.Fatalf("event %q (%s), want %q", ev.name, ev.data, name)
	}
	return ev.data
}

// ends waits for the stream's end, after the events still to come
// (returned), and returns how it ended.
func (c *sseClient) ends() ([]sseEvent, error) {
	c.t.Helper()
	var evs []sseEvent
	t := time.NewTimer(waitFor)
	defer t.Stop()
	for {
		select {
		case ev := <-c.events:
			evs = append(evs, ev)
		case err := <-c.end:
			c.end <- err
			for {
				select {
				case ev := <-c.events:
					evs = append(evs, ev)
				default:
					return evs, err
				}
			}
		case <-t.C:
			c.t.Fatalf("the stream did not end within %v", waitFor)
		}
	}
}

// close closes the stream and waits for its reader.
func (c *sseClient) close() {
	c.resp.Body.Close()
	for {
		select {
		case <-c.events: // unblock the reader
		case err := <-c.end:
			c.end <- err
			return
		}
	}
}

// eventServer serves e's service over HTTP; the streams end before the
// server closes (httptest's Close waits for every request).
func eventServer(t *testing.T, e *env) *httptest.Server {
	srv := httptest.NewServer(e.svc.Handler())
	t.Cleanup(func() {
		e.svc.EndStreams()
		srv.Close()
	})
	return srv
}

// getRaw GETs target from srv and returns the raw items of the list
// under key.
func getRaw(t *testing.T, srv *httptest.Server, target, key string) []json.RawMessage {
	t.Helper()
	resp, err := http.Get(srv.URL + target)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s %v", target, resp.StatusCode, body, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(m[key], &items); err != nil {
		t.Fatalf("GET %s: %s: %v", target, key, err)
	}
	return items
}

// TestEvents: streams of every gateway and of one see, for batches
// really published through the broker and committed, the batch, points,
// alert, gap and status events, in commit order, each item exactly as
// the API then answers it; a duplicate and a status older than the one
// stored send nothing; a stream of one gateway sees nothing of another;
// points beyond MaxEventPoints keep every series' newest.
func TestEvents(t *testing.T) {
	e := newEnv(t, nil, nil)
	srv := eventServer(t, e)
	gw2 := "gw-other-" + unique(t)
	all := openEvents(t, srv.URL, "", "")
	one := openEvents(t, srv.URL, "?gateway="+e.gw, "")
	other := openEvents(t, srv.URL, "?gateway="+gw2, "")
	sec := int64(time.Second)

	// A telemetry batch: batch to every stream of its gateway, points
	// to the one of the gateway alone, each point as readings has it.
	b1 := storetest.Telemetry(e.gw, 7, 1, readings(5, storetest.T0)...)
	e.publishBatch(b1)
	e.waitAcks(7, 1, 1)
	wantBatch := fmt.Sprintf(`{"gateway":%q,"readings":10,"ts_ns":%d,"ts":"2025-06-01T12:00:04Z"}`, e.gw, storetest.T0+4*sec)
	if d := all.want("batch"); d != wantBatch {
		t.Fatalf("batch %s, want %s", d, wantBatch)
	}
	if d := one.want("batch"); d != wantBatch {
		t.Fatalf("batch of the gateway's stream %s, want %s", d, wantBatch)
	}
	var pts struct {
		Gateway   string
		Points    []json.RawMessage
		Truncated *bool
	}
	if err := json.Unmarshal([]byte(one.want("points")), &pts); err != nil {
		t.Fatal(err)
	}
	var api []json.RawMessage
	for _, m := range []string{"humidity", "temperature"} { // series order
		api = append(api, getRaw(t, srv, fmt.Sprintf("/api/v1/readings?gateway=%s&sensor=env&metric=%s&from=%d&to=%d",
			e.gw, m, storetest.T0/1e6, storetest.T0/1e6+60000), "points")...)
	}
	if pts.Gateway != e.gw || pts.Truncated == nil || *pts.Truncated || len(pts.Points) != 10 || len(api) != 10 {
		t.Fatalf("points event: gateway %q, truncated %v, %d points (readings has %d)", pts.Gateway, pts.Truncated, len(pts.Points), len(api))
	}
	for i := range api {
		if string(pts.Points[i]) != string(api[i]) {
			t.Fatalf("point %d: event %s, readings %s", i, pts.Points[i], api[i])
		}
	}

	// The duplicate sends nothing: the next events are the alerts'.
	e.publishBatch(b1)
	e.waitAcks(7, 1, 2)
	as := []outpost.Alert{
		{Rule: "hot", Fingerprint: "hot{room=a}", State: outpost.StateFiring, Severity: "critical", Value: 41.5,
			Labels: map[string]string{"room": "a"}, Annotations: map[string]string{"summary": `room a at 41.5 °C, "hot" <&>`},
			Message: "room a is hot", StartedAt: storetest.T0, ChangedAt: storetest.T0 + sec, Seq: 1},
		{Rule: "cold", Fingerprint: "cold{}", State: outpost.StatePending, Value: 1, StartedAt: storetest.T0 + 2*sec,
			ChangedAt: storetest.T0 + 2*sec, Seq: 2},
	}
	e.publishBatch(storetest.AlertBatch(e.gw, 7, 3, as...))
	e.waitAcks(7, 3, 1)
	apiAlerts := getRaw(t, srv, fmt.Sprintf("/api/v1/alerts?gateway=%s&from=%d&to=%d", e.gw, storetest.T0/1e6, storetest.T0/1e6+60000), "alerts")
	if len(apiAlerts) != 2 {
		t.Fatalf("alerts stored: %s", apiAlerts)
	}
	for i := range as {
		if d := all.want("alert"); d != string(apiAlerts[i]) {
			t.Fatalf("alert %d: event %s, alerts %s", i, d, apiAlerts[i])
		}
		if d := one.want("alert"); d != string(apiAlerts[i]) {
			t.Fatalf("alert %d of the gateway's stream: event %s, alerts %s", i, d, apiAlerts[i])
		}
	}

	// A loss batch: a gap per record, as gaps has it (received_at is
	// the service's clock after the commit, not the store's).
	e.publishBatch(storetest.LossBatch(e.gw, 7, 4, lossRecords()...))
	e.waitAcks(7, 4, 1)
	stored := map[float64]map[string]any{}
	for _, g := range getRaw(t, srv, "/api/v1/gaps?gateway="+e.gw+"&from=0&to=4102444800000", "gaps") {
		var m map[string]any
		if err := json.Unmarshal(g, &m); err != nil {
			t.Fatal(err)
		}
		stored[m["idx"].(float64)] = m
	}
	for i := range lossRecords() {
		for _, c := range []*sseClient{all, one} {
			var m map[string]any
			if err := json.Unmarshal([]byte(c.want("gap")), &m); err != nil {
				t.Fatal(err)
			}
			want := stored[float64(i)]
			if len(m) != len(want) || m["idx"] != float64(i) {
				t.Fatalf("gap %d: event %v, gaps %v", i, m, want)
			}
			for k, v := range want {
				if k != "received_at" && m[k] != v {
					t.Fatalf("gap %d: %s = %v, gaps has %v", i, k, m[k], v)
				}
			}
			if ra, _ := m["received_at"].(string); ra == "" {
				t.Fatalf("gap %d: received_at %v", i, m["received_at"])
			} else if _, err := time.Parse(time.RFC3339Nano, ra); err != nil {
				t.Fatalf("gap %d: received_at: %v", i, err)
			}
		}
	}

	// A status: as gateways has it after.
	status := func(gw, ts string) {
		e.publish(e.prefix+"/"+gw+"/status", []byte(`{"state":"online","ts":"`+ts+`","version":"1.2.3"}`), false)
	}
	status(e.gw, "2025-06-01T12:00:00Z")
	d := all.want("status")
	gws := getRaw(t, srv, "/api/v1/gateways", "gateways")
	if len(gws) != 1 || d != string(gws[0]) {
		t.Fatalf("status event %s, gateways %s", d, gws)
	}
	if d := one.want("status"); d != string(gws[0]) {
		t.Fatalf("status of the gateway's stream %s, gateways %s", d, gws)
	}
	// An older status is not recorded, and not sent: the next event of
	// every gateway's stream is the other gateway's status, which is the
	// first event of that gateway's stream: it saw nothing of e.gw.
	status(e.gw, "2025-06-01T11:00:00Z")
	status(gw2, "2025-06-01T12:00:00Z")
	var st ingest.GatewayStatus
	if err := json.Unmarshal([]byte(all.want("status")), &st); err != nil || st.Gateway != gw2 {
		t.Fatalf("after an older status of %s: a status of %q (%v), want one of %s", e.gw, st.Gateway, err, gw2)
	}
	if err := json.Unmarshal([]byte(other.want("status")), &st); err != nil || st.Gateway != gw2 {
		t.Fatalf("the stream of %s: a status of %q (%v)", gw2, st.Gateway, err)
	}

	// Beyond MaxEventPoints: the newest of every series, then the
	// newest others; the gateway's stream saw nothing of gw2 before it.
	base := storetest.T0 + int64(time.Hour)
	rs := storetest.Series("env", "temperature", base, time.Second, 2500, 0)
	rs = append(rs, storetest.Series("env", "humidity", storetest.T0, time.Second, 1, 50)...)
	rs = append(rs, storetest.Series("door", "open", base, time.Second, 10, 0)...)
	e.publishBatch(storetest.Telemetry(e.gw, 7, 5, rs...))
	e.waitAcks(7, 5, 1)
	wantBatch = fmt.Sprintf(`{"gateway":%q,"readings":2511,"ts_ns":%d,"ts":"2025-06-01T13:41:39Z"}`, e.gw, base+2499*sec)
	if d := all.want("batch"); d != wantBatch {
		t.Fatalf("big batch %s, want %s", d, wantBatch)
	}
	if d := one.want("batch"); d != wantBatch {
		t.Fatalf("big batch of the gateway's stream %s, want %s", d, wantBatch)
	}
	var big struct {
		Points    []ingest.Point
		Truncated bool
	}
	if err := json.Unmarshal([]byte(one.want("points")), &big); err != nil {
		t.Fatal(err)
	}
	if len(big.Points) != ingest.MaxEventPoints || !big.Truncated {
		t.Fatalf("big batch: %d points, truncated %v", len(big.Points), big.Truncated)
	}
	first := func(i int) string {
		p := big.Points[i]
		return fmt.Sprintf("%s/%s@%d", p.Sensor, p.Metric, (p.TS-base)/sec)
	}
	if got := first(0) + " " + first(1) + " " + first(2) + " " + first(len(big.Points)-1); got != "door/open@9 env/humidity@-3600 env/temperature@502 env/temperature@2499" {
		t.Fatalf("big batch points %s …: want the newest door/open, the one humidity, the 1998 newest temperatures", got)
	}
	for i := 3; i < len(big.Points); i++ {
		if big.Points[i].TS != big.Points[i-1].TS+sec {
			t.Fatalf("big batch point %d at %d after %d", i, big.Points[i].TS, big.Points[i-1].TS)
		}
	}

	// Every stream is counted, every event sent (counted just after
	// its write: the client may read it first). all: 2 batches, 2
	// alerts, 3 gaps, 2 statuses; one: those but gw2's status, and 2
	// points; other: gw2's status.
	const sent = 9 + 10 + 1
	eventually(t, fmt.Sprintf("%d events sent", sent), func() bool {
		v, _ := scrape(t, srv.URL, "").Value("outpost_ingest_events_sent_total")
		return v == sent
	})
	s := scrape(t, srv.URL, "")
	if v, _ := s.Value("outpost_ingest_event_streams"); v != 3 {
		t.Errorf("event streams %v, want 3", v)
	}
	if v, _ := s.Value("outpost_ingest_events_sent_total"); v != sent {
		t.Errorf("events sent %v, want %d", v, sent)
	}
	if v, _ := s.Value("outpost_ingest_event_streams_dropped_total"); v != 0 {
		t.Errorf("streams dropped %v, want 0", v)
	}
}

// TestEventsGuard: the events need the token like the rest of /api/;
// unknown parameters and gateways that are no gateway's name are 400;
// so are the active alerts' unknown parameters.
func TestEventsGuard(t *testing.T) {
	const token = "events-token-of-some-length"
	st := openStore(t, "sqlite:"+t.TempDir()+"/ingest.db")
	a := newAPI(t, st, func(o *ingest.Options) { o.HTTPToken = token })
	for _, h := range []string{"", "Bearer wrong", "Basic " + token} {
		resp, body := a.get(t, "/api/v1/events", "Authorization", h)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer") ||
			strings.Contains(string(body), "event:") {
			t.Errorf("events with %q: %d %s", h, resp.StatusCode, body)
		}
	}
	c := openEvents(t, a.srv.URL, "", token)
	c.close()
	for _, q := range []string{
		"gw=x", "gateway=a&gateway=b", "gateway=bad%20name", "gateway=%00", "gateway=" + strings.Repeat("g", outpost.MaxNameLen+1),
		"gateway=..", "gateway=%zz",
	} {
		resp, body := a.get(t, "/api/v1/events?"+q, "Authorization", "Bearer "+token)
		var e map[string]string
		if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != http.StatusBadRequest || e["error"] == "" ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("events?%s: %d %s, want 400 and an error", q, resp.StatusCode, body)
		}
	}
	a = newAPI(t, st, nil)
	for _, q := range []string{"state=firing", "gateway=a&gateway=b", "limit=0", "limit=100001", "gateway=%00"} {
		var body map[string]string
		a.getJSON(t, "/api/v1/alerts/active?"+q, http.StatusBadRequest, &body)
		if body["error"] == "" {
			t.Errorf("alerts/active?%s: %v", q, body)
		}
	}
}

// TestEventsMaxStreams: one stream more than MaxStreams gets 503 with
// Retry-After at once, and a place once a stream ends; streams take no
// query slot.
func TestEventsMaxStreams(t *testing.T) {
	st := openStore(t, "sqlite:"+t.TempDir()+"/ingest.db")
	a := newAPI(t, st, func(o *ingest.Options) { o.MaxStreams, o.MaxQueries = 2, 1 })
	s1 := openEvents(t, a.srv.URL, "", "")
	openEvents(t, a.srv.URL, "?gateway=gw", "")
	var body map[string]string
	resp := a.getJSON(t, "/api/v1/events", http.StatusServiceUnavailable, &body)
	if resp.Header.Get("Retry-After") != "1" || !strings.Contains(body["error"], "too many event streams") {
		t.Fatalf("a third stream: Retry-After %q, %v", resp.Header.Get("Retry-After"), body)
	}
	var latest latestPage
	a.getJSON(t, "/api/v1/latest", http.StatusOK, &latest) // the one query slot is free
	s1.close()
	eventually(t, "a free stream", func() bool {
		req, err := http.NewRequest(http.MethodGet, a.srv.URL+"/api/v1/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
}

// TestEventsSlowClient: a client that stops reading fills its queue and
// is dropped (counted), while every commit lands; when it reads again it
// finds an overflow event at the end of what was written, and the end of
// the stream.
func TestEventsSlowClient(t *testing.T) {
	e := newEnv(t, nil, nil)
	srv := eventServer(t, e)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.(*net.TCPConn).SetReadBuffer(readBuffer); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(c, "GET /api/v1/events?gateway=%s HTTP/1.1\r\nHost: ingest\r\n\r\n", url.QueryEscape(e.gw)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the stream", func() bool {
		v, _ := scrape(t, srv.URL, "").Value("outpost_ingest_event_streams")
		return v == 1
	})
	// Batches of MaxEventPoints readings, a points event of about 400 KB
	// each, until the stream is dropped: the socket's buffers, then the
	// queue's EventQueueBytes, fill.
	dropped := func() float64 {
		v, _ := scrape(t, srv.URL, "").Value("outpost_ingest_event_streams_dropped_total")
		return v
	}
	sent := 0
	for seq := uint64(1); dropped() == 0; seq++ {
		if seq > 400 {
			t.Fatal("400 batches of 2000 readings and the stream is not dropped")
		}
		e.publishBatch(storetest.Telemetry(e.gw, 9, seq, storetest.Series("env", "temperature",
			storetest.T0+int64(seq)*int64(time.Hour), time.Millisecond, ingest.MaxEventPoints, 0)...))
		e.waitAcks(9, seq, 1)
		sent++
	}
	// The commits went on, and go on.
	for seq := uint64(sent + 1); seq <= uint64(sent+5); seq++ {
		e.publishBatch(storetest.Telemetry(e.gw, 9, seq, storetest.Series("env", "temperature",
			storetest.T0+int64(seq)*int64(time.Hour), time.Millisecond, ingest.MaxEventPoints, 0)...))
		e.waitAcks(9, seq, 1)
	}
	sent += 5
	if cnt := e.counts(); cnt.Batches != int64(sent) || cnt.Readings != int64(sent*ingest.MaxEventPoints) {
		t.Fatalf("counts %+v, want %d batches", cnt, sent)
	}
	t.Logf("dropped after %d batches", sent-5)

	// It reads again: what was written, then overflow, then the end.
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan sseEvent, 1024)
	end := make(chan error, 1)
	go func() {
		end <- readSSE(resp.Body, events)
		close(events)
	}()
	var names []string
	var last sseEvent
	for ev := range events {
		if ev.name != "" {
			names = append(names, ev.name)
			last = ev
		}
	}
	if err := <-end; err != io.EOF {
		t.Fatalf("the stream ended with %v, want its end", err)
	}
	if len(names) < 3 || names[0] != "hello" || last.name != "overflow" || last.data != "{}" {
		t.Fatalf("events %v, last %+v: want hello, some batch and points, overflow {}", names, last)
	}
	if n := len(names) - 2; n >= 2*(sent-5) {
		t.Fatalf("%d events written of %d batches before the drop: nothing was dropped", n, sent-5)
	}
	eventually(t, "the stream's end", func() bool {
		v, _ := scrape(t, srv.URL, "").Value("outpost_ingest_event_streams")
		return v == 0
	})
	if v := dropped(); v != 1 {
		t.Fatalf("streams dropped %v, want 1", v)
	}
}

// TestEventsCloseEndsStreams: Close ends the open streams (their
// handlers return before it does) and refuses new ones.
func TestEventsCloseEndsStreams(t *testing.T) {
	e := newEnv(t, nil, nil)
	srv := eventServer(t, e)
	a := openEvents(t, srv.URL, "", "")
	b := openEvents(t, srv.URL, "?gateway="+e.gw, "")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*sseClient{a, b} {
		if evs, err := c.ends(); err != io.EOF || len(evs) != 0 {
			t.Fatalf("after Close: events %+v, end %v; want the stream's end", evs, err)
		}
	}
	resp, err := http.Get(srv.URL + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("a stream after Close: %d", resp.StatusCode)
	}
}

// TestEventsWriteTimeout: a stream outlives the server's WriteTimeout,
// sending pings in the silence and events after it: every write sets
// its own deadline.
func TestEventsWriteTimeout(t *testing.T) {
	e := newEnv(t, nil, nil)
	ingest.SetEventHeartbeat(e.svc, 10*time.Millisecond)
	srv := httptest.NewUnstartedServer(e.svc.Handler())
	srv.Config.WriteTimeout = 50 * time.Millisecond
	srv.Start()
	t.Cleanup(func() {
		e.svc.EndStreams()
		srv.Close()
	})
	c := openEvents(t, srv.URL, "", "")
	start := time.Now()
	pings := 0
	for pings < 3 || time.Since(start) < 4*srv.Config.WriteTimeout { // past the WriteTimeout, whatever the pings' pace
		ev := c.nextAny()
		if ev.name != "" || ev.comment != "ping" || ev.raw != ": ping\n" {
			t.Fatalf("in the silence: %+v, want a ping", ev)
		}
		pings++
	}
	e.publishBatch(storetest.Telemetry(e.gw, 3, 1, readings(2, storetest.T0)...))
	e.waitAcks(3, 1, 1)
	if d := c.want("batch"); !strings.Contains(d, `"readings":4`) {
		t.Fatalf("batch %s", d)
	}
}

// TestHTTPActiveAlerts: /api/v1/alerts/active answers the active
// instances as the store has them, each as /api/v1/alerts has its
// transition, with limit and truncated, in every store.
func TestHTTPActiveAlerts(t *testing.T) {
	for _, db := range dbStores(t) {
		t.Run(db.name, func(t *testing.T) {
			st := openStore(t, db.dsn)
			gw, gw2 := "gw-"+unique(t), "gw2-"+unique(t)
			sec := int64(time.Second)
			al := func(fp string, state outpost.AlertState, at, started int64, seq uint64) outpost.Alert {
				return outpost.Alert{Rule: "r", Fingerprint: fp, State: state, Severity: "warning", Value: float64(seq),
					Labels: map[string]string{"fp": fp}, Message: fp + " " + state.String(), StartedAt: storetest.T0 + started*sec,
					ChangedAt: storetest.T0 + at*sec, Seq: seq}
			}
			commitAll(t, st,
				storetest.AlertBatch(gw, 1, 1, al("a", outpost.StatePending, 1, 1, 1), al("a", outpost.StateFiring, 2, 1, 2),
					al("b", outpost.StateFiring, 3, 0, 3), al("c", outpost.StateFiring, 4, 4, 4), al("c", outpost.StateResolved, 5, 4, 5)),
				storetest.AlertBatch(gw2, 1, 1, al("a", outpost.StateNoData, 6, 6, 1)))
			a := newAPI(t, st, nil)
			type page struct {
				Alerts    []json.RawMessage
				Limit     int
				Truncated *bool
				Next      *string
			}
			var all page
			a.getJSON(t, "/api/v1/alerts/active", http.StatusOK, &all)
			trans := getRaw(t, a.srv, fmt.Sprintf("/api/v1/alerts?from=%d&to=%d", storetest.T0/1e6, storetest.T0/1e6+60000), "alerts")
			byKey := map[string]string{}
			for _, raw := range trans {
				var r ingest.AlertRow
				if err := json.Unmarshal(raw, &r); err != nil {
					t.Fatal(err)
				}
				byKey[fmt.Sprintf("%s/%s/%d", r.Gateway, r.Fingerprint, r.Seq)] = string(raw)
			}
			// gw: b (started 0), then a (started 1); c resolved; then gw2's a.
			want := []string{byKey[gw+"/b/3"], byKey[gw+"/a/2"], byKey[gw2+"/a/1"]}
			if all.Limit != ingest.DefaultRangeLimit || all.Truncated == nil || *all.Truncated || all.Next != nil || len(all.Alerts) != len(want) {
				t.Fatalf("active alerts: %+v", all)
			}
			for i := range want {
				if string(all.Alerts[i]) != want[i] {
					t.Fatalf("active alert %d: %s, want %s", i, all.Alerts[i], want[i])
				}
			}
			var one page
			a.getJSON(t, "/api/v1/alerts/active?gateway="+gw+"&limit=1", http.StatusOK, &one)
			if one.Limit != 1 || one.Truncated == nil || !*one.Truncated || len(one.Alerts) != 1 || string(one.Alerts[0]) != want[0] {
				t.Fatalf("the first of one gateway's: %+v", one)
			}
			var exact page
			a.getJSON(t, "/api/v1/alerts/active?gateway="+gw+"&limit=2", http.StatusOK, &exact)
			if exact.Truncated == nil || *exact.Truncated || len(exact.Alerts) != 2 {
				t.Fatalf("all of one gateway's: %+v", exact)
			}
			var none page
			resp := a.getJSON(t, "/api/v1/alerts/active?gateway=nobody", http.StatusOK, &none)
			if len(none.Alerts) != 0 || resp.Header.Get("X-Request-Id") == "" {
				t.Fatalf("a gateway without alerts: %+v", none)
			}
			if _, body := a.get(t, "/api/v1/alerts/active?gateway=nobody"); !strings.Contains(string(body), `"alerts":[]`) {
				t.Fatalf("an empty answer is not an empty array: %s", body)
			}
		})
	}
}

// RecordGatewayStatus makes the spy a StatusRecorder when its store is
// one, as the service wants of a store (the events send a status only
// if it was recorded); else it records as SetGatewayStatus and says so.
func (s *spyStore) RecordGatewayStatus(ctx context.Context, gateway, state string, at time.Time, payload []byte,
	labels ingest.SensorLabels) (ingest.GatewayStatus, bool, error) {
	if sr, ok := s.Store.(ingest.StatusRecorder); ok {
		return sr.RecordGatewayStatus(ctx, gateway, state, at, payload, labels)
	}
	err := s.Store.SetGatewayStatus(ctx, gateway, state, at, payload, labels)
	return ingest.GatewayStatus{Gateway: gateway, State: state, UpdatedAt: at, Payload: payload}, err == nil, err
}
