package gateway

import (
	"sync/atomic"
	"time"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/rules"
)

// ruler feeds the rule engine from the bus and hands alert transitions to
// the batcher, and to the dashboard. It sees every reading before it is
// batched.
type ruler struct {
	in     <-chan []outpost.Reading
	out    chan<- []outpost.Alert
	engine *rules.Engine
	tick   time.Duration
	now    func() time.Time
	notify func(outpost.Alert) // optional
	dash   *dashboard          // optional: keeps the retained alert topics

	raised atomic.Int64
}

func (r *ruler) run() {
	defer close(r.out)
	t := time.NewTicker(r.tick)
	defer t.Stop()
	for {
		var as []outpost.Alert
		select {
		case rs, ok := <-r.in:
			if !ok {
				return
			}
			as = r.engine.Eval(rs, nil)
		case <-t.C:
			// Time passes without readings too: let `for` timers fire.
			as = r.engine.Tick(r.now().UnixNano(), nil)
		}
		if len(as) == 0 {
			continue
		}
		r.raised.Add(int64(len(as)))
		if r.notify != nil {
			for _, a := range as {
				r.notify(a)
			}
		}
		if r.dash != nil {
			r.dash.observe(as) // never blocks on the network
		}
		r.out <- as // the batcher reads alerts until this channel closes

	}
}
