package uplink

// Remote commands: with Options.OnCommand the uplink subscribes to
// {prefix}/{gateway}/cmd/+ at each connect, beside the ack topic, and
// hands each request to OnCommand. Replies go out with Publish on
// Topic("reply/" + id); the gateway's command package decides them.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// CommandTopic is the topic filter, under a gateway's base, of its command
// requests: the last level names the command.
const CommandTopic = "cmd/+"

// onCommand takes a command request from paho and passes it on with the
// command's name (the topic's last level). OnCommand must not block.
func (u *Uplink) onCommand(_ mqtt.Client, m mqtt.Message) {
	name, ok := strings.CutPrefix(m.Topic(), u.base+"/cmd/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return
	}
	u.opt.OnCommand(name, m.Payload())
}

// subscribeCommands subscribes to the command topic. A broker that
// refuses it (its ACL) costs the gateway its commands, not its uplink: the
// refusal is logged and the connection stays up. Other errors (a timeout,
// a lost connection) fail the connection attempt.
func (u *Uplink) subscribeCommands(ctx context.Context) error {
	filter := u.base + "/" + CommandTopic
	err := u.subscribe(ctx, filter, u.onCommand)
	if errors.Is(err, errRefused) {
		u.log.Warn().Str("topic", filter).Msg("the broker refused the command subscription (check its ACL): remote commands are off until the next connect")
		return nil
	}
	if err != nil && ctx.Err() == nil { // else Close disconnects
		u.client.Disconnect(0)
	}
	return err
}

// errRefused is a SUBACK's failure return code.
var errRefused = errors.New("refused by the broker (check its ACL)")

// subscribe subscribes to filter with handler and waits for the SUBACK,
// within ConnectTimeout.
func (u *Uplink) subscribe(ctx context.Context, filter string, handler mqtt.MessageHandler) error {
	st := u.client.Subscribe(filter, 1, handler)
	timeout := time.NewTimer(u.opt.ConnectTimeout)
	defer timeout.Stop()
	var err error
	select {
	case <-ctx.Done():
		return ctx.Err() // Close disconnects
	case <-timeout.C:
		err = errors.New("timed out")
	case <-st.Done():
		err = st.Error()
		if r, ok := st.(*mqtt.SubscribeToken); ok && err == nil && r.Result()[filter] == 0x80 {
			err = errRefused
		}
	}
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", filter, err)
	}
	return nil
}
