package ingest

import (
	"bytes"
	"cmp"
	"container/heap"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outposthq/outpost"
)

// Live events: what the service commits, as Server-Sent Events
// (GET /api/v1/events, served by serveEvents in eventshttp.go;
// docs/http-api.md, "Live events").
//
// A worker publishes after the database commit, never before, and only
// what was new: a telemetry batch as a batch event (and, to the streams
// of its gateway, a points event), an alert batch as an alert event per
// transition, a loss batch as a gap event per record; the status worker
// a recorded status as a status event. A duplicate publishes nothing.
//
// Publishing never waits. With no stream open it costs one atomic load.
// Otherwise each event is encoded once, and the frames are queued on
// every stream that wants them without blocking: the events of one
// commit (a batch and its points, or every transition of an alert
// batch) are one entry of a stream's queue, which holds EventQueue
// entries and EventQueueBytes bytes. A stream whose queue is full is
// dropped: its handler writes an overflow event if it can and ends the
// response, and the client reconnects and fetches anew. The entries are
// shared, never copied per stream, so the streams together hold at most
// MaxStreams queues' worth of references to the same frames.

// Bounds and defaults of the live events.
const (
	// DefaultMaxStreams is the default of Options.MaxStreams.
	DefaultMaxStreams = 64
	// MaxEventPoints bounds the points of one points event (see
	// eventPoints for which are kept).
	MaxEventPoints = 2000
	// EventQueue is how many commits' events a stream's queue holds:
	// the events one commit sends a stream are one entry.
	EventQueue = 256
	// EventQueueBytes bounds the bytes of the events a stream's queue
	// holds; an entry larger than that alone is taken into an empty
	// queue (a loss batch of many records).
	EventQueueBytes = 8 << 20
	// EventHeartbeat is the silence after which a stream gets a comment
	// line, so that proxies and clients see it alive.
	EventHeartbeat = 15 * time.Second
)

// Errors of subscribe, the text of the 503 answer.
var (
	errTooManyStreams = errors.New("too many event streams at once; retry later")
	errStreamsEnded   = errors.New("the service is closing; retry later")
)

// eventHub is the set of open event streams and what they are sent.
type eventHub struct {
	open      atomic.Int32 // streams registered: publishers load it first
	max       int
	heartbeat time.Duration
	hello     []byte // the first frame of every stream

	mu      sync.Mutex // guards streams, watched, closed; held while delivering
	streams map[*eventStream]struct{}
	watched map[string]int // streams filtered to a gateway, by gateway
	closed  bool
	done    chan struct{} // closed by end: every stream ends

	// handlers counts the stream handlers registered and not yet
	// returned: Close waits for them. Add only under mu while not
	// closed, so no Add follows the Wait.
	handlers sync.WaitGroup

	sent    atomic.Int64 // events written to streams
	dropped atomic.Int64 // streams dropped for a slow client
}

// eventStream is one open stream: its filter and its queue.
type eventStream struct {
	gateway string // "" every gateway
	queue   chan eventFrames
	queued  atomic.Int64  // bytes in queue
	over    chan struct{} // closed when the hub dropped it for a full queue
}

// eventFrames are one or more complete SSE frames, shared by every
// stream they are queued on: never changed once made.
type eventFrames struct {
	b []byte
	n int // events in b
}

func newEventHub(maxStreams int) *eventHub {
	h := &eventHub{max: maxStreams, heartbeat: EventHeartbeat, streams: map[*eventStream]struct{}{},
		watched: map[string]int{}, done: make(chan struct{})}
	h.hello = []byte("event: hello\ndata: {\"queue\":" + strconv.Itoa(EventQueue) +
		",\"heartbeat_s\":" + strconv.Itoa(int(EventHeartbeat/time.Second)) + "}\n\n")
	return h
}

// subscribe registers a stream of gateway's events (every gateway's if
// ""), or fails when MaxStreams are open or the service is closing. The
// caller must unsubscribe it.
func (h *eventHub) subscribe(gateway string) (*eventStream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return nil, errStreamsEnded
	case len(h.streams) >= h.max:
		return nil, errTooManyStreams
	}
	st := &eventStream{gateway: gateway, queue: make(chan eventFrames, EventQueue), over: make(chan struct{})}
	h.streams[st] = struct{}{}
	if gateway != "" {
		h.watched[gateway]++
	}
	h.open.Add(1)
	h.handlers.Add(1)
	return st, nil
}

// unsubscribe ends st's registration, if the hub has not dropped it
// already; its handler is returning.
func (h *eventHub) unsubscribe(st *eventStream) {
	h.mu.Lock()
	h.remove(st)
	h.mu.Unlock()
	h.handlers.Done()
}

// remove takes st out of the hub, if it is in; h.mu is held.
func (h *eventHub) remove(st *eventStream) {
	if _, ok := h.streams[st]; !ok {
		return
	}
	delete(h.streams, st)
	if st.gateway != "" {
		if h.watched[st.gateway]--; h.watched[st.gateway] <= 0 {
			delete(h.watched, st.gateway)
		}
	}
	h.open.Add(-1)
}

// watching reports whether a stream is filtered to gateway: only then
// is a points event worth making.
func (h *eventHub) watching(gateway string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.watched[gateway] > 0
}

// deliver queues common on every stream of gateway and every unfiltered
// one, and points (if any) on the streams of gateway, in that order,
// without waiting. Delivering under the lock keeps every stream's
// events in the order of the publishes.
func (h *eventHub) deliver(gateway string, common, points eventFrames) {
	if common.n == 0 && points.n == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for st := range h.streams {
		if st.gateway != "" && st.gateway != gateway {
			continue
		}
		if h.offer(st, common) && st.gateway != "" {
			h.offer(st, points)
		}
	}
}

// offer queues f on st without waiting; a stream whose queue is full
// (in entries or bytes) is dropped, and its handler told. It reports
// whether st is still open. h.mu is held.
func (h *eventHub) offer(st *eventStream, f eventFrames) bool {
	if f.n == 0 {
		return true
	}
	size := int64(len(f.b))
	if q := st.queued.Add(size); q-size == 0 || q <= EventQueueBytes {
		select {
		case st.queue <- f:
			return true
		default:
		}
	}
	st.queued.Add(-size)
	h.remove(st)
	close(st.over)
	h.dropped.Add(1)
	return false
}

// end ends every stream and refuses new ones. It does not wait.
func (h *eventHub) end() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// wait waits, until done is closed, for the stream handlers to return
// (after end): a handler in the middle of a write returns within the
// write stall. It reports whether they all did.
func (h *eventHub) wait(done <-chan struct{}) bool {
	finished := make(chan struct{})
	go func() {
		h.handlers.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return true
	case <-done:
		return false
	}
}

// EndStreams ends every open event stream (GET /api/v1/events) and
// refuses new ones with 503, at once, without waiting for them. Close
// calls it and then waits for the streams' handlers. Register it with
// http.Server.RegisterOnShutdown, so that Shutdown, which waits for
// every request to end, need not wait for the streams until its
// deadline: an event stream never ends by itself.
func (s *Service) EndStreams() { s.events.end() }

// publishCommitted sends the events of b, a batch just committed and
// not a duplicate, to the streams that want them.
func (s *Service) publishCommitted(b *outpost.Batch) {
	h := s.events
	if h.open.Load() == 0 {
		return
	}
	var (
		common, points eventFrames
		err            error
	)
	switch b.Kind {
	case outpost.KindTelemetry:
		if common, err = batchEvent(b); err == nil && common.n > 0 && h.watching(b.Gateway) {
			points, err = pointsEvent(b, MaxEventPoints)
		}
	case outpost.KindAlert:
		common, err = alertEvents(b)
	case outpost.KindLoss:
		common, err = gapEvents(b, s.now().UnixNano())
	}
	if err != nil { // cannot happen: the batch passed its checks
		s.errLog.Error().Err(err).Str(keyGateway, b.Gateway).Uint64(keyEpoch, b.Epoch).Uint64(keySeq, b.Seq).
			Msg("events: encode; not sent")
		return
	}
	h.deliver(b.Gateway, common, points)
}

// publishStatus sends a recorded gateway status to the streams that
// want it.
func (s *Service) publishStatus(g GatewayStatus) {
	h := s.events
	if h.open.Load() == 0 {
		return
	}
	b, err := appendEvent(nil, "status", func(b []byte) ([]byte, error) { return appendJSON(b, g) })
	if err != nil { // a payload that is not JSON: the store took it, so cannot happen
		s.errLog.Error().Err(err).Str(keyGateway, g.Gateway).Msg("events: encode status; not sent")
		return
	}
	h.deliver(g.Gateway, eventFrames{b: b, n: 1}, eventFrames{})
}

// errLineBreak refuses an event whose JSON would break the framing. No
// encoder here writes one (encoding/json escapes line breaks in strings
// and writes no whitespace between tokens): it is a guard.
var errLineBreak = errors.New("events: a line break in an event's JSON")

// appendEvent appends the SSE frame of event name, its data the one line
// enc appends: "event: NAME\ndata: JSON\n\n". On error b is as it was.
func appendEvent(b []byte, name string, enc func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(b)
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\ndata: "...)
	data := len(b)
	b, err := enc(b)
	if err == nil && bytes.ContainsAny(b[data:], "\r\n") {
		err = errLineBreak
	}
	if err != nil {
		return b[:start], err
	}
	return append(b, "\n\n"...), nil
}

// batchEvent is the batch event of a telemetry batch:
// {"gateway","readings","ts_ns","ts"}, ts its newest reading's time. A
// batch without readings has none.
func batchEvent(b *outpost.Batch) (eventFrames, error) {
	n, newest := 0, int64(0)
	for i := range b.Series {
		s := &b.Series[i]
		for _, ts := range s.Times() {
			if n == 0 || ts > newest {
				newest = ts
			}
			n++
		}
	}
	if n == 0 {
		return eventFrames{}, nil
	}
	f, err := appendEvent(make([]byte, 0, 160), "batch", func(d []byte) ([]byte, error) {
		d = append(d, `{"gateway":`...)
		d = appendString(d, b.Gateway)
		d = append(d, `,"readings":`...)
		d = strconv.AppendInt(d, int64(n), 10)
		d = append(d, `,"ts_ns":`...)
		d = strconv.AppendInt(d, newest, 10)
		d = append(d, `,"ts":"`...)
		d = time.Unix(0, newest).UTC().AppendFormat(d, time.RFC3339Nano)
		return append(d, `"}`...), nil
	})
	return eventFrames{b: f, n: 1}, err
}

// pointsEvent is the points event of a telemetry batch:
// {"gateway","points":[…],"truncated"}, each point as /api/v1/readings
// writes it (appendPoint), at most limit of them (eventPoints).
func pointsEvent(b *outpost.Batch, limit int) (eventFrames, error) {
	pts, truncated := eventPoints(b, limit)
	f, err := appendEvent(make([]byte, 0, 64+len(pts)*180), "points", func(d []byte) ([]byte, error) {
		d = append(d, `{"gateway":`...)
		d = appendString(d, b.Gateway)
		d = append(d, `,"points":[`...)
		for i, p := range pts {
			if i > 0 {
				d = append(d, ',')
			}
			d, _ = appendPoint(d, p) // never fails
		}
		d = append(d, `],"truncated":`...)
		d = strconv.AppendBool(d, truncated)
		return append(d, '}'), nil
	})
	return eventFrames{b: f, n: 1}, err
}

// readingAt names reading j of series i of a batch.
type readingAt struct {
	series, j int
	ts        int64
}

// eventPoints are the points of the telemetry batch b that a points
// event carries, ordered by series (sensor, then metric) then time:
// every reading, or, when b holds more than limit, the newest reading of
// every series, then the newest of the others up to limit, with
// truncated true. If b has more than limit series, the newest readings
// of the first limit series (by key) are kept. Each point has its series' unit as the
// stores record it: that of the series' last occurrence in b.
func eventPoints(b *outpost.Batch, limit int) (pts []Point, truncated bool) {
	units := make(map[outpost.SeriesKey]string, len(b.Series))
	n := 0
	for i := range b.Series {
		s := &b.Series[i]
		units[outpost.SeriesKey{Sensor: s.Sensor, Metric: s.Metric}] = s.Unit
		n += len(s.Values)
	}
	// each calls f for every reading of b, with its absolute time.
	each := func(f func(r readingAt)) {
		for i := range b.Series {
			for j, ts := range b.Series[i].Times() {
				f(readingAt{series: i, j: j, ts: ts})
			}
		}
	}
	var keep []readingAt
	if n <= limit {
		keep = make([]readingAt, 0, n)
		each(func(r readingAt) { keep = append(keep, r) })
	} else {
		truncated = true
		newest := make(map[outpost.SeriesKey]readingAt, len(units))
		each(func(r readingAt) {
			k := outpost.SeriesKey{Sensor: b.Series[r.series].Sensor, Metric: b.Series[r.series].Metric}
			if cur, ok := newest[k]; !ok || r.ts >= cur.ts {
				newest[k] = r
			}
		})
		keys := slices.SortedFunc(func(yield func(outpost.SeriesKey) bool) {
			for k := range newest {
				if !yield(k) {
					return
				}
			}
		}, compareSeriesKey)
		keys = keys[:min(len(keys), limit)]
		keep = make([]readingAt, 0, limit)
		for _, k := range keys {
			keep = append(keep, newest[k])
		}
		if fill := limit - len(keep); fill > 0 {
			// The newest of the rest: a min-heap of the fill newest seen.
			h := make(readingHeap, 0, fill)
			each(func(r readingAt) {
				k := outpost.SeriesKey{Sensor: b.Series[r.series].Sensor, Metric: b.Series[r.series].Metric}
				if nw := newest[k]; nw.series == r.series && nw.j == r.j {
					return // kept already
				}
				switch {
				case len(h) < fill:
					heap.Push(&h, r)
				case r.ts > h[0].ts:
					h[0] = r
					heap.Fix(&h, 0)
				}
			})
			keep = append(keep, h...)
		}
	}
	pts = make([]Point, len(keep))
	for i, r := range keep {
		s := &b.Series[r.series]
		q := outpost.QualityGood
		if len(s.Quality) > 0 {
			q = outpost.Quality(s.Quality[r.j])
		}
		pts[i] = Point{Gateway: b.Gateway, Sensor: s.Sensor, Metric: s.Metric, TS: r.ts, Value: s.Values[r.j],
			Unit: units[outpost.SeriesKey{Sensor: s.Sensor, Metric: s.Metric}], Quality: q}
	}
	slices.SortStableFunc(pts, func(a, b Point) int {
		return cmp.Or(cmp.Compare(a.Sensor, b.Sensor), cmp.Compare(a.Metric, b.Metric), cmp.Compare(a.TS, b.TS))
	})
	return pts, truncated
}

func compareSeriesKey(a, b outpost.SeriesKey) int {
	return cmp.Or(cmp.Compare(a.Sensor, b.Sensor), cmp.Compare(a.Metric, b.Metric))
}

// readingHeap is a min-heap of readings by time (container/heap).
type readingHeap []readingAt

func (h readingHeap) Len() int           { return len(h) }
func (h readingHeap) Less(i, j int) bool { return h[i].ts < h[j].ts }
func (h readingHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *readingHeap) Push(x any)        { *h = append(*h, x.(readingAt)) }
func (h *readingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// alertEvents are the alert events of an alert batch, one per
// transition, each an AlertRow as /api/v1/alerts writes it.
func alertEvents(b *outpost.Batch) (eventFrames, error) {
	var f []byte
	for i := range b.Alerts {
		a := &b.Alerts[i]
		row := AlertRow{Gateway: b.Gateway, Rule: a.Rule, Fingerprint: a.Fingerprint, State: a.State, Severity: a.Severity,
			Value: a.Value, Labels: a.Labels, Annotations: a.Annotations, Message: a.Message, StartedAt: a.StartedAt,
			TS: a.ChangedAt, Seq: a.Seq}
		var err error
		if f, err = appendEvent(f, "alert", func(d []byte) ([]byte, error) { return appendJSON(d, row) }); err != nil {
			return eventFrames{}, err
		}
	}
	return eventFrames{b: f, n: len(b.Alerts)}, nil
}

// gapEvents are the gap events of a loss batch, one per record, each a
// Gap as /api/v1/gaps writes it; received (unix ns) stands for the
// store's received_at, which the store does not return: the service's
// clock after the commit, later than the stored one by at most the
// commit's time.
func gapEvents(b *outpost.Batch, received int64) (eventFrames, error) {
	var f []byte
	for i := range b.Losses {
		l := &b.Losses[i]
		g := Gap{Gateway: b.Gateway, Epoch: b.Epoch, Seq: b.Seq, Index: i, Reason: l.Reason, Kind: l.Kind,
			Sensor: l.Sensor, Metric: l.Metric, Rule: l.Rule, From: l.From, To: l.To, Count: l.Count,
			LostEpoch: l.Epoch, FirstSeq: l.FirstSeq, LastSeq: l.LastSeq, DroppedAt: l.At, ReceivedAt: received}
		var err error
		if f, err = appendEvent(f, "gap", func(d []byte) ([]byte, error) { return appendJSON(d, g) }); err != nil {
			return eventFrames{}, err
		}
	}
	return eventFrames{b: f, n: len(b.Losses)}, nil
}
