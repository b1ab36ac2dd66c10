package gateway

// Remote commands (docs/commands.md): the uplink hands each request on
// {prefix}/{gateway}/cmd/{name} to the gateway's command.Dispatcher, which
// (with the gateway's key) checks its MAC, runs the commands below one at
// a time on its goroutine (started by Start, stopped by Close) and
// publishes each reply, QoS 1, on {prefix}/{gateway}/reply/{id}. Each command is one commands_*.go file
// with a constructor listed in gatewayCommands: adding one is one file and
// one line here.

import (
	"errors"
	"fmt"

	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/gateway/command"
)

// gatewayCommands are the gateway's commands.
func (g *Gateway) gatewayCommands() []command.Command {
	return []command.Command{
		g.pingCommand(),
		logLevelCommand(),
		g.rulesGetCommand(),
		g.rulesSetCommand(),
		g.sensorsTestCommand(),
		g.statsCommand(),
		g.configGetCommand(),
		g.flushCommand(),
	}
}

// newDispatcher builds the gateway's command dispatcher; its replies go
// out on the uplink (dropped while it is not connected: the cloud asks
// again with the same id and gets the kept reply). key is the gateway's
// key as loadKey loaded it, nil when uplink.auth is off: with it, the
// dispatcher runs only requests signed with it and signs its replies.
func (g *Gateway) newDispatcher(key *outpost.Key) (*command.Dispatcher, error) {
	return command.New(command.Options{
		Key:      key,
		Gateway:  g.cfg.Gateway.ID,
		Commands: g.gatewayCommands(),
		Publish: func(id string, reply []byte) {
			if !g.uplink.Publish(g.uplink.Topic("reply/"+id), 1, false, reply) {
				g.log.Debug().Str("id", id).Msg("command reply dropped: not connected")
			}
		},
		Now:    g.clock.now,
		Logger: g.log.With().Str("component", "commands").Logger(),
	})
}

// submitCommand is the uplink's OnCommand: it runs on paho's goroutine
// and never blocks.
func (g *Gateway) submitCommand(name string, payload []byte) { g.cmds.Submit(name, payload) }

// CommandStats are the command dispatcher's counters.
func (g *Gateway) CommandStats() command.Stats { return g.cmds.Stats() }

// noBody refuses a non-empty body other than an empty map or nil, for
// commands that take no arguments.
func noBody(body []byte) error {
	if len(body) == 0 || msgp.IsNil(body) {
		return nil
	}
	if n, rest, err := msgp.ReadMapHeaderBytes(body); err == nil && n == 0 && len(rest) == 0 {
		return nil
	}
	return command.Invalid(errors.New("this command takes no arguments: send an empty body"))
}

// readStringMap reads a body that is a map of at most max string keys to
// string values, for the commands that take a few named arguments. A
// value that is not a string is refused.
func readStringMap(body []byte, max uint32) (map[string]string, error) {
	out := map[string]string{}
	if len(body) == 0 || msgp.IsNil(body) {
		return out, nil
	}
	n, rest, err := msgp.ReadMapHeaderBytes(body)
	if err != nil {
		return nil, command.Invalid(fmt.Errorf("body: want a map: %v", err))
	}
	if n > max {
		return nil, command.Invalid(fmt.Errorf("body: %d keys, at most %d", n, max))
	}
	for range n {
		var k, v string
		if k, rest, err = msgp.ReadStringBytes(rest); err != nil {
			return nil, command.Invalid(fmt.Errorf("body: key: %v", err))
		}
		if v, rest, err = msgp.ReadStringBytes(rest); err != nil {
			return nil, command.Invalid(fmt.Errorf("body: %q: want a string: %v", k, err))
		}
		out[k] = v
	}
	if len(rest) != 0 {
		return nil, command.Invalid(errors.New("body: bytes after the map"))
	}
	return out, nil
}
