package ingest

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/outposthq/outpost"
)

// Frames the stream handler writes itself.
var (
	eventPing     = []byte(": ping\n\n")
	eventOverflow = []byte("event: overflow\ndata: {}\n\n")
)

// eventGateway reads the gateway parameter of /api/v1/events: none, or
// a gateway name of the config's rule (outpost.ValidName), the only
// names whose batches ingest commits.
func eventGateway(v url.Values) (string, error) {
	gw, err := name(v, "gateway", false)
	if err != nil || gw == "" {
		return gw, err
	}
	if !outpost.ValidName(gw) {
		return "", fmt.Errorf("parameter \"gateway\" must be a gateway name: 1 to %d of A-Z a-z 0-9 _ . -", outpost.MaxNameLen)
	}
	return gw, nil
}

// serveEvents streams the live events of every gateway, or of the one
// named by gateway, as Server-Sent Events (events.go; docs/http-api.md,
// "Live events"): hello first, then what the workers publish, a ping
// comment after EventHeartbeat of silence. It holds no query slot: at
// most Options.MaxStreams streams are open at once, and more get 503.
//
// The stream ends when the client goes away, when the service closes
// (EndStreams), when a write does not reach the client within the
// write stall, or when the hub drops the stream for a full queue; then
// it writes an overflow event first, if it can within the write stall.
// Every write sets its own deadline, as a query's answer does
// (httpstream.go): the server's WriteTimeout would cut a stream that
// keeps up.
func (s *Service) serveEvents(w http.ResponseWriter, r *http.Request, id string) {
	v, err := strictParams(r.URL.RawQuery, nil, "gateway")
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	gw, err := eventGateway(v)
	if err != nil {
		s.api.badRequest(w, err)
		return
	}
	h := s.events
	st, err := h.subscribe(gw)
	if err != nil {
		s.api.errLog.Warn().Err(err).Str(keyRequestID, id).Int("max_streams", h.max).Msg("http: event stream refused; answered 503")
		w.Header().Set("Retry-After", "1")
		s.api.writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	defer h.unsubscribe(st)
	log := s.api.log.With().Str(keyRequestID, id).Str(keyGateway, gw).Logger()
	log.Debug().Msg("http: event stream opened")

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	out := &eventWriter{w: w, rc: http.NewResponseController(w), stall: s.api.stall}
	err = out.send(h.hello)

	beat := time.NewTimer(h.heartbeat)
	defer beat.Stop()
	why := "client gone"
loop:
	for err == nil {
		select {
		case <-st.over:
			why = "queue full"
			break loop
		default:
		}
		select {
		case f := <-st.queue:
			var n int
			n, err = out.drain(st, f)
			h.sent.Add(int64(n))
		case <-beat.C:
			err = out.send(eventPing)
		case <-st.over:
			continue
		case <-h.done:
			why = "service closing"
			break loop
		case <-r.Context().Done():
			break loop
		}
		beat.Reset(h.heartbeat)
	}
	switch {
	case err != nil:
		// A client that stopped reading is a slow one, dropped; another
		// failure is a client gone.
		why = "write failed"
		if errors.Is(err, os.ErrDeadlineExceeded) {
			why = "write stalled"
			h.dropped.Add(1)
		}
		log.Debug().Err(err).Str(keyReason, why).Msg("http: event stream ended")
		return
	case why == "queue full":
		// Dropped by the hub (counted there): say so, if the client
		// takes it within the write stall, and end.
		if err := out.send(eventOverflow); err != nil {
			log.Debug().Err(err).Msg("http: event stream: overflow not written")
		}
	}
	log.Debug().Str(keyReason, why).Msg("http: event stream ended")
}

// eventWriter writes a stream's frames, each write within the write
// stall.
type eventWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

// send writes b and flushes it.
func (e *eventWriter) send(b []byte) error {
	if err := e.rc.SetWriteDeadline(time.Now().Add(e.stall)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := e.w.Write(b); err != nil {
		return err
	}
	if err := e.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// drain writes f, and what else waits in st's queue up to about a
// chunk (streamChunk), then flushes: one flush for a burst of commits.
// It returns the events written.
func (e *eventWriter) drain(st *eventStream, f eventFrames) (int, error) {
	if err := e.rc.SetWriteDeadline(time.Now().Add(e.stall)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	n, size := 0, 0
	for {
		st.queued.Add(-int64(len(f.b)))
		if _, err := e.w.Write(f.b); err != nil {
			return n, err
		}
		n += f.n
		if size += len(f.b); size >= streamChunk {
			break
		}
		var more bool
		select {
		case f, more = <-st.queue:
		default:
		}
		if !more {
			break
		}
	}
	if err := e.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return n, err
	}
	return n, nil
}
