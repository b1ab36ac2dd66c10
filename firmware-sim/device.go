package firmwaresim

import (
	"context"
	"fmt"
	"time"

	"github.com/outposthq/outpost"
)

// Channel is one metric of a simulated device.
type Channel struct {
	Metric string
	Unit   string
	Signal SignalSpec
}

// Device is a simulated multi-channel sensor. Each Read samples every channel
// Samples times, spread evenly over the interval that ended at now, like a
// sensor that buffers samples in a FIFO between polls.
type Device struct {
	id       string
	interval time.Duration
	samples  int
	chans    []Channel
	sigs     []*Signal
	last     int64 // unix ns of the previous Read
}

// NewDevice returns a simulated device with the sensor id used in its
// readings. samples < 1 means 1.
func NewDevice(id string, interval time.Duration, samples int, chans []Channel) (*Device, error) {
	if samples < 1 {
		samples = 1
	}
	if interval <= 0 {
		return nil, fmt.Errorf("firmwaresim: device %s: interval must be > 0", id)
	}
	d := &Device{id: id, interval: interval, samples: samples, chans: chans}
	for _, c := range chans {
		s, err := NewSignal(c.Signal)
		if err != nil {
			return nil, fmt.Errorf("firmwaresim: device %s metric %s: %w", id, c.Metric, err)
		}
		d.sigs = append(d.sigs, s)
	}
	return d, nil
}

// Read appends this poll's readings to dst: Samples readings per channel,
// channel-major so each series is contiguous. They are spread over the
// time since the previous poll, at most an interval, like a FIFO holding
// what the sensor sampled meanwhile: a poll that comes early (catching up
// after a late one) never repeats an earlier poll's times.
func (d *Device) Read(_ context.Context, now time.Time, dst []outpost.Reading) ([]outpost.Reading, error) {
	end := now.UnixNano()
	span := int64(d.interval)
	if d.last != 0 && end-d.last < span {
		span = end - d.last
	}
	d.last = end
	step := max(span/int64(d.samples), 1)
	for ci, c := range d.chans {
		sig := d.sigs[ci]
		for i := d.samples - 1; i >= 0; i-- {
			ts := end - int64(i)*step
			dst = append(dst, outpost.Reading{Sensor: d.id, Metric: c.Metric, Unit: c.Unit, TS: ts, Value: sig.At(ts)})
		}
	}
	return dst, nil
}

// Close releases nothing; a simulated device owns no hardware.
func (d *Device) Close() error { return nil }
