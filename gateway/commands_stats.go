package gateway

import (
	"context"

	"github.com/tinylib/msgp/msgp"

	"github.com/outposthq/outpost/buffer"
	"github.com/outposthq/outpost/gateway/command"
)

// statsCommand: no arguments; replies a flat map of Gateway.Stats' key
// counters (names as in docs/commands.md): readings, batches, alerts,
// rules reloads, the outbox's contents and the uplink's counters.
func (g *Gateway) statsCommand() command.Command {
	return command.Command{Name: "stats", Run: func(_ context.Context, body []byte) ([]byte, error) {
		if err := noBody(body); err != nil {
			return nil, err
		}
		st := g.Stats()
		cs := g.cmds.Stats()
		ints := []struct {
			k string
			v int64
		}{
			{"readings_emitted", st.ReadingsEmitted},
			{"readings_stored", st.ReadingsStored},
			{"readings_lost", st.ReadingsLost},
			{"alerts_lost", st.AlertsLost},
			{"batches_stored", st.BatchesStored},
			{"alerts_raised", st.AlertsRaised},
			{"health_events", st.HealthEvents},
			{"rule_reloads", st.RuleReloads},
			{"rule_reload_fails", st.RuleReloadFails},
			{"rule_state_errors", st.RuleStateErrors},
			{"sensors", int64(len(st.Sensors))},
			{"outbox_alert_batches", int64(st.Outbox.Batches[buffer.LaneAlert])},
			{"outbox_telemetry_batches", int64(st.Outbox.Batches[buffer.LaneTelemetry])},
			{"outbox_bytes", st.Outbox.Bytes[buffer.LaneAlert] + st.Outbox.Bytes[buffer.LaneTelemetry]},
			{"outbox_file_bytes", st.Outbox.FileBytes},
			{"outbox_evicted", st.Outbox.Evicted},
			{"outbox_evicted_readings", st.Outbox.EvictedReadings},
			{"uplink_published", st.Uplink.Published},
			{"uplink_resent", st.Uplink.Resent},
			{"uplink_acked", st.Uplink.Acked},
			{"uplink_in_flight", int64(st.Uplink.InFlight)},
			{"uplink_dropped", st.Uplink.Dropped},
			{"uplink_bytes_sent", st.Uplink.BytesSent},
			{"uplink_bad_acks", st.Uplink.BadAcks},
			{"uplink_connects", st.Uplink.Connects},
			{"uplink_connect_failures", st.Uplink.ConnectFailures},
			{"commands_received", cs.Received},
			{"commands_run", cs.Runs},
			{"commands_unauthenticated", cs.Unauthenticated},
		}
		b := msgp.AppendMapHeader(nil, uint32(len(ints)+1))
		for _, kv := range ints {
			b = msgp.AppendString(b, kv.k)
			b = msgp.AppendInt64(b, kv.v)
		}
		b = msgp.AppendString(b, "uplink_connected")
		return msgp.AppendBool(b, st.Uplink.Connected), nil
	}}
}
