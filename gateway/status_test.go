package gateway

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/internal/testenv"
)

// The gateway's retained status carries every sensor of its config with
// the config's labels ({} for a sensor without any).
func TestStatusCarriesSensorLabels(t *testing.T) {
	broker := testenv.MQTT(t)
	cfg := shutdownConfig(t, broker, 2, 1, 1000)
	cfg.Sensors[0].Labels = map[string]string{"room": "lab", "site": "hq"}
	clearStatus(t, broker, cfg)
	g, _ := startLogged(t, cfg)
	defer closeGateway(t, g)
	waitFor(t, func() bool { return g.Stats().Uplink.Connected })

	got := make(chan []byte, 1)
	c := brokerClient(t, broker)
	tok := c.Subscribe(cfg.Uplink.TopicPrefix+"/"+cfg.Gateway.ID+"/status", 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- m.Payload():
		default:
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	var p []byte
	select {
	case p = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no retained status")
	}
	var st outpost.Status
	if err := json.Unmarshal(p, &st); err != nil {
		t.Fatalf("status %s: %v", p, err)
	}
	want := map[string]outpost.SensorStatus{
		"dev0": {Labels: map[string]string{"room": "lab", "site": "hq"}},
		"dev1": {Labels: map[string]string{}},
	}
	if st.State != "online" || st.Gateway != cfg.Gateway.ID || !reflect.DeepEqual(st.Sensors, want) {
		t.Fatalf("status %s: want online with sensors %v", p, want)
	}
}
