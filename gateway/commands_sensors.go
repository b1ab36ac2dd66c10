package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost/gateway/command"
)

// sensorsTestCommand: body {"sensor": id}; reads that sensor once, on
// its poller's goroutine between two polls, with its retries and
// timeout, and replies {"sensor", "took_ns": how long the read took,
// "readings": [{"metric", "unit", "value", "quality", "ts" (unix ns)}]}.
// The readings are not emitted: they reach no bus, rule or outbox, and
// change no health condition. A read that fails answers error with the
// driver's words; an unknown sensor, error.
func (g *Gateway) sensorsTestCommand() command.Command {
	return command.Command{Name: "sensors.test", Run: func(ctx context.Context, body []byte) ([]byte, error) {
		args, err := readStringMap(body, 1)
		if err != nil {
			return nil, err
		}
		id, ok := args["sensor"]
		if !ok {
			return nil, command.Invalid(errors.New(`body: want {"sensor": a sensor id}`))
		}
		for _, p := range g.pollers {
			if p.Status().Sensor != id {
				continue
			}
			rs, took, err := p.Test(ctx)
			if err != nil {
				return nil, fmt.Errorf("sensor %s: %w", id, err)
			}
			b := msgp.AppendMapHeader(nil, 3)
			b = msgp.AppendString(b, "sensor")
			b = msgp.AppendString(b, id)
			b = msgp.AppendString(b, "took_ns")
			b = msgp.AppendInt64(b, took.Nanoseconds())
			b = msgp.AppendString(b, "readings")
			b = msgp.AppendArrayHeader(b, uint32(len(rs)))
			for _, r := range rs {
				b = msgp.AppendMapHeader(b, 5)
				b = msgp.AppendString(b, "metric")
				b = msgp.AppendString(b, r.Metric)
				b = msgp.AppendString(b, "unit")
				b = msgp.AppendString(b, r.Unit)
				b = msgp.AppendString(b, "value")
				b = msgp.AppendFloat64(b, r.Value)
				b = msgp.AppendString(b, "quality")
				b = msgp.AppendString(b, r.Quality.String())
				b = msgp.AppendString(b, "ts")
				b = msgp.AppendInt64(b, r.TS)
			}
			return b, nil
		}
		return nil, fmt.Errorf("no sensor %q", trimArg(id))
	}}
}
