package uplink

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost/internal/testenv"
)

// retainedUnder subscribes to filter with a client of its own and returns
// the retained messages that arrive within a second of the subscription.
func retainedUnder(t *testing.T, broker, filter string) map[string]string {
	t.Helper()
	c := connect(t, broker)
	defer c.Disconnect(100)
	var mu sync.Mutex
	got := map[string]string{}
	tok := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		if m.Retained() {
			mu.Lock()
			got[m.Topic()] = string(m.Payload())
			mu.Unlock()
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	time.Sleep(time.Second) // the broker sends retained messages right after the SUBACK
	mu.Lock()
	defer mu.Unlock()
	return got
}

func publishRetained(t *testing.T, c mqtt.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, true, []byte(payload)); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func decommission(broker, prefix, gw string, force bool) (DecommissionResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return Decommission(ctx, &DecommissionOptions{Broker: broker, Gateway: gw, TopicPrefix: prefix,
		Settle: 300 * time.Millisecond, Force: force})
}

// A real uplink leaves its status; the dashboard's topics are published
// retained as the gateway does. Decommission refuses while the gateway
// is online, then clears exactly the gateway's topics once it stopped.
func TestDecommissionClearsRetainedTopics(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	pub := connect(t, broker)
	t.Cleanup(func() {
		for _, topic := range []string{prefix + "/gw/status", prefix + "/gw/live/s1/temperature", prefix + "/gw/alert/hot", prefix + "/other/status"} {
			pub.Publish(topic, 1, true, []byte{}).WaitTimeout(5 * time.Second)
		}
	})
	u, err := New(newMemStore(1), &Options{Broker: broker, Gateway: "gw", TopicPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "connected", func() bool { return u.Stats().Connected })
	publishRetained(t, pub, prefix+"/gw/live/s1/temperature", `{"value":21.5}`)
	publishRetained(t, pub, prefix+"/gw/alert/hot", `{"state":"inactive"}`)
	publishRetained(t, pub, prefix+"/other/status", `{"state":"offline","gateway":"other"}`)

	res, err := decommission(broker, prefix, "gw", false)
	if !errors.Is(err, ErrOnline) || res.Status != "online" || res.Cleared {
		t.Fatalf("online gateway: %+v, %v; want ErrOnline", res, err)
	}
	if got := retainedUnder(t, broker, prefix+"/gw/#"); len(got) != 3 {
		t.Fatalf("a refused decommission cleared something: %v", got)
	}

	if err := u.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err = decommission(broker, prefix, "gw", false)
	want := []string{prefix + "/gw/alert/hot", prefix + "/gw/live/s1/temperature", prefix + "/gw/status"}
	if err != nil || res.Status != "offline" || !res.Cleared || !slices.Equal(res.Topics, want) {
		t.Fatalf("decommission: %+v, %v; want %v cleared", res, err, want)
	}
	if got := retainedUnder(t, broker, prefix+"/gw/#"); len(got) != 0 {
		t.Errorf("retained after decommission: %v", got)
	}
	if got := retainedUnder(t, broker, prefix+"/other/#"); len(got) != 1 {
		t.Errorf("another gateway's status: %v, want it kept", got)
	}

	// Nothing left: nothing to do.
	res, err = decommission(broker, prefix, "gw", false)
	if err != nil || len(res.Topics) != 0 || res.Status != "" {
		t.Errorf("second decommission: %+v, %v", res, err)
	}
}

// Force clears an online gateway's topics; DryRun clears nothing.
func TestDecommissionForceAndDryRun(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	pub := connect(t, broker)
	t.Cleanup(func() { pub.Publish(prefix+"/gw/status", 1, true, []byte{}).WaitTimeout(5 * time.Second) })
	publishRetained(t, pub, prefix+"/gw/status", `{"state":"online","gateway":"gw"}`)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Decommission(ctx, &DecommissionOptions{Broker: broker, Gateway: "gw", TopicPrefix: prefix,
		Settle: 300 * time.Millisecond, Force: true, DryRun: true})
	if err != nil || res.Cleared || len(res.Topics) != 1 {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	if got := retainedUnder(t, broker, prefix+"/gw/#"); len(got) != 1 {
		t.Fatalf("a dry run cleared: %v", got)
	}
	if res, err := decommission(broker, prefix, "gw", true); err != nil || !res.Cleared || res.Status != "online" {
		t.Fatalf("forced: %+v, %v", res, err)
	}
	if got := retainedUnder(t, broker, prefix+"/gw/#"); len(got) != 0 {
		t.Errorf("retained after a forced decommission: %v", got)
	}
}

// More retained topics than MaxTopics: nothing is cleared.
func TestDecommissionBounded(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	pub := connect(t, broker)
	topics := []string{prefix + "/gw/live/a/m", prefix + "/gw/live/b/m", prefix + "/gw/live/c/m"}
	t.Cleanup(func() {
		for _, topic := range topics {
			pub.Publish(topic, 1, true, []byte{}).WaitTimeout(5 * time.Second)
		}
	})
	for _, topic := range topics {
		publishRetained(t, pub, topic, "1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := Decommission(ctx, &DecommissionOptions{Broker: broker, Gateway: "gw", TopicPrefix: prefix,
		Settle: 300 * time.Millisecond, MaxTopics: 2})
	if err == nil || !strings.Contains(err.Error(), "more than 2 retained topics") {
		t.Fatalf("err = %v", err)
	}
	if got := retainedUnder(t, broker, prefix+"/gw/#"); len(got) != 3 {
		t.Errorf("cleared some: %v", got)
	}
}

func TestDecommissionRefusesBadOptions(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		o    *DecommissionOptions
		want string
	}{
		{nil, "no options"},
		{&DecommissionOptions{Gateway: "gw"}, "no broker"},
		{&DecommissionOptions{Broker: "tcp://127.0.0.1:1", Gateway: "gw/#"}, "not a gateway id"},
		{&DecommissionOptions{Broker: "tcp://127.0.0.1:1", Gateway: ""}, "not a gateway id"},
		{&DecommissionOptions{Broker: "tcp://127.0.0.1:1", Gateway: "gw", TopicPrefix: "a/+"}, "wildcards"},
		{&DecommissionOptions{Broker: "tcp://127.0.0.1:1", Gateway: "gw", TopicPrefix: "$SYS"}, "wildcards"},
		{&DecommissionOptions{Broker: "://user:s3cret@host", Gateway: "gw"}, "not scheme://host:port"},
		{&DecommissionOptions{Broker: "tcp://user:s3cret@127.0.0.1:1", Gateway: "gw", ConnectTimeout: 2 * time.Second}, "connect to tcp://user:xxxxx@127.0.0.1:1"},
	} {
		_, err := Decommission(ctx, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%+v: %v, want %q and no password", c.o, err, c.want)
		}
	}
}

// A gateway that publishes while Decommission listens is running, even
// when its retained status says offline; acks to it are not its own.
func TestDecommissionSeesAGatewayPublishing(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	pub := connect(t, broker)
	t.Cleanup(func() { pub.Publish(prefix+"/gw/status", 1, true, []byte{}).WaitTimeout(5 * time.Second) })
	publishRetained(t, pub, prefix+"/gw/status", `{"state":"offline","gateway":"gw"}`)

	run := func(topic string) (DecommissionResult, error) {
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(10 * time.Millisecond):
					pub.Publish(topic, 0, false, []byte("x"))
				}
			}
		})
		defer wg.Wait()
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return Decommission(ctx, &DecommissionOptions{Broker: broker, Gateway: "gw", TopicPrefix: prefix,
			Settle: 300 * time.Millisecond, DryRun: true})
	}
	if res, err := run(prefix + "/gw/live/s1/temperature"); !errors.Is(err, ErrOnline) || res.Publishing == 0 || res.Status != "offline" {
		t.Errorf("gateway publishing: %+v, %v; want ErrOnline", res, err)
	}
	if res, err := run(prefix + "/gw/ack"); err != nil || res.Publishing != 0 {
		t.Errorf("acks to the gateway: %+v, %v; want no sign of it running", res, err)
	}
}
