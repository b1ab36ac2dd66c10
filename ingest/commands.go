package ingest

// The command courier (docs/commands.md, "Audit and the queue"). With
// Options.Commands the service, as the cloud's identity, keeps the
// commands table of a CommandStore going:
//
//   - it records every reply on {prefix}/+/reply/+ (a shared
//     subscription: one ingest process of the group takes each) to the
//     command it answers, once its MAC verifies with the gateway's key;
//   - when a gateway comes online (a recorded online status, or one
//     seen in the minute's sweep) it sends the gateway's pending
//     commands: those queued while it was offline, and those sent
//     without a reply for resendAfter, with their ids, so that a
//     gateway that ran one answers again from its cache and never runs
//     it twice;
//   - once a minute it ends the commands whose expiry passed (lapsed).
//
// The courier is one goroutine; the workers only mark a gateway due.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
	gwcmd "github.com/outposthq/outpost/gateway/command"
)

const (
	topicReply   = "reply"
	topicCommand = "cmd"
	// stateOnline is the state of a connected gateway's status.
	stateOnline = "online"
)

// Courier timing and bounds.
const (
	// CommandDeadline is how long a request the courier sends lives: the
	// gateway does not run it later. Within the 10 minutes a gateway
	// takes a signed request's deadline ahead.
	CommandDeadline = 2 * time.Minute
	// commandResendAfter is how long a command sent without a reply
	// waits before the courier sends it again to a gateway online.
	commandResendAfter = 2 * time.Minute
	// courierBatch is how many pending commands of one gateway are sent
	// per visit (the gateway queues 16).
	courierBatch = 8
	// courierSweep is how often the courier lapses expired commands and
	// visits the online gateways that have pending commands.
	courierSweep = time.Minute
	// maxDue bounds the gateways waiting for a visit; beyond, a gateway
	// waits for the sweep.
	maxDue = 1 << 16
	// maxOnline bounds the gateways known online (statuses may name any
	// gateway); beyond, a gateway is visited at its statuses only, not
	// by the sweep, and each of its online statuses counts as coming
	// online.
	maxOnline = 1 << 20
	// commandPublishTimeout bounds one request's publish.
	commandPublishTimeout = 10 * time.Second
)

// courier sends pending commands; see the top of this file.
type courier struct {
	s     *Service
	store CommandStore

	mu sync.Mutex
	// due are the gateways to visit, each with when it came online if
	// it did since its last visit (zero if not): every command it has
	// not answered that was sent before then is sent again, since it was
	// offline, or connected anew, when they went out.
	due    map[string]time.Time
	online map[string]bool // the gateways whose last recorded state is online
	wake   chan struct{}   // cap 1

	stop context.CancelFunc
	wg   sync.WaitGroup
}

func newCourier(s *Service, cs CommandStore) *courier {
	return &courier{s: s, store: cs, due: map[string]time.Time{}, online: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// status notes a gateway's recorded state, of the time at (the status
// document's, as stored); an online one is visited. A gateway publishes
// its online status as it connects: a command sent before at was sent
// while it was away. Every ingest process takes the same at from the
// same status, so their claims of a command agree (visit).
func (c *courier) status(gateway, state string, at time.Time) {
	on := state == stateOnline
	if at.IsZero() {
		at = c.s.now()
	}
	c.mu.Lock()
	came := on && !c.online[gateway]
	if on && (len(c.online) < maxOnline || c.online[gateway]) {
		c.online[gateway] = true
	} else if !on {
		delete(c.online, gateway)
	}
	if prev, ok := c.due[gateway]; on && (ok || len(c.due) < maxDue) {
		if came && prev.IsZero() {
			prev = at
		}
		c.due[gateway] = prev
	}
	c.mu.Unlock()
	if on {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

func (c *courier) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	c.wg.Add(1)
	go c.run(ctx)
}

// close stops the courier; a visit in progress ends at its next store
// call or publish.
func (c *courier) close() {
	if c.stop != nil {
		c.stop()
		c.wg.Wait()
	}
}

func (c *courier) run(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(cmpOr(c.s.opts.courierSweep, courierSweep))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-t.C:
			c.sweep(ctx)
		}
		c.mu.Lock()
		due := c.due
		c.due = map[string]time.Time{}
		c.mu.Unlock()
		for gw, came := range due {
			if ctx.Err() != nil {
				return
			}
			c.visit(ctx, gw, came)
		}
	}
}

// sweep lapses expired commands and marks due every online gateway
// with pending commands, so that a command queued just as its gateway's
// status came, or for a gateway that publishes its status only at
// connect, still goes out within a minute.
func (c *courier) sweep(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	n, err := c.store.LapseCommands(sctx, c.s.now())
	cancel()
	switch {
	case err != nil:
		c.s.errLog.Error().Err(err).Msg("commands: lapsing expired commands failed; will retry")
	case n > 0:
		c.s.log.Info().Int64("commands", n).Msg("commands lapsed: expired unanswered")
	}
	// The online gateways with commands to send: one query, not one
	// per gateway.
	var pending []string
	qctx, cancel := context.WithTimeout(ctx, storeTimeout)
	now := c.s.now()
	for gw, err := range c.store.PendingGateways(qctx, now, now.Add(-commandResendAfter), maxDue) {
		if err != nil {
			c.s.errLog.Error().Err(err).Msg("commands: listing gateways with pending commands failed")
			break
		}
		pending = append(pending, gw)
	}
	cancel()
	c.mu.Lock()
	for _, gw := range pending {
		if _, ok := c.due[gw]; c.online[gw] && !ok && len(c.due) < maxDue {
			c.due[gw] = time.Time{}
		}
	}
	c.mu.Unlock()
}

// visit sends gateway's pending commands: those queued, and those sent
// without a reply before it came online (came, when it did since the
// last visit), or else commandResendAfter ago. Each is claimed in the
// store before it is published (CommandSent with the same resendBefore):
// of several ingest processes visiting the gateway, one sends it.
func (c *courier) visit(ctx context.Context, gateway string, came time.Time) {
	now := c.s.now()
	resendBefore := now.Add(-commandResendAfter)
	if !came.IsZero() {
		resendBefore = came
	}
	var cmds []Command
	qctx, cancel := context.WithTimeout(ctx, storeTimeout)
	for cmd, err := range c.store.PendingCommands(qctx, gateway, now, resendBefore, courierBatch) {
		if err != nil {
			c.s.errLog.Error().Err(err).Str(keyGateway, gateway).Msg("commands: reading pending commands failed")
			break
		}
		cmds = append(cmds, cmd)
	}
	cancel()
	for i := range cmds {
		if ctx.Err() != nil {
			return
		}
		c.send(ctx, &cmds[i], resendBefore)
	}
}

// send records one command sent and publishes it, signed with its
// gateway's keys.
func (c *courier) send(ctx context.Context, cmd *Command, resendBefore time.Time) {
	now := c.s.now()
	deadline := now.Add(CommandDeadline)
	if cmd.ExpiresAt.Before(deadline) {
		deadline = cmd.ExpiresAt
	}
	payload, err := SignedRequest(cmd, deadline, c.s.opts.Keys.Lookup(cmd.Gateway))
	if err != nil {
		c.s.errLog.Error().Err(err).Str(keyGateway, cmd.Gateway).Str("id", cmd.ID).Msg("commands: cannot encode a pending command; it lapses at its expiry")
		return
	}
	// Claimed first: the reply may come, and be recorded, before the
	// PUBACK. A command that ended meanwhile, or that another process
	// claimed, is not sent.
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	ok, err := c.store.CommandSent(sctx, cmd.ID, now, resendBefore)
	cancel()
	if err != nil || !ok {
		if err != nil {
			c.s.errLog.Error().Err(err).Str("id", cmd.ID).Msg("commands: recording a command sent failed; not sent")
		}
		return
	}
	topic := c.s.opts.TopicPrefix + "/" + cmd.Gateway + "/" + topicCommand + "/" + cmd.Name
	tok := c.s.publish(topic, payload)
	t := time.NewTimer(commandPublishTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		err = tok.Error()
	case <-t.C:
		err = errors.New("no PUBACK in time")
	case <-ctx.Done():
		return
	}
	if err != nil {
		c.s.errLog.Warn().Err(err).Str(keyGateway, cmd.Gateway).Str("id", cmd.ID).
			Msg("commands: publish failed; sent again when the gateway comes back")
		return
	}
	c.s.stats.commandsSent.Add(1)
	c.s.log.Info().Str(keyGateway, cmd.Gateway).Str("id", cmd.ID).Str("name", cmd.Name).Int("attempt", cmd.Attempts+1).
		Msg("command sent")
}

// SignedRequest encodes cmd as a request (docs/wire-format.md,
// "Commands") with deadline, signed with keys (none: unsigned). It
// refuses a request the gateway would refuse for its size.
func SignedRequest(cmd *Command, deadline time.Time, keys []outpost.Key) ([]byte, error) {
	r := gwcmd.Request{ID: cmd.ID, Deadline: deadline.UnixNano(), Body: cmd.Body}
	gwcmd.SignRequest(&r, cmd.Gateway, cmd.Name, keys)
	p := gwcmd.AppendRequest(nil, r)
	if len(p) > gwcmd.MaxRequestBytes {
		return nil, fmt.Errorf("command %s: the request is %d bytes, more than a gateway takes (%d)", cmd.ID, len(p), gwcmd.MaxRequestBytes)
	}
	return p, nil
}

// splitReplyTopic splits {prefix}/{gateway}/reply/{id}.
func splitReplyTopic(prefix, topic string) (gateway, id string, ok bool) {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return "", "", false
	}
	gateway, rest, ok = strings.Cut(rest, "/"+topicReply+"/")
	if !ok || strings.Contains(gateway, "/") || strings.Contains(rest, "/") {
		return "", "", false
	}
	return gateway, rest, true
}

// replyStatuses are the statuses a reply may carry.
var replyStatuses = map[gwcmd.Status]bool{
	gwcmd.StatusOK: true, gwcmd.StatusError: true, gwcmd.StatusExpired: true,
	gwcmd.StatusUnknown: true, gwcmd.StatusInvalid: true,
}

// ParseReply checks a reply published on gateway's reply topic for id:
// it decodes within the bounds, answers id, carries a known status and,
// when the gateway has keys, a MAC one of them verifies. It returns the
// reply and its error text (for a status other than ok: the error map's
// message and the messages it lists, one per line).
func ParseReply(payload []byte, gateway, id string, keys []outpost.Key) (gwcmd.Reply, string, error) {
	r, err := gwcmd.DecodeReply(payload)
	if err != nil {
		return r, "", err
	}
	switch {
	case r.ID != id:
		return r, "", fmt.Errorf("command reply: id %q on the topic of %q", trimText(r.ID), id)
	case !replyStatuses[r.Status]:
		return r, "", fmt.Errorf("command reply: unknown status %q", trimText(string(r.Status)))
	}
	if err := gwcmd.VerifyReply(&r, gateway, keys); err != nil {
		return r, "", err
	}
	if r.Status == gwcmd.StatusOK {
		return r, "", nil
	}
	msg, list, err := gwcmd.DecodeErrorBody(r.Body)
	if err != nil {
		return r, "", fmt.Errorf("command reply: error body: %w", err)
	}
	text := msg
	if len(list) > 1 || len(list) == 1 && list[0] != msg {
		text = strings.Join(list, "\n")
	}
	return r, cutUTF8(text, MaxCommandErrorBytes), nil
}

// trimText shortens a hostile string for an error message.
func trimText(s string) string {
	if len(s) > 64 {
		return cutUTF8(s, 64) + "…"
	}
	return s
}

// cutUTF8 cuts s to at most n bytes, at a rune boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}

// handleReply records a gateway's reply to a command. A reply that does
// not decode, or whose MAC does not verify, is dead-lettered; one to a
// command the table does not hold (sent by another tool), or already
// answered, is acked and dropped.
func (s *Service) handleReply(m mqtt.Message, gateway, id string) {
	if !outpost.ValidName(gateway) || !gwcmd.ValidID(id) {
		s.deadLetter(m, "command reply: bad gateway or id in the topic")
		return
	}
	keys := s.opts.Keys.Lookup(gateway)
	if len(keys) == 0 && s.rules.keys != nil && s.rules.refreshKeys() {
		keys = s.opts.Keys.Lookup(gateway)
	}
	if len(keys) == 0 && s.opts.Auth == AuthRequired {
		s.stats.authRefused.Add(1)
		s.deadLetter(m, "command reply: the gateway has no key and auth is required")
		return
	}
	r, text, err := ParseReply(m.Payload(), gateway, id, keys)
	if err != nil {
		if errors.Is(err, outpost.ErrBadMAC) {
			s.stats.authRefused.Add(1)
		}
		s.deadLetter(m, err.Error())
		return
	}
	var ok bool
	err = s.retry(func(ctx context.Context) error {
		var err error
		ok, err = s.courier.store.CommandReplied(ctx, gateway, id, string(r.Status), s.now(), time.Unix(0, r.TS), r.Body, text)
		return err
	}, nil)
	switch {
	case errors.Is(err, ErrInvalidData):
		s.deadLetter(m, err.Error())
		return
	case err != nil:
		return // closing: left unacked
	}
	m.Ack()
	if ok {
		s.stats.commandReplies.Add(1)
		s.log.Info().Str(keyGateway, gateway).Str("id", id).Str("status", string(r.Status)).Msg("command reply recorded")
	}
}
