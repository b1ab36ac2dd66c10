package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of the HTTP fields of Options.
const (
	DefaultMaxQueries   = 4
	DefaultQueryTimeout = 2 * time.Minute
	DefaultWriteStall   = 30 * time.Second
)

// Log keys of the HTTP API.
const (
	keyRequestID = "request_id"
	keyPath      = "path"
)

// api is the HTTP API's state: the token, the query slots, its loggers.
type api struct {
	token   *[sha256.Size]byte // SHA-256 of Options.HTTPToken; nil: no token
	slots   chan struct{}      // one per running query
	timeout time.Duration
	stall   time.Duration
	log     zerolog.Logger
	errLog  zerolog.Logger // rate-limited: one bad client must not flood the log
}

func newAPI(o *Options, log zerolog.Logger) *api {
	a := &api{
		slots:   make(chan struct{}, cmpOr(o.MaxQueries, DefaultMaxQueries)),
		timeout: cmpOr(o.QueryTimeout, DefaultQueryTimeout),
		stall:   cmpOr(o.WriteStall, DefaultWriteStall),
		log:     log.With().Str(keyComponent, "http").Logger(),
	}
	a.errLog = a.log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute})
	if o.HTTPToken != "" {
		h := sha256.Sum256([]byte(o.HTTPToken))
		a.token = &h
	}
	return a
}

// cmpOr is v if positive, else def.
func cmpOr[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// apiHandler serves one API request; id names it in logs and errors.
type apiHandler func(w http.ResponseWriter, r *http.Request, id string)

// guard gives each API request an id (X-Request-Id) and checks its token.
func (a *api) guard(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		w.Header().Set("X-Request-Id", id)
		if !a.authorized(w, r) {
			return
		}
		h(w, r, id)
	}
}

// authorized reports whether r carries the token (Authorization: Bearer
// TOKEN), and answers 401 if not. The digests are compared in constant
// time, so neither the token nor its length leaks through timing.
func (a *api) authorized(w http.ResponseWriter, r *http.Request) bool {
	if a.token == nil {
		return true
	}
	challenge, msg := `Bearer realm="outpost-ingest"`, "a bearer token is required"
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		sum := sha256.Sum256([]byte(strings.TrimLeft(tok, " ")))
		if subtle.ConstantTimeCompare(sum[:], a.token[:]) == 1 {
			return true
		}
		challenge, msg = `Bearer realm="outpost-ingest", error="invalid_token"`, "invalid token"
	}
	a.log.Debug().Str(keyPath, r.URL.Path).Msg("http: unauthorized request")
	w.Header().Set("WWW-Authenticate", challenge)
	a.writeJSON(w, http.StatusUnauthorized, map[string]string{"error": msg})
	return false
}

// run runs one query whose answer write streams: in a free query slot
// (none free: 503 with Retry-After at once; requests never queue),
// within the query timeout. The store's errors are logged with the
// request id and never shown to the client.
func (a *api) run(w http.ResponseWriter, r *http.Request, id string, write func(ctx context.Context, st *stream) error) {
	select {
	case a.slots <- struct{}{}:
		defer func() { <-a.slots }()
	default:
		a.errLog.Warn().Str(keyRequestID, id).Str(keyPath, r.URL.Path).Int("max_queries", cap(a.slots)).
			Msg("http: every query slot is taken; answered 503")
		w.Header().Set("Retry-After", "1")
		a.writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "too many queries at once; retry later"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	// The server's WriteTimeout counts from the request's start, and a
	// query may take longer than that before its first row: every write
	// below sets its own deadline.
	st := newStream(w, time.Now().Add(a.timeout), a.stall, cancel)
	err := write(ctx, st)
	if err == nil {
		err = st.flush()
	}
	switch {
	case err == nil:
		return
	case st.err != nil || r.Context().Err() != nil:
		// The client left or stopped reading; the connection is done.
		a.log.Debug().Err(err).Str(keyRequestID, id).Str(keyPath, r.URL.Path).Msg("http: client gone")
		return
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		a.errLog.Warn().Str(keyRequestID, id).Str(keyPath, r.URL.Path).Dur("timeout", a.timeout).Msg("http: query timed out")
		if !st.started {
			a.setWriteDeadline(st, time.Now().Add(a.stall), id)
			a.writeJSON(w, http.StatusServiceUnavailable, map[string]string{
				"error": "the query took longer than " + a.timeout.String() + "; ask for less (request id " + id + ")"})
			return
		}
	default:
		a.errLog.Error().Err(err).Str(keyRequestID, id).Str(keyPath, r.URL.Path).Bool("streaming", st.started).
			Msg("http: query failed")
		if !st.started {
			a.setWriteDeadline(st, time.Now().Add(a.stall), id)
			a.writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error, request id " + id})
			return
		}
	}
	// Part of the answer is out: break the connection, so the client
	// sees a cut answer, never a short one that looks whole.
	panic(http.ErrAbortHandler)
}

// setWriteDeadline moves st's write deadline to t. A failure means the
// connection is gone, which the next write will find.
func (a *api) setWriteDeadline(st *stream, t time.Time, id string) {
	if err := st.setWriteDeadline(t); err != nil {
		a.log.Debug().Err(err).Str(keyRequestID, id).Msg("http: set write deadline")
	}
}

// badRequest answers 400 with err's text: the parameter checks' own
// words, never a store's.
func (a *api) badRequest(w http.ResponseWriter, err error) {
	a.writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
}

func (a *api) writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := jsonLine(v)
	if err != nil {
		a.errLog.Error().Err(err).Msg("http: encode response")
		code, b = http.StatusInternalServerError, []byte("{\"error\":\"encode response\"}\n")
	}
	setJSONHeaders(w.Header())
	w.WriteHeader(code)
	if _, err := w.Write(b); err != nil {
		a.log.Debug().Err(err).Msg("http: write response") // the client went away
	}
}

func jsonLine(v any) ([]byte, error) {
	b, err := appendJSON(nil, v)
	return append(b, '\n'), err
}

// newRequestID is 16 random hex digits.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
