package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/goccy/go-yaml"
	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost/gateway/command"
)

// redacted replaces a secret in config.get's reply.
const redacted = "REDACTED"

// configGetCommand: no arguments; replies {"yaml": the running config
// (after defaults and overrides) as YAML}. The config holds no secret
// itself, only where to find one (uplink.password_env names a variable,
// password_file and auth_key_file are paths, which are shown); a password
// in the broker URL's user info is replaced by REDACTED, and as a last
// guard every occurrence of the broker password (from its file or
// variable) is too. The key file's content is never read here.
func (g *Gateway) configGetCommand() command.Command {
	return command.Command{Name: "config.get", Run: func(_ context.Context, body []byte) ([]byte, error) {
		if err := noBody(body); err != nil {
			return nil, err
		}
		out, err := g.redactedConfig()
		if err != nil {
			return nil, err
		}
		b := msgp.AppendMapHeader(nil, 1)
		b = msgp.AppendString(b, "yaml")
		return msgp.AppendBytes(b, out), nil
	}}
}

// redactedConfig is the running config as YAML, without its secrets.
func (g *Gateway) redactedConfig() ([]byte, error) {
	c := *g.cfg // a shallow copy: only the fields redacted below are changed
	c.Uplink.Broker = redactURL(c.Uplink.Broker)
	out, err := yaml.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("config as YAML: %w", err)
	}
	// The password may not be readable any more (a rotated file): then it
	// cannot be in the output either, as nothing above read it.
	if pw, err := g.cfg.Uplink.Password(); err == nil && pw != "" {
		out = bytes.ReplaceAll(out, []byte(pw), []byte(redacted))
	}
	if len(out) > command.MaxReplyBytes-1024 {
		return nil, errors.New("the config is too large for a reply")
	}
	return out, nil
}

// redactURL replaces the password of a URL's user info.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return redacted // unparseable: it might be anything
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), redacted)
	}
	return u.String()
}
