package attack

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/outposthq/outpost/uplink"
)

// decommissionAs runs uplink.Decommission for the victim's topics,
// logged in as user.
func decommissionAs(t *testing.T, b *Broker, user string, dryRun bool) uplink.DecommissionResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := uplink.Decommission(ctx, &uplink.DecommissionOptions{Broker: b.URL(), Gateway: victim,
		TopicPrefix: b.Prefix, Username: user, Password: b.Password(user), Settle: 300 * time.Millisecond, DryRun: dryRun})
	if err != nil {
		t.Fatalf("decommission as %s: %v", user, err)
	}
	return res
}

// Under deploy/mosquitto's ACL a gateway's own identity finds and clears
// its retained topics; another gateway's identity sees none of them and
// so clears nothing.
func TestDecommissionUnderACL(t *testing.T) {
	b := startBroker(t, true)
	gw := b.mustDial(t, victim)
	want := []string{b.Topic(victim, "alert/fire"), b.Topic(victim, "live/s1/temperature"), b.Topic(victim, "status")}
	gw.publish(t, b.Topic(victim, "status"), []byte(`{"state":"offline","gateway":"gw-victim"}`), true)
	gw.publish(t, b.Topic(victim, "live/s1/temperature"), []byte(`{"value":21}`), true)
	gw.publish(t, b.Topic(victim, "alert/fire"), []byte(`{"state":"inactive"}`), true)

	if res := decommissionAs(t, b, mallory, false); len(res.Topics) != 0 {
		t.Fatalf("another gateway found the victim's topics: %v", res.Topics)
	}
	if res := decommissionAs(t, b, Dashboard, true); !slices.Equal(res.Topics, want) {
		t.Fatalf("retained after another gateway's decommission: %v, want %v", res.Topics, want)
	}
	if res := decommissionAs(t, b, victim, false); !res.Cleared || !slices.Equal(res.Topics, want) {
		t.Fatalf("the gateway's own decommission: %+v, want %v cleared", res, want)
	}
	if res := decommissionAs(t, b, Dashboard, true); len(res.Topics) != 0 {
		t.Errorf("a dashboard still sees %v", res.Topics)
	}
}
