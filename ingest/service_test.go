package ingest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/stores"
	"github.com/outposthq/outpost/ingest/storetest"
	"github.com/outposthq/outpost/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitFor = 20 * time.Second

// env is one test's world: a broker, a store, a service on a topic prefix
// of its own (the real Mosquitto is shared with other tests), and a client
// that plays the gateway.
type env struct {
	t      *testing.T
	broker string
	prefix string
	gw     string // a gateway id unique to the test
	store  *spyStore
	svc    *ingest.Service
	client mqtt.Client

	mu   sync.Mutex
	acks []outpost.Ack

	closeTimeoutOK bool // the test closed the service with a deadline it may miss
}

func unique(t testing.TB) string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// newEnv starts everything; opts may adjust the service's options.
func newEnv(t *testing.T, wrap func(*spyStore), opts func(*ingest.Options)) *env {
	t.Helper()
	return newEnvGW(t, "gw-"+unique(t), wrap, opts)
}

// newEnvGW is newEnv for the gateway gw.
func newEnvGW(t *testing.T, gw string, wrap func(*spyStore), opts func(*ingest.Options)) *env {
	t.Helper()
	e := &env{t: t, broker: testenv.MQTT(t), prefix: "outpost-test/" + unique(t) + "/v1", gw: gw}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := stores.Open(ctx, testenv.DB(t), zerolog.Nop())
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	e.store = &spyStore{Store: st}
	if wrap != nil {
		wrap(e.store)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	o := &ingest.Options{Broker: e.broker, TopicPrefix: e.prefix, Group: "g" + unique(t), Logger: testLogger(t)}
	if opts != nil {
		opts(o)
	}
	var store ingest.Store = e.store
	if o.Commands {
		store = &commandSpy{spyStore: e.store, CommandStore: st.(ingest.CommandStore)}
	}
	e.svc = ingest.New(store, o)
	if err := e.svc.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.svc.Close(ctx); err != nil && !(e.closeTimeoutOK && errors.Is(err, context.DeadlineExceeded)) {
			t.Errorf("close service: %v", err)
		}
	})
	e.client = e.connect(e.prefix + "/+/ack")
	return e
}

func testLogger(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}

// connect returns a gateway-side client subscribed to the ack topics.
func (e *env) connect(ackFilter string) mqtt.Client {
	t := e.t
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(e.broker).SetClientID("test-gw-" + unique(t)).
		SetCleanSession(true).SetOrderMatters(false).SetConnectTimeout(10 * time.Second)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("test client connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(250) })
	tok := c.Subscribe(ackFilter, 1, func(_ mqtt.Client, m mqtt.Message) {
		a, err := outpost.DecodeAck(m.Payload())
		if err != nil {
			t.Errorf("bad ack on %s: %v", m.Topic(), err)
			return
		}
		if !strings.HasSuffix(m.Topic(), "/"+e.gw+"/ack") {
			t.Errorf("ack on %s, want the gateway %s", m.Topic(), e.gw)
		}
		e.mu.Lock()
		e.acks = append(e.acks, *a)
		e.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("test client subscribe: %v", tok.Error())
	}
	return c
}

func (e *env) publish(topic string, payload []byte, retained bool) {
	e.t.Helper()
	tok := e.client.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		e.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func (e *env) batchTopic(gw string) string { return e.prefix + "/" + gw + "/batch" }

func (e *env) publishBatch(b *outpost.Batch) {
	e.t.Helper()
	e.publish(e.batchTopic(b.Gateway), storetest.Encode(e.t, b), false)
}

// ackCount returns how many acks named (epoch, seq).
func (e *env) ackCount(epoch, seq uint64) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, a := range e.acks {
		if a.Epoch == epoch && slices.Contains(a.Seqs, seq) {
			n++
		}
	}
	return n
}

func (e *env) waitAcks(epoch, seq uint64, n int) {
	e.t.Helper()
	eventually(e.t, fmt.Sprintf("%d ack(s) of %d/%d", n, epoch, seq), func() bool { return e.ackCount(epoch, seq) >= n })
}

func (e *env) counts() ingest.Counts {
	e.t.Helper()
	c, err := e.store.Counts(context.Background())
	if err != nil {
		e.t.Fatalf("counts: %v", err)
	}
	return c
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// spyStore wraps a real store: it records dead letters and can inject
// commit failures.
type spyStore struct {
	ingest.Store
	mu     sync.Mutex
	dead   []deadLetter
	before func(ctx context.Context, b *outpost.Batch) error // may fail or block a commit
	groups []int                                             // the size of each CommitGroup
}

type deadLetter struct{ topic, reason string }

func (s *spyStore) Commit(ctx context.Context, b *outpost.Batch, size int) (bool, error) {
	s.mu.Lock()
	f := s.before
	s.mu.Unlock()
	if f != nil {
		if err := f(ctx, b); err != nil {
			return false, err
		}
	}
	return s.Store.Commit(ctx, b, size)
}

// CommitGroup makes the service commit in groups whatever the store:
// through the store's own CommitGroup if it has one, else one batch at a
// time. It records each group's size.
func (s *spyStore) CommitGroup(ctx context.Context, bs []*outpost.Batch, sizes []int) ([]bool, error) {
	s.mu.Lock()
	f := s.before
	s.groups = append(s.groups, len(bs))
	s.mu.Unlock()
	if f != nil {
		for _, b := range bs {
			if err := f(ctx, b); err != nil {
				return nil, err
			}
		}
	}
	if gs, ok := s.Store.(ingest.GroupStore); ok {
		return gs.CommitGroup(ctx, bs, sizes)
	}
	dups := make([]bool, len(bs))
	for i, b := range bs {
		var err error
		if dups[i], err = s.Store.Commit(ctx, b, sizes[i]); err != nil {
			return nil, err
		}
	}
	return dups, nil
}

// Compact passes a compaction on to the store, if it compacts.
func (s *spyStore) Compact(ctx context.Context, before int64) (ingest.CompactStats, error) {
	if c, ok := s.Store.(ingest.Compactor); ok {
		return c.Compact(ctx, before)
	}
	return ingest.CompactStats{}, nil
}

// largestGroup is the most batches committed in one group.
func (s *spyStore) largestGroup() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, g := range s.groups {
		n = max(n, g)
	}
	return n
}

func (s *spyStore) DeadLetter(ctx context.Context, topic, reason string, payload []byte) error {
	if err := s.Store.DeadLetter(ctx, topic, reason, payload); err != nil {
		return err
	}
	s.mu.Lock()
	s.dead = append(s.dead, deadLetter{topic, reason})
	s.mu.Unlock()
	return nil
}

func (s *spyStore) deadLetters() []deadLetter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.dead)
}

func readings(n int, start int64) []outpost.Reading {
	return append(storetest.Series("env", "temperature", start, time.Second, n, 20),
		storetest.Series("env", "humidity", start, time.Second, n, 40)...)
}

func TestCommitAndAck(t *testing.T) {
	e := newEnv(t, nil, nil)
	b1 := storetest.Telemetry(e.gw, 42, 1, readings(5, storetest.T0)...)
	b2 := storetest.Telemetry(e.gw, 42, 2, readings(3, storetest.T0+int64(time.Minute))...)
	b3 := storetest.AlertBatch(e.gw, 42, 3, outpost.Alert{Rule: "hot", Fingerprint: "hot{}", State: outpost.StateFiring,
		Severity: "warning", Value: 31, Labels: map[string]string{"room": "a"}, Message: "hot", StartedAt: storetest.T0, ChangedAt: storetest.T0, Seq: 1})
	for _, b := range []*outpost.Batch{b1, b2, b3} {
		e.publishBatch(b)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		e.waitAcks(42, seq, 1)
	}
	if c := e.counts(); c != (ingest.Counts{Readings: 16, DistinctReadings: 16, Alerts: 1, Batches: 3}) {
		t.Fatalf("counts = %+v", c)
	}
	st := e.svc.Stats()
	if st.Batches != 3 || st.Readings != 16 || st.Alerts != 1 || st.Duplicates != 0 || st.DeadLetters != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestDuplicateAckedTwice(t *testing.T) {
	e := newEnv(t, nil, nil)
	epoch := uint64(math.MaxUint64 - 5) // high bit set: stored as a negative int64
	b := storetest.Telemetry(e.gw, epoch, 9, readings(4, storetest.T0)...)
	e.publishBatch(b)
	e.waitAcks(epoch, 9, 1)
	e.publishBatch(b) // the gateway resends after a lost ack
	e.waitAcks(epoch, 9, 2)
	if c := e.counts(); c.Readings != 8 || c.Batches != 1 {
		t.Fatalf("counts = %+v, want one copy of the batch", c)
	}
	eventually(t, "stats", func() bool { return e.svc.Stats().Duplicates == 1 })
	if st := e.svc.Stats(); st.Batches != 1 || st.Readings != 8 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestBadInputDeadLettered(t *testing.T) {
	const maxPayload = 8 << 10
	e := newEnv(t, nil, func(o *ingest.Options) { o.MaxPayload = maxPayload })
	good := storetest.Encode(t, storetest.Telemetry(e.gw, 1, 1, readings(3, storetest.T0)...))
	v3 := storetest.Encode(t, storetest.Telemetry(e.gw, 1, 2, readings(1, storetest.T0)...))
	v3[1] = 3 // a wire version this build does not know
	big := storetest.Telemetry(e.gw, 1, 3, storetest.Series("s", "t", storetest.T0, time.Millisecond, 5000, 0)...)
	badText := storetest.Telemetry(e.gw, 1, 4, storetest.Series("s\xff", "t", storetest.T0, time.Second, 1, 0)...)
	noSeq := storetest.Telemetry(e.gw, 1, 0, readings(1, storetest.T0)...)
	lossText := storetest.LossBatch(e.gw, 1, 5, outpost.Loss{Reason: "max\x00bytes", Kind: outpost.KindAlert, Count: 1})
	lossCount := storetest.LossBatch(e.gw, 1, 6, outpost.Loss{Reason: outpost.LossMaxBytes, Kind: outpost.KindAlert, Count: math.MaxUint64})
	lossEmpty := storetest.LossBatch(e.gw, 1, 7)
	cases := []struct {
		name, topic string
		payload     []byte
		reason      string
	}{
		{"garbage", e.batchTopic(e.gw), []byte("\x00\xffnot msgpack at all"), "invalid batch: outpost: invalid batch: decode"},
		{"empty", e.batchTopic(e.gw), nil, "invalid batch: outpost: invalid batch: decode"},
		{"truncated", e.batchTopic(e.gw), good[:len(good)/2], "invalid batch: outpost: invalid batch: decode"},
		{"trailing", e.batchTopic(e.gw), append(slices.Clone(good), 0xc0), "trailing"},
		{"mismatch", e.batchTopic("someone-else"), good, "gateway mismatch"},
		{"version", e.batchTopic(e.gw), v3, "unsupported version"},
		{"oversize", e.batchTopic(e.gw), storetest.Encode(t, big), "exceeds the limit"},
		{"utf8", e.batchTopic(e.gw), storetest.Encode(t, badText), "UTF-8"},
		{"zero seq", e.batchTopic(e.gw), storetest.Encode(t, noSeq), "non-zero"},
		{"loss text", e.batchTopic(e.gw), storetest.Encode(t, lossText), "loss 0: reason contains a NUL"},
		{"loss count", e.batchTopic(e.gw), storetest.Encode(t, lossCount), "loss 0: count 18446744073709551615 out of range"},
		{"loss empty", e.batchTopic(e.gw), storetest.Encode(t, lossEmpty), "loss records"},
		{"status not json", e.prefix + "/" + e.gw + "/status", []byte("online!"), "not a JSON object"},
		{"status no state", e.prefix + "/" + e.gw + "/status", []byte(`{"ts":"2025-01-01T00:00:00Z"}`), "no state"},
		{"status labels", e.prefix + "/" + e.gw + "/status", []byte(`{"state":"online","sensors":{"s":{"labels":{` + manyLabels(65) + `}}}}`),
			"status sensors: sensor s: 65 labels, more than 64"},
		{"status sensor id", e.prefix + "/" + e.gw + "/status", []byte(`{"state":"online","sensors":{"s/1":{"labels":{}}}}`), "not a valid name"},
	}
	if len(storetest.Encode(t, big)) <= maxPayload {
		t.Fatal("the oversize case is not oversize")
	}
	for _, c := range cases {
		e.publish(c.topic, c.payload, false)
	}
	eventually(t, "dead letters", func() bool { return len(e.store.deadLetters()) >= len(cases) })
	dead := e.store.deadLetters()
	for _, c := range cases {
		i := slices.IndexFunc(dead, func(d deadLetter) bool { return d.topic == c.topic && strings.Contains(d.reason, c.reason) })
		if i < 0 {
			t.Errorf("%s: no dead letter on %s with a reason containing %q; have %q", c.name, c.topic, c.reason, dead)
			continue
		}
		dead = slices.Delete(dead, i, i+1)
	}
	if c := e.counts(); c.DeadLetters != int64(len(cases)) || c.Batches != 0 {
		t.Fatalf("counts = %+v, want %d dead letters and no batch", c, len(cases))
	}
	// The consumer goes on.
	e.publish(e.batchTopic(e.gw), good, false)
	e.waitAcks(1, 1, 1)
	if st := e.svc.Stats(); st.DeadLetters != int64(len(cases)) || st.Batches != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// manyLabels is n labels as the members of a JSON object.
func manyLabels(n int) string {
	ms := make([]string, n)
	for i := range ms {
		ms[i] = fmt.Sprintf(`"l%d":"v"`, i)
	}
	return strings.Join(ms, ",")
}

// lossRecords are the loss records the service tests send.
func lossRecords() []outpost.Loss {
	sec := int64(time.Second)
	return []outpost.Loss{
		{Reason: outpost.LossMaxBytes, Kind: outpost.KindTelemetry, Sensor: "env", Metric: "temperature",
			From: storetest.T0, To: storetest.T0 + 59*sec, Count: 60, Epoch: 41, FirstSeq: 1, LastSeq: 3, At: storetest.T0 + 3600*sec},
		{Reason: outpost.LossMaxBytes, Kind: outpost.KindTelemetry, Sensor: "env", Metric: "humidity",
			From: storetest.T0, To: storetest.T0 + 59*sec, Count: 60, Epoch: 41, FirstSeq: 1, LastSeq: 3, At: storetest.T0 + 3600*sec},
		{Reason: outpost.LossCorrupt, Kind: outpost.KindAlert, Rule: "hot", Epoch: 41, FirstSeq: 4, LastSeq: 4, At: storetest.T0 + 3601*sec},
	}
}

// TestLossBatch: a loss batch published like any other is committed into
// gaps, acked by its seq, counted, and logged once as a warning.
func TestLossBatch(t *testing.T) {
	var logs testenv.Buffer
	e := newEnv(t, nil, func(o *ingest.Options) {
		o.Logger = zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), &logs)).Level(zerolog.InfoLevel)
	})
	epoch := uint64(math.MaxUint64 - 7)
	e.publishBatch(storetest.Telemetry(e.gw, epoch, 1, readings(2, storetest.T0+int64(time.Hour))...))
	lb := storetest.LossBatch(e.gw, epoch, 2, lossRecords()...)
	e.publishBatch(lb)
	e.waitAcks(epoch, 1, 1)
	e.waitAcks(epoch, 2, 1)
	if c := e.counts(); c != (ingest.Counts{Readings: 4, DistinctReadings: 4, Batches: 2, Gaps: 3, LostReadings: 120}) {
		t.Fatalf("counts = %+v", c)
	}
	gs, err := storetest.Collect(e.store.Gaps(context.Background(), ingest.GapQuery{Gateway: e.gw, From: 0, To: math.MaxInt64, Limit: 10}))
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 3 {
		t.Fatalf("gaps = %+v", gs)
	}
	ls := lossRecords()
	for _, g := range gs {
		l := ls[g.Index]
		if g.Gateway != e.gw || g.Epoch != epoch || g.Seq != 2 || g.Reason != l.Reason || g.Kind != l.Kind ||
			g.Sensor != l.Sensor || g.Metric != l.Metric || g.Rule != l.Rule || g.From != l.From || g.To != l.To ||
			g.Count != l.Count || g.LostEpoch != l.Epoch || g.FirstSeq != l.FirstSeq || g.LastSeq != l.LastSeq ||
			g.DroppedAt != l.At || g.ReceivedAt == 0 {
			t.Errorf("gap %d = %+v, want loss %+v", g.Index, g, l)
		}
	}
	if st := e.svc.Stats(); st.Batches != 2 || st.Readings != 4 || st.Losses != 3 || st.Alerts != 0 || st.Duplicates != 0 {
		t.Fatalf("stats = %+v", st)
	}

	e.publishBatch(lb) // resent after a lost ack: acked again, stored and logged once
	e.waitAcks(epoch, 2, 2)
	eventually(t, "duplicate", func() bool { return e.svc.Stats().Duplicates == 1 })
	if st := e.svc.Stats(); st.Losses != 3 || st.Batches != 2 {
		t.Fatalf("stats after a duplicate = %+v", st)
	}
	if c := e.counts(); c.Gaps != 3 || c.Batches != 2 {
		t.Fatalf("counts after a duplicate = %+v", c)
	}
	var warnings []map[string]any
	for line := range strings.Lines(logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["level"] == "warn" {
			warnings = append(warnings, m)
		}
	}
	if len(warnings) != 1 {
		t.Fatalf("%d warnings, want one for the loss batch: %v", len(warnings), warnings)
	}
	w := warnings[0]
	if w["gateway"] != e.gw || w["seq"] != float64(2) || w["records"] != float64(3) || w["lost_readings"] != float64(120) ||
		w["reason"] != "max_bytes,corrupt" || fmt.Sprint(w["series"]) != "[env/temperature env/humidity alerts of hot]" {
		t.Fatalf("warning = %v", w)
	}
}

// TestGapsHTTP: /api/v1/gaps serves the gaps of one gateway.
func TestGapsHTTP(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.publishBatch(storetest.LossBatch(e.gw, 3, 1, lossRecords()...))
	e.waitAcks(3, 1, 1)
	path := "/api/v1/gaps?gateway=" + e.gw
	from := time.Unix(0, storetest.T0).UTC()

	type body struct {
		Gaps  []ingest.Gap
		Limit int
	}
	var b body
	decode(t, get(t, e.svc, path), http.StatusOK, &b) // the last hour: nothing
	if len(b.Gaps) != 0 || b.Limit != ingest.DefaultRangeLimit {
		t.Fatalf("default window = %+v", b)
	}
	if rec := get(t, e.svc, path); !strings.Contains(rec.Body.String(), `"gaps":[]`) {
		t.Fatalf("an empty answer is not an empty array: %s", rec.Body)
	}
	for _, tc := range []struct {
		name, query string
		want        []int // record indexes
	}{
		{"rfc3339", "&from=" + from.Format(time.RFC3339Nano) + "&to=" + from.Add(time.Minute).Format(time.RFC3339Nano), []int{0, 1}},
		{"unix ms", fmt.Sprintf("&from=%d&to=%d", from.UnixMilli(), from.Add(time.Minute).UnixMilli()), []int{0, 1}},
		{"to_ts included", fmt.Sprintf("&from=%d&to=%d", from.Add(59*time.Second).UnixMilli(), from.Add(time.Hour).UnixMilli()), []int{0, 1}},
		{"after", fmt.Sprintf("&from=%d&to=%d", from.Add(time.Minute).UnixMilli(), from.Add(time.Hour).UnixMilli()), nil},
		{"sensor and metric", "&sensor=env&metric=humidity&from=" + from.Format(time.RFC3339), []int{1}},
		{"metric", "&metric=temperature&from=" + from.Format(time.RFC3339), []int{0}},
		{"limit", "&limit=1&from=" + from.Format(time.RFC3339), []int{0}},
		{"unknown time", "&from=0&to=1", []int{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b body
			decode(t, get(t, e.svc, path+tc.query), http.StatusOK, &b)
			var got []int
			for _, g := range b.Gaps {
				got = append(got, g.Index)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("gaps %v, want %v: %+v", got, tc.want, b.Gaps)
			}
		})
	}

	// Every field, as JSON.
	rec := get(t, e.svc, path+"&from=0&limit=5")
	var raw struct{ Gaps []map[string]any }
	decode(t, rec, http.StatusOK, &raw)
	if len(raw.Gaps) != 3 {
		t.Fatalf("gaps = %s", rec.Body)
	}
	want := map[string]any{
		"gateway": e.gw, "epoch": "3", "seq": float64(1), "idx": float64(2), "reason": "corrupt", "kind": "alert",
		"sensor": "", "metric": "", "rule": "hot", "from_ts": nil, "to_ts": nil, "count": float64(0),
		"lost_epoch": "41", "first_seq": float64(4), "last_seq": float64(4), "dropped_at": "2025-06-01T13:00:01Z",
	}
	got := raw.Gaps[0] // unknown time: from_ts 0 sorts first
	for k, v := range want {
		if gv, ok := got[k]; !ok || gv != v {
			t.Errorf("%s = %#v, want %#v", k, gv, v)
		}
	}
	if ra, _ := got["received_at"].(string); ra == "" {
		t.Errorf("received_at = %#v", got["received_at"])
	} else if _, err := time.Parse(time.RFC3339Nano, ra); err != nil {
		t.Errorf("received_at: %v", err)
	}
	if len(got) != len(want)+1 {
		t.Errorf("keys = %v, want those of %v and received_at", got, want)
	}
	if raw.Gaps[1]["from_ts"] != "2025-06-01T12:00:00Z" || raw.Gaps[1]["to_ts"] != "2025-06-01T12:00:59Z" || raw.Gaps[1]["kind"] != "telemetry" {
		t.Errorf("gap 0 = %v", raw.Gaps[1])
	}

	for _, tc := range []struct{ name, query, msg string }{
		{"no gateway", "sensor=env&metric=temperature", `"gateway" is required`},
		{"empty gateway", "gateway=", `"gateway" is required`},
		{"bad from", "gateway=x&from=yesterday", `"from"`},
		{"bad to", "gateway=x&to=2025-13-01T00:00:00Z", `"to"`},
		{"from after to", "gateway=x&from=2000&to=1000", "must be before"},
		{"from equals to", "gateway=x&from=1000&to=1000", "must be before"},
		{"limit zero", "gateway=x&limit=0", `"limit"`},
		{"limit huge", "gateway=x&limit=100001", `"limit"`},
		{"year 3000", "gateway=x&to=3000-01-01T00:00:00Z", "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body map[string]string
			decode(t, get(t, e.svc, "/api/v1/gaps?"+tc.query), http.StatusBadRequest, &body)
			if !strings.Contains(body["error"], tc.msg) {
				t.Fatalf("error %q does not mention %q", body["error"], tc.msg)
			}
		})
	}
	r := httptest.NewRecorder()
	e.svc.Handler().ServeHTTP(r, httptest.NewRequest(http.MethodPost, path, nil))
	if r.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST gaps: %d", r.Code)
	}
}

func TestGapJSON(t *testing.T) {
	g := ingest.Gap{Gateway: "g", Epoch: math.MaxUint64, Seq: 2, Index: 3, Reason: "max_age", Kind: outpost.KindTelemetry,
		Sensor: "s", Metric: "m", From: storetest.T0 + 1, To: storetest.T0 + 2, Count: 4, LostEpoch: 1 << 63, FirstSeq: 5, LastSeq: 6,
		DroppedAt: storetest.T0 + 7, ReceivedAt: storetest.T0 + 8}
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"gateway":"g","epoch":"18446744073709551615","seq":2,"idx":3,"reason":"max_age","kind":"telemetry",` +
		`"sensor":"s","metric":"m","rule":"","from_ts":"2025-06-01T12:00:00.000000001Z","to_ts":"2025-06-01T12:00:00.000000002Z",` +
		`"count":4,"lost_epoch":"9223372036854775808","first_seq":5,"last_seq":6,` +
		`"dropped_at":"2025-06-01T12:00:00.000000007Z","received_at":"2025-06-01T12:00:00.000000008Z"}`
	if string(b) != want {
		t.Fatalf("json = %s\nwant   %s", b, want)
	}
	var back ingest.Gap
	if err := json.Unmarshal(b, &back); err != nil || back != g {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
	g.From, g.To, g.Kind, g.Sensor, g.Metric, g.Rule = 0, 0, outpost.KindAlert, "", "", "r"
	if b, err = json.Marshal(g); err != nil || !strings.Contains(string(b), `"from_ts":null,"to_ts":null`) {
		t.Fatalf("unknown times: %s, %v", b, err)
	}
	if err := json.Unmarshal(b, &back); err != nil || back != g {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
	for _, bad := range []string{`{"kind":"loss","epoch":"1","lost_epoch":"1","dropped_at":"2025-06-01T12:00:00Z","received_at":"2025-06-01T12:00:00Z"}`,
		`{"kind":"alert","epoch":"x","lost_epoch":"1","dropped_at":"2025-06-01T12:00:00Z","received_at":"2025-06-01T12:00:00Z"}`,
		`{"kind":"alert","epoch":"1","lost_epoch":"1","dropped_at":"today","received_at":"2025-06-01T12:00:00Z"}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestGatewayStatus(t *testing.T) {
	e := newEnv(t, nil, nil)
	topic := e.prefix + "/" + e.gw + "/status"
	t.Cleanup(func() { e.publish(topic, nil, true) }) // clear the retained message
	e.publish(topic, []byte(`{"state":"online","ts":"2025-06-01T12:00:00Z","version":"1.2.3"}`), true)
	var gws []ingest.GatewayStatus
	eventually(t, "gateway status", func() bool {
		var err error
		gws, err = storetest.Collect(e.store.Gateways(context.Background()))
		return err == nil && len(gws) == 1
	})
	g := gws[0]
	if g.Gateway != e.gw || g.State != "online" || !g.UpdatedAt.Equal(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("status = %+v", g)
	}
	// A second service instance gets the retained status at subscribe.
	e2 := ingest.New(e.store, &ingest.Options{Broker: e.broker, TopicPrefix: e.prefix, Group: "other"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "retained status", func() bool { return e2.Stats().Statuses == 1 })
	if err := e2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Offline, newer: replaces; the HTTP API shows it.
	e.publish(topic, []byte(`{"state":"offline","ts":"2025-06-01T12:05:00Z"}`), true)
	eventually(t, "offline", func() bool {
		gws, err := storetest.Collect(e.store.Gateways(context.Background()))
		return err == nil && len(gws) == 1 && gws[0].State == "offline"
	})
	rec := get(t, e.svc, "/api/v1/gateways")
	var body struct{ Gateways []ingest.GatewayStatus }
	decode(t, rec, http.StatusOK, &body)
	if len(body.Gateways) != 1 || body.Gateways[0].State != "offline" || !strings.Contains(string(body.Gateways[0].Payload), `"offline"`) {
		t.Fatalf("gateways = %+v", body.Gateways)
	}
	statusLabels(t, e, topic)
}

// statusLabels: a status's sensors label the gateway's series, which the
// series endpoint filters by; an older status and one beyond the bounds
// (dead-lettered) change nothing.
func statusLabels(t *testing.T, e *env, topic string) {
	t.Helper()
	e.publishBatch(storetest.Telemetry(e.gw, 7, 1, readings(2, storetest.T0)...))
	e.waitAcks(7, 1, 1)
	labelled := func(label string) int {
		var pg struct{ Series []ingest.SeriesInfo }
		decode(t, get(t, e.svc, "/api/v1/series?gateway="+e.gw+"&label="+url.QueryEscape(label)), http.StatusOK, &pg)
		return len(pg.Series)
	}
	e.publish(topic, []byte(`{"state":"online","ts":"2025-06-01T12:10:00Z","sensors":{"env":{"labels":{"room":"lab"}},"door":{"labels":{}}}}`), true)
	eventually(t, "labels from the status", func() bool { return labelled("room:lab") == 2 })
	dead := len(e.store.deadLetters())
	e.publish(topic, []byte(`{"state":"online","ts":"2025-06-01T12:01:00Z","sensors":{"env":{"labels":{"room":"old"}}}}`), true)
	e.publish(topic, []byte(`{"state":"online","ts":"2025-06-01T12:20:00Z","sensors":{"env":{"labels":{`+manyLabels(65)+`}}}}`), true)
	eventually(t, "the status beyond the bounds dead-lettered", func() bool { return len(e.store.deadLetters()) == dead+1 })
	eventually(t, "the older status handled", func() bool { return e.svc.Stats().Statuses >= 4 })
	if n, old := labelled("room:lab"), labelled("room:old"); n != 2 || old != 0 {
		t.Fatalf("after an older status and a refused one: %d series of room lab, %d of room old; want 2 and 0", n, old)
	}
	gws, err := storetest.Collect(e.store.Gateways(context.Background()))
	if err != nil || len(gws) != 1 || !gws[0].UpdatedAt.Equal(time.Date(2025, 6, 1, 12, 10, 0, 0, time.UTC)) {
		t.Fatalf("gateways = %+v, %v; want the status of 12:10", gws, err)
	}
}

func TestHTTP(t *testing.T) {
	e := newEnv(t, nil, nil)
	sec := int64(time.Second)
	e.publishBatch(storetest.Telemetry(e.gw, 1, 1, readings(10, storetest.T0)...))
	e.waitAcks(1, 1, 1)

	var health map[string]string
	decode(t, get(t, e.svc, "/healthz"), http.StatusOK, &health)
	if health["status"] != "ok" {
		t.Fatalf("healthz = %v", health)
	}

	var latest struct{ Points []ingest.Point }
	decode(t, get(t, e.svc, "/api/v1/latest"), http.StatusOK, &latest)
	want := []ingest.Point{
		{Gateway: e.gw, Sensor: "env", Metric: "humidity", TS: storetest.T0 + 9*sec, Value: 49, Unit: "Cel"},
		{Gateway: e.gw, Sensor: "env", Metric: "temperature", TS: storetest.T0 + 9*sec, Value: 29, Unit: "Cel"},
	}
	if !slices.Equal(latest.Points, want) {
		t.Fatalf("latest = %+v, want %+v", latest.Points, want)
	}

	from := time.Unix(0, storetest.T0+2*sec).UTC()
	for _, tc := range []struct {
		name, query string
		first, n    int
	}{
		{"rfc3339", fmt.Sprintf("from=%s&to=%s", from.Format(time.RFC3339Nano), from.Add(3*time.Second).Format(time.RFC3339Nano)), 22, 3},
		{"unix ms", fmt.Sprintf("from=%d&to=%d", from.UnixMilli(), from.Add(time.Hour).UnixMilli()), 22, 8},
		{"limit", fmt.Sprintf("from=%d&to=%d&limit=2", from.UnixMilli(), from.Add(time.Hour).UnixMilli()), 22, 2},
		{"default window", fmt.Sprintf("to=%s", from.Format(time.RFC3339)), 20, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body struct {
				Points []ingest.Point
				Limit  int
			}
			decode(t, get(t, e.svc, "/api/v1/readings?gateway="+e.gw+"&sensor=env&metric=temperature&"+tc.query), http.StatusOK, &body)
			if len(body.Points) != tc.n || body.Points[0].Value != float64(tc.first) {
				t.Fatalf("points = %+v, want %d from %d", body.Points, tc.n, tc.first)
			}
		})
	}

	for _, tc := range []struct{ name, query, msg string }{
		{"no gateway", "sensor=env&metric=temperature", `"gateway" is required`},
		{"no metric", "gateway=x&sensor=env", `"metric" is required`},
		{"bad from", "gateway=x&sensor=env&metric=t&from=yesterday", `"from"`},
		{"bad to", "gateway=x&sensor=env&metric=t&to=2025-13-01T00:00:00Z", `"to"`},
		{"from after to", "gateway=x&sensor=env&metric=t&from=2000&to=1000", "must be before"},
		{"limit zero", "gateway=x&sensor=env&metric=t&limit=0", `"limit"`},
		{"limit huge", "gateway=x&sensor=env&metric=t&limit=100001", `"limit"`},
		{"limit word", "gateway=x&sensor=env&metric=t&limit=many", `"limit"`},
		{"year 3000", "gateway=x&sensor=env&metric=t&to=3000-01-01T00:00:00Z", "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body map[string]string
			decode(t, get(t, e.svc, "/api/v1/readings?"+tc.query), http.StatusBadRequest, &body)
			if !strings.Contains(body["error"], tc.msg) {
				t.Fatalf("error %q does not mention %q", body["error"], tc.msg)
			}
		})
	}

	rec := httptest.NewRecorder()
	e.svc.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/latest", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST latest: %d", rec.Code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	decode(t, get(t, e.svc, "/healthz"), http.StatusServiceUnavailable, &health)
	if health["status"] != "unavailable" {
		t.Fatalf("healthz after close = %v", health)
	}
}

func TestPointJSON(t *testing.T) {
	for _, tc := range []struct {
		p    ingest.Point
		want string
	}{
		{ingest.Point{Gateway: "g", Sensor: "s", Metric: "m", TS: storetest.T0 + 123, Value: math.NaN(), Quality: outpost.QualityUncertain},
			`{"gateway":"g","sensor":"s","metric":"m","ts":"2025-06-01T12:00:00.000000123Z","ts_ns":1748779200000000123,"value":null,"unit":"","quality":"uncertain"}`},
		{ingest.Point{Gateway: "g", Sensor: "s", Metric: "m", TS: storetest.T0, Value: 21.5, Unit: "Cel"},
			`{"gateway":"g","sensor":"s","metric":"m","ts":"2025-06-01T12:00:00Z","ts_ns":1748779200000000000,"value":21.5,"unit":"Cel","quality":"good"}`},
	} {
		b, err := json.Marshal(tc.p)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Fatalf("json = %s, want %s", b, tc.want)
		}
		var back ingest.Point
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.TS != tc.p.TS || back.Unit != tc.p.Unit || back.Quality != tc.p.Quality ||
			!(back.Value == tc.p.Value || math.IsNaN(back.Value) && math.IsNaN(tc.p.Value)) {
			t.Fatalf("round trip = %+v, want %+v", back, tc.p)
		}
	}
}

// TestStoreFailureRetried: while the database fails, the batch stays unacked
// and healthz says so; when it recovers, the batch is committed and acked.
func TestStoreFailureRetried(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, func(s *spyStore) {
		s.before = func(context.Context, *outpost.Batch) error {
			select {
			case <-release:
				return nil
			default:
				return errors.New("connection refused (injected)")
			}
		}
	}, nil)
	e.publishBatch(storetest.Telemetry(e.gw, 5, 1, readings(2, storetest.T0)...))
	eventually(t, "healthz 503", func() bool { return get(t, e.svc, "/healthz").Code == http.StatusServiceUnavailable })
	eventually(t, "retries", func() bool { return e.svc.Stats().Errors >= 2 })
	if n := e.ackCount(5, 1); n != 0 {
		t.Fatalf("acked %d times while the store fails", n)
	}
	close(release)
	e.waitAcks(5, 1, 1)
	eventually(t, "healthz 200", func() bool { return get(t, e.svc, "/healthz").Code == http.StatusOK })
	if c := e.counts(); c.Readings != 4 || c.Batches != 1 {
		t.Fatalf("counts = %+v", c)
	}
}

// TestStoreRefusesData: data the database refuses is dead-lettered and
// acked, not retried for ever.
func TestStoreRefusesData(t *testing.T) {
	e := newEnv(t, func(s *spyStore) {
		s.before = func(_ context.Context, b *outpost.Batch) error {
			if b.Seq == 1 {
				return fmt.Errorf("injected: %w", ingest.ErrInvalidData)
			}
			return nil
		}
	}, nil)
	e.publishBatch(storetest.Telemetry(e.gw, 5, 1, readings(2, storetest.T0)...))
	e.publishBatch(storetest.Telemetry(e.gw, 5, 2, readings(2, storetest.T0)...))
	e.waitAcks(5, 2, 1)
	eventually(t, "dead letter", func() bool { return len(e.store.deadLetters()) == 1 })
	if d := e.store.deadLetters()[0]; !strings.Contains(d.reason, "rejected by the database") {
		t.Fatalf("reason = %q", d.reason)
	}
	if n := e.ackCount(5, 1); n != 0 {
		t.Fatalf("a dead-lettered batch was app-acked %d times", n)
	}
}

// TestBackPressure: with one worker stuck on the database, batches wait
// (unacked, nothing lost); all are committed once it frees up.
func TestBackPressure(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, func(s *spyStore) {
		s.before = func(ctx context.Context, _ *outpost.Batch) error {
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}, func(o *ingest.Options) { o.Workers = 1 })
	const n = 30 // more than the queue (2) and Mosquitto's in-flight window (20)
	for seq := uint64(1); seq <= n; seq++ {
		e.publishBatch(storetest.Telemetry(e.gw, 8, seq, readings(1, storetest.T0+int64(seq)*int64(time.Minute))...))
	}
	if c := e.counts(); c.Batches != 0 {
		t.Fatalf("committed %d batches while the store is blocked", c.Batches)
	}
	close(release)
	for seq := uint64(1); seq <= n; seq++ {
		e.waitAcks(8, seq, 1)
	}
	if c := e.counts(); c.Batches != n || c.Readings != 2*n {
		t.Fatalf("counts = %+v", c)
	}
	// The queue was full when the store freed up: the worker took what
	// waited in it as one group.
	if g := e.store.largestGroup(); g < 2 {
		t.Fatalf("largest group %d batches, want several", g)
	}
}

// TestCloseWhileStoreDown: Close gives up on a batch the store cannot take,
// within its context, leaving it unacked, and leaks nothing.
func TestCloseWhileStoreDown(t *testing.T) {
	e := newEnv(t, func(s *spyStore) {
		s.before = func(context.Context, *outpost.Batch) error { return errors.New("down (injected)") }
	}, nil)
	e.publishBatch(storetest.Telemetry(e.gw, 5, 1, readings(2, storetest.T0)...))
	eventually(t, "a failed commit", func() bool { return e.svc.Stats().Errors >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	e.closeTimeoutOK = true
	err := e.svc.Close(ctx)
	// Either the worker was between retries and noticed at once, or Close
	// had to cut it short: both are fine; the batch is not acked.
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close: %v", err)
	}
	if n := e.ackCount(5, 1); n != 0 {
		t.Fatalf("acked %d times", n)
	}
	if err2 := e.svc.Close(context.Background()); err2 != err {
		t.Fatalf("second Close = %v, want the first's %v", err2, err)
	}
}

func TestStartFails(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    ingest.Options
		noStore bool
	}{
		{name: "unreachable", opts: ingest.Options{Broker: "tcp://127.0.0.1:1"}},
		{name: "unreachable with password", opts: ingest.Options{Broker: "tcp://u:hunter2@127.0.0.1:1"}},
		{name: "no broker", opts: ingest.Options{}},
		{name: "bad broker URL", opts: ingest.Options{Broker: "tcp://u:hunter2@[::1"}},
		{name: "broker without scheme", opts: ingest.Options{Broker: "127.0.0.1:1883"}},
		{name: "wildcard prefix", opts: ingest.Options{Broker: "tcp://127.0.0.1:1", TopicPrefix: "a/+/b"}},
		{name: "bad group", opts: ingest.Options{Broker: "tcp://127.0.0.1:1", Group: "a/b"}},
		{name: "no store", opts: ingest.Options{Broker: "tcp://127.0.0.1:1"}, noStore: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st ingest.Store = &spyStore{}
			if tc.noStore {
				st = nil
			}
			s := ingest.New(st, &tc.opts)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.Start(ctx); err == nil {
				t.Fatal("Start succeeded")
			} else if !strings.HasPrefix(err.Error(), "ingest: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			} else if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q shows the broker password", err)
			}
			if err := s.Start(ctx); !errors.Is(err, outpost.ErrClosed) {
				t.Fatalf("Start after a failed Start: %v, want ErrClosed", err)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatalf("Close after a failed Start: %v", err)
			}
			if rec := get(t, s, "/healthz"); rec.Code != http.StatusServiceUnavailable {
				t.Fatalf("healthz = %d", rec.Code)
			}
		})
	}
}

func TestCloseWithoutStart(t *testing.T) {
	s := ingest.New(&spyStore{}, nil)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); !errors.Is(err, outpost.ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
}

func get(t *testing.T, s *ingest.Service, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

func decode(t *testing.T, rec *httptest.ResponseRecorder, code int, v any) {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("status %d, want %d; body %s", rec.Code, code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body, err)
	}
}

// TestGroupWithRefusedBatch: a batch the database refuses for good, in a
// group, fails the group; the worker then commits the group's batches
// one by one: the refused one is dead-lettered (and, as a batch the
// database refuses, not acked: the gateway keeps it), every other one is
// stored once and acked.
func TestGroupWithRefusedBatch(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, func(s *spyStore) {
		s.before = func(ctx context.Context, b *outpost.Batch) error {
			if b.Seq == 1 {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if b.Seq == 3 {
				return fmt.Errorf("%w: refused (injected)", ingest.ErrInvalidData)
			}
			return nil
		}
	}, func(o *ingest.Options) { o.Workers = 1 })
	const n = 6
	for seq := uint64(1); seq <= n; seq++ {
		e.publishBatch(storetest.Telemetry(e.gw, 9, seq, readings(1, storetest.T0+int64(seq)*int64(time.Minute))...))
	}
	close(release)
	for seq := uint64(1); seq <= n; seq++ {
		if seq != 3 {
			e.waitAcks(9, seq, 1)
		}
	}
	if a := e.ackCount(9, 3); a != 0 {
		t.Fatalf("the refused batch was acked %d times", a)
	}
	if c := e.counts(); c.Batches != n-1 || c.Readings != 2*(n-1) {
		t.Fatalf("counts = %+v", c)
	}
	if d := e.store.deadLetters(); len(d) != 1 || !strings.Contains(d[0].reason, "refused (injected)") {
		t.Fatalf("dead letters %+v", d)
	}
	if g := e.store.largestGroup(); g < 2 {
		t.Fatalf("largest group %d batches, want several", g)
	}
}

// TestCompaction: the service compacts its store on its own: the rows of
// a low-rate series in closed windows are folded into chunks, and every
// reading reads back the same.
func TestCompaction(t *testing.T) {
	e := newEnv(t, nil, func(o *ingest.Options) { o.CompactEvery, o.CompactGrace = 20*time.Millisecond, time.Minute })
	if _, ok := e.store.Store.(ingest.Compactor); !ok {
		t.Skip("the store does not compact")
	}
	const n = 30
	for seq := uint64(1); seq <= n; seq++ {
		e.publishBatch(storetest.Telemetry(e.gw, 3, seq, readings(2, storetest.T0+int64(seq)*int64(5*time.Minute))...))
	}
	for seq := uint64(1); seq <= n; seq++ {
		e.waitAcks(3, seq, 1)
	}
	// 150 minutes of a series: three hours, two of them closed at once
	// (the readings are of 2025), the third too.
	eventually(t, "compaction", func() bool { return e.svc.Stats().CompactedWindows >= 2*3 })
	pts, err := storetest.Collect(e.store.Range(context.Background(), ingest.RangeQuery{Gateway: e.gw, Sensor: "env", Metric: "temperature",
		From: storetest.T0, To: storetest.T0 + int64(4*time.Hour), Limit: 1000}))
	if err != nil || len(pts) != 2*n {
		t.Fatalf("range after compaction: %d readings, %v", len(pts), err)
	}
	for i := 1; i < len(pts); i++ {
		if pts[i].TS <= pts[i-1].TS {
			t.Fatalf("reading %d out of order", i)
		}
	}
}

// TestRetention: under a retention, a batch made before its horizon is
// acked and not stored (it would be dropped at once), and one made after
// it is stored; the maintenance loop runs at the start.
func TestRetention(t *testing.T) {
	e := newEnv(t, nil, func(o *ingest.Options) { o.Retention = 30 * 24 * time.Hour })
	now := time.Now().UnixNano()
	old := storetest.Telemetry(e.gw, 8, 1, readings(5, now-40*24*int64(time.Hour))...)
	old.Created = now - 40*24*int64(time.Hour)
	fresh := storetest.Telemetry(e.gw, 8, 2, readings(3, now-int64(time.Hour))...)
	fresh.Created = now - int64(time.Hour)
	e.publishBatch(old)
	e.publishBatch(fresh)
	e.waitAcks(8, 1, 1)
	e.waitAcks(8, 2, 1)
	if c := e.counts(); c.Readings != int64(fresh.Len()) || c.Batches != 1 || c.DeadLetters != 0 {
		t.Fatalf("counts = %+v, want the fresh batch alone", c)
	}
	eventually(t, "stats", func() bool { st := e.svc.Stats(); return st.Expired == 1 && st.Batches == 1 })
}
