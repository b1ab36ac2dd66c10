package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"math"
	"net/http"
	"strconv"
	"time"
)

// streamChunk is how much of an answer is buffered before it is sent:
// what one answer holds in memory, whatever its length.
const streamChunk = 32 << 10

// stream writes one JSON answer as it is made, a chunk at a time, so
// that an answer of any length costs a chunk of memory. Until the first
// chunk goes out the status can still change (an error before then is a
// clean 500); after, a failure can only cut the answer short.
//
// Each chunk must reach the client within the write stall, and all of
// them by the request's deadline: a reader that stops reading is
// dropped instead of holding its query slot and database connection.
// These per-write deadlines replace the server's WriteTimeout, which
// would cut a long answer to a reader that keeps up.
type stream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	buf     []byte
	started bool  // a chunk has gone out: the status is sent
	err     error // the first failed write; every later write returns it
	stall   time.Duration
	end     time.Time          // the request's deadline
	cancel  context.CancelFunc // cancels the query when the client fails
}

func newStream(w http.ResponseWriter, end time.Time, stall time.Duration, cancel context.CancelFunc) *stream {
	return &stream{w: w, rc: http.NewResponseController(w), buf: make([]byte, 0, streamChunk+streamChunk/4),
		stall: stall, end: end, cancel: cancel}
}

// next sends a chunk if enough is buffered. Callers append to st.buf and
// call next after each item.
func (st *stream) next() error {
	if len(st.buf) < streamChunk {
		return st.err
	}
	return st.flush()
}

// flush sends what is buffered.
func (st *stream) flush() error {
	if st.err != nil || len(st.buf) == 0 {
		return st.err
	}
	if !st.started {
		st.started = true
		setJSONHeaders(st.w.Header())
		st.w.WriteHeader(http.StatusOK)
	}
	deadline := time.Now().Add(st.stall)
	if deadline.After(st.end) {
		deadline = st.end
	}
	if err := st.setWriteDeadline(deadline); err != nil {
		return st.fail(err)
	}
	if _, err := st.w.Write(st.buf); err != nil {
		return st.fail(err)
	}
	if err := st.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return st.fail(err)
	}
	st.buf = st.buf[:0]
	return nil
}

// setWriteDeadline sets the connection's write deadline, if the
// ResponseWriter has a connection (a test's recorder has none).
func (st *stream) setWriteDeadline(t time.Time) error {
	if err := st.rc.SetWriteDeadline(t); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// fail records the client's failure and cancels the query, so that the
// store stops reading rows no one will see.
func (st *stream) fail(err error) error {
	st.err = err
	st.cancel()
	return err
}

// page is what writeItems sent.
type page[T any] struct {
	n     int  // items sent
	last  T    // the last item sent
	more  bool // the store had more than the limit: the answer is cut
	extra T    // when more, the first item not sent
}

// writeItems appends what seq yields to the answer as JSON array elements
// (enc appends one), at most limit of them; seq may yield one more, which
// is not sent but says that the answer is cut and where. An error is the
// store's, enc's or the client's (then st.err is set).
func writeItems[T any](st *stream, seq iter.Seq2[T, error], limit int, enc func([]byte, T) ([]byte, error)) (page[T], error) {
	var pg page[T]
	for v, err := range seq {
		if err != nil {
			return pg, err
		}
		if pg.n == limit {
			pg.more, pg.extra = true, v
			break
		}
		if pg.n > 0 {
			st.buf = append(st.buf, ',')
		}
		if st.buf, err = enc(st.buf, v); err != nil {
			return pg, err
		}
		pg.n++
		pg.last = v
		if err := st.next(); err != nil {
			return pg, err
		}
	}
	return pg, nil
}

// appendTail ends a list answer: the limit, whether the answer was cut,
// and, unless next is nil, where the next page starts.
func appendTail(b []byte, limit int, truncated bool, next *string) []byte {
	b = append(b, `],"limit":`...)
	b = strconv.AppendInt(b, int64(limit), 10)
	b = append(b, `,"truncated":`...)
	b = strconv.AppendBool(b, truncated)
	if next != nil {
		b = append(b, `,"next":`...)
		if truncated {
			b = appendString(b, *next)
		} else {
			b = append(b, "null"...)
		}
	}
	return append(b, "}\n"...)
}

// appendPoint appends p as Point.MarshalJSON writes it, without its
// allocations: an answer may hold 100 000 points.
func appendPoint(b []byte, p Point) ([]byte, error) {
	b = append(b, `{"gateway":`...)
	b = appendString(b, p.Gateway)
	b = append(b, `,"sensor":`...)
	b = appendString(b, p.Sensor)
	b = append(b, `,"metric":`...)
	b = appendString(b, p.Metric)
	b = append(b, `,"ts":"`...)
	b = time.Unix(0, p.TS).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","ts_ns":`...)
	b = strconv.AppendInt(b, p.TS, 10)
	b = append(b, `,"value":`...)
	b = appendFloat(b, p.Value)
	b = append(b, `,"unit":`...)
	b = appendString(b, p.Unit)
	b = append(b, `,"quality":`...)
	b = appendString(b, p.Quality.String())
	return append(b, '}'), nil
}

// appendFloat appends v as encoding/json does, and null for NaN and ±Inf.
func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(v); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, v, format, -1, 64)
	if format == 'e' { // e-09 → e-9, as encoding/json writes it
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendString appends s as a JSON string, as encoding/json writes it.
// Ids are plain ASCII: only other text takes the slow path.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil { // cannot happen: any string marshals
				return append(b, `""`...)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSON appends v as encoding/json writes it.
func appendJSON[T any](b []byte, v T) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

func setJSONHeaders(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}
