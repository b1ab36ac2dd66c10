package command

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/outposthq/outpost"
)

// Command is one remote command. Run gets the request's body (MessagePack,
// possibly empty; the slice is Run's) and returns the result's MessagePack
// encoding. An error wrapping ErrInvalid (Invalid) answers invalid, any
// other error, error. Run runs on the Dispatcher's goroutine, one command
// at a time, and must return when ctx ends (Options.Timeout, or Close).
type Command struct {
	Name string // an outpost.ValidName
	Run  func(ctx context.Context, body []byte) ([]byte, error)
}

// Defaults and bounds of a Dispatcher.
const (
	DefaultTimeout = 10 * time.Second // Options.Timeout
	// QueueLen is how many requests may wait for the command goroutine;
	// a request that finds the queue full is answered error "busy".
	QueueLen = 16
	// CacheLen is how many request ids (with their replies) are kept to
	// answer a redelivered request without running it again, for at
	// most CacheTTL.
	CacheLen = 256
	CacheTTL = 10 * time.Minute
	// MaxAhead is the furthest in the future a deadline may be: further
	// is answered invalid.
	MaxAhead = 24 * time.Hour
	// MaxSignedAhead is the furthest in the future the deadline of a
	// signed request may be (with Options.Key): CacheTTL, so that a
	// captured request replayed once its id has left the cache has
	// expired, and is never run twice.
	MaxSignedAhead = CacheTTL
)

// errStopping answers the requests Close finds queued, and those after it.
var errStopping = errors.New("gateway stopping")

// ErrBusy is the error of a request that found the queue full.
var ErrBusy = errors.New("busy: too many commands queued, try again later")

// The refusals of a request that a Dispatcher with a key does not
// authenticate. They name no MAC and no key.
var (
	errNoMAC  = errors.New("the request carries no MAC: this gateway runs only commands signed with its key (outpost-ingest command --auth-keys)")
	errBadMAC = errors.New("the request's MAC does not verify with this gateway's key")
	// errCacheFull refuses a signed request while every id in the cache
	// is of a request that has not expired: evicting one would let it
	// be replayed and run again.
	errCacheFull = errors.New("busy: too many recent commands, try again later")
)

// Options configure a Dispatcher.
type Options struct {
	Commands []Command
	// Publish sends a reply's encoding to the reply topic of id. It is
	// called from paho's goroutine (Submit) and from the command
	// goroutine and must not block (uplink.Publish does not).
	Publish func(id string, reply []byte)
	Timeout time.Duration    // per command; default DefaultTimeout
	Now     func() time.Time // the gateway's clock; default time.Now
	Logger  zerolog.Logger
	// Key is the gateway's key; nil means requests are not
	// authenticated. With a key, a request is run only when one of its
	// MACs is its outpost.CommandMAC with Key for Gateway and the
	// command's name; any other is answered invalid before anything
	// else is done with it (it is not kept in the cache of ids, and is
	// counted in Stats.Unauthenticated when its MACs are missing or
	// wrong), a signed request's deadline may be at most MaxSignedAhead
	// ahead, an id in the cache is evicted only once its request has
	// expired (a new request finding none to evict is answered busy),
	// and every reply carries its outpost.ReplyMAC.
	Key *outpost.Key
	// Gateway is the gateway's id (the {gateway} of the topics), which
	// the MACs cover; required with Key.
	Gateway string
}

// Stats are a Dispatcher's counters.
type Stats struct {
	Received int64 // requests submitted, refused ones included
	Runs     int64 // commands run
	Refused  int64 // requests answered invalid, unknown, expired or busy without running
	Repeats  int64 // requests whose id was seen before: not run again
	Dropped  int64 // requests without a readable id: nothing could answer them
	// Unauthenticated counts the requests refused (and counted in
	// Refused) because they carry no MAC or none that verifies with
	// Options.Key.
	Unauthenticated int64
}

// Dispatcher checks requests, runs them one at a time and publishes the
// replies. Start starts its goroutine, Close stops it; Submit may be
// called before Start (requests wait in the queue) and after Close (they
// are answered error).
type Dispatcher struct {
	opt  Options
	cmds map[string]Command
	log  zerolog.Logger

	queue  chan job
	ctx    context.Context // every command's parent; Close cancels it
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}
	start  sync.Once
	close  sync.Once

	mu     sync.Mutex
	closed bool              // Close began: nothing more is queued
	seen   map[string]*entry // by id; at most CacheLen
	order  []string          // ids of seen, oldest first (a ring of CacheLen)
	head   int               // index of the oldest in order once full

	received, runs, refused, repeats, dropped, unauth atomic.Int64
	dropLog, authLog                                  atomic.Int64 // unix s of the last dropped and unauthenticated request logs
}

type entry struct {
	reply    []byte    // nil while queued or running
	at       time.Time // when the reply was made
	deadline int64     // the request's, unix ns
}

type job struct {
	name string
	req  Request // Body is a copy
}

// New checks the commands and returns a Dispatcher.
func New(o Options) (*Dispatcher, error) {
	if o.Publish == nil {
		return nil, errors.New("command: no Publish")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Key != nil && !outpost.ValidName(o.Gateway) {
		return nil, errors.New("command: a Key needs the Gateway id")
	}
	d := &Dispatcher{opt: o, cmds: map[string]Command{}, log: o.Logger,
		queue: make(chan job, QueueLen), stop: make(chan struct{}), done: make(chan struct{}),
		seen: map[string]*entry{}}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for _, c := range o.Commands {
		if !outpost.ValidName(c.Name) || c.Run == nil {
			return nil, fmt.Errorf("command: %q: want a valid name and a Run", c.Name)
		}
		if _, dup := d.cmds[c.Name]; dup {
			return nil, fmt.Errorf("command: %q registered twice", c.Name)
		}
		d.cmds[c.Name] = c
	}
	return d, nil
}

// Start starts the command goroutine. Idempotent.
func (d *Dispatcher) Start() {
	d.start.Do(func() { go d.run() })
}

// Close stops the command goroutine: a running command's context is
// cancelled and Close waits for it to return; queued requests are
// answered error. Idempotent, and safe without Start.
func (d *Dispatcher) Close() {
	d.close.Do(func() {
		d.mu.Lock()
		d.closed = true // nothing is queued any more
		d.mu.Unlock()
		close(d.stop)
		d.cancel()
		d.start.Do(func() { close(d.done) }) // never started
		<-d.done
		for {
			select {
			case j := <-d.queue:
				d.finish(j.req.ID, StatusError, ErrorBody(errStopping))
			default:
				return
			}
		}
	})
}

// Stats returns the counters.
func (d *Dispatcher) Stats() Stats {
	return Stats{Received: d.received.Load(), Runs: d.runs.Load(), Refused: d.refused.Load(),
		Repeats: d.repeats.Load(), Dropped: d.dropped.Load(), Unauthenticated: d.unauth.Load()}
}

// Submit takes one request for command name (the topic's last level) from
// paho's goroutine. It never blocks and never keeps payload: it decodes
// it, answers at once what it refuses (invalid, unknown, expired, busy) or
// has answered before (a redelivery, from the cache), and queues a copy
// of the rest. A request whose id cannot be read cannot be answered: it
// is counted (Stats.Dropped) and logged at most once a minute. With
// Options.Key, a request that does not decode, or that is not signed
// with the key, is answered invalid first, and not kept in the cache: a
// forged request does not take the id of the one it copies.
func (d *Dispatcher) Submit(name string, payload []byte) {
	d.received.Add(1)
	req, err := DecodeRequest(payload)
	if req.ID == "" {
		d.dropped.Add(1)
		d.logDrop(name, len(payload), err)
		return
	}
	now := d.opt.Now()
	if d.opt.Key != nil {
		if err == nil {
			if err = d.authenticate(name, &req); err != nil {
				d.unauth.Add(1)
				d.logUnauthenticated(name, req.ID, err)
			}
		}
		if err != nil {
			d.refused.Add(1)
			d.opt.Publish(req.ID, d.reply(req.ID, StatusInvalid, ErrorBody(err), now))
			return
		}
	}
	d.mu.Lock()
	if e, ok := d.seen[req.ID]; ok && (e.reply == nil || now.Sub(e.at) < CacheTTL) {
		reply := e.reply
		d.mu.Unlock()
		d.repeats.Add(1)
		if reply != nil { // else the first is queued or running: it answers when done
			d.opt.Publish(req.ID, reply)
		}
		return
	}
	if !d.remember(req.ID, req.Deadline, now) {
		d.mu.Unlock()
		d.refused.Add(1)
		d.opt.Publish(req.ID, d.reply(req.ID, StatusError, ErrorBody(errCacheFull), now))
		return
	}
	d.mu.Unlock()

	var st Status
	var body []byte
	_, known := d.cmds[name]
	switch {
	case err != nil:
		st, body = StatusInvalid, ErrorBody(err)
	case !known:
		st, body = StatusUnknown, ErrorBody(fmt.Errorf("unknown command %q", trim([]byte(name))))
	case now.UnixNano() > req.Deadline:
		st, body = StatusExpired, ErrorBody(fmt.Errorf("deadline %s passed (gateway clock %s)",
			time.Unix(0, req.Deadline).UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano)))
	case d.opt.Key != nil && time.Duration(req.Deadline-now.UnixNano()) > MaxSignedAhead:
		st, body = StatusInvalid, ErrorBody(fmt.Errorf("deadline too far ahead for a signed request: more than %s", MaxSignedAhead))
	case time.Duration(req.Deadline-now.UnixNano()) > MaxAhead:
		st, body = StatusInvalid, ErrorBody(fmt.Errorf("deadline more than %s ahead", MaxAhead))
	default:
		req.Body = append([]byte(nil), req.Body...)
		d.mu.Lock()
		queued := false
		if !d.closed {
			select {
			case d.queue <- job{name: name, req: req}:
				queued = true
			default:
			}
		}
		closed := d.closed
		d.mu.Unlock()
		switch {
		case queued:
			return
		case closed:
			st, body = StatusError, ErrorBody(errStopping)
		default:
			d.forget(req.ID) // a redelivery may find room
			d.refused.Add(1)
			d.opt.Publish(req.ID, d.reply(req.ID, StatusError, ErrorBody(ErrBusy), now))
			return
		}
	}
	d.refused.Add(1)
	d.finish(req.ID, st, body)
}

// remember adds id, not answered yet, of a request with deadline, to the
// cache, evicting the oldest id when it is full. With a key it evicts
// only an id whose request has expired (a replay of it is answered
// expired) and reports false, adding nothing, when the oldest has not.
// Called with mu held.
func (d *Dispatcher) remember(id string, deadline int64, now time.Time) bool {
	if e, ok := d.seen[id]; ok { // an expired entry: its slot serves again
		*e = entry{deadline: deadline}
		return true
	}
	if len(d.order) < CacheLen {
		d.seen[id] = &entry{deadline: deadline}
		d.order = append(d.order, id)
		return true
	}
	old := d.order[d.head]
	if e := d.seen[old]; d.opt.Key != nil && e != nil && now.UnixNano() <= e.deadline {
		return false
	}
	delete(d.seen, old)
	d.seen[id] = &entry{deadline: deadline}
	d.order[d.head] = id
	d.head = (d.head + 1) % CacheLen
	return true
}

// authenticate checks that one of r's MACs is its outpost.CommandMAC with
// the key, for command name.
func (d *Dispatcher) authenticate(name string, r *Request) error {
	if len(r.MACs) == 0 {
		return errNoMAC
	}
	want := outpost.CommandMAC(d.opt.Key, d.opt.Gateway, name, r.ID, r.Deadline, r.Body)
	for _, m := range r.MACs {
		if hmac.Equal(m, want[:]) {
			return nil
		}
	}
	return errBadMAC
}

// reply encodes the reply of id made at now, signed with the key when
// there is one.
func (d *Dispatcher) reply(id string, st Status, body []byte, now time.Time) []byte {
	r := Reply{ID: id, Status: st, Body: body, TS: now.UnixNano()}
	if d.opt.Key != nil {
		signReply(&r, d.opt.Gateway, d.opt.Key)
	}
	return AppendReply(nil, r)
}

// forget drops an unanswered id (a busy refusal); its slot in order stays
// and is reused in turn.
func (d *Dispatcher) forget(id string) {
	d.mu.Lock()
	if e := d.seen[id]; e != nil && e.reply == nil {
		delete(d.seen, id)
	}
	d.mu.Unlock()
}

// finish makes the reply of id, keeps it for redeliveries and publishes it.
func (d *Dispatcher) finish(id string, st Status, body []byte) {
	now := d.opt.Now()
	r := d.reply(id, st, body, now)
	d.mu.Lock()
	if e := d.seen[id]; e != nil {
		e.reply, e.at = r, now
	}
	d.mu.Unlock()
	d.opt.Publish(id, r)
}

func (d *Dispatcher) logDrop(name string, n int, err error) {
	now := d.opt.Now().Unix()
	last := d.dropLog.Load()
	if now-last < 60 || !d.dropLog.CompareAndSwap(last, now) {
		return
	}
	d.log.Warn().Err(err).Str("command", trim([]byte(name))).Int("bytes", n).
		Int64("dropped", d.dropped.Load()).Msg("command request without a readable id dropped: nothing can answer it")
}

// logUnauthenticated logs a request refused for its MAC, at most once a
// minute; the error names what is wrong, never a MAC or the key.
func (d *Dispatcher) logUnauthenticated(name, id string, err error) {
	now := d.opt.Now().Unix()
	last := d.authLog.Load()
	if now-last < 60 || !d.authLog.CompareAndSwap(last, now) {
		return
	}
	d.log.Warn().Err(err).Str("command", trim([]byte(name))).Str("id", id).
		Int64("unauthenticated", d.unauth.Load()).Msg("command request refused: not signed with the gateway's key")
}

// run is the command goroutine.
func (d *Dispatcher) run() {
	defer close(d.done)
	for {
		select {
		case <-d.stop:
			return
		case j := <-d.queue:
			d.exec(j)
		}
	}
}

// exec runs one queued request, unless its deadline passed while it
// waited.
func (d *Dispatcher) exec(j job) {
	now := d.opt.Now()
	if now.UnixNano() > j.req.Deadline {
		d.refused.Add(1)
		d.finish(j.req.ID, StatusExpired, ErrorBody(errors.New("deadline passed while queued")))
		return
	}
	timeout := min(d.opt.Timeout, time.Duration(j.req.Deadline-now.UnixNano()))
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	d.runs.Add(1)
	start := time.Now()
	out, err := d.call(ctx, j)
	ev := d.log.Info().Str("command", j.name).Str("id", j.req.ID).Dur("took", time.Since(start))
	switch {
	case err == nil && len(out) > MaxReplyBytes-256:
		err = fmt.Errorf("result of %d bytes is too large for a reply", len(out))
		fallthrough
	case err != nil && !errors.Is(err, ErrInvalid):
		ev.Err(err).Msg("command failed")
		d.finish(j.req.ID, StatusError, ErrorBody(err))
	case err != nil:
		ev.Err(err).Msg("command refused its body")
		d.finish(j.req.ID, StatusInvalid, ErrorBody(err))
	default:
		ev.Msg("command ran")
		d.finish(j.req.ID, StatusOK, out)
	}
}

// call runs the command, turning a panic into an error: a command's bug
// must not take the gateway down.
func (d *Dispatcher) call(ctx context.Context, j job) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("command %s panicked: %v", j.name, p)
		}
	}()
	return d.cmds[j.name].Run(ctx, j.req.Body)
}
