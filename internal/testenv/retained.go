package testenv

import (
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ClearRetained removes every retained message under prefix (a gateway's
// status, live values and alert documents) from a shared broker. The
// broker sends a new subscriber the retained messages at once; those that
// arrive within a second are cleared.
func ClearRetained(broker, prefix string) error {
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("outpost-clear-%d", time.Now().UnixNano())).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(10 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("clear retained under %s: connect: %v", prefix, tok.Error())
	}
	defer c.Disconnect(250)
	var mu sync.Mutex
	topics := map[string]bool{}
	tok := c.Subscribe(prefix+"/#", 0, func(_ mqtt.Client, m mqtt.Message) {
		if m.Retained() && len(m.Payload()) > 0 {
			mu.Lock()
			topics[m.Topic()] = true
			mu.Unlock()
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("clear retained under %s: subscribe: %v", prefix, tok.Error())
	}
	time.Sleep(time.Second)
	c.Unsubscribe(prefix + "/#").WaitTimeout(10 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	for t := range topics {
		if tok := c.Publish(t, 1, true, []byte{}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return fmt.Errorf("clear retained %s: %v", t, tok.Error())
		}
	}
	return nil
}

// CleanupRetained clears the retained messages under prefix when the test
// ends.
func CleanupRetained(t testing.TB, broker, prefix string) {
	t.Cleanup(func() {
		if err := ClearRetained(broker, prefix); err != nil {
			t.Error(err)
		}
	})
}
