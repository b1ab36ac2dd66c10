package uplink

import (
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/testenv"
)

// With OnCommand the uplink subscribes to cmd/+ (with either ack mode) and
// hands each request on with the command's name; other topics under the
// gateway's base are not commands.
func TestOnCommandReceivesRequests(t *testing.T) {
	for _, ack := range []AckMode{AckIngest, AckBroker} {
		t.Run(string(ack), func(t *testing.T) {
			broker, prefix := testenv.MQTT(t), uniquePrefix()
			var mu sync.Mutex
			got := map[string]string{}
			u := startUplink(t, newMemStore(1), Options{Broker: broker, Gateway: "gw-cmd", TopicPrefix: prefix, Ack: ack,
				OnCommand: func(name string, payload []byte) {
					mu.Lock()
					got[name] = string(payload)
					mu.Unlock()
				}})
			eventually(t, "connected", func() bool { return u.Stats().Connected })
			c := connect(t, broker)
			for topic, p := range map[string]string{"cmd/ping": "p1", "cmd/log.level": "p2", "cmdx/ping": "no", "cmd/a/b": "no"} {
				if tok := c.Publish(u.Topic(topic), 1, false, []byte(p)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatal(tok.Error())
				}
			}
			// After the two commands, a marker: paho delivers in order.
			if tok := c.Publish(u.Topic("cmd/zz"), 1, false, []byte("end")); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			eventually(t, "requests received", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return got["zz"] == "end"
			})
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 3 || got["ping"] != "p1" || got["log.level"] != "p2" {
				t.Fatalf("got %v", got)
			}
		})
	}
}
