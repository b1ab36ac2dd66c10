package uplink

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
)

// Defaults of DecommissionOptions.
const (
	DefaultSettle    = 2 * time.Second
	DefaultMaxTopics = 10000
)

// maxStatusBytes bounds the retained status read: the gateway's is a
// line of JSON, its sensors' labels included.
const maxStatusBytes = outpost.MaxStatusBytes

// ErrOnline is returned by Decommission when the gateway still appears
// online (its retained status says so, or it publishes while Decommission
// listens) and DecommissionOptions.Force is not set.
var ErrOnline = errors.New("uplink: decommission: the gateway still appears online")

// DecommissionOptions say which gateway's retained topics to clear and
// how to reach the broker; zero fields take the defaults.
type DecommissionOptions struct {
	Broker      string // MQTT URL, required; a password in it is never shown
	Gateway     string // gateway id, required
	TopicPrefix string // default "outpost/v1"
	Username    string
	Password    string      // never shown
	TLS         *tls.Config // for ssl:// and wss:// brokers; nil: the system's roots
	// ClientID defaults to "outpost-decommission-" and random hex: never
	// the gateway's own, which would disconnect a running gateway.
	ClientID       string
	ConnectTimeout time.Duration // default 10s
	// Settle is how long to wait, after the subscription and after each
	// retained message, for more: the broker sends the retained messages
	// at once but marks no end. Default DefaultSettle.
	Settle time.Duration
	// MaxTopics bounds the retained topics collected; with more,
	// Decommission clears nothing and says so. Default DefaultMaxTopics.
	MaxTopics int
	// Force clears the topics even when the gateway appears online.
	Force bool
	// DryRun finds the topics and reports them without clearing any.
	DryRun bool
}

// DecommissionResult is what Decommission found and did.
type DecommissionResult struct {
	// Status is the state in the gateway's retained status ("online",
	// "offline"), "" when none is retained.
	Status string
	// Publishing counts the messages the gateway published (not
	// retained copies) while Decommission listened: it is running.
	Publishing int
	// Topics are the retained topics found, sorted: cleared, unless
	// DryRun or an error says otherwise.
	Topics  []string
	Cleared bool
}

// Decommission clears the retained topics a gateway leaves on the broker
// (its status, live/…, alert/… and anything else retained under
// {prefix}/{gateway}/) so that dashboards stop showing a gateway that is
// gone. It subscribes to {prefix}/{gateway}/#, collects the retained
// messages that arrive within the settle window, refuses with ErrOnline
// when the gateway appears online (unless Force), publishes an empty
// retained message to each topic, and subscribes again to check that
// none is left: a broker whose ACL refuses the clears (Mosquitto drops
// such publishes silently) makes it an error that names the topics left.
func Decommission(ctx context.Context, o *DecommissionOptions) (DecommissionResult, error) {
	var res DecommissionResult
	c, err := o.withDefaults()
	if err != nil {
		return res, err
	}
	client, err := c.connect(ctx)
	if err != nil {
		return res, err
	}
	defer client.Disconnect(250)
	base := c.TopicPrefix + "/" + c.Gateway + "/"
	found, err := c.collect(ctx, client, base)
	if err != nil {
		return res, err
	}
	res.Status, res.Publishing = found.status, found.live
	res.Topics = found.topics()
	if !c.Force && (res.Status == "online" || res.Publishing > 0) {
		return res, ErrOnline
	}
	if c.DryRun || len(res.Topics) == 0 {
		return res, nil
	}
	for _, t := range res.Topics {
		tok := client.Publish(t, 1, true, []byte{})
		if err := waitToken(ctx, tok, c.ConnectTimeout); err != nil {
			return res, fmt.Errorf("uplink: decommission: clear %s: %w", t, err)
		}
	}
	// A new subscription, on a connection of its own, gets what is still
	// retained.
	c.ClientID += "-check"
	check, err := c.connect(ctx)
	if err != nil {
		return res, err
	}
	defer check.Disconnect(250)
	left, err := c.collect(ctx, check, base)
	if err != nil {
		return res, err
	}
	if l := left.topics(); len(l) > 0 {
		return res, fmt.Errorf("uplink: decommission: %d topics retained again after clearing (%s): the gateway still runs and republishes them, or the broker's ACL did not let this login clear them",
			len(l), strings.Join(l[:min(len(l), 5)], ", "))
	}
	res.Cleared = true
	return res, nil
}

func (o *DecommissionOptions) withDefaults() (DecommissionOptions, error) {
	if o == nil {
		return DecommissionOptions{}, errors.New("uplink: decommission: no options")
	}
	c := *o
	if c.TopicPrefix == "" {
		c.TopicPrefix = "outpost/v1"
	}
	c.TopicPrefix = strings.TrimSuffix(c.TopicPrefix, "/")
	switch {
	case c.Broker == "":
		return c, errors.New("uplink: decommission: no broker URL")
	case !outpost.ValidName(c.Gateway):
		return c, fmt.Errorf("uplink: decommission: %q is not a gateway id (1 to %d of A-Z a-z 0-9 _ . -)", c.Gateway, outpost.MaxNameLen)
	case c.TopicPrefix == "" || strings.ContainsAny(c.TopicPrefix, "+#\x00") || strings.HasPrefix(c.TopicPrefix, "$"):
		return c, fmt.Errorf("uplink: decommission: topic prefix %q is empty, has wildcards or starts with $", o.TopicPrefix)
	}
	u, err := url.Parse(c.Broker)
	if err != nil || u.Scheme == "" || u.Host == "" {
		// Not err: it quotes the URL, and with it any password.
		return c, errors.New("uplink: decommission: the broker URL is not scheme://host:port")
	}
	if c.ClientID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		c.ClientID = "outpost-decommission-" + hex.EncodeToString(b[:])
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.Settle <= 0 {
		c.Settle = DefaultSettle
	}
	if c.MaxTopics <= 0 {
		c.MaxTopics = DefaultMaxTopics
	}
	return c, nil
}

func (o *DecommissionOptions) connect(ctx context.Context) (mqtt.Client, error) {
	co := mqtt.NewClientOptions().
		AddBroker(o.Broker).
		SetClientID(o.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetProtocolVersion(4).
		SetConnectTimeout(o.ConnectTimeout).
		SetOrderMatters(false)
	if o.TLS != nil {
		co.SetTLSConfig(o.TLS)
	}
	if o.Username != "" {
		co.SetUsername(o.Username)
		co.SetPassword(o.Password)
	}
	client := mqtt.NewClient(co)
	tok := client.Connect()
	if err := waitToken(ctx, tok, o.ConnectTimeout+time.Second); err != nil {
		client.Disconnect(0)
		return nil, fmt.Errorf("uplink: decommission: connect to %s: %w", redact(o.Broker), connectError(tok, err))
	}
	return client, nil
}

// found is what a subscription to the gateway's topics brought.
type found struct {
	mu       sync.Mutex
	retained map[string]bool
	status   string
	live     int  // messages published while listening, not retained copies
	over     bool // more retained topics than MaxTopics
	last     chan struct{}
}

func (f *found) topics() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := make([]string, 0, len(f.retained))
	for t := range f.retained {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// collect subscribes to base# and gathers the retained messages until
// none has come for the settle window.
func (o *DecommissionOptions) collect(ctx context.Context, client mqtt.Client, base string) (*found, error) {
	f := &found{retained: map[string]bool{}, last: make(chan struct{}, 1)}
	handler := func(_ mqtt.Client, m mqtt.Message) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !m.Retained() {
			// The gateway's own publications; acks and commands are
			// others' to it.
			if rest := strings.TrimPrefix(m.Topic(), base); rest != "ack" && !strings.HasPrefix(rest, "cmd/") {
				f.live++
			}
			return
		}
		if len(m.Payload()) == 0 {
			return // an empty retained message is no retained message
		}
		if !f.retained[m.Topic()] && len(f.retained) >= o.MaxTopics {
			f.over = true
			return
		}
		f.retained[m.Topic()] = true
		if m.Topic() == base+"status" {
			f.status = statusState(m.Payload())
		}
		select {
		case f.last <- struct{}{}:
		default:
		}
	}
	if err := waitToken(ctx, client.Subscribe(base+"#", 1, handler), o.ConnectTimeout); err != nil {
		return nil, fmt.Errorf("uplink: decommission: subscribe to %s#: %w", base, err)
	}
	quiet := time.NewTimer(o.Settle)
	defer quiet.Stop()
	for settled := false; !settled; {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("uplink: decommission: %w", ctx.Err())
		case <-f.last:
			quiet.Reset(o.Settle)
		case <-quiet.C:
			settled = true
		}
	}
	f.mu.Lock()
	over := f.over
	f.mu.Unlock()
	if over {
		return nil, fmt.Errorf("uplink: decommission: more than %d retained topics under %s: nothing cleared; raise the limit to clear them all", o.MaxTopics, base)
	}
	return f, nil
}

// statusState is the state in a status payload; "unreadable" when it is
// not the gateway's JSON.
func statusState(p []byte) string {
	var st struct {
		State string `json:"state"`
	}
	if len(p) > maxStatusBytes || json.Unmarshal(p, &st) != nil || !outpost.ValidName(st.State) {
		return "unreadable"
	}
	return st.State
}

// waitToken waits for tok within timeout and ctx.
func waitToken(ctx context.Context, tok mqtt.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
	case <-t.C:
		return fmt.Errorf("no answer within %v", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return err
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for _, q := range st.Result() {
			if q > 2 {
				return errors.New("refused by the broker (check its ACL)")
			}
		}
	}
	return nil
}
