package uplink

// Publish sends payload to topic, the full topic (see Topic), on the
// uplink's connection, for messages besides the batches: retained
// dashboard topics, say. When the uplink is not connected it returns
// false and drops the message.
//
// It never waits for the broker, not even for QoS 1: the caller learns
// nothing about delivery, and a message in flight when the connection
// drops is lost (the session is clean). It suits state that is published
// again, as in Options.OnConnect. paho hands the message to its writer
// goroutine, which can take up to ConnectTimeout while the socket is
// stalled. Safe for concurrent use.
func (u *Uplink) Publish(topic string, qos byte, retained bool, payload []byte) bool {
	if !u.connected.Load() {
		return false
	}
	t := u.client.Publish(topic, qos, retained, payload)
	select {
	case <-t.Done(): // refused at once (not connected any more), or sent (QoS 0)
		return t.Error() == nil
	default:
		return true
	}
}

// Topic returns prefix/gateway/suffix, e.g. Topic("live/t1/temp") is
// "outpost/v1/gw1/live/t1/temp" with the default prefix; Topic("") is the
// base with its trailing slash.
func (u *Uplink) Topic(suffix string) string { return u.base + "/" + suffix }
