package gateway

import (
	"context"
	"errors"

	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost/gateway/command"
)

// flushCommand (buffer.flush): no arguments; seals the batcher's open
// batch now, whatever batch.interval and batch.max_delay say, and stores
// it with what else is sealed, as a tick would. Replies {"sealed_readings":
// the readings the open batch held (0: it was empty), "outbox_batches":
// batches stored after it}. Fails when the gateway is stopping (the
// batcher stores what it holds then anyway).
func (g *Gateway) flushCommand() command.Command {
	return command.Command{Name: "buffer.flush", Run: func(ctx context.Context, body []byte) ([]byte, error) {
		if err := noBody(body); err != nil {
			return nil, err
		}
		done := make(chan int, 1)
		select {
		case g.batcher.flush <- done:
		case <-g.closing:
			return nil, errors.New("gateway stopping")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var n int
		select {
		case n = <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		b := msgp.AppendMapHeader(nil, 2)
		b = msgp.AppendString(b, "sealed_readings")
		b = msgp.AppendInt(b, n)
		b = msgp.AppendString(b, "outbox_batches")
		return msgp.AppendInt(b, g.storedBatches()), nil
	}}
}
