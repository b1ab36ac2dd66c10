package uplink

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/testenv"
)

// statusSub collects every message on a status topic, in arrival order.
type statusSub struct {
	mu   sync.Mutex
	msgs []string
}

// subscribeStatus subscribes to topic and clears the retained status
// the test leaves behind when it ends.
func subscribeStatus(t *testing.T, broker, topic string) *statusSub {
	t.Helper()
	s := &statusSub{}
	c := connect(t, broker)
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		if len(m.Payload()) == 0 {
			return // the clearing at the test's end
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, string(m.Payload()))
		s.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", topic, tok.Error())
	}
	t.Cleanup(func() { c.Publish(topic, 1, true, []byte{}).WaitTimeout(5 * time.Second) })
	return s
}

func (s *statusSub) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// wait returns the first message from the n-th on (from 0) that cond
// accepts, and its index, waiting for it with a generous deadline.
func (s *statusSub) wait(t *testing.T, what string, from int, cond func(outpost.Status) bool) (outpost.Status, int) {
	t.Helper()
	var found outpost.Status
	at := -1
	eventually(t, what, func() bool {
		for i, m := range s.all() {
			if i < from {
				continue
			}
			var st outpost.Status
			if err := json.Unmarshal([]byte(m), &st); err != nil {
				t.Fatalf("status %q: %v", m, err)
			}
			if cond(st) {
				found, at = st, i
				return true
			}
		}
		return false
	})
	return found, at
}

func online(st outpost.Status) bool { return st.State == "online" }

// The status document carries the version, the start time and the
// health as Options give them, with the JSON names the console reads;
// StatusChanged publishes a fresh one on the connection; Close publishes
// the offline one, health and all; the last will has none of them.
func TestStatusDocument(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	topic := prefix + "/gw-1/status"
	sub := subscribeStatus(t, broker, topic)
	var firing atomic.Int64
	firing.Store(1)
	ts := time.Date(2026, 12, 6, 10, 0, 0, 123e6, time.UTC)
	u := startUplink(t, newMemStore(1), Options{
		Broker: broker, Gateway: "gw-1", TopicPrefix: prefix,
		SensorLabels: map[string]map[string]string{"bme-1": {"room": "lab"}},
		Labels:       map[string]string{"site": "plant-3"},
		Version:      "outpost v1.2.3 go1.26.8 linux/arm",
		StartedAt:    func() time.Time { return time.Date(2026, 12, 6, 10, 0, 0, 7e8, time.FixedZone("CET", 3600)) },
		Health: func() *outpost.StatusHealth {
			return &outpost.StatusHealth{
				OutboxBatches: 12, OutboxBytes: 34567, OutboxOldest: "2026-12-06T09:55:00Z", ReadingsPerS: 6,
				AlertsFiring: firing.Load(), SensorsFailing: map[string][]string{"bme-1": {"failing"}},
			}
		},
		StatusHoldoff: 50 * time.Millisecond,
		Now:           func() time.Time { return ts },
	})
	_, birth := sub.wait(t, "the birth", 0, online)
	const want = `{"state":"online","gateway":"gw-1","ts":"2026-12-06T10:00:00.123Z",` +
		`"version":"outpost v1.2.3 go1.26.8 linux/arm","started_at":"2026-12-06T09:00:00Z",` +
		`"labels":{"site":"plant-3"},"sensors":{"bme-1":{"labels":{"room":"lab"}}},` +
		`"health":{"outbox_batches":12,"outbox_bytes":34567,"outbox_oldest":"2026-12-06T09:55:00Z","readings_per_s":6,` +
		`"alerts_firing":1,"alerts_pending":0,"sensors_failing":{"bme-1":["failing"]}}}`
	if got := sub.all()[birth]; got != want {
		t.Fatalf("birth\n got %s\nwant %s", got, want)
	}
	t.Logf("status: %s", want)

	firing.Store(2)
	u.StatusChanged()
	st, _ := sub.wait(t, "a status after the change", birth+1, func(st outpost.Status) bool {
		return online(st) && st.Health != nil && st.Health.AlertsFiring == 2
	})
	if st.Version == "" || st.StartedAt == "" || st.Sensors == nil {
		t.Errorf("status after the change lost fields: %+v", st)
	}

	if err := u.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	off, _ := sub.wait(t, "the offline status", 0, func(st outpost.Status) bool { return st.State == "offline" })
	if off.Health == nil || off.Health.AlertsFiring != 2 || off.Version == "" || off.Labels["site"] != "plant-3" {
		t.Errorf("clean offline %+v: want the health, the version and the labels", off)
	}
	if will := string(u.willJSON()); will != `{"state":"offline","gateway":"gw-1"}` {
		t.Errorf("last will %s: want no version, start time, labels or health", will)
	}
}

// With a status interval the connected uplink publishes a fresh document
// again and again, each with the health of its time.
func TestStatusInterval(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	sub := subscribeStatus(t, broker, prefix+"/gw/status")
	var calls atomic.Int64
	startUplink(t, newMemStore(1), Options{
		Broker: broker, Gateway: "gw", TopicPrefix: prefix, StatusInterval: 20 * time.Millisecond,
		Health: func() *outpost.StatusHealth {
			return &outpost.StatusHealth{OutboxBatches: calls.Add(1)}
		},
	})
	seen := map[int64]bool{}
	sub.wait(t, "three documents after the birth", 0, func(st outpost.Status) bool {
		if online(st) && st.Health != nil {
			seen[st.Health.OutboxBatches] = true
		}
		return len(seen) >= 4
	})
}

// Changes reported together make one document: StatusChanged called
// many times within the holdoff after the birth gives one more online
// document before the clean offline one, not one per call.
func TestStatusChangesCoalesce(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	sub := subscribeStatus(t, broker, prefix+"/gw/status")
	var firing atomic.Int64
	u := startUplink(t, newMemStore(1), Options{
		Broker: broker, Gateway: "gw", TopicPrefix: prefix, StatusHoldoff: 2 * time.Second,
		Health: func() *outpost.StatusHealth { return &outpost.StatusHealth{AlertsFiring: firing.Load()} },
	})
	_, birth := sub.wait(t, "the birth", 0, online)
	for i := range 50 {
		firing.Store(int64(i + 1))
		u.StatusChanged()
	}
	st, _ := sub.wait(t, "the status after the changes", birth+1, online)
	if st.Health.AlertsFiring != 50 {
		t.Errorf("status after the changes shows %d firing, want the last count, 50", st.Health.AlertsFiring)
	}
	if err := u.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, off := sub.wait(t, "the offline status", 0, func(st outpost.Status) bool { return st.State == "offline" })
	n := 0
	for _, m := range sub.all()[:off] {
		if strings.Contains(m, `"state":"online"`) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d online documents before the offline one, want the birth and one for the 50 changes:\n%s",
			n, strings.Join(sub.all(), "\n"))
	}
}

// A disconnected uplink publishes no status, and does not even ask for
// the health: the next connect publishes a fresh birth anyway.
func TestStatusNotWhileDisconnected(t *testing.T) {
	var calls atomic.Int64
	u := startUplink(t, newMemStore(1), Options{
		Broker: "tcp://127.0.0.1:1", Gateway: "gw", // nothing listens there
		BackoffInitial: 5 * time.Millisecond, MaxReconnect: 10 * time.Millisecond, StatusHoldoff: time.Millisecond,
		StatusInterval: time.Millisecond,
		Health:         func() *outpost.StatusHealth { calls.Add(1); return &outpost.StatusHealth{} },
	})
	for range 10 {
		u.StatusChanged()
	}
	eventually(t, "connection attempts", func() bool { return u.Stats().ConnectFailures >= 3 })
	if err := u.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("health asked for %d times while disconnected", n)
	}
}

// A health that breaks the document's bounds is left out rather than
// make the ingest service refuse the whole document; a null
// sensors_failing goes out as {}.
func TestStatusHealthOutOfBounds(t *testing.T) {
	var h *outpost.StatusHealth
	u, err := New(newMemStore(1), &Options{Broker: "tcp://127.0.0.1:1", Gateway: "gw",
		Health: func() *outpost.StatusHealth { return h }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		health *outpost.StatusHealth
		want   string // in the document; "" none
	}{
		{nil, ""},
		{&outpost.StatusHealth{}, `"health":{"outbox_batches":0,"outbox_bytes":0,"readings_per_s":0,"alerts_firing":0,"alerts_pending":0,"sensors_failing":{}}`},
		{&outpost.StatusHealth{AlertsFiring: -1}, ""},
		{&outpost.StatusHealth{OutboxOldest: "yesterday"}, ""},
		{&outpost.StatusHealth{SensorsFailing: map[string][]string{"a/b": {"failing"}}}, ""},
	} {
		h = tc.health
		got := string(u.statusJSON("online"))
		if tc.want == "" && strings.Contains(got, "health") || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("health %+v: status %s, want %q", tc.health, got, tc.want)
		}
	}
}

// statusSchedule: the interval counts from the last document, a change
// is due a holdoff after it (at once when that has passed), and a
// document resets both.
func TestStatusSchedule(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	due := func(s *statusSchedule) string {
		at, ok := s.next()
		if !ok {
			return "never"
		}
		return at.Sub(t0).String()
	}
	s := &statusSchedule{holdoff: 10 * time.Second, last: t0}
	for _, step := range []struct {
		do   func()
		want string
	}{
		{func() {}, "never"}, // interval 0: only changes
		{func() { s.changed = true }, "10s"},
		{func() { s.published(t0.Add(10 * time.Second)) }, "never"},
		{func() { s.interval = 5 * time.Minute }, "5m10s"},
		{func() { s.changed = true }, "20s"},
		{func() { s.published(t0.Add(time.Hour)) }, "1h5m0s"},
		{func() { s.changed = true }, "1h0m10s"},
	} {
		step.do()
		if got := due(s); got != step.want {
			t.Fatalf("due after t0+%s, want %s", got, step.want)
		}
	}
}

// New refuses the status options the ingest service would refuse the
// document for, and counts the health in the document's size.
func TestNewStatusOptions(t *testing.T) {
	many := map[string]map[string]string{}
	for i := range 500 {
		many[fmt.Sprintf("%060d", i)] = nil
	}
	health := func() *outpost.StatusHealth { return nil }
	bigLabels := map[string]string{}
	for i := range 40 {
		bigLabels[fmt.Sprint("l", i)] = strings.Repeat("v", outpost.MaxLabelValueLen)
	}
	for _, tc := range []struct {
		name string
		opts Options
		want string // "" accepted
	}{
		{"version", Options{Version: "outpost v1.2.3 go1.26.8 linux/arm"}, ""},
		{"long version", Options{Version: strings.Repeat("v", outpost.MaxStatusVersionLen+1)}, "uplink: status: version of 257 bytes, longer than 256"},
		{"NUL in version", Options{Version: "v1\x00"}, "uplink: status: version contains a NUL byte"},
		{"negative interval", Options{StatusInterval: -time.Second}, "uplink: status interval -1s is negative"},
		{"many sensors without health", Options{SensorLabels: many}, "uplink: status: the sensors' labels and health make a document of up to"},
		{"many sensors with health", Options{SensorLabels: many, Health: health}, "uplink: status: the sensors' labels and health make a document of up to"},
		{"fewer sensors with health", Options{SensorLabels: map[string]map[string]string{"a": nil}, Health: health}, ""},
		{"gateway labels", Options{Labels: map[string]string{"site": "plant-3"}}, ""},
		{"bad gateway labels", Options{Labels: map[string]string{"": "x"}}, "uplink: status: labels: a label with an empty name"},
		{"large gateway labels", Options{Labels: bigLabels, SensorLabels: map[string]map[string]string{"a": bigLabels}},
			"make a document of up to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Broker, o.Gateway = "tcp://127.0.0.1:1", "gw"
			u, err := New(newMemStore(1), &o)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New = %v, want %q", err, tc.want)
			case tc.want == "" && u.opt.StatusHoldoff != DefaultStatusHoldoff:
				t.Errorf("holdoff %v, want the default", u.opt.StatusHoldoff)
			}
		})
	}
}

// The broker's last will stays bare with the status options set: no
// version, start time or health, which the gateway cannot vouch for when
// the broker sends it.
func TestLastWillWithoutHealth(t *testing.T) {
	broker, prefix := testenv.MQTT(t), uniquePrefix()
	sub := subscribeStatus(t, broker, prefix+"/gw/status")
	px := startProxy(t, strings.TrimPrefix(broker, "tcp://"))
	startUplink(t, newMemStore(1), Options{
		Broker: "tcp://" + px.addr, Gateway: "gw", TopicPrefix: prefix, MaxReconnect: time.Hour, BackoffInitial: time.Hour,
		Version: "outpost v1.2.3", StartedAt: time.Now, StatusInterval: time.Hour,
		Health: func() *outpost.StatusHealth { return &outpost.StatusHealth{AlertsFiring: 3} },
	})
	_, birth := sub.wait(t, "the birth", 0, func(st outpost.Status) bool { return online(st) && st.Health != nil })
	px.cut()
	_, will := sub.wait(t, "the last will", birth+1, func(st outpost.Status) bool { return st.State == "offline" })
	if got := sub.all()[will]; got != `{"state":"offline","gateway":"gw"}` {
		t.Fatalf("last will %s", got)
	}
}
