package gateway

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/outposthq/outpost"
	"github.com/outposthq/outpost/ingest"
	"github.com/outposthq/outpost/ingest/storetest"
	"github.com/outposthq/outpost/internal/testenv"
)

// The gateway's retained status carries every sensor of its config with
// the config's labels ({} for a sensor without any), and through it the
// ingest service labels the sensors' series.
func TestStatusCarriesSensorLabels(t *testing.T) {
	broker := testenv.MQTT(t)
	cfg := shutdownConfig(t, broker, 2, 1, 10)
	cfg.Sensors[0].Labels = map[string]string{"room": "lab", "site": "hq"}
	clearStatus(t, broker, cfg)
	store := startIngest(t, broker, cfg.Uplink.TopicPrefix)
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

	var series []ingest.SeriesInfo
	waitFor(t, func() bool {
		var err error
		series, err = storetest.Collect(store.Series(context.Background(), ingest.SeriesQuery{Gateway: cfg.Gateway.ID, Limit: 10}))
		return err == nil && len(series) == 2
	})
	for _, si := range series {
		if w := want[si.Sensor].Labels; si.Metric != "temperature" || si.Unit != "Cel" || !maps.Equal(si.Labels, w) {
			t.Errorf("series %+v, want temperature in Cel with labels %v", si, w)
		}
	}
}
