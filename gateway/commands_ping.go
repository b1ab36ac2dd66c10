package gateway

import (
	"context"

	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost/gateway/command"
)

// pingCommand: no arguments; replies {"version": the binary's version
// ("" when unknown), "uptime_s": seconds since New (monotonic), "clock":
// the gateway's wall clock, unix ns, "outbox_batches": batches stored}.
func (g *Gateway) pingCommand() command.Command {
	return command.Command{Name: "ping", Run: func(_ context.Context, body []byte) ([]byte, error) {
		if err := noBody(body); err != nil {
			return nil, err
		}
		b := msgp.AppendMapHeader(nil, 4)
		b = msgp.AppendString(b, "version")
		b = msgp.AppendString(b, g.version)
		b = msgp.AppendString(b, "uptime_s")
		b = msgp.AppendInt64(b, int64((g.clock.mono() - g.startMono).Seconds()))
		b = msgp.AppendString(b, "clock")
		b = msgp.AppendInt64(b, g.clock.now().UnixNano())
		b = msgp.AppendString(b, "outbox_batches")
		return msgp.AppendInt(b, g.storedBatches()), nil
	}}
}
